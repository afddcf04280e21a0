"""Per-sample scores made where a batch is generated (issue 24): a worker (the one process, a
torchrun rank, a Ray actor) scores each batch it writes, so the run's scoring at the end only reads
those scores (scoring/stream.py) and runs no metric over the task again.

Only a task whose metrics are all `independent` (metrics/base.py: a sample's score is its own) is
scored so; a task with a corpus or grouping metric (CIDEr, MMBench's CircularEval) is scored at the
end, where every sample is. The scores carry the key they were made under (`scoring_key`): scoring
uses them only when it matches the task as scored, and `m3eval score` always computes afresh. A
batch whose scoring fails is written unscored: the end's scoring meets the same error and reports it
as it always did, and generation goes on."""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from ..line_record import Scored
from ..results import package_version
from ..tasks.schema import TaskSpec
from ..types import Prediction
from .filters import step_spec
from .stream import streams
from .task import SCORING_ERRORS, Resolved, compute, resolve_metrics, sample_input


def scoring_key(spec: TaskSpec) -> str:
    """What a sample's scores depend on beyond the sample: the task's metrics and filters (with their
    args), its language, and the m3eval version (a metric's code)."""
    steps = {"metrics": [step_spec(m) for m in spec.metrics], "filters": [step_spec(f) for f in spec.filters or []],
             "language": spec.language, "m3eval": _version()}
    return hashlib.sha256(json.dumps(steps, sort_keys=True, default=str).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _version() -> str | None:
    return package_version("m3eval")  # read once: a key is made per task and per scoring


class BatchScorer:
    """Scores batches of prediction rows (Prediction.to_json) in place, adding each row's `scored`."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[str, Resolved] | None] = {}  # None: the task is scored at the end

    def _task(self, spec: TaskSpec) -> tuple[str, Resolved] | None:
        if spec.task not in self._tasks:
            resolved: Resolved = []
            if spec.submission is None and spec.metrics:  # a submission-only task is written, not scored
                try:
                    resolved = resolve_metrics(spec.metrics, spec.primary)
                except SCORING_ERRORS:  # reported by the scoring at the end, as before
                    pass
            self._tasks[spec.task] = (scoring_key(spec), resolved) if resolved and streams(resolved) else None
        return self._tasks[spec.task]

    def __call__(self, spec: TaskSpec, rows: list[dict[str, Any]]) -> None:
        task = self._task(spec)
        if task is None or not rows:
            return
        key, resolved = task
        try:
            inputs = [sample_input(Prediction.from_json(row), spec.filters, spec.language) for row in rows]
            items = [item for item, _ in inputs]
            scores: list[dict[str, float]] = [{} for _ in rows]
            for name, metric, args in resolved:
                per_sample = compute(name, metric, args, items).per_sample
                if per_sample is None or len(per_sample) != len(rows) or None in per_sample:
                    return  # the contract broken: the end's scoring says so
                for row_scores, s in zip(scores, per_sample):
                    row_scores[name] = float(s or 0)
            scored = [Scored(by=key, extracted=record["extracted"], scores=row_scores).dump()
                      for (_, record), row_scores in zip(inputs, scores)]
        except SCORING_ERRORS:  # a filter or metric failing on this batch (or an answer that is not text,
            return  # a score that is not finite): the end's scoring reports it
        for row, done in zip(rows, scored):
            row["scored"] = done
