"""Group scores: one number over a group's tasks, defined so it never mixes scales silently.

A group aggregates its members' primary metrics, each divided by its `scale` (0..1 units):
- `aggregate: macro` (default): the unweighted mean of the members (a member group counts once,
  as a task does); `micro`: the mean weighted by each member's number of samples (a member
  group weighs its samples' total), lm-evaluation-harness's default `weight_by_size`.
- The leaf tasks must share one primary metric. A group mixing metrics (CIDEr beside
  accuracy) is refused (value null, `error` naming the group) unless it says
  `normalize: scale`: then it is the mean of normalized scores (`metric: normalized score`),
  each member's value / scale, an unbounded metric clipped as the board clips it
  (CIDEr-D: min(value / 2.0, 1), Metric.clip_max), and `normalization` says how per metric.
- Interval: a percentile bootstrap over the tasks' samples (samples/<task>.jsonl): a mean
  metric's per-sample scores are resampled, a corpus metric (BLEU, CIDEr) re-scored on each
  resampled corpus through its `rescore`. Clusters are resampled jointly across the group's
  tasks, so the same item in several tasks (M3IT-80's languages share ids) moves together.
  Without per-sample records `ci` is null and `ci_note` says why.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..metrics import get_metric
from ..metrics.base import record_input
from ..metrics.stats import cluster_labels, index_chunks, percentile_ci
from ..record import GroupResult, TaskResult
from ..results import read_samples
from ..tasks.registry import Registry

RESAMPLES = 1000
NORMALIZED = "normalized score"  # a mixed group's `metric`: no plain mean across scales


def group_scores(registry: Registry, tasks: dict[str, TaskResult], run_dir: Path | None = None,
                 seed: int = 0) -> dict[str, GroupResult]:
    """Each group all of whose tasks the run has: its value, aggregation and interval."""
    out: dict[str, GroupResult] = {}
    members: dict[str, _Member | str] = {}  # each task's samples read (and re-scored) once, for every group
    for g in registry.groups_within(list(tasks)):
        out[g.group] = GroupResult(**_group_entry(registry, g.group, tasks, run_dir, seed, members))
    return dict(sorted(out.items()))


def group_errors(groups: dict[str, GroupResult]) -> list[str]:
    return [f"group {name}: {g.error}" for name, g in groups.items() if g.error]


def _group_entry(registry: Registry, name: str, tasks: dict[str, TaskResult], run_dir: Path | None,
                 seed: int, members: dict[str, "_Member | str"]) -> dict[str, Any]:
    g = registry.groups[name]
    leaves = registry.expand(name)
    entry: dict[str, Any] = {"tasks": leaves, "members": list(g.tasks), "category": g.category,
                             "aggregate": g.aggregate, "normalize": g.normalize, "scale": 1,
                             "n_tasks": len(leaves), "n_samples": sum(tasks[t].n_samples or 0 for t in leaves)}
    by_metric: dict[str, list[str]] = {}
    for t in leaves:
        by_metric.setdefault(tasks[t].primary_metric, []).append(t)
    mixed = len(by_metric) > 1
    if mixed and g.normalize != "scale":  # the text before the first ':' is the table's short reason
        listed = "; ".join(f"{m} ({', '.join(ts)})" for m, ts in by_metric.items())
        return {**entry, "metric": None, "value": None, "ci": None,
                "error": f"different primary metrics: {listed}; add `normalize: scale` to "
                         f"{g.source or 'its YAML'} to average their normalized scores, or split the group"}
    clips = {m: _clip_max(m) for m in by_metric} if mixed else {}
    if mixed:
        entry["metric"] = NORMALIZED
        entry["normalization"] = {m: "value / scale" if c is None else f"min(value / scale / {c:g}, 1)"
                                  for m, c in clips.items()}
    else:
        entry["metric"] = next(iter(by_metric))
    clip = {t: clips.get(tasks[t].primary_metric) for t in leaves}
    values = {t: _clipped(_scaled(tasks[t]), clip[t]) for t in leaves}
    entry["value"] = _aggregate(registry, name, values, tasks)
    entry["ci"], note = _group_ci(registry, name, leaves, tasks, run_dir, seed, members, clip)
    if note:
        entry["ci_note"] = note
    else:
        entry["ci_method"] = "percentile (joint cluster bootstrap over the tasks)"
    return entry


def _scaled(task: TaskResult) -> float:
    return float(task.primary.value) / float(task.primary.scale)


def _clip_max(metric: str) -> float | None:
    """Where an unbounded metric's normalized score saturates; None: bounded by its scale (a metric
    no longer registered, e.g. a plugin's, is taken at its recorded scale as before)."""
    try:
        return get_metric(metric).clip_max
    except KeyError:
        return None


def _clipped(value: Any, clip_max: float | None) -> Any:
    """A task's value in 0..1 units (a float, or an array of resampled values) as a normalized score."""
    if clip_max is None:
        return value
    return min(value / clip_max, 1.0) if isinstance(value, float) else np.minimum(value / clip_max, 1.0)


