"""One process vs torchrun vs Ray workers: wall time and identical predictions (issue 24).

    python benchmarks/bench_engines.py [--samples 1280] [--batch-size 8]

A synthetic demo_vqa task of N samples (the demo's generator: pictures and ten answers each),
the tiny demo model on CPU, one torch thread per process. Each engine runs the same command in
a fresh `python -m m3eval run` process, into its own run folder:
  one process                       (the reference)
  torchrun --nproc_per_node 2       (gloo, batches dealt out to the ranks)
  --engine ray --num-workers 1 / 2  (a local Ray cluster started by the run; chunks handed out)
and prints the whole command's wall time, samples/s, whether every prediction record (all
fields but the timing) equals the reference's, and the run's own timing line (load: the model,
or under Ray the cluster and the first worker's model; generate: from the first chunk handed
out to the last written). Wall time includes start-up, so it favours one process at small N.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_data(n: int, folder: Path) -> Path:
    import datasets

    from m3eval.demo.data import vqa_rows
    datasets.disable_progress_bars()
    path = folder / "vqa.parquet"
    datasets.Dataset.from_list(vqa_rows(n, seed=1)).cast_column("image", datasets.Image()).to_parquet(str(path))
    return path


def rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "predictions" / "demo_vqa.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=1280)
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args()
    from m3eval.demo.tiny_model import ensure_tiny_model
    model = ensure_tiny_model()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(a.samples, Path(tmp))
        args = ["--model-args", f"pretrained={model}", "--tasks", "demo_vqa", "--dataset-override",
                f"demo_vqa={data}", "--batch-size", str(a.batch_size), "--threads", "1", "--output", tmp, "--no-media"]
        engines = {"one process": [sys.executable, "-m", "m3eval", "run"],
                   "torchrun x2": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   "--nproc_per_node", "2", "-m", "m3eval", "run"],
                   "ray x1": [sys.executable, "-m", "m3eval", "run", "--engine", "ray", "--num-workers", "1"],
                   "ray x2": [sys.executable, "-m", "m3eval", "run", "--engine", "ray", "--num-workers", "2"]}
        print(f"demo_vqa, {a.samples} samples, batch size {a.batch_size}, tiny model on CPU, 1 torch thread a process")
        reference = None
        for k, (name, command) in enumerate(engines.items()):
            t0 = time.perf_counter()
            done = subprocess.run([*command, *args, "--run-name", f"r{k}"], cwd=ROOT, env=env, capture_output=True,
                                  text=True)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                print(f"{name:12s} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            got = rows(Path(tmp) / f"r{k}")
            reference = reference if reference is not None else got
            same = "identical" if got == reference else \
                f"{sum(x != y for x, y in zip(got, reference))} of {len(got)} records differ"
            lines = (done.stdout + done.stderr).splitlines()
            timing = [line.strip() for line in lines if line.startswith("load ")][-1:]
            print(f"{name:12s} wall {wall:6.1f} s  {a.samples / wall:6.1f} samples/s  predictions: {same}  "
                  f"(run's own: {timing[0] if timing else '-'})")


if __name__ == "__main__":
    main()
