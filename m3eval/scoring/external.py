"""`m3eval score --task T --predictions FILE.jsonl`: score predictions made elsewhere.

The file holds one JSON object a line with the sample `id` and its `prediction`.
References come from the task's dataset (text fields only, no media decoded).
An id given twice is an error (which line would count?). Ids the task does not
know are reported and left out; the task's samples with no prediction are
reported and scored 0 (as errors), and make the exit code 1 unless allow_missing.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..data.task_samples import load_task_data
from ..errors import DataError, RunError
from ..record import MAX_PREDICTION_CHARS, MISSING_PREDICTION, Results, RunBlock
from ..results import LOCK_NAME, atomic_write_jsonl, finalize, now_iso, prediction_files, read_jsonl
from ..tasks.schema import TaskSpec
from ..types import Prediction
from .run import score_one


def score_external(spec: TaskSpec, pred_file: Path, output: Path | None, override: str | None, seed: int,
                   allow_missing: bool = False) -> tuple[Results, int]:
    """(results, exit code): 1 when no prediction matches the task, or samples lack one
    (unless allow_missing)."""
    task = spec.task
    if not pred_file.exists():
        raise DataError(f"{pred_file}: no such file")
    run_dir = output / pred_file.stem if output else None
    if run_dir is not None and run_dir.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
        # it may be a run: its other tasks would vanish, and a later `run` would resume with these answers
        raise RunError(f"{run_dir} already exists; `score --predictions` writes only to a new folder: "
                       "give another --output, or move it aside")
    given: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for n, row in enumerate(read_jsonl(pred_file), 1):
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("prediction"), str):
            raise DataError(f"{pred_file}:{n}: expected {{\"id\": ..., \"prediction\": \"...\"}}, got {str(row)[:100]}")
        if len(row["prediction"]) > MAX_PREDICTION_CHARS:  # scoring it could exhaust memory; no model writes one
            raise DataError(f"{pred_file}:{n}: a prediction of {len(row['prediction']):,} characters, over the bound "
                            f"of {MAX_PREDICTION_CHARS:,}")
        sid = str(row["id"])
        if sid in given:
            raise DataError(f"{pred_file}:{n}: id {sid!r} again (first on line {first_line[sid]}); "
                            "keep one prediction per id")
        given[sid], first_line[sid] = row["prediction"], n
    print(f"m3eval score: {len(given)} predictions read from {pred_file}", file=sys.stderr)
    data = load_task_data(spec, None, "default", override)
    samples = data.samples
    known = set(samples.ids)
    unknown = [i for i in given if i not in known]
    missing = [i for i in samples.ids if i not in given]
    if unknown:
        print(f"m3eval: {len(unknown)} ids in {pred_file} are not in task {task} and were left out: "
              f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}", file=sys.stderr)
    if missing:
        print(f"m3eval: {len(missing)} of {len(samples)} samples of task {task} have no prediction and score 0: "
              f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
              f"{'' if allow_missing else ' (exit code 1; --allow-missing accepts this)'}", file=sys.stderr)
    preds = [Prediction.for_sample(s, given.get(s.id, ""), error=None if s.id in given else MISSING_PREDICTION)
             for s in samples]
    if run_dir is not None:
        atomic_write_jsonl(prediction_files(run_dir, task)[0], [p.to_json() for p in preds])
    entry = score_one(spec, preds, run_dir, seed, data.n_excluded)
    entry = entry.model_copy(update={"unknown_ids": len(unknown), "missing_ids": len(missing)})
    run = RunBlock(name=pred_file.stem, model={"backend": "external", "id": pred_file.name},
                   config={"tasks": [task], "seed": seed}, created=now_iso())
    results = finalize(run_dir / "results.json" if run_dir is not None else None, run, {task: entry}, {}, {})
    return results, 1 if not given.keys() & known or (missing and not allow_missing) else 0
