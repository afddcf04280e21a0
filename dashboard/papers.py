"""Each source paper's table as it was published, with this harness's reproduction beside each
number (pure: no Streamlit; the Papers page and the static export both draw these).

Declared under `papers:` in dashboard/leaderboard.yaml (a results folder's own leaderboard.yaml
without that key uses the project's): a table's title, its source, the reference files that are
its rows (results/reference/, in the table's order) and its columns (task, metric, title, unit)
in the table's order. The numbers come from the reference files, never from here.

A run reproduces a row when it is the same model (board.same_model, as "Reported vs reproduced"
matches): beside each number, our score on the same task and metric, its 95% interval, and
whether the paper's number lies inside that interval, both in the paper's unit.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dashboard.board import ci_text, same_model
from dashboard.hierarchy import DEFAULT_YAML, Hierarchy, HierarchyError
from m3eval.report.runs import Reference, Run

# unit -> how a stored value (value, scale) is printed. percent: accuracy-like scores out of 100;
# x100: CIDEr as papers print it (pycocoevalcap's value × 100); points: the value as stored (MME's
# total out of 2800).
UNITS = {"percent": "percent", "x100": "×100", "points": "points"}
REPRODUCED, CI, INSIDE = "reproduced", "reproduced 95% CI", "inside CI"


@dataclass(frozen=True)
class PaperColumn:
    task: str  # a results task (or group) name
    metric: str
    title: str  # the paper's column heading
    unit: str = "percent"


@dataclass(frozen=True)
class PaperSpec:
    key: str
    title: str
    source: str  # where the table is published
    references: tuple[str, ...]  # reference file names (or glob patterns) in the table's row order
    columns: tuple[PaperColumn, ...]


@dataclass
class PaperTable:
    spec: PaperSpec
    frame: pd.DataFrame  # model, [run], per column: the paper's number [, reproduced, its CI, inside], file
    number_columns: list[str]  # the numeric columns (the paper's and ours)
    inside_columns: list[str]  # "<title> inside CI" (True / False / None: no interval)
    sources: pd.DataFrame  # model, file, source: each row's own citation
    missing: list[str]  # references entries that matched no file
    empty: list[str]  # columns of the spec that no row has a number for (left out of the frame)
    unused: list[str]  # listed files with no number in any column (a task or metric renamed?)
    units: dict[str, list[str]]  # unit label -> the column titles in it


def _text(value: Any, where: str, file: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HierarchyError(f"{file}: '{where}' should be a non-empty string")
    return value


def load_papers(path: str | Path | None = None) -> list[PaperSpec]:
    """The `papers:` tables of a leaderboard.yaml (the project's by default); [] when it has none."""
    file = Path(path) if path else DEFAULT_YAML
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise HierarchyError(f"{file}: cannot read: {e}") from None
    papers = (data or {}).get("papers") if isinstance(data, dict) else None
    if papers is None:
        return []
    if not isinstance(papers, dict):
        raise HierarchyError(f"{file}: 'papers' should be a mapping of tables")
    out = []
    for key, p in papers.items():
        where = f"papers.{key}"
        if not isinstance(p, dict):
            raise HierarchyError(f"{file}: '{where}' should be a mapping")
        refs = p.get("references")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r for r in refs):
            raise HierarchyError(f"{file}: '{where}.references' should be a non-empty list of file names")
        if not isinstance(p.get("columns"), list) or not p["columns"]:
            raise HierarchyError(f"{file}: '{where}.columns' should be a non-empty list")
        default_unit = p.get("unit", "percent")
        cols = []
        for i, c in enumerate(p["columns"]):
            cw = f"{where}.columns[{i}]"
            if not isinstance(c, dict):
                raise HierarchyError(f"{file}: '{cw}' should be a mapping with task, metric and title")
            unit = c.get("unit", default_unit)
            if unit not in UNITS:
                raise HierarchyError(f"{file}: '{cw}.unit' should be one of {', '.join(UNITS)}, got {unit!r}")
            cols.append(PaperColumn(_text(c.get("task"), f"{cw}.task", file), _text(c.get("metric"),
                                    f"{cw}.metric", file), _text(c.get("title"), f"{cw}.title", file), unit))
        titles = [c.title for c in cols]
        if len(set(titles)) < len(titles):
            raise HierarchyError(f"{file}: '{where}.columns' repeat a title")
        out.append(PaperSpec(str(key), _text(p.get("title"), f"{where}.title", file),
                             _text(p.get("source"), f"{where}.source", file), tuple(refs), tuple(cols)))
    return out


def papers_for(h: Hierarchy) -> list[PaperSpec]:
    """The paper tables of the hierarchy's file, else (a results folder's file without them) the project's."""
    own = load_papers(h.source) if h.source is not None else []
    return own or load_papers(DEFAULT_YAML)


def in_unit(value: float, scale: float, unit: str) -> float:
    return float(value) if unit == "points" else float(value) / float(scale) * 100.0