def _aggregate(registry: Registry, name: str, leaf: dict[str, Any], tasks: dict[str, TaskResult]) -> Any:
    """The group's value from its leaves' values (floats, or arrays of resampled values)."""
    def size(member: str) -> int:
        return sum(tasks[t].n_samples or 0 for t in registry.expand(member))

    def value(member: str) -> Any:
        return leaf[member] if member in registry.tasks else _aggregate(registry, member, leaf, tasks)

    g = registry.groups[name]
    vals = [value(m) for m in g.tasks]
    if g.aggregate == "micro":
        w = [size(m) for m in g.tasks]
        return sum(wi * v for wi, v in zip(w, vals)) / sum(w)
    if all(isinstance(v, float) for v in vals):
        return statistics.fmean(vals)
    return sum(vals) / len(vals)


@dataclass
class _Member:
    """One leaf task's samples for the group bootstrap: a mean metric's scores (0..1 units),
    or a corpus metric's rescore(counts)."""
    keys: list[str]
    scores: np.ndarray | None = None
    rescore: Callable[[np.ndarray], float] | None = None
    scale: float = 1.0


def _member(task: str, entry: TaskResult, run_dir: Path) -> _Member | str:
    """The member's resampling inputs, or why there are none."""
    primary = entry.primary_metric
    m = entry.primary
    path = run_dir / "samples" / f"{task}.jsonl"
    try:
        recs = read_samples(run_dir, task)
    except (OSError, ValueError) as e:
        return f"no interval: cannot read {path} ({e})"
    if not recs:
        return f"no interval: {path} is empty"
    keys = [r.cluster for r in recs]
    scale = float(m.scale)
    if m.kind == "mean":
        scores = [r.scores.get(primary) for r in recs]
        if any(v is None for v in scores):
            return f"no interval: {path} lacks per-sample {primary} scores"
        return _Member(keys, scores=np.asarray(scores, dtype=np.float64) / scale)
    # a corpus metric: re-scored on each resampled corpus, as the task's own interval is
    items = [record_input(r) for r in recs]
    try:
        result = get_metric(primary).compute(items, **(m.args or {}))
    except (KeyError, TypeError, ValueError) as e:
        return f"no interval: {task}'s {primary} cannot be re-scored from {path} ({e})"
    if result.rescore is None:
        return f"no interval: {task}'s {primary} cannot be re-scored on resampled corpora"
    return _Member(keys, rescore=result.rescore, scale=scale)


def _group_ci(registry: Registry, name: str, leaves: list[str], tasks: dict[str, TaskResult],
              run_dir: Path | None, seed: int, known: dict[str, "_Member | str"],
              clip: dict[str, float | None]) -> tuple[list[float] | None, str | None]:
    if run_dir is None:
        return None, "no interval: no per-sample records"
    members: dict[str, _Member] = {}
    for t in leaves:
        if t not in known:
            known[t] = _member(t, tasks[t], run_dir)
        member = known[t]
        if isinstance(member, str):
            return None, member
        members[t] = member
    reps = {t: _clipped(v, clip[t]) for t, v in _joint_resamples(members, seed).items()}
    vals = np.asarray(_aggregate(registry, name, reps, tasks), dtype=np.float64)
    vals = vals[np.isfinite(vals)]  # a resample that drew none of a tiny task's clusters
    if vals.size < 0.99 * RESAMPLES:
        return None, "no interval: too few clusters per task to resample"
    lo, hi = percentile_ci(vals)
    return [lo, hi], None


def _joint_resamples(members: dict[str, _Member], seed: int) -> dict[str, np.ndarray]:
    """RESAMPLES resampled scores per task (0..1 units), drawing the union of the tasks'
    cluster keys with replacement: a key shared by several tasks is drawn for all of them."""
    keys = [k for m in members.values() for k in m.keys]
    flat, n = cluster_labels(keys, len(keys))
    ends = np.cumsum([len(m.keys) for m in members.values()])
    labels = dict(zip(members, np.split(flat, ends[:-1])))
    sums = {t: np.bincount(labels[t], weights=m.scores, minlength=n) for t, m in members.items()
            if m.scores is not None}
    counts = np.stack([np.bincount(labels[t], minlength=n) for t in members], axis=1).astype(np.float64)
    out: dict[str, list[np.ndarray]] = {t: [] for t in members}
    for idx in index_chunks(n, RESAMPLES, seed):
        k = len(idx)
        draws = np.bincount((idx + (np.arange(k) * n)[:, None]).ravel(), minlength=k * n).reshape(k, n)
        draws = draws.astype(np.float64)
        drawn = draws @ counts  # samples drawn per task
        with np.errstate(invalid="ignore", divide="ignore"):
            for j, (t, m) in enumerate(members.items()):
                if m.scores is not None:
                    out[t].append((draws @ sums[t]) / drawn[:, j])
                elif m.rescore is not None:
                    rescore = m.rescore
                    out[t].append(np.array([rescore(row[labels[t]].astype(np.int64)) / m.scale if d else np.nan
                                            for row, d in zip(draws, drawn[:, j])]))
    return {t: np.concatenate(v) for t, v in out.items()}
