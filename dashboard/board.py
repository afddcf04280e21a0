"""The leaderboard's tables, shared by the page and the static export (pure: no Streamlit).

A row is a run or a reported row; its scores come from dashboard/hierarchy.py, its
provenance from results.json (per-task `invocation` records when present, else
`run.config`). Partial and overridden runs are marked and, by default, not ranked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.hierarchy import (Board, Hierarchy, Leaf, Score, band_text, combine, rank_bands, score_board,
                                 task_table)
from m3eval.report.runs import Reference, Run, display_ci, display_value

PROVENANCE = ["status", "n", "limit", "overrides", "protocol", "instructions", "date", "backend"]


def invocation_setting(run: Run, task: str, key: str) -> Any:
    return run.invocation(task).config.get(key)


def provenance(run: Run, tasks: list[str]) -> dict[str, Any]:
    """What a reader needs to trust a row, over the tasks it is scored on."""
    metas = [run.invocation(t) for t in tasks] or [run.invocation("")]
    limits = sorted({str(m.config["limit"]) for m in metas if m.config.get("limit") is not None})
    overridden = sorted(t for t, m in zip(tasks, metas) if _overrides(m.config.get("dataset_overrides"), t))
    failures = run.results.run.failures or []
    status = []
    if limits:
        status.append("partial (--limit)")
    if failures:
        status.append(f"partial ({len(failures)} failed)")
    if overridden:
        status.append("overridden data")

    def values(items) -> str:
        return ", ".join(sorted({str(v) for v in items if v})) or "—"
    return {
        "status": ", ".join(status) or "full",
        "n": sum(run.tasks[t].n_samples or 0 for t in tasks),
        "limit": ", ".join(limits) or "—",
        "overrides": ", ".join(overridden) or "—",
        "protocol": values(run.tasks[t].protocol for t in tasks),
        "instructions": values(m.config.get("instructions") or "default" for m in metas),
        "date": values((m.created or "")[:10] for m in metas),
        "backend": values(m.model.get("backend") for m in metas),
    }


def _overrides(value: Any, task: str) -> bool:
    """dataset_overrides is {task: path} (or a list of such strings); does it touch `task`?"""
    if isinstance(value, dict):
        return task in value or "*" in value
    if isinstance(value, list):
        return any(str(v).split("=", 1)[0] in (task, "*") for v in value)
    return isinstance(value, str) and bool(value)


def is_ranked_status(status: str) -> bool:
    return status == "full"


@dataclass
class Row:
    label: str
    reported: bool
    board: Board
    prov: dict[str, Any]
    source: str
    expected: set[str]  # the results tasks some visible row has (protocol filter applied)
    n_samples: dict[str, int] | None = None  # results task -> samples scored (measured rows)


def build_rows(h: Hierarchy, runs: dict[str, Run], refs: list[Reference], cap_weights: dict[str, float],
               protocols: set[str] | None) -> list[Row]:
    """Every run and reported row scored on the hierarchy (protocol filter applied)."""
    tables = {label: task_table(run.tasks) for label, run in runs.items()}
    primary = {t: row.metric for tab in tables.values() for t, row in tab.items()}
    protocol: dict[str, str | None] = {}  # a reported row is put under the first run's protocol of a task
    for tab in tables.values():
        for t, row in tab.items():
            protocol.setdefault(t, row.protocol)
    expected = {t for tab in tables.values() for t, row in tab.items()
                if not protocols or row.protocol in protocols}
    rows = []
    for label, run in runs.items():
        b = score_board(h, tables[label], cap_weights, protocols, expected)
        rows.append(Row(label, False, b, provenance(run, sorted(b.leaves)), run.model_id, expected,
                        {t: run.tasks[t].n_samples or 0 for t in b.leaves}))
    for ref in refs:
        tab = task_table(ref.tasks, primary, protocol)
        b = score_board(h, tab, cap_weights, protocols, expected)
        prov = dict.fromkeys(PROVENANCE, "—") | {"status": "reported in a paper", "n": None}
        rows.append(Row(f"{ref.model} (reported)", True, b, prov, ref.source, expected))
    return rows


def ci_text(ci: tuple[float, float] | None) -> str:
    """A 95% interval on the page: "lo–hi", one decimal."""
    return "" if ci is None else f"{ci[0]:.1f}–{ci[1]:.1f}"


def _score_ci_text(s: Score | None) -> str:
    return ci_text(None if s is None or s.lo is None or s.hi is None else (s.lo, s.hi))


def level_columns(h: Hierarchy, level: str) -> list[tuple[str, str]]:
    """(key, title) of the score columns at a level: 'capabilities', or a capability key
    (its tasks), or 'cap/task' (its datasets/protocols: filled per row from leaves)."""
    if level == "capabilities":
        return [(c.key, c.title) for c in h.capabilities]
    cap = next((c for c in h.capabilities if c.key == level.split("/")[0]), None)
    if cap is None:
        return []
    if "/" not in level:
        return [(f"{cap.key}/{n.key}", n.title) for n in cap.tasks]
    node = next((n for n in cap.tasks if n.key == level.split("/", 1)[1]), None)
    return [] if node is None else [(lf.task, lf.task) for lf in node.leaves]


def _score_at(h: Hierarchy, row: Row, level: str, key: str) -> Score | None:
    if level == "capabilities":
        return row.board.capabilities.get(key)
    if "/" not in level:
        return row.board.tasks.get(key)
    if "{lang}" in key:  # a family of per-language tasks: their mean
        parts = [(row.board.leaves[t], 1.0) for t in h.leaf_tasks(Leaf(key), list(row.board.leaves))]
        return combine(parts, len(parts))
    return row.board.leaves.get(key)


def _coverage(h: Hierarchy, row: Row, level: str) -> str:
    want = h.under(level, sorted(row.expected))
    have = want & set(row.board.leaves)
    return "complete" if have == want else f"{len(have)} of {len(want)} datasets"


def headline_score(r: Row, level: str) -> Score | None:
    """A row's score above a level's columns: overall, a capability's, or a task's ('cap/task')."""
    if level == "capabilities":
        return r.board.overall
    return r.board.capabilities.get(level) if "/" not in level else r.board.tasks.get(level)


def level_frame(h: Hierarchy, rows: list[Row], level: str, show_ci: bool = True, rank_all: bool = False
                ) -> tuple[pd.DataFrame, list[str], int]:
    """The table at one level: rank band, row, its score at the parent level, the children's
    scores, provenance. Returns (frame, score column titles, rows hidden for having no score)."""
    cols = level_columns(h, level)
    headline = {r.label: headline_score(r, level) for r in rows}
    head_title = "overall" if level == "capabilities" else "score"
    visible = [r for r in rows if headline[r.label] is not None
               or any(_score_at(h, r, level, k) is not None for k, _ in cols)]
    hidden = len(rows) - len(visible)
    rankable = {r.label: (s.value, s.lo, s.hi) for r in visible if (s := headline[r.label]) is not None
                and s.complete and not r.reported and (rank_all or is_ranked_status(r.prov["status"]))}
    bands = rank_bands(rankable)
    out = []
    for r in visible:
        s = headline[r.label]
        d: dict[str, Any] = {"rank": band_text(bands.get(r.label)), "model": r.label, "reported": r.reported,
                             "status": r.prov["status"], head_title: None if s is None else s.value}
        if show_ci:
            d[f"{head_title} 95% CI"] = _score_ci_text(s)
        d["coverage"] = _coverage(h, r, level)
        for k, title in cols:
            cs = _score_at(h, r, level, k)
            d[title] = None if cs is None else cs.value
            if show_ci:
                d[f"{title} 95% CI"] = _score_ci_text(cs)
        d.update({k: r.prov[k] for k in PROVENANCE if k != "status"})
        if r.n_samples is not None:  # samples behind this level's score, not the whole run's
            d["n"] = sum(r.n_samples[t] for t in h.under(level, list(r.board.leaves)))
        d["source"] = r.source
        out.append(d)
    df = pd.DataFrame(out)
    if df.empty:
        return df, [head_title] + [t for _, t in cols], hidden
    df = df.sort_values(head_title, ascending=False, na_position="last", kind="stable")
    empty = [t for _, t in cols if df[t].isna().all()]  # a child no visible row has: no column
    df = df.drop(columns=empty + [f"{t} 95% CI" for t in empty if f"{t} 95% CI" in df.columns])
    return df, [head_title] + [t for _, t in cols if t not in empty], hidden


def paper_vs_measured(rows: list[Row], refs: list[Reference], runs: dict[str, Run]) -> pd.DataFrame:
    """Reported beside measured for the same model and task (same metric, display scale 0..100):
    delta and whether the reported value lies inside the measured 95% interval. A run is the
    same model as a reference row when their names match once lower-cased without punctuation."""
    def key(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())
    out = []
    for ref in refs:
        for label, run in runs.items():
            names = {key(run.name), key(run.model_id.rstrip("/").split("/")[-1]), key(label)}
            if key(ref.model) not in names:
                continue
            for t, rt in sorted(ref.tasks.items()):
                task = run.tasks.get(t)
                if task is None:
                    continue
                for m, rm in rt.metrics.items():
                    mm = task.metrics.get(m)
                    if mm is None:
                        continue
                    rep, meas, ci = display_value(rm), display_value(mm), display_ci(mm)
                    out.append({"model": ref.model, "run": label, "task": t, "metric": m, "reported": rep,
                                "measured": meas, "measured 95% CI": ci_text(ci),
                                "Δ (measured − reported)": meas - rep,
                                "reported inside CI": None if ci is None else bool(ci[0] <= rep <= ci[1]),
                                "source": ref.source})
    return pd.DataFrame(out, columns=["model", "run", "task", "metric", "reported", "measured", "measured 95% CI",
                                      "Δ (measured − reported)", "reported inside CI", "source"])


_TOTALS = {"n_questions", "n_images", "n_samples"}  # sizes a metric notes beside its counts: not a count of trouble


def counted_frame(runs: dict[str, Run]) -> pd.DataFrame:
    """What each run counted beside its scores, task by task: answers no rule could read (scored 0),
    failed samples, and the counts (`n_...`) the primary metric recorded (MMMU's random picks, MMBench's
    questions left out for missing shifts). A count hidden behind an average is how harnesses come to disagree."""
    out = []
    for label, run in runs.items():
        for name, t in sorted(run.tasks.items()):
            counts: list[tuple[str, str, Any]] = [("", "unparsed answers", t.n_extraction_failures),
                                                 ("", "failed samples", t.n_errors)]
            primary = t.metrics[t.primary_metric]
            counts += [(t.primary_metric, k, v) for k, v in (primary.details or {}).items()
                       if k.startswith("n_") and k not in _TOTALS and isinstance(v, int) and not isinstance(v, bool)]
            out += [{"run": label, "task": name, "metric": m, "counted": what, "n": v, "of": t.n_samples}
                    for m, what, v in counts if v]
    return pd.DataFrame(out, columns=["run", "task", "metric", "counted", "n", "of"])


def run_keys(runs: list[Run]) -> dict[str, Run]:
    """A unique label per run: its name, with the folder added when two runs share a name."""
    names = [r.name for r in runs]
    out: dict[str, Run] = {}
    for r in runs:
        label = r.name if names.count(r.name) == 1 else f"{r.name} [{r.path.name}]"
        out[label] = r
    return out


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula (=, +, -, @, tab, CR first) get a
    leading apostrophe (OWASP's CSV-injection advice); numbers stay numbers."""
    def fix(v: Any) -> Any:
        return "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v
    out = df.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map(fix)
    out.columns = [fix(str(c)) for c in out.columns]
    return out


def to_csv(df: pd.DataFrame) -> bytes:
    return csv_safe(df).to_csv(index=False).encode("utf-8")