def _measured(run: Run, col: PaperColumn) -> tuple[float, tuple[float, float] | None] | None:
    """A run's value of a column (and its interval) in the column's unit: a task's metric, or a
    group's one number when the group aggregates that metric (ChartQA's two parts, for one)."""
    task = run.tasks.get(col.task)
    if task is not None:
        m = task.metrics.get(col.metric)
        if m is None:
            return None
        value, ci, scale = m.value, m.ci, m.scale
    else:
        g = run.groups.get(col.task)
        if g is None or g.metric != col.metric or g.value is None:
            return None
        value, ci, scale = g.value, g.ci, g.scale or 1
    conv = (in_unit(ci[0], scale, col.unit), in_unit(ci[1], scale, col.unit)) if ci else None
    return in_unit(value, scale, col.unit), conv


def _rows_of(spec: PaperSpec, refs: list[Reference]) -> tuple[list[Reference], list[str]]:
    rows: list[Reference] = []
    missing = []
    for pattern in spec.references:
        found = sorted((r for r in refs if fnmatch.fnmatchcase(r.path.name, pattern)), key=lambda r: r.path.name)
        if not found:
            missing.append(pattern)
        rows += [r for r in found if r not in rows]
    return rows, missing


def paper_table(spec: PaperSpec, refs: list[Reference], runs: dict[str, Run]) -> PaperTable:
    listed, missing = _rows_of(spec, refs)

    def reported(ref: Reference, col: PaperColumn) -> float | None:
        t = ref.tasks.get(col.task)
        m = None if t is None else t.metrics.get(col.metric)
        return None if m is None else in_unit(m.value, m.scale, col.unit)
    # a file with no number in this table is not one of its rows (the paper has no such row)
    found = [r for r in listed if any(reported(r, c) is not None for c in spec.columns)]
    unused = [r.path.name for r in listed if r not in found]
    cols = [c for c in spec.columns if any(reported(r, c) is not None for r in found)]
    empty = [c.title for c in spec.columns if c not in cols]
    pairs: list[tuple[Reference, str | None, Run | None]] = []
    for ref in found:  # a reference row once per run of the same model, or once alone
        matched = [(label, run) for label, run in runs.items() if same_model(ref.model, label, run)]
        pairs += [(ref, label, run) for label, run in matched] or [(ref, None, None)]
    ours = {(i, c.title): _measured(run, c) for i, (_, _, run) in enumerate(pairs) if run is not None for c in cols}
    reproduced = {title for (_, title), m in ours.items() if m is not None}
    out = []
    for i, (ref, label, run) in enumerate(pairs):
        d: dict[str, Any] = {"model": ref.model}
        if reproduced:
            d["run"] = label or ""
        for c in cols:
            rep = reported(ref, c)
            rep = None if rep is None else round(rep, 2)  # as printed: no paper table shows more decimals
            d[c.title] = rep
            if c.title in reproduced:
                m = ours.get((i, c.title))
                d[f"{c.title} {REPRODUCED}"] = None if m is None else m[0]
                d[f"{c.title} {CI}"] = "" if m is None else ci_text(m[1])
                d[f"{c.title} {INSIDE}"] = (None if m is None or m[1] is None or rep is None
                                            else bool(m[1][0] <= rep <= m[1][1]))
        d["file"] = ref.path.name
        out.append(d)
    numbers = [t for c in cols for t in (c.title, f"{c.title} {REPRODUCED}") if t == c.title or c.title in reproduced]
    inside = [f"{c.title} {INSIDE}" for c in cols if c.title in reproduced]
    sources = pd.DataFrame([{"model": r.model, "file": r.path.name, "source": r.source} for r in found],
                           columns=["model", "file", "source"])
    units: dict[str, list[str]] = {}
    for c in cols:
        units.setdefault(UNITS[c.unit], []).append(c.title)
    return PaperTable(spec, pd.DataFrame(out), numbers, inside, sources, missing, empty, unused, units)


def paper_tables(specs: list[PaperSpec], refs: list[Reference], runs: dict[str, Run]) -> list[PaperTable]:
    """Every declared table some of whose reference files are here (a table whose files have no
    number in its columns is kept, empty, so the mismatch shows: see notes())."""
    tables = [paper_table(s, refs, runs) for s in specs]
    return [t for t in tables if not t.frame.empty or t.unused]


def notes(t: PaperTable) -> list[str]:
    """What the table leaves out and why, one sentence each (the page and the export show them)."""
    out = []
    if t.empty:
        out.append(f"Columns no reference file has a number for: {', '.join(t.empty)}.")
    if t.unused:
        wanted = ", ".join(dict.fromkeys(f"{c.task} {c.metric}" for c in t.spec.columns))
        out.append(f"No number for this table's columns ({wanted}) in: {', '.join(t.unused)}.")
    if t.missing:
        out.append(f"Listed but not in results/reference: {', '.join(t.missing)}.")
    return out


def units_text(t: PaperTable) -> str:
    """One line: which columns are in which unit (ours beside them in the same unit)."""
    if not t.units:
        return ""
    if list(t.units) == ["percent"]:
        return "All numbers in percent."
    return "; ".join(f"{unit}: {', '.join(titles)}" for unit, titles in t.units.items()) + "."
