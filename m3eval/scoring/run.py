"""Scoring a run: predictions + current task definitions -> samples/ and each task's entry of
results.json (`score_one`), then the whole file (`conclude`: groups from groups.py,
cross-language consistency, the invocations). Needs no model."""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any, Callable

from ..record import Consistency, Results, RunBlock, SampleRecord, SubmissionResult, TaskResult, Timings
from ..results import atomic_write_jsonl, encoder_extras_file, finalize, media_filename, read_json, read_samples
from ..tasks.registry import Registry
from ..tasks.schema import StepSpec, TaskSpec
from ..types import Prediction
from . import judge
from .groups import group_errors, group_scores
from .invocations import run_invocations
from .task import score_by, score_task

# a task's bad data or definition met while scoring: that task fails, not the run
SCORING_ERRORS = (ValueError, TypeError, KeyError, RuntimeError)


def score_one(spec: TaskSpec, preds: list[Prediction], run_dir: Path | None, seed: int,
              n_excluded: int | None = None) -> TaskResult:
    """Score one task; write samples/<task>.jsonl when run_dir is given. Returns its results entry
    (`n_excluded`: the rows doc.exclude_if dropped when the data was read, None when unknown).
    A judge metric's calls are cached in <run_dir>/judge/; an encoder task's extra results
    (openness) are read from <run_dir>/encoders/<task>.json."""
    with judge.run_folder(run_dir):
        return _score_one(spec, preds, run_dir, seed, n_excluded)


def _score_one(spec: TaskSpec, preds: list[Prediction], run_dir: Path | None, seed: int,
               n_excluded: int | None) -> TaskResult:
    summary, records = score_task(preds, spec.metrics, spec.filters, spec.language, seed=seed,
                                  primary_metric=spec.primary, cluster_field=spec.doc.cluster)
    if run_dir is not None:
        media_dir = run_dir / "media" / spec.task
        for r in records:
            thumb = media_dir / media_filename(str(r["id"]))
            r["media"] = [str(thumb.relative_to(run_dir))] if thumb.exists() else []
        atomic_write_jsonl(run_dir / "samples" / f"{spec.task}.jsonl",  # streamed: no list of every dump
                           (SampleRecord(**r).dump() for r in records))
    entry: dict[str, Any] = {
        "hash": spec.content_hash(), "version": spec.version, "category": spec.category,
        "protocol": spec.protocol, "language": spec.language, "description": spec.description,
        "dataset": spec.dataset.model_dump(mode="json", exclude_none=True),
        "references_sha256": references_sha256(preds), **summary,
        "n_empty": sum(1 for p in preds if p.error is None and not p.prediction.strip()),
        "n_generate_errors": sum(1 for p in preds if p.error is not None and p.error.stage == "generate"),
    }
    if spec.doc.exclude_if:
        entry.update(n_excluded=n_excluded, excluded_by=_excluded_by(spec))
    if spec.doc.video or spec.doc.frames:
        entry["video"] = _video_block(spec, preds)
    with judge.subsets():  # parts of the task: the judge's info.json keeps describing the whole
        entry.update(_breakdowns(spec, preds, seed))
    extras = encoder_extras_file(run_dir, spec.task) if run_dir is not None else None
    if extras is not None and extras.exists():
        entry.update(read_json(extras, "it is rebuilt by running the task again"))
    return TaskResult(**entry)


def _excluded_by(spec: TaskSpec) -> str:
    return f"{spec.doc.exclude_if} is true"


def recorded_exclusion(spec: TaskSpec, entry: TaskResult | None) -> int | None:
    """The exclusion count a results entry recorded, for re-scoring (which reads no data)."""
    if spec.doc.exclude_if and entry is not None and entry.excluded_by == _excluded_by(spec):
        return entry.n_excluded
    return None


def references_sha256(preds: list[Prediction]) -> str:
    """Fingerprint of the data a task was scored against: sha256 over the sorted (id, references)
    pairs, so `compare` can tell two results.json files scored different answers apart."""
    pairs = sorted((str(p.id), list(p.references)) for p in preds)
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


def _primary_only(spec: TaskSpec) -> list[StepSpec]:
    return [m for m in spec.metrics if m.name == spec.primary]


def _category_metrics(spec: TaskSpec) -> list[StepSpec]:
    names = spec.category_metrics or [spec.primary]
    return [m for m in spec.metrics if m.name in names]


