"""Pure builders of the page's tables (no Streamlit here, so they are easy to test).

Scores are on the page's 0..100 scale: 0..1 metrics multiplied by 100 (docs/FORMATS.md).
"""
from __future__ import annotations

import pandas as pd

from dashboard.board import build_rows, ci_text, invocation_setting
from m3eval.line_record import SampleRecord
from m3eval.report.runs import Run, display_ci, display_value


def sample_frame(recs_a: list[SampleRecord], recs_b: list[SampleRecord] | None, metric: str, scale: float,
                 threshold: float) -> pd.DataFrame:
    """One row per sample of run A (joined with run B by id): scores on 0..100, pass/fail.

    A sample fails when it errored, had no extractable answer, or scored below
    `threshold` (a fraction of the metric's full scale).
    """
    def frame(recs: list[SampleRecord], suffix: str) -> pd.DataFrame:
        rows = []
        for r in recs:
            raw = r.scores.get(metric)
            score = None if raw is None else float(raw) * 100.0 / scale
            failed = bool(r.error) or r.extracted is None or score is None or score < threshold * 100
            rows.append({"id": r.id, f"score {suffix}": score, f"failed {suffix}": failed,
                         f"prediction {suffix}": r.prediction,
                         f"extracted {suffix}": r.extracted, f"error {suffix}": r.error})
        return pd.DataFrame(rows, columns=["id", f"score {suffix}", f"failed {suffix}", f"prediction {suffix}",
                                           f"extracted {suffix}", f"error {suffix}"])
    a = frame(recs_a, "A")
    a.insert(4, "reference", [joined(r.references) for r in recs_a])
    a.insert(1, "lang", [r.lang for r in recs_a])
    a.insert(2, "instruction", [r.instruction for r in recs_a])
    if recs_b is None:
        return a
    return a.merge(frame(recs_b, "B"), on="id", how="inner")


def joined(values: list[str] | None) -> str:
    """References or choices as one line: "a | b"."""
    return " | ".join(map(str, values or []))


def missing_ids_note(run_a: Run, run_b: Run, task: str, ids_a: set[str], ids_b: set[str]) -> str | None:
    """When run B lacks samples of run A: how many, and the differences that explain it."""
    missing = ids_a - ids_b
    if not missing:
        return None
    ta, tb = run_a.tasks[task], run_b.tasks[task]
    why = []
    for label, key in (("--limit", "limit"), ("dataset overrides", "dataset_overrides")):
        va, vb = (invocation_setting(r, task, key) for r in (run_a, run_b))
        if va != vb:
            why.append(f"{label} differs (A: {va or 'none'}, B: {vb or 'none'})")
    if ta.hash != tb.hash:
        why.append("the task definitions differ (hash)")
    if (ta.dataset or {}) != (tb.dataset or {}):
        why.append("the datasets differ (path, split or revision)")
    if tb.n_samples is not None and len(ids_b) < tb.n_samples:
        why.append(f"run B's samples file has {len(ids_b)} of its {tb.n_samples} records")
    reason = "; ".join(why) or "no setting differs: samples were dropped or failed in run B"
    return (f"Run B lacks {len(missing)} of run A's {len(ids_a)} samples (only shared ids are compared): "
            f"{reason}.")


def select_samples(df: pd.DataFrame, only_failures: bool, only_disagree: bool) -> pd.DataFrame:
    """Failures of run A; disagreement = one run passes where the other fails."""
    if only_failures:
        df = df[df["failed A"]]
    if only_disagree and "failed B" in df:
        df = df[df["failed A"] != df["failed B"]]
    return df


def comparison_frame(cmp) -> pd.DataFrame:
    """The rows of an m3eval.report.compare.Comparison as a table."""
    return pd.DataFrame([{
        "task": r.task, "metric": r.metric, "base": r.base, "new": r.new, "Δ (pts)": r.diff,
        "CI low": None if r.ci is None else r.ci[0], "CI high": None if r.ci is None else r.ci[1],
        "p": r.p_value, "test": r.test, "n": r.n, "status": r.status, "note": r.note,
    } for r in cmp.rows], columns=["task", "metric", "base", "new", "Δ (pts)", "CI low", "CI high", "p",
                                   "test", "n", "status", "note"])


