"""The capability -> task -> dataset/protocol hierarchy and its scores (pure: no Streamlit).

Declared in dashboard/leaderboard.yaml (or <results>/leaderboard.yaml). Every score is
on 0..100 after the metric's normalization rule; an aggregate is the weighted mean of
its children present, with a 95% interval from the children's intervals (normal
approximation, children independent: docs/LEADERBOARD.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from m3eval.record import GroupResult, MetricEntry, TaskResult
from m3eval.reference_record import ReferenceTask

DEFAULT_YAML = Path(__file__).resolve().parent / "leaderboard.yaml"
Z95 = 1.959964


class HierarchyError(ValueError):
    """A leaderboard.yaml that cannot be used; the message names the file and key."""


@dataclass
class Leaf:
    task: str  # a results task name, or a pattern with {lang}; a group's name when `group`
    metric: str | None = None  # None: the task's primary metric
    weight: float = 1.0  # 0: shown, never averaged (a group beside its own tasks)
    group: bool = False  # `{group: NAME}`: a run's results.json `groups` entry, a reference file's task NAME


@dataclass
class TaskNode:
    key: str
    title: str
    leaves: list[Leaf]
    weight: float = 1.0


@dataclass
class Capability:
    key: str
    title: str
    tasks: list[TaskNode]
    weight: float = 1.0
    overall: bool = True  # counted in the overall score (the demo's capability is not)


@dataclass
class Hierarchy:
    capabilities: list[Capability]
    normalization: dict[str, dict[str, Any]]
    languages: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> name, family, script
    source: Path | None = None

    def leaf_tasks(self, leaf: Leaf, available: list[str]) -> list[str]:
        """The results tasks a leaf stands for, among `available`."""
        if "{lang}" not in leaf.task:
            return [leaf.task] if leaf.task in available else []
        head, tail = leaf.task.split("{lang}", 1)
        out = []
        for t in available:
            if t.startswith(head) and t.endswith(tail) and len(t) > len(head) + len(tail):
                lang = t[len(head): len(t) - len(tail)]
                if lang in self.languages and lang != "en":  # English is the reference, not a language scored
                    out.append(t)
        return sorted(out)

    def placed(self, available: list[str]) -> set[str]:
        return {t for c in self.capabilities for n in c.tasks for leaf in n.leaves
                for t in self.leaf_tasks(leaf, available)}

    def under(self, level: str, available: list[str]) -> set[str]:
        """The results tasks below a level ('capabilities', a capability key, or 'cap/task')."""
        cap_key, _, task_key = level.partition("/")
        return {t for c in self.capabilities if level == "capabilities" or c.key == cap_key
                for n in c.tasks if not task_key or n.key == task_key
                for leaf in n.leaves for t in self.leaf_tasks(leaf, available)}


def _num(value: Any, where: str, file: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise HierarchyError(f"{file}: '{where}' should be a number >= 0, got {value!r}")
    return float(value)


def load_hierarchy(path: str | Path | None = None) -> Hierarchy:
    file = Path(path) if path else DEFAULT_YAML
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise HierarchyError(f"{file}: cannot read: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("capabilities"), dict):
        raise HierarchyError(f"{file}: missing mapping 'capabilities'")
    norm: dict[str, dict[str, Any]] = {}
    for metric, rule in (data.get("normalization") or {}).items():
        rule = {"rule": rule} if isinstance(rule, str) else rule
        if not isinstance(rule, dict) or rule.get("rule") not in ("linear", "clip"):
            raise HierarchyError(f"{file}: 'normalization.{metric}' should be linear or {{rule: clip, max: M}}")
        if rule["rule"] == "clip" and not _num(rule.get("max"), f"normalization.{metric}.max", file) > 0:
            raise HierarchyError(f"{file}: 'normalization.{metric}.max' should be > 0")
        norm[str(metric)] = rule
    caps = []
    for ckey, c in data["capabilities"].items():
        where = f"capabilities.{ckey}"
        if not isinstance(c, dict) or not isinstance(c.get("tasks"), dict):
            raise HierarchyError(f"{file}: '{where}.tasks' should be a mapping")
        nodes = []
        for tkey, t in c["tasks"].items():
            if not isinstance(t, dict) or not isinstance(t.get("leaves"), list) or not t["leaves"]:
                raise HierarchyError(f"{file}: '{where}.tasks.{tkey}.leaves' should be a non-empty list")
            leaves = []
            for i, leaf in enumerate(t["leaves"]):
                is_group = isinstance(leaf, dict) and "group" in leaf and "task" not in leaf
                if not isinstance(leaf, dict) or not isinstance(leaf.get("group" if is_group else "task"), str):
                    raise HierarchyError(f"{file}: '{where}.tasks.{tkey}.leaves[{i}].task' should be a task name "
                                         "(or .group a group's name)")
                leaves.append(Leaf(leaf["group" if is_group else "task"], leaf.get("metric"),
                                   _num(leaf.get("weight", 1), f"{where}.tasks.{tkey}.leaves[{i}].weight", file),
                                   is_group))
            nodes.append(TaskNode(str(tkey), str(t.get("title", tkey)), leaves,
                                  _num(t.get("weight", 1), f"{where}.tasks.{tkey}.weight", file)))
        if not isinstance(c.get("overall", True), bool):
            raise HierarchyError(f"{file}: '{where}.overall' should be true or false")
        caps.append(Capability(str(ckey), str(c.get("title", ckey)), nodes,
                               _num(c.get("weight", 1), f"{where}.weight", file), c.get("overall", True)))
    langs = {}
    for code, v in (data.get("languages") or {}).items():
        if not (isinstance(v, list) and len(v) == 3):
            raise HierarchyError(f"{file}: 'languages.{code}' should be [name, family, script]")
        langs[str(code)] = (str(v[0]), str(v[1]), str(v[2]))
    return Hierarchy(caps, norm, langs, file)


def hierarchy_for(results_dir: str | Path) -> Hierarchy:
    """A results folder's own leaderboard.yaml if it has one, else the project's."""
    own = Path(results_dir) / "leaderboard.yaml"
    return load_hierarchy(own if own.is_file() else None)


# ---- scores -------------------------------------------------------------------------------

@dataclass
class Score:
    value: float  # 0..100 after normalization
    lo: float | None = None  # 95% interval; None when some part had none
    hi: float | None = None
    complete: bool = True  # every child present, and each of them complete


def normalize(value: float, scale: float, rule: dict[str, Any]) -> float:
    x = float(value) / float(scale)
    if rule["rule"] == "clip":
        x = min(x / float(rule["max"]), 1.0)
    return 100.0 * x


def metric_score(metric: MetricEntry, rule: dict[str, Any]) -> Score:
    scale, ci = float(metric.scale), metric.ci
    lo, hi = (normalize(ci[0], scale, rule), normalize(ci[1], scale, rule)) if ci else (None, None)
    return Score(normalize(metric.value, scale, rule), lo, hi)


def combine(parts: list[tuple[Score, float]], n_expected: int) -> Score | None:
    """Weighted mean of the parts present; interval: mean ± 1.96·sqrt(Σ w²se²)/Σw, with each
    part's se = (hi − lo) / 3.92 (the parts' samples are independent: different datasets)."""
    parts = [(s, w) for s, w in parts if w > 0]
    if not parts:
        return None
    total = sum(w for _, w in parts)
    value = sum(s.value * w for s, w in parts) / total
    complete = len(parts) >= n_expected and all(s.complete for s, _ in parts)
    if len(parts) == 1:
        s = parts[0][0]
        return Score(value, s.lo, s.hi, complete)
    widths = [(s.hi - s.lo, w) for s, w in parts if s.lo is not None and s.hi is not None]
    if len(widths) < len(parts):  # a part without an interval
        return Score(value, None, None, complete)
    se = math.sqrt(sum((w * width / (2 * Z95)) ** 2 for width, w in widths)) / total
    lo, hi = max(value - Z95 * se, 0.0), min(value + Z95 * se, 100.0)  # normalized scores live in 0..100
    return Score(value, lo, hi, complete)


@dataclass(frozen=True)
class TaskRow:
    """One task of a row (a run or a reported row) as the board scores it."""
    metric: str  # the metric it counts under: the run's primary
    metrics: dict[str, MetricEntry]  # every metric it has (a leaf may name another)
    protocol: str | None


def task_table(tasks: Mapping[str, TaskResult | ReferenceTask], primary: dict[str, str] | None = None,
               protocols: dict[str, str | None] | None = None) -> dict[str, TaskRow]:
    """A run's or a reference row's tasks as the board scores them.

    A reference row names metrics but no primary and no protocol: it counts only for the
    metric the runs use as primary (`primary`), never a different metric under the same
    column, and under the runs' protocol of that task (`protocols`).
    """
    out = {}
    for name, t in tasks.items():
        m: str | None
        if isinstance(t, TaskResult):
            m, protocol = t.primary_metric, t.protocol
        else:
            m, protocol = (primary or {}).get(name), (protocols or {}).get(name)
        if m is not None and m in t.metrics:
            out[name] = TaskRow(m, t.metrics, protocol)
    return out


def group_table(h: Hierarchy, groups: Mapping[str, GroupResult], tasks: Mapping[str, TaskResult]) -> dict[str, TaskRow]:
    """A run's groups that the hierarchy places (`{group: NAME}` leaves), as rows of its task table:
    the group's value (0..1, scale 1) under the metric its tasks share (a mixed group has no rule:
    shown nowhere), with the protocol its tasks share. A reference file reports such a number as a
    task of that name (task_table)."""
    out = {}
    for name in {lf.task for c in h.capabilities for n in c.tasks for lf in n.leaves if lf.group}:
        g = groups.get(name)
        if g is None or g.value is None or g.metric is None:
            continue
        protocols = {tasks[t].protocol for t in g.tasks if t in tasks}
        entry = MetricEntry(value=g.value, ci=g.ci, scale=g.scale or 1)
        out[name] = TaskRow(g.metric, {g.metric: entry}, protocols.pop() if len(protocols) == 1 else None)
    return out


@dataclass
class Board:
    """Scores of one row (a run or a reported row) at every level of the hierarchy."""
    leaves: dict[str, Score]  # results task -> score
    tasks: dict[str, Score]  # "cap/task" -> score
    capabilities: dict[str, Score]
    overall: Score | None


def leaf_score(h: Hierarchy, leaf: Leaf, table: dict[str, TaskRow], protocols: set[str] | None,
               expected: set[str] | None = None) -> tuple[Score | None, dict[str, Score]]:
    """A leaf's score (one task, or the mean of a {lang} family: complete only when it has
    every language some visible row has) and the score of each results task in it."""
    scores: dict[str, Score] = {}
    for t in h.leaf_tasks(leaf, list(table)):
        row = table[t]
        if protocols and row.protocol not in protocols and row.protocol is not None:
            continue
        metric = leaf.metric or row.metric
        entry = row.metrics.get(metric)
        rule = h.normalization.get(metric)
        if entry is None or rule is None:
            continue  # not aggregable: shown on its own elsewhere, never averaged
        scores[t] = metric_score(entry, rule)
    if not scores:
        return None, scores
    n_expected = len(h.leaf_tasks(leaf, sorted(expected))) if expected else len(scores)
    return combine([(s, 1.0) for s in scores.values()], max(n_expected, len(scores))), scores


def score_board(h: Hierarchy, table: dict[str, TaskRow], cap_weights: dict[str, float] | None = None,
                protocols: set[str] | None = None, expected: set[str] | None = None) -> Board:
    """All levels for one row. `expected`: the leaves (results tasks) the measured rows have;
    a row missing one of them is incomplete at that level (and is not ranked there). A row
    is scored on every leaf it has, expected or not (a reported row's benchmarks nobody ran).
    A capability with `overall: false` gets its score but stays out of the overall one."""
    leaves: dict[str, Score] = {}
    tasks: dict[str, Score] = {}
    caps: dict[str, Score] = {}
    cap_parts = []
    n_caps = 0
    for c in h.capabilities:
        parts = []
        n_nodes = 0
        for node in c.tasks:
            node_parts = []
            counted = 0  # leaves this row should have: expected ones, and any it has beyond them
            for leaf in node.leaves:
                s, per_task = leaf_score(h, leaf, table, protocols, expected)
                leaves.update(per_task)
                if s is not None:
                    node_parts.append((s, leaf.weight))
                if leaf.weight > 0 and (s is not None or expected is None or h.leaf_tasks(leaf, list(expected))):
                    counted += 1  # a weight-0 leaf (shown, never averaged) leaves completeness alone
            if counted:
                n_nodes += 1
            s = combine(node_parts, counted)
            if s is not None:
                tasks[f"{c.key}/{node.key}"] = s
                parts.append((s, node.weight))
        s = combine(parts, n_nodes)
        weight = (cap_weights or {}).get(c.key, c.weight)
        if n_nodes and weight > 0 and c.overall:
            n_caps += 1  # a capability the overall score should have
        if s is not None:
            caps[c.key] = s
            if c.overall:
                cap_parts.append((s, weight))
    overall = combine(cap_parts, n_caps)
    return Board(leaves, tasks, caps, overall)


# ---- ranks ------------------------------------------------------------------------------

def rank_bands(scores: dict[str, tuple[float, float | None, float | None]]) -> dict[str, tuple[int, int]]:
    """Rank bands from 95% intervals: a row's best rank is 1 + the rows whose interval lies
    wholly above its own; its worst is N − the rows wholly below. Overlapping rows share
    ranks (e.g. 2–4). A row without an interval uses its point value as both bounds."""
    bounds = {k: (v if lo is None else lo, v if hi is None else hi) for k, (v, lo, hi) in scores.items()}
    n = len(bounds)
    out = {}
    for k, (lo, hi) in bounds.items():
        above = sum(1 for j, (lo2, _) in bounds.items() if j != k and lo2 > hi)
        below = sum(1 for j, (_, hi2) in bounds.items() if j != k and hi2 < lo)
        out[k] = (1 + above, n - below)
    return out


def band_text(band: tuple[int, int] | None) -> str:
    if band is None:
        return ""
    return str(band[0]) if band[0] == band[1] else f"{band[0]}–{band[1]}"