def _breakdowns(spec: TaskSpec, preds: list[Prediction], seed: int) -> dict[str, Any]:
    """Per instruction variant (mean, std, min-max) and per language, on the primary metric; per
    doc.category, on the task's category_metrics."""
    out: dict[str, Any] = {}
    primary = _primary_only(spec)

    def by(key: str, ps: list[Prediction], with_ci: bool = True) -> dict[Any, dict[str, Any]]:
        return score_by(ps, key, primary, spec.filters, spec.language, seed, with_ci=with_ci,
                        cluster_field=spec.doc.cluster)

    varied = [p for p in preds if p.instruction is not None]
    if varied:  # only the values are reported per instruction: no intervals to compute
        per = by("instruction", varied, with_ci=False)
        values = [per[k]["metrics"][spec.primary]["value"] for k in sorted(per)]
        out["instructions"] = {"n": len(values), "metric": spec.primary, "per_instruction": values,
                               "mean": statistics.fmean(values), "std": statistics.pstdev(values),
                               "min": min(values), "max": max(values)}
    if len({p.lang for p in preds}) > 1:
        out["languages"] = {lang: e["metrics"] for lang, e in by("lang", preds).items()}
    if spec.doc.category:  # a sample without a category (a null field) is scored under "" (none)
        per_category = score_by(preds, lambda p: p.category or "", _category_metrics(spec), spec.filters,
                                spec.language, seed, primary_metric=spec.primary
                                if spec.primary in (spec.category_metrics or [spec.primary]) else None,
                                cluster_field=spec.doc.cluster)
        out["categories"] = {str(k): {"n_samples": e["n_samples"], "metrics": e["metrics"]}
                             for k, e in per_category.items()}
    return out


def _video_block(spec: TaskSpec, preds: list[Prediction]) -> dict[str, Any]:
    """The sampling rule used (uniform | fps | frames: stored frames passed through) and
    what it gave: frame counts, and how many videos were shorter than asked."""
    infos = [p.media_info for p in preds if p.media_info.get("frames") is not None]
    rules = sorted({str(i["rule"]) for i in infos if i.get("rule")})
    block: dict[str, Any] = {"rule": ",".join(rules) or ("fps" if spec.video.fps else "uniform"),
                             **spec.video.model_dump(mode="json")}
    if infos:
        got = [i["frames"] for i in infos]
        block.update(frames_min=min(got), frames_max=max(got), short=sum(1 for i in infos if i.get("short")))
    return block


def consistency(specs: list[TaskSpec], tasks: dict[str, TaskResult], run_dir: Path) -> dict[str, Consistency]:
    """For task pairs over the same items in two languages (`consistency_with`): how often
    the model is right in both or wrong in both (primary score >= 0.5), and, for
    multiple choice, how often it picks the same option."""
    out: dict[str, Consistency] = {}
    for spec in specs:
        other = spec.consistency_with
        if not other or other == spec.task or other not in tasks or spec.task not in tasks:
            continue
        a = {r.id: r for r in read_samples(run_dir, spec.task)}
        b = {r.id: r for r in read_samples(run_dir, other)}
        ta, tb = tasks[spec.task], tasks[other]
        pa, pb = ta.primary_metric, tb.primary_metric
        right_a = {i: s / ta.primary.scale >= 0.5 for i, r in a.items() if (s := r.scores.get(pa)) is not None}
        right_b = {i: s / tb.primary.scale >= 0.5 for i, r in b.items() if (s := r.scores.get(pb)) is not None}
        ids = sorted(set(right_a) & set(right_b))
        if not ids:  # no shared items, or a primary metric with no per-sample scores
            continue
        same = sum(right_a[i] == right_b[i] for i in ids)
        answers = None
        if all(a[i].choices and b[i].choices for i in ids):
            answers = sum(a[i].extracted is not None and a[i].extracted == b[i].extracted for i in ids) / len(ids)
        agreement = Consistency(tasks=[spec.task, other], n=len(ids), correctness_agreement=same / len(ids),
                                langs=[ta.language, tb.language])
        out[f"{spec.task}|{other}"] = agreement if answers is None else \
            agreement.model_copy(update={"answer_agreement": answers})
    return out


def conclude(registry: Registry, specs: list[TaskSpec], tasks: dict[str, TaskResult], run_dir: Path, seed: int,
             run: RunBlock, timings: Callable[[], Timings], failures: list[str] | None = None,
             submissions: dict[str, SubmissionResult] | None = None) -> Results:
    """The run's results.json from its scored tasks (and submission-only ones, never scored): groups,
    cross-language consistency and the run block's invocation summary, written by results.finalize.
    `timings` is asked last, so the time it records includes this. `failures`: this invocation's
    tasks that could not run (group errors are added); None keeps the run block's."""
    groups = group_scores(registry, tasks, run_dir, seed)
    merged, invocations = run_invocations({**tasks, **(submissions or {})})
    update: dict[str, Any] = {"merged": merged, "invocations": invocations}
    if failures is not None:
        update["failures"] = failures + group_errors(groups)
    agreement = consistency(specs, tasks, run_dir)
    return finalize(run_dir / "results.json", run.model_copy(update=update), tasks, groups, agreement, timings(),
                    submissions)
