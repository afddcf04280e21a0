"""The results table printed at the end of a run."""
from __future__ import annotations

from collections.abc import Collection

from ..record import GroupResult, Results, TaskResult


def _fmt(value: float, scale: float) -> str:
    return f"{value * 100:.2f}" if scale == 1 else f"{value:.2f}"


def _ci(ci: tuple[float, float] | None, scale: float) -> str:
    return f"[{_fmt(ci[0], scale)}, {_fmt(ci[1], scale)}]" if ci else "-"


def _instruction_row(t: TaskResult) -> tuple[str, ...] | None:
    """Spread over instruction variants of the primary metric: mean ± std, min-max."""
    inst = t.instructions
    if inst is None:
        return None
    if inst.mode is not None:
        return ("", f"instructions: {inst.mode}", "", "", "", "", "")
    if inst.mean is None or inst.std is None or inst.min is None or inst.max is None:
        return None
    metric = t.metrics.get(inst.metric or "")
    scale = metric.scale if metric is not None else 1
    return ("", f"{inst.metric} over {inst.n} instructions", f"{_fmt(inst.mean, scale)} ± "
            f"{_fmt(inst.std, scale)}", f"min-max {_fmt(inst.min, scale)}-{_fmt(inst.max, scale)}", "", "", "")


def _group_label(g: GroupResult) -> str:
    """How the group's number was made, short (<= 40 characters for the built-in metrics): a mixed group's
    value is a mean of normalized scores, never named as a plain mean; a refused one says why in a few words."""
    if g.value is None:
        return "no mean: " + (g.error or "not computed").split(":")[0]
    return f"{g.aggregate or 'macro'} mean of " + ("normalized scores" if g.normalization else g.metric or "primary")


def only_tasks(results: Results, tasks: Collection[str]) -> Results:
    """The results of these tasks, and of the groups within them: what one step of a run folder
    shared by several invocations (the demo's grounding) produced."""
    return results.model_copy(update={
        "tasks": {t: e for t, e in results.tasks.items() if t in tasks},
        "submissions": {t: e for t, e in results.submissions.items() if t in tasks},
        "groups": {g: e for g, e in results.groups.items() if set(e.tasks) <= set(tasks)}})


def format_results(results: Results) -> str:
    """Scores on a 0..100 scale with their 95% CI, sample, error and extraction-failure counts;
    per task the spread over instruction variants; groups with their aggregation."""
    rows: list[tuple[str, ...]] = [("task", "metric", "score", "95% CI", "n", "errors", "unparsed")]
    for name, t in results.tasks.items():
        for i, (metric, m) in enumerate(t.metrics.items()):
            first = i == 0
            rows.append((name if first else "", metric, _fmt(m.value, m.scale), _ci(m.ci, m.scale),
                         str(t.n_samples) if first else "", str(t.n_errors) if first else "",
                         str(t.n_extraction_failures or 0) if first else ""))
        spread = _instruction_row(t)
        if spread:
            rows.append(spread)
    for name, g in results.groups.items():
        value = "-" if g.value is None else _fmt(g.value, 1)
        rows.append((f"[group] {name}", _group_label(g), value, _ci(g.ci, 1), f"{g.n_tasks} tasks", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, t in results.tasks.items():
        if t.excluded_by:
            lines.append(f"{name}: {'?' if t.n_excluded is None else t.n_excluded} rows not evaluated "
                         f"({t.excluded_by})")
    for name, g in results.groups.items():  # an unbounded metric in a normalized score: how it was bounded
        clipped = [f"{m} as {rule}" for m, rule in (g.normalization or {}).items() if rule != "value / scale"]
        if g.value is not None and clipped:
            lines.append(f"[group] {name}: normalized scores are value / scale, {', '.join(clipped)}")
    tm = results.timings
    if tm.model_fields_set:  # a run that timed nothing (score --predictions) prints no timings line
        lines.append(f"\nload {tm.load_s or 0:.1f}s  generate {tm.generate_s or 0:.1f}s  "
                     f"score {tm.score_s or 0:.1f}s  total {tm.total_s or 0:.1f}s  "
                     f"({tm.samples or 0} samples generated, {tm.samples_per_s or 0:.1f}/s)")
    return "\n".join(lines)
