"""Group scores: one number over a group's tasks, defined so it never mixes scales silently.

A group aggregates its members' primary metrics, each divided by its `scale` (0..1 units):
- `aggregate: macro` (default): the unweighted mean of the members (a member group counts once,
  as a task does); `micro`: the mean weighted by each member's number of samples (a member
  group weighs its samples' total), lm-evaluation-harness's default `weight_by_size`.
- The leaf tasks must share one primary metric. A group mixing metrics (CIDEr beside
  accuracy) is refused (value null, `error` naming the group) unless it says
  `normalize: scale`: then the members are combined after dividing by their scales, and the
  results say so (CIDEr-D is unbounded: it is taken at its raw value).
- Interval: a percentile bootstrap over the tasks' resamples, when every leaf's primary metric
  is a mean metric with per-sample scores in samples/<task>.jsonl. Clusters are resampled
  jointly across the group's tasks, so the same item in several tasks (M3IT-80's languages
  share ids) moves together. Otherwise `ci` is null with `ci_note` saying why.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from .metrics.stats import _CHUNK_ELEMS, percentile_ci
from .results import read_jsonl
from .scoring import base_id
from .tasks.registry import Registry

RESAMPLES = 1000


def group_scores(registry: Registry, tasks: dict[str, dict[str, Any]], run_dir: Path | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """Each group all of whose tasks the run has: its value, aggregation and interval."""
    out: dict[str, Any] = {}
    for g in registry.groups_within(list(tasks)):
        out[g.group] = _group_entry(registry, g.group, tasks, run_dir, seed)
    return dict(sorted(out.items()))


def group_errors(groups: dict[str, Any]) -> list[str]:
    return [f"group {name}: {g['error']}" for name, g in groups.items() if g.get("error")]


def _group_entry(registry: Registry, name: str, tasks: dict[str, dict[str, Any]], run_dir: Path | None,
                 seed: int) -> dict[str, Any]:
    g = registry.groups[name]
    leaves = registry.expand(name)
    entry: dict[str, Any] = {"tasks": leaves, "members": list(g.tasks), "category": g.category,
                             "aggregate": g.aggregate, "normalize": g.normalize, "scale": 1,
                             "n_tasks": len(leaves), "n_samples": sum(tasks[t].get("n_samples", 0) for t in leaves)}
    by_metric: dict[str, list[str]] = {}
    for t in leaves:
        by_metric.setdefault(tasks[t]["primary_metric"], []).append(t)
    if len(by_metric) > 1 and g.normalize != "scale":
        mixed = "; ".join(f"{m} ({', '.join(ts)})" for m, ts in by_metric.items())
        return {**entry, "metric": None, "value": None, "ci": None,
                "error": f"its tasks have different primary metrics: {mixed}; add `normalize: scale` to "
                         f"{g.source or 'its YAML'} to combine them divided by their scales, or split the group"}
    entry["metric"] = next(iter(by_metric)) if len(by_metric) == 1 else \
        "primary / scale (mixed: " + ", ".join(by_metric) + ")"
    values = {t: _scaled(tasks[t]) for t in leaves}
    entry["value"] = _aggregate(registry, name, values, tasks)
    entry["ci"], note = _group_ci(registry, name, leaves, tasks, run_dir, seed)
    if note:
        entry["ci_note"] = note
    else:
        entry["ci_method"] = "percentile (joint cluster bootstrap over the tasks)"
    return entry


def _scaled(task: dict[str, Any]) -> float:
    m = task["metrics"][task["primary_metric"]]
    return float(m["value"]) / float(m.get("scale", 1))


def _aggregate(registry: Registry, name: str, leaf: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> Any:
    """The group's value from its leaves' values (floats, or arrays of resampled values)."""
    def size(member: str) -> int:
        return sum(tasks[t].get("n_samples", 0) for t in registry.expand(member))

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


def _group_ci(registry: Registry, name: str, leaves: list[str], tasks: dict[str, dict[str, Any]],
              run_dir: Path | None, seed: int) -> tuple[list[float] | None, str | None]:
    if run_dir is None:
        return None, "no interval: no per-sample records"
    per_task: dict[str, tuple[list[str], np.ndarray, float]] = {}
    for t in leaves:
        primary = tasks[t]["primary_metric"]
        m = tasks[t]["metrics"][primary]
        if m.get("kind", "mean") != "mean":
            return None, f"no interval: {t}'s {primary} is a corpus metric (no per-sample scores to resample)"
        path = run_dir / "samples" / f"{t}.jsonl"
        try:
            recs = read_jsonl(path)
        except (OSError, ValueError):
            return None, f"no interval: cannot read {path}"
        scores = [r.get("scores", {}).get(primary) for r in recs]
        if not recs or any(not isinstance(s, (int, float)) for s in scores):
            return None, f"no interval: {path} lacks per-sample {primary} scores"
        keys = [str(r.get("cluster") or base_id(str(r["id"]))) for r in recs]
        per_task[t] = (keys, np.asarray(scores, dtype=np.float64), float(m.get("scale", 1)))
    reps = _joint_resamples(per_task, seed)
    vals = np.asarray(_aggregate(registry, name, reps, tasks), dtype=np.float64)
    vals = vals[np.isfinite(vals)]  # a resample that drew none of a tiny task's clusters
    if vals.size < 0.99 * RESAMPLES:
        return None, "no interval: too few clusters per task to resample"
    lo, hi = percentile_ci(vals)
    return [lo, hi], None


def _joint_resamples(per_task: dict[str, tuple[list[str], np.ndarray, float]], seed: int) -> dict[str, np.ndarray]:
    """RESAMPLES resampled means per task (on 0..1 units), drawing the union of the tasks'
    cluster keys with replacement: a key shared by several tasks is drawn for all of them."""
    index: dict[str, int] = {}
    for keys, _, _ in per_task.values():
        for k in keys:
            index.setdefault(k, len(index))
    n = len(index)
    sums, counts = {}, {}
    for t, (keys, scores, scale) in per_task.items():
        labels = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
        sums[t] = np.bincount(labels, weights=scores / scale, minlength=n)
        counts[t] = np.bincount(labels, minlength=n).astype(np.float64)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMS // n)
    out: dict[str, list[np.ndarray]] = {t: [] for t in per_task}
    done = 0
    while done < RESAMPLES:
        k = min(rows, RESAMPLES - done)
        idx = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
        draws = np.bincount(idx.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            for t in per_task:
                out[t].append((draws @ sums[t]) / (draws @ counts[t]))
        done += k
    return {t: np.concatenate(v) for t, v in out.items()}
