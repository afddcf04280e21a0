"""Scoring a run: predictions + current task definitions -> samples/ and each task's entry of
results.json (`score_one`), then the whole file (`conclude`: groups from groups.py,
cross-language consistency, the invocations). Needs no model."""
from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..line_record import SampleRecord
from ..predictions import PredictionFile, PredictionList, PredictionSource
from ..record import Consistency, Results, RunBlock, SubmissionResult, TaskResult, Timings
from ..results import atomic_write_jsonl, encoder_extras_file, finalize, media_filename, read_json, read_samples
from ..tasks.registry import Registry
from ..tasks.schema import StepSpec, TaskSpec
from ..types import Prediction
from . import judge
from .groups import group_errors, group_scores
from .invocations import run_invocations
from .prescore import scoring_key
from .stream import EMPTY, GENERATE_ERROR, Columns, ScoreRows, score_task_blocks, score_task_whole, streams
from .task import group_rows, resolve_metrics


def score_one(spec: TaskSpec, preds: Sequence[Prediction] | PredictionFile, run_dir: Path | None, seed: int,
              n_excluded: int | None = None, stream: bool | None = None, prescored: bool = False) -> TaskResult:
    """Score one task; write samples/<task>.jsonl when run_dir is given. Returns its results entry
    (`n_excluded`: the rows doc.exclude_if dropped when the data was read, None when unknown).
    A judge metric's calls are cached in <run_dir>/judge/; an encoder task's extra results
    (openness) are read from <run_dir>/encoders/<task>.json. `stream`: score block by block
    (stream.py), reading `preds` once; None: when every metric of the task allows it. `prescored`:
    take the scores the run's workers made as they generated, where they match the task (prescore.py)."""
    with judge.run_folder(run_dir):
        return _score_one(spec, preds, run_dir, seed, n_excluded, stream, prescored)


def _score_one(spec: TaskSpec, preds: Sequence[Prediction] | PredictionFile, run_dir: Path | None, seed: int,
               n_excluded: int | None, stream: bool | None, prescored: bool) -> TaskResult:
    source = preds if isinstance(preds, PredictionFile) else PredictionList(preds)
    write = _records_writer(spec, run_dir)
    resolved = resolve_metrics(spec.metrics, spec.primary)
    args = (source, resolved, spec.filters, spec.language, seed, spec.primary, spec.doc.cluster, write)
    if stream if stream is not None else streams(resolved):
        summary, columns, score_rows = score_task_blocks(*args, scoring_key(spec) if prescored else None)
    else:
        summary, columns, score_rows = score_task_whole(*args)
    entry: dict[str, Any] = {
        "hash": spec.content_hash(), "version": spec.version, "category": spec.category,
        "protocol": spec.protocol, "language": spec.language, "description": spec.description,
        "dataset": spec.dataset.model_dump(mode="json", exclude_none=True),
        "references_sha256": _references_sha256(source, columns.ids), **summary,
        "n_empty": columns.count(EMPTY), "n_generate_errors": columns.count(GENERATE_ERROR),
    }
    if spec.doc.exclude_if:
        entry.update(n_excluded=n_excluded, excluded_by=_excluded_by(spec))
    if spec.doc.video or spec.doc.frames:
        entry["video"] = _video_block(spec, columns.frames)
    with judge.subsets():  # parts of the task: the judge's info.json keeps describing the whole
        entry.update(_breakdowns(spec, columns, score_rows))
    extras = encoder_extras_file(run_dir, spec.task) if run_dir is not None else None
    if extras is not None and extras.exists():
        entry.update(read_json(extras, "it is rebuilt by running the task again"))
    return TaskResult(**entry)


def _records_writer(spec: TaskSpec, run_dir: Path | None) -> Callable[[Iterator[dict[str, Any]]], None]:
    """What takes a task's records as scoring makes them: samples/<task>.jsonl written from them as they
    come, each with its thumbnail, or (no run folder) nothing kept."""
    def write(records: Iterator[dict[str, Any]]) -> None:
        if run_dir is None:
            deque(records, maxlen=0)
            return
        media = f"media/{spec.task}/"  # text, not a Path a sample: pathlib interns each name it parses

        def dumps() -> Iterator[dict[str, Any]]:
            for r in records:
                thumb = media + media_filename(str(r["id"]))
                r["media"] = [thumb] if os.path.exists(os.path.join(run_dir, thumb)) else []
                yield SampleRecord(**r).dump()

        atomic_write_jsonl(run_dir / "samples" / f"{spec.task}.jsonl", dumps())  # streamed: no list of every dump
    return write


