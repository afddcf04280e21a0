"""Scoring a run: predictions + current task definitions -> samples/ and the
`tasks` and `consistency` parts of results.json (groups: groups.py). Needs no model."""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any

from ..results import GENERATE_ERROR, atomic_write_jsonl, media_filename, read_jsonl
from . import judge
from .task import score_by, score_task
from ..tasks.schema import StepSpec, TaskSpec
from ..types import Prediction


def score_one(spec: TaskSpec, preds: list[Prediction], run_dir: Path | None, seed: int,
              excluded: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score one task; write samples/<task>.jsonl when run_dir is given. Returns its results entry
    (`excluded`: the rows doc.exclude_if dropped when the data was read, see build_samples).
    A judge metric's calls are cached in <run_dir>/judge/."""
    with judge.run_folder(run_dir):
        return _score_one(spec, preds, run_dir, seed, excluded)


def _score_one(spec: TaskSpec, preds: list[Prediction], run_dir: Path | None, seed: int,
               excluded: dict[str, Any] | None) -> dict[str, Any]:
    summary, records = score_task(preds, spec.metrics, spec.filters, spec.language, seed=seed,
                                  primary_metric=spec.primary, cluster_field=spec.doc.cluster)
    if run_dir is not None:
        media_dir = run_dir / "media" / spec.task
        for r in records:
            thumb = media_dir / media_filename(str(r["id"]))
            r["media"] = [str(thumb.relative_to(run_dir))] if thumb.exists() else []
        atomic_write_jsonl(run_dir / "samples" / f"{spec.task}.jsonl", records)
    entry: dict[str, Any] = {
        "hash": spec.content_hash(), "version": spec.version, "category": spec.category,
        "protocol": spec.protocol, "language": spec.language, "description": spec.description,
        "dataset": spec.dataset.model_dump(mode="json", exclude_none=True),
        "references_sha256": references_sha256(preds), **summary,
        "n_empty": sum(1 for p in preds if p.error is None and not p.prediction.strip()),
        "n_generate_errors": sum(1 for p in preds if (p.error or "").startswith(GENERATE_ERROR)),
    }
    if spec.doc.exclude_if:
        entry.update(_excluded(spec, excluded))
    if spec.doc.video or spec.doc.frames:
        entry["video"] = _video_block(spec, preds)
    with judge.subsets():  # parts of the task: the judge's info.json keeps describing the whole
        entry.update(_breakdowns(spec, preds, seed))
    return entry


def _excluded(spec: TaskSpec, got: dict[str, Any] | None) -> dict[str, Any]:
    """n_excluded / excluded_by: the rows doc.exclude_if dropped, as counted when the rows were
    read (None when unknown)."""
    field = spec.doc.exclude_if
    n = got["n"] if got and got.get("field") == field else None
    return {"n_excluded": n, "excluded_by": f"{field} is true"}


def recorded_exclusion(spec: TaskSpec, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The exclusion count a results entry recorded, for re-scoring (which reads no data)."""
    field = spec.doc.exclude_if
    if field and entry.get("excluded_by") == f"{field} is true":
        return {"field": field, "n": entry.get("n_excluded")}
    return None


def references_sha256(preds: list[Prediction]) -> str:
    """Fingerprint of the data a task was scored against: sha256 over the sorted (id, references)
    pairs, so `compare` can tell two results.json files scored different answers apart."""
    pairs = sorted((str(p.id), list(p.references)) for p in preds)
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


def _primary_only(spec: TaskSpec) -> list[StepSpec]:
    return [m for m in spec.metrics if m.name == spec.primary]


def _breakdowns(spec: TaskSpec, preds: list[Prediction], seed: int) -> dict[str, Any]:
    """Per instruction variant (mean, std, min-max) and per language, on the primary metric."""
    out: dict[str, Any] = {}
    args = {"metrics": _primary_only(spec), "filters": spec.filters, "lang": spec.language, "seed": seed,
            "cluster_field": spec.doc.cluster}
    varied = [p for p in preds if p.instruction is not None]
    if varied:  # only the values are reported per instruction: no intervals to compute
        by = score_by(varied, "instruction", **args, with_ci=False)
        values = [by[k]["metrics"][spec.primary]["value"] for k in sorted(by)]
        out["instructions"] = {"n": len(values), "metric": spec.primary, "per_instruction": values,
                               "mean": statistics.fmean(values), "std": statistics.pstdev(values),
                               "min": min(values), "max": max(values)}
    if len({p.lang for p in preds}) > 1:
        out["languages"] = {lang: e["metrics"] for lang, e in score_by(preds, "lang", **args).items()}
    return out


def _video_block(spec: TaskSpec, preds: list[Prediction]) -> dict[str, Any]:
    """The sampling rule used (uniform | fps | frames: stored frames passed through) and
    what it gave: frame counts, and how many videos were shorter than asked."""
    infos = [p.media_info for p in preds if p.media_info.get("frames") is not None]
    rules = sorted({i.get("rule") for i in infos if i.get("rule")})
    block: dict[str, Any] = {"rule": ",".join(rules) or ("fps" if spec.video.fps else "uniform"),
                             **spec.video.model_dump(mode="json")}
    if infos:
        got = [i["frames"] for i in infos]
        block.update(frames_min=min(got), frames_max=max(got), short=sum(1 for i in infos if i.get("short")))
    return block


def consistency(specs: list[TaskSpec], tasks: dict[str, dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """For task pairs over the same items in two languages (`consistency_with`): how often
    the model is right in both or wrong in both (primary score >= 0.5), and, for
    multiple choice, how often it picks the same option."""
    out: dict[str, Any] = {}
    for spec in specs:
        other = spec.consistency_with
        if not other or other == spec.task or other not in tasks or spec.task not in tasks:
            continue
        a = {r["id"]: r for r in read_jsonl(run_dir / "samples" / f"{spec.task}.jsonl")}
        b = {r["id"]: r for r in read_jsonl(run_dir / "samples" / f"{other}.jsonl")}
        ids = sorted(i for i in set(a) & set(b)
                     if a[i]["scores"].get(tasks[spec.task]["primary_metric"]) is not None
                     and b[i]["scores"].get(tasks[other]["primary_metric"]) is not None)
        if not ids:  # no shared items, or a primary metric with no per-sample scores
            continue
        pa, pb = tasks[spec.task]["primary_metric"], tasks[other]["primary_metric"]
        sa, sb = tasks[spec.task]["metrics"][pa]["scale"], tasks[other]["metrics"][pb]["scale"]
        same = sum((a[i]["scores"][pa] / sa >= 0.5) == (b[i]["scores"][pb] / sb >= 0.5) for i in ids)
        entry = {"tasks": [spec.task, other], "n": len(ids), "correctness_agreement": same / len(ids),
                 "langs": [tasks[spec.task]["language"], tasks[other]["language"]]}
        if all(a[i].get("choices") and b[i].get("choices") for i in ids):
            entry["answer_agreement"] = sum(a[i]["extracted"] is not None and a[i]["extracted"] == b[i]["extracted"]
                                            for i in ids) / len(ids)
        out[f"{spec.task}|{other}"] = entry
    return out
