"""What scoring per-sample metrics in the workers moves out of a task's end (issue 24). Prints figures.

    python benchmarks/bench_prescore.py [--n 100000] [--batch-size 8]

N synthetic VQA predictions (ten answers each, VQA accuracy + exact match, a regex filter) are
scored as a worker scores them, batch by batch as it writes them (scoring/prescore.py), then the
task's predictions file is scored at the end twice: taking those scores (a run) and computing
every score again (`m3eval score`). Both ends give the same entry and records (tests/test_prescore.py).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3eval.predictions import PredictionFile  # noqa: E402
from m3eval.results import atomic_write_jsonl  # noqa: E402
from m3eval.scoring.prescore import BatchScorer  # noqa: E402
from m3eval.scoring.run import score_one  # noqa: E402
from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec  # noqa: E402
from m3eval.types import Prediction  # noqa: E402

WORDS = ["red", "blue", "two", "yes", "no", "a cat", "Red.", "three dogs"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args()
    rng = random.Random(0)
    spec = TaskSpec(task="t", source="t.yaml", dataset=DatasetSpec(path="qa.jsonl"),
                    metrics=[StepSpec(name="vqa_accuracy"), StepSpec(name="exact_match")],
                    filters=[StepSpec(name="regex", args={"pattern": r"(\w+)"})],
                    doc=DocSpec(prompt="{{ q }}", references="a", id="id"))
    rows = [Prediction(id=f"q{i}", prediction=rng.choice(WORDS), prompt=f"Question {i}: what is shown?",
                       references=[rng.choice(WORDS) for _ in range(10)]).to_json() for i in range(a.n)]
    scorer = BatchScorer()
    t = time.perf_counter()
    for i in range(0, a.n, a.batch_size):
        scorer(spec, rows[i:i + a.batch_size])
    workers = time.perf_counter() - t
    print(f"{a.n} VQA predictions, batches of {a.batch_size}")
    print(f"  scored in the workers, batch by batch: {workers:6.2f} s in all ({workers / a.n * 1e6:.0f} us a sample, "
          "spread over the workers, behind the model)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.jsonl"
        atomic_write_jsonl(path, rows[:100])
        score_one(spec, PredictionFile(path, 100), None, seed=0)  # imports (scipy.stats: ~1 s) outside the timings
        atomic_write_jsonl(path, rows)
        del rows
        for label, prescored in (("the run's end, taking those scores", True), ("computing every score (m3eval "
                                                                                 "score)", False)):
            t = time.perf_counter()
            score_one(spec, PredictionFile(path, a.n), Path(tmp) / label[:3], seed=0, prescored=prescored)
            print(f"  {label + ':':<45} {time.perf_counter() - t:6.2f} s")


if __name__ == "__main__":
    main()