def _excluded_by(spec: TaskSpec) -> str:
    return f"{spec.doc.exclude_if} is true"


def recorded_exclusion(spec: TaskSpec, entry: TaskResult | None) -> int | None:
    """The exclusion count a results entry recorded, for re-scoring (which reads no data)."""
    if spec.doc.exclude_if and entry is not None and entry.excluded_by == _excluded_by(spec):
        return entry.n_excluded
    return None


def references_sha256(pairs: Iterable[tuple[str, list[str]]]) -> str:
    """Fingerprint of the data a task was scored against: sha256 over the sorted (id, references)
    pairs, so `compare` can tell two results.json files scored different answers apart. `pairs`
    come sorted; hashed as json.dumps(list of pairs) writes them, a pair at a time."""
    h = hashlib.sha256(b"[")
    for k, pair in enumerate(pairs):
        h.update((", " if k else "").encode() + json.dumps(pair, ensure_ascii=False).encode())
    h.update(b"]")
    return h.hexdigest()


def _references_sha256(source: PredictionSource, ids: list[str]) -> str:
    """references_sha256 of a task's predictions, read again one at a time in id order (ids are unique
    in a predictions file; a list given with an id twice is sorted whole, references breaking the tie)."""
    if len(set(map(str, ids))) == len(ids):
        order = sorted(range(len(ids)), key=lambda i: str(ids[i]))
        return references_sha256((str(p.id), list(p.references)) for p in source.take(order))
    return references_sha256(sorted((str(p.id), list(p.references)) for p in source))


def _primary_only(spec: TaskSpec) -> list[StepSpec]:
    return [m for m in spec.metrics if m.name == spec.primary]


def _category_metrics(spec: TaskSpec) -> list[StepSpec]:
    names = spec.category_metrics or [spec.primary]
    return [m for m in spec.metrics if m.name in names]


def _breakdowns(spec: TaskSpec, columns: Columns, score_rows: ScoreRows) -> dict[str, Any]:
    """Per instruction variant (mean, std, min-max) and per language, on the primary metric; per
    doc.category, on the task's category_metrics. `score_rows` scores a part of the task."""
    out: dict[str, Any] = {}
    primary = _primary_only(spec)
    everyone = range(len(columns.ids))

    def by(values: Sequence[Any], rows: Iterable[int], metrics: list[StepSpec], primary_metric: str | None = None,
           with_ci: bool = True) -> dict[Any, dict[str, Any]]:
        return {k: score_rows(part, metrics, primary_metric, with_ci) for k, part in group_rows(values, rows).items()}

    varied = [i for i in everyone if columns.instructions[i] is not None]
    if varied:  # only the values are reported per instruction: no intervals to compute
        per = by(columns.instructions, varied, primary, with_ci=False)
        values = [per[k]["metrics"][spec.primary]["value"] for k in sorted(per)]
        out["instructions"] = {"n": len(values), "metric": spec.primary, "per_instruction": values,
                               "mean": statistics.fmean(values), "std": statistics.pstdev(values),
                               "min": min(values), "max": max(values)}
    if len(set(columns.langs)) > 1:
        out["languages"] = {lang: e["metrics"] for lang, e in by(columns.langs, everyone, primary).items()}
    if spec.doc.category:  # a sample without a category (a null field) is scored under "" (none)
        per_category = by([c or "" for c in columns.categories], everyone, _category_metrics(spec),
                          spec.primary if spec.primary in (spec.category_metrics or [spec.primary]) else None)
        out["categories"] = {str(k): {"n_samples": e["n_samples"], "metrics": e["metrics"]}
                             for k, e in per_category.items()}
    return out


def _video_block(spec: TaskSpec, infos: list[dict[str, Any]]) -> dict[str, Any]:
    """The sampling rule used (uniform | fps | frames: stored frames passed through) and
    what it gave: frame counts, and how many videos were shorter than asked. `infos`: the
    media_info of the samples with frames."""
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
