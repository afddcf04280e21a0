"""`m3eval leaderboard --results DIR --export FILE.html`: the leaderboard as ONE static file.

No scripts, fonts, styles or images from elsewhere: inline CSS and inline SVG bars drawn
here, so the file works on GitHub Pages, a static Hugging Face Space, or offline. The
tables come from dashboard/board.py, the same code as the page. Every string from data is
escaped with html.escape.
"""
from __future__ import annotations

import datetime as _dt
import html
import math
import sys
from pathlib import Path

import pandas as pd

from dashboard.board import build_rows, counted_frame, headline_score, level_frame, paper_vs_measured, run_keys
from dashboard.hierarchy import Hierarchy, HierarchyError, hierarchy_for
from m3eval.results import atomic_write_bytes
from m3eval.report.runs import ResultsError, find_runs, load_references

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",sans-serif;margin:2rem;
color:#1f2430;max-width:1400px}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.note{color:#555;font-size:.9rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;white-space:nowrap}
th{background:#f3f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.unranked td{color:#777}tr.reported td{font-style:italic}
.badge{display:inline-block;padding:0 .35rem;border-radius:.3rem;font-size:.75rem;background:#fde2c8;color:#7a3c00}
svg text{font-family:inherit;font-size:12px}
ul.tree{font-size:.9rem}details{margin:.3rem 0}summary{cursor:pointer;color:#334}
"""


def _cell(v, column: str = "") -> tuple[str, bool]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "", False
    if isinstance(v, bool):
        return ("yes" if v else ""), False
    if isinstance(v, float):
        return (f"{v:.0f}" if column == "n" else f"{v:.1f}"), True
    if isinstance(v, int):
        return str(v), True
    return html.escape(str(v)), False


def html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cls = []
        if "reported" in df.columns and row.get("reported") is True:
            cls.append("reported")
        elif "rank" in df.columns and row.get("rank") == "":
            cls.append("unranked")
        cells = []
        for c in df.columns:
            text, num = _cell(row[c], str(c))
            if c == "status" and text and text != "full":
                text = f'<span class="badge">{text}</span>'
            cells.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
        body.append(f'<tr class="{" ".join(cls)}">' + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def svg_bars(items: list[tuple], title: str) -> str:
    """Horizontal bars on 0..100 with each 95% interval drawn through the middle of its bar;
    items are (label, value, lo, hi[, muted]): muted bars (not ranked) are grey."""
    label_w, bar_w, row_h, pad = 260, 520, 22, 24
    height = pad + row_h * len(items) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 80}" '
           f'height="{height}"><title>{html.escape(title)}</title>']
    for tick in range(0, 101, 25):
        x = label_w + bar_w * tick / 100
        out.append(f'<line x1="{x:.1f}" y1="{pad - 6}" x2="{x:.1f}" y2="{height - 20}" stroke="#e3e3e3"/>'
                   f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#666">{tick}</text>')
    for i, (label, value, lo, hi, *muted) in enumerate(items):
        y = pad + i * row_h
        mid = y + (row_h - 6) / 2
        w = bar_w * max(0.0, min(value, 100.0)) / 100
        out.append(f'<text x="{label_w - 8}" y="{mid + 4:.1f}" text-anchor="end">{html.escape(label)}</text>'
                   f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{row_h - 6}" '
                   f'fill="{"#b9bec7" if muted and muted[0] else "#4c78a8"}">'
                   f'<title>{html.escape(label)}: {value:.1f}</title></rect>')
        if lo is not None and hi is not None:
            x1, x2 = label_w + bar_w * lo / 100, label_w + bar_w * hi / 100
            out.append(f'<line class="ci" x1="{x1:.1f}" y1="{mid:.1f}" x2="{x2:.1f}" y2="{mid:.1f}" '
                       f'stroke="#222" stroke-width="1.5"/>')
        right = max(w, bar_w * (hi or 0) / 100)  # the value sits right of the bar and its interval
        out.append(f'<text x="{label_w + right + 6:.1f}" y="{mid + 4:.1f}" fill="#333">{value:.1f}</text>')
    out.append("</svg>")
    return "".join(out)


def _chart(df: pd.DataFrame, rows: list, level: str, title: str) -> str:
    """The headline scores of the table's rows, in its order, with their intervals."""
    by_label = {r.label: r for r in rows}
    items = []
    for _, r in df.iterrows():
        s = headline_score(by_label[r["model"]], level)
        if s is not None:
            items.append((str(r["model"]), s.value, s.lo, s.hi, r.get("rank") == ""))
    return svg_bars(items, title) if items else ""


def render(h: Hierarchy, runs, refs, results_name: str) -> str:
    rows = build_rows(h, runs, refs, {}, None)
    parts = [f"<h1>m3eval leaderboard</h1><p class='note'>Results: {html.escape(results_name)} · "
             f"exported {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC · scores on 0..100 after each "
             "metric's normalization; rank bands from 95% intervals (rows whose intervals overlap share ranks); "
             "partial, overridden and reported rows are not ranked.</p>"]
    df, _, hidden = level_frame(h, rows, "capabilities")
    parts.append("<h2>All capabilities</h2>")
    if hidden:
        parts.append(f"<p class='note'>{hidden} row(s) hidden: no score in these columns.</p>")
    parts.append(_chart(df, rows, "capabilities", "Overall score") + html_table(df))
    for c in h.capabilities:
        cdf, _, _ = level_frame(h, rows, c.key)
        if cdf.empty:
            continue
        parts.append(f"<h2>{html.escape(c.title)}</h2>" + _chart(cdf, rows, c.key, c.title) + html_table(cdf))
        for n in c.tasks:  # the datasets/protocols of each task, folded (no script needed)
            ndf, _, _ = level_frame(h, rows, f"{c.key}/{n.key}")
            if not ndf.empty:
                parts.append(f"<details><summary>{html.escape(n.title)}: datasets and protocols</summary>"
                             f"{html_table(ndf)}</details>")
    pvm = paper_vs_measured(rows, refs, runs)
    if not pvm.empty:
        parts.append("<h2>Reported vs reproduced</h2>" + html_table(pvm))
    counted = counted_frame(runs)
    if not counted.empty:
        parts.append("<h2>Counted beside the scores</h2><p class='note'>Answers no rule could read (scored 0), "
                     "failed samples, and what a metric counted: MMMU's random picks for unreadable answers "
                     "(its authors' protocol), questions left out of a score.</p>" + html_table(counted))
    tree = "".join(
        f"<li>{html.escape(c.title)} (weight {c.weight:g})<ul>" + "".join(
            f"<li>{html.escape(n.title)}: {html.escape(', '.join(lf.task for lf in n.leaves))}</li>"
            for n in c.tasks) + "</ul></li>" for c in h.capabilities)
    parts.append(f"<h2>Hierarchy</h2><ul class='tree'>{tree}</ul>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>m3eval leaderboard</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>")


def export(results_dir: str | Path, out: str | Path) -> int:
    """Write the HTML file atomically; 0 on success, 2 with a one-line error otherwise."""
    root = Path(results_dir)
    try:
        runs, warnings = find_runs(root)
        refs, ref_warnings = load_references(root)
        h = hierarchy_for(root)
    except (ResultsError, HierarchyError) as e:
        print(f"m3eval leaderboard: {e}", file=sys.stderr)
        return 2
    for w in warnings + ref_warnings:
        print(f"m3eval leaderboard: warning: {w}", file=sys.stderr)
    text = render(h, run_keys(runs), refs, root.resolve().name)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, text.encode("utf-8"))
    except OSError as e:
        print(f"m3eval leaderboard: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"m3eval leaderboard: wrote {out} ({len(runs)} runs, {len(refs)} reported rows)", file=sys.stderr)
    return 0
