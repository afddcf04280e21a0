"""The leaderboard's tables, shared by the page and the static export (pure: no Streamlit).

A row is a run or a reported row; its scores come from dashboard/hierarchy.py, its
provenance from results.json (per-task `invocation` records when present, else
`run.config`). Partial and overridden runs are marked and, by default, not ranked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.hierarchy import (
    Board,
    Hierarchy,
    Leaf,
    Score,
    TaskNode,
    band_text,
    combine,
    group_table,
    rank_bands,
    score_board,
    task_table,
)
from dashboard.references import known_tasks, reference_labels
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
    expected: dict[str, str | None]  # results task -> protocol, of every row shown (protocol filter applied)
    n_samples: dict[str, int] | None = None  # results task -> samples scored (measured rows)


def build_rows(h: Hierarchy, runs: dict[str, Run], refs: list[Reference], cap_weights: dict[str, float],
               protocols: set[str] | None) -> list[Row]:
    """Every run and reported row scored on the hierarchy (protocol filter applied). A reported
    row's task counts under the primary metric and protocol of a run of it, else of the suite's
    task file (dashboard/references.py); one row per reference file."""
    tables = {label: task_table(run.tasks) | group_table(h, run.groups, run.tasks) for label, run in runs.items()}
    known = known_tasks(runs)
    primary = {t: k.primary for t, k in known.items() if k.primary}
    protocol = {t: k.protocol for t, k in known.items()}
    expected = {t for tab in tables.values() for t, row in tab.items()
                if not protocols or row.protocol in protocols}  # rank: complete among the measured rows
    ref_tables = [task_table(ref.tasks, primary, protocol) for ref in refs]
    shown = {t: row.protocol for tab in [*tables.values(), *ref_tables] for t, row in tab.items()
             if not protocols or row.protocol in protocols}  # coverage: among every row shown
    rows = []
    for label, run in runs.items():
        b = score_board(h, tables[label], cap_weights, protocols, expected)
        rows.append(Row(label, False, b, provenance(run, _run_tasks(run, b.leaves)), run.model_id, shown,
                        _n_samples(run, b.leaves)))
    for ref, label, tab in zip(refs, reference_labels(refs), ref_tables):
        b = score_board(h, tab, cap_weights, protocols, expected)
        prov = dict.fromkeys(PROVENANCE, "—") | {"status": "reported in a paper", "n": None}
        rows.append(Row(label, True, b, prov, ref.source, shown))
    return rows


def _run_tasks(run: Run, leaves: dict[str, Score]) -> list[str]:
    """The run's tasks behind a row's leaves (a group leaf: its tasks)."""
    return sorted({m for t in leaves for m in (run.groups[t].tasks if t not in run.tasks else [t]) if m in run.tasks})


def _n_samples(run: Run, leaves: dict[str, Score]) -> dict[str, int]:
    """Samples behind each leaf; a group leaf counts only its tasks that are not leaves themselves."""
    n = {t: run.tasks[t].n_samples or 0 for t in leaves if t in run.tasks}
    return n | {t: sum(run.tasks[m].n_samples or 0 for m in run.groups[t].tasks if m in run.tasks and m not in n)
                for t in leaves if t not in run.tasks}


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


def _node_coverage(h: Hierarchy, node: TaskNode, shown: dict[str, str | None], have: set[str]) -> tuple[int, int]:
    """(leaves the row has, leaves it should have) of one hierarchy task. It should have every leaf
    the rows shown have under each protocol it has there (M3IT's ROUGE-L row need not have Qwen-VL's
    protocol; a row with RefCOCO val lacks test-A and test-B). A weight-0 leaf (a group beside its
    own tasks) is never wanted, and stands for the leaves of its protocol when a row has it."""
    want: set[str] = set()
    summaries: set[str] = set()  # tasks of weight-0 leaves
    for leaf in node.leaves:
        (summaries if leaf.weight == 0 else want).update(h.leaf_tasks(leaf, sorted(shown)))
    mine = (want | summaries) & have
    protos = {shown[t] for t in mine}
    summarized = {shown[t] for t in mine & summaries}
    need = {t for t in want if not mine or shown[t] in protos}
    return len({t for t in need if t in mine or shown[t] in summarized}), len(need)


def coverage(h: Hierarchy, row: Row, level: str) -> tuple[int, int]:
    """(datasets the row has, datasets the rows shown have) at a level. At a task, a dataset is a
    leaf (_node_coverage); above it, a task of the hierarchy (OK-VQA), which a row has when it has
    all the leaves it should. The overall level counts only the capabilities in the overall score."""
    shown, have = row.expected, set(row.board.leaves)
    k = n = 0
    for c in h.capabilities:
        if (level == "capabilities" and not c.overall) or level.split("/")[0] not in ("capabilities", c.key):
            continue
        for node in c.tasks:
            if "/" in level:
                if node.key == level.split("/", 1)[1]:
                    return _node_coverage(h, node, shown, have)
                continue
            got, should = _node_coverage(h, node, shown, have)
            n += should > 0
            k += should > 0 and got == should
    return k, n


def coverage_text(k: int, n: int) -> str:
    """What the coverage column says: "3 of 3 datasets", or "1 of 3 datasets · partial" (the score
    is over the datasets present; docs/LEADERBOARD.md)."""
    return f"{k} of {n} datasets" + (" · partial" if k < n else "")


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
    covered = {r.label: coverage(h, r, level) for r in visible}
    # a rank needs every dataset at this level (of the rows shown) and, unless rank_all, a full run
    rankable = {r.label: (s.value, s.lo, s.hi) for r in visible if (s := headline[r.label]) is not None
                and s.complete and not r.reported and covered[r.label][0] == covered[r.label][1]
                and (rank_all or is_ranked_status(r.prov["status"]))}
    bands = rank_bands(rankable)
    out = []
    for r in visible:
        s = headline[r.label]
        d: dict[str, Any] = {"rank": band_text(bands.get(r.label)), "model": r.label, "reported": r.reported,
                             "status": r.prov["status"], head_title: None if s is None else s.value}
        if show_ci:
            d[f"{head_title} 95% CI"] = _score_ci_text(s)
        d["coverage"] = coverage_text(*covered[r.label])
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


def _name_key(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def same_model(model: str, label: str, run: Run) -> bool:
    """A run is the same model as a reference row when their names match once lower-cased
    without punctuation (the run's name, its label, or the last part of its model id)."""
    names = {_name_key(run.name), _name_key(run.model_id.rstrip("/").split("/")[-1]), _name_key(label)}
    return _name_key(model) in names


def paper_vs_measured(rows: list[Row], refs: list[Reference], runs: dict[str, Run]) -> pd.DataFrame:
    """Reported beside measured for the same model and task (same metric, display scale 0..100):
    delta and whether the reported value lies inside the measured 95% interval (same_model)."""
    out = []
    for ref in refs:
        for label, run in runs.items():
            if not same_model(ref.model, label, run):
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
