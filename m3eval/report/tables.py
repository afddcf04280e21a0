"""The results table printed at the end of a run."""
from __future__ import annotations

from typing import Any


def _fmt(value: float, scale: int) -> str:
    return f"{value * 100:.2f}" if scale == 1 else f"{value:.2f}"


def _ci(ci: list[float] | None, scale: float) -> str:
    return f"[{_fmt(ci[0], scale)}, {_fmt(ci[1], scale)}]" if ci else "-"


def _instruction_row(t: dict[str, Any]) -> tuple[str, ...] | None:
    """Spread over instruction variants of the primary metric: mean ± std, min-max."""
    inst = t.get("instructions") or {}
    if "mode" in inst:
        return ("", f"instructions: {inst['mode']}", "", "", "", "", "")
    if "mean" not in inst:
        return None
    scale = t["metrics"].get(inst.get("metric"), {}).get("scale", 1)
    return ("", f"{inst['metric']} over {inst['n']} instructions", f"{_fmt(inst['mean'], scale)} ± "
            f"{_fmt(inst['std'], scale)}", f"min-max {_fmt(inst['min'], scale)}-{_fmt(inst['max'], scale)}", "", "", "")


def format_results(results: dict[str, Any]) -> str:
    """Scores on a 0..100 scale with their 95% CI, sample, error and extraction-failure counts;
    per task the spread over instruction variants; groups with their aggregation."""
    rows = [("task", "metric", "score", "95% CI", "n", "errors", "unparsed")]
    for name, t in results.get("tasks", {}).items():
        for i, (metric, m) in enumerate(t["metrics"].items()):
            scale = m.get("scale", 1)
            first = i == 0
            rows.append((name if first else "", metric, _fmt(m["value"], scale), _ci(m.get("ci"), scale),
                         str(t["n_samples"]) if first else "", str(t["n_errors"]) if first else "",
                         str(t.get("n_extraction_failures", 0)) if first else ""))
        spread = _instruction_row(t)
        if spread:
            rows.append(spread)
    for name, g in results.get("groups", {}).items():
        how = f"{g.get('aggregate', 'macro')} mean of {g.get('metric') or 'primary'}"
        value = "refused" if g.get("value") is None else _fmt(g["value"], 1)
        rows.append((f"[group] {name}", how, value, _ci(g.get("ci"), 1), str(g["n_tasks"]) + " tasks", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, t in results.get("tasks", {}).items():
        if t.get("excluded_by"):
            n = t.get("n_excluded")
            lines.append(f"{name}: {'?' if n is None else n} rows not evaluated ({t['excluded_by']})")
    t = results.get("timings", {})
    if t:
        lines.append(f"\nload {t.get('load_s', 0):.1f}s  generate {t.get('generate_s', 0):.1f}s  "
                     f"score {t.get('score_s', 0):.1f}s  total {t.get('total_s', 0):.1f}s  "
                     f"({t.get('samples', 0)} samples generated, {t.get('samples_per_s', 0):.1f}/s)")
    return "\n".join(lines)
