"""Reference rows (results/reference/*.json) against the suite: what each number counts as on the
board, one row per file, and the numbers that match nothing (pure: no Streamlit).

A reference file names tasks and metrics but no primary metric and no protocol. Each task takes
them from a run of it in the folder when there is one, else from the suite's task file (tasks/,
M3EVAL_INCLUDE_PATH), so a paper's row is scored even when nobody here ran its benchmarks. A
task or metric that neither knows, or one the hierarchy does not place, is listed as unmatched
with its file (docs/LEADERBOARD.md), never dropped in silence.
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from dashboard.hierarchy import Hierarchy
from m3eval.errors import TaskError, UsageError
from m3eval.report.runs import Reference, Run


@dataclass(frozen=True)
class KnownTask:
    primary: str | None  # the metric the board scores it by
    protocol: str | None
    metrics: frozenset[str]


@functools.lru_cache(maxsize=1)
def suite_tasks() -> dict[str, KnownTask]:
    """Every task and group of the suite (a group: its members' metrics, and their primary and
    protocol when they share one). Empty when the suite cannot be read (the board then knows only
    the tasks of the runs)."""
    from m3eval.tasks.registry import Registry  # task files only: no model, no dataset

    try:
        reg = Registry.discover()
    except (TaskError, UsageError):  # e.g. M3EVAL_INCLUDE_PATH naming a missing folder
        return {}
    out = {name: KnownTask(spec.primary if spec.metrics else None, spec.protocol,
                           frozenset(m.name for m in spec.metrics)) for name, spec in reg.tasks.items()}
    for name in reg.groups:
        members = [out[t] for t in reg.expand(name) if t in out]
        primaries = {m.primary for m in members}
        protocols = {m.protocol for m in members}
        out[name] = KnownTask(primaries.pop() if len(primaries) == 1 else None,
                              protocols.pop() if len(protocols) == 1 else None,
                              frozenset().union(*(m.metrics for m in members)))
    return out


def known_tasks(runs: dict[str, Run]) -> dict[str, KnownTask]:
    """The suite's tasks, each as the first run of it in the folder records it when there is one
    (a run's primary and protocol are what its row is scored by; a run may use --include-path)."""
    out = dict(suite_tasks())
    seen: set[str] = set()
    for run in runs.values():
        for name, t in run.tasks.items():
            if name in seen:
                continue
            seen.add(name)
            suite = out.get(name)
            out[name] = KnownTask(t.primary_metric, t.protocol,
                                  frozenset(t.metrics) | (suite.metrics if suite else frozenset()))
    return out


def reference_labels(refs: list[Reference]) -> list[str]:
    """A row label per file: "<model> (reported)", with the file's name added when several files
    report on the same model (each is its own row, with its own source: never merged, never averaged)."""
    counts = Counter(ref.model for ref in refs)
    return [f"{ref.model} (reported)" if counts[ref.model] == 1 else f"{ref.model} (reported, {ref.path.stem})"
            for ref in refs]


UNMATCHED_COLUMNS = ["file", "model", "task", "metric", "why"]
UNMATCHED_NOTE = ("Numbers of results/reference files that no column of the board holds: a task or metric the "
                  "suite does not have, a task the hierarchy does not place, or a task reported without the "
                  "metric the board scores it by. Shown here with their file, never dropped.")


def unmatched_frame(h: Hierarchy, refs: list[Reference], runs: dict[str, Run]) -> pd.DataFrame:
    """Each reference number the board cannot place, with its file and the reason: a task or a
    metric the suite does not have, a task the hierarchy does not place, or a task reported
    without the metric the board scores it by."""
    known = known_tasks(runs)
    placed = h.placed(sorted({t for ref in refs for t in ref.tasks}))
    out = []
    for ref in refs:
        for task, entry in sorted(ref.tasks.items()):
            row = {"file": ref.path.name, "model": ref.model, "task": task}
            k = known.get(task)
            if k is None:
                out.append(row | {"metric": ", ".join(sorted(entry.metrics)), "why": "no such task in the suite"})
                continue
            strange = sorted(m for m in entry.metrics if m not in k.metrics)
            out += [row | {"metric": m, "why": f"the task has no such metric (it has {', '.join(sorted(k.metrics))})"}
                    for m in strange]
            rest = ", ".join(sorted(m for m in entry.metrics if m in k.metrics))
            if not rest:
                continue
            if task not in placed:
                yaml_name = h.source.name if h.source else "leaderboard.yaml"
                out.append(row | {"metric": rest, "why": f"task not in the hierarchy ({yaml_name})"})
            elif k.primary is None:
                out.append(row | {"metric": rest, "why": "its tasks differ in primary metric: no column"})
            elif k.primary not in entry.metrics:
                out.append(row | {"metric": rest, "why": f"the board scores this task by {k.primary}, "
                                                         "which the file does not report"})
    return pd.DataFrame(out, columns=UNMATCHED_COLUMNS)


def reference_protocols(refs: list[Reference], runs: dict[str, Run]) -> set[str]:
    """The protocols the reference rows' tasks are scored under (for the page's protocol filter)."""
    known = known_tasks(runs)
    return {p for ref in refs for t in ref.tasks if (k := known.get(t)) and (p := k.protocol)}
