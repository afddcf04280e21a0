"""`m3eval score RUN`: re-score a finished run's stored predictions with the current task
definitions, without a model. References are those stored with the predictions (a fixed
reference set needs a new run); each task keeps the record of the invocation that generated it."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..predictions import read_predictions
from ..record import Results, RunBlock, SubmissionResult, TaskResult, Timings
from ..results import (
    git_sha,
    now_iso,
    predicted_tasks,
    prediction_files,
    read_results,
    require_run_dir,
)
from ..tasks.registry import Registry
from ..tasks.schema import TaskSpec
from ..types import Prediction
from .invocations import inferred_invocation
from .run import conclude, recorded_exclusion, score_one
from .submission import write_submission
from .task import SCORING_ERRORS


def rescore(run_dir: Path, include_paths: list[Path] | None = None, seed: int | None = None) -> Results:
    require_run_dir(run_dir)
    old = read_results(run_dir, "move it aside: `m3eval score` then rebuilds it from the predictions (without "
                                "the run's timings and versions)")
    registry = Registry.discover(include_paths or [])
    names = predicted_tasks(run_dir)
    missing = [n for n in names if n not in registry.tasks]
    if missing:
        raise RunError(f"{run_dir}: predictions for tasks with no definition: {', '.join(missing)} "
                       "(pass --include-path for tasks defined outside tasks/)")
    if seed is None:
        seed = (old.run.config or {}).get("seed", 0) if old is not None else 0
    t0 = time.perf_counter()
    tasks: dict[str, TaskResult] = {}
    submissions: dict[str, SubmissionResult] = {}
    for name in names:
        spec = registry.tasks[name]
        before = old.tasks.get(name) if old is not None else None
        preds = list(read_predictions(prediction_files(run_dir, name)).values())
        if spec.submission is not None:  # answers withheld: the server's file again, never a score
            submissions[name] = _submission_again(spec, preds, run_dir, old)
            continue
        try:
            entry = score_one(spec, preds, run_dir, seed, recorded_exclusion(spec, before))
        except SCORING_ERRORS as e:
            raise RunError(f"task {name} ({spec.source}): scoring failed: {type(e).__name__}: {e}") from None
        tasks[name] = _as_before(entry, before, old.run if old is not None else None)
    run = (old.run if old is not None else RunBlock(name=run_dir.name)).model_copy(
        update={"rescored": now_iso(), "rescored_git_sha": git_sha()})
    timings = old.timings if old is not None else Timings()
    return conclude(registry, [registry.tasks[n] for n in names], tasks, run_dir, seed, run,
                    lambda: timings.model_copy(update={"score_s": round(time.perf_counter() - t0, 3)}),
                    submissions=submissions)


def _submission_again(spec: TaskSpec, preds: list[Prediction], run_dir: Path, old: Results | None
                      ) -> SubmissionResult:
    try:
        entry = write_submission(spec, preds, run_dir)
    except SCORING_ERRORS as e:
        raise RunError(f"task {spec.task} ({spec.source}): writing its submission failed: "
                       f"{type(e).__name__}: {e}") from None
    before = old.submissions.get(spec.task) if old is not None else None
    invocation = (before.invocation if before else None) or inferred_invocation(old.run if old else None)
    return entry.model_copy(update={"invocation": invocation})


def _as_before(entry: TaskResult, before: TaskResult | None, run: RunBlock | None) -> TaskResult:
    """What re-scoring does not change: which invocation generated the task (inferred from the
    file's run block for entries older than per-task records), and its single-instruction note."""
    update: dict[str, Any] = {"invocation": (before.invocation if before else None) or inferred_invocation(run)}
    if entry.instructions is None and before is not None and before.instructions is not None \
            and before.instructions.mode is not None:
        update["instructions"] = before.instructions
    return entry.model_copy(update=update)