def long_scores(runs: dict[str, Run], tasks: list[str]) -> pd.DataFrame:
    """model × task primary scores, long form, for the charts."""
    rows = []
    for label, run in runs.items():
        for t in tasks:
            task = run.tasks.get(t)
            if task is not None:
                m = task.primary
                ci = display_ci(m)
                rows.append({"model": label, "task": t, "category": task.category,
                             "protocol": task.protocol, "metric": task.primary_metric,
                             "score": display_value(m), "ci_low": ci[0] if ci else None,
                             "ci_high": ci[1] if ci else None})
    return pd.DataFrame(rows, columns=["model", "task", "category", "protocol", "metric", "score",
                                       "ci_low", "ci_high"])


def language_scores(runs: dict[str, Run]) -> pd.DataFrame:
    """Per-language scores, from both shapes a run can have them in:
    a task's `languages` ({lang: {metric: entry}}), and one task per language named
    <base>_<lang> with that `language` (e.g. m3it80_msrvtt_fr)."""
    rows = []
    for label, run in runs.items():
        for t, task in run.tasks.items():
            lang = task.language
            if lang and t.endswith(f"_{lang}") and task.category == "multilingual":
                rows.append({"model": label, "task": t[: -len(lang) - 1], "lang": lang,
                             "score": display_value(task.primary)})
            for lang, metrics in (task.languages or {}).items():
                m = metrics.get(task.primary_metric)
                if m is not None:
                    rows.append({"model": label, "task": t, "lang": lang, "score": display_value(m)})
    return pd.DataFrame(rows, columns=["model", "task", "lang", "score"])


def instruction_scores(runs: dict[str, Run]) -> pd.DataFrame:
    """One row per (model, task, instruction variant) for tasks that report `instructions`."""
    rows = []
    for label, run in runs.items():
        for t, task in run.tasks.items():
            inst = task.instructions
            if inst is None or not inst.per_instruction:
                continue
            metric = inst.metric or task.primary_metric
            entry = task.metrics.get(metric)
            scale = float(entry.scale) if entry is not None else 1.0
            for k, v in enumerate(inst.per_instruction):
                rows.append({"model": label, "task": t, "instruction": k, "metric": metric,
                             "score": float(v) * 100.0 / scale})
    return pd.DataFrame(rows, columns=["model", "task", "instruction", "metric", "score"])


def metrics_frame(run: Run) -> pd.DataFrame:
    """Every metric of a run on the display scale, its 95% interval rounded to 0.1."""
    rows = []
    for name, t in sorted(run.tasks.items()):
        for m, entry in t.metrics.items():
            ci = display_ci(entry)
            rows.append({"task": name, "metric": m, "primary": m == t.primary_metric,
                         "value": display_value(entry), "95% CI": ci_text(ci), "kind": entry.kind,
                         "n": t.n_samples, "signature": entry.signature})
    return pd.DataFrame(rows, columns=["task", "metric", "primary", "value", "95% CI", "kind", "n", "signature"])


def capability_scores(h, runs: dict[str, Run]) -> pd.DataFrame:
    """model × capability scores of the hierarchy, with intervals and how many of the capability's
    datasets (results tasks) each run has (`tasks` of `of`)."""
    rows = []
    for r in build_rows(h, runs, [], {}, None):
        for c in h.capabilities:
            s = r.board.capabilities.get(c.key)
            if s is not None:
                rows.append({"model": r.label, "capability": c.title, "score": s.value, "ci_low": s.lo,
                             "ci_high": s.hi, "tasks": len(h.under(c.key, list(r.board.leaves))),
                             "of": len(h.under(c.key, sorted(r.expected)))})
    return pd.DataFrame(rows, columns=["model", "capability", "score", "ci_low", "ci_high", "tasks", "of"])


def task_count_notes(caps: pd.DataFrame) -> list[str]:
    """One warning per capability whose bars rest on different numbers of tasks."""
    out = []
    for cap, sub in caps.groupby("capability", sort=False):
        if sub["tasks"].nunique() > 1:
            counts = ", ".join(f"{m}: {int(k)}" for m, k in zip(sub["model"], sub["tasks"]))
            out.append(f"{cap}: these bars average different numbers of tasks ({counts} of "
                       f"{int(sub['of'].max())}); they are not a like-for-like comparison.")
    return out
