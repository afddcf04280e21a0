"""`m3eval leaderboard --results DIR --export FILE.html`: the leaderboard as ONE static file.

Nothing from elsewhere (no CDN, fonts, styles or images): inline CSS, inline SVG bars and
an HTML-table language heatmap drawn here, and one inline script of ours that sorts a table
when its header is clicked; the file works on GitHub Pages, a static Hugging Face Space, or
offline. It holds what the default page shows: the overview, each capability, the papers'
tables (dashboard/papers.py), the language heatmap (dashboard/multilingual.py); the tables
come from the same code as the page. Every string from data is escaped with html.escape, and
no data reaches the script.
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
from dashboard.multilingual import consistency_frame, language_frame
from dashboard.papers import PaperSpec, PaperTable, notes, paper_tables, papers_for, units_text
from dashboard.references import UNMATCHED_NOTE, unmatched_frame
from m3eval.report.runs import ResultsError, find_runs, load_references
from m3eval.results import atomic_write_bytes

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
thead tr:last-child th{cursor:pointer}th[data-sort=asc]::after{content:" \\25B2"}
th[data-sort=desc]::after{content:" \\25BC"}td.heat{text-align:center;min-width:2.2rem}
"""

# Sorts a table by the clicked column of its last header row (numbers as numbers, empty cells
# last); a second click reverses. Static text: no data is ever written into it.
SORT_JS = """
document.querySelectorAll("table").forEach(function (t) {
  var head = t.tHead && t.tHead.rows[t.tHead.rows.length - 1];
  if (!head || !t.tBodies.length) return;
  Array.prototype.forEach.call(head.cells, function (th, i) {
    th.title = "Sort by this column";
    th.addEventListener("click", function () {
      var asc = th.dataset.sort !== "asc";
      Array.prototype.forEach.call(head.cells, function (c) { delete c.dataset.sort; });
      th.dataset.sort = asc ? "asc" : "desc";
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var key = function (r) {
        var s = r.cells[i] ? r.cells[i].textContent.trim() : "", n = parseFloat(s);
        return s === "" ? null : (isNaN(n) ? s.toLowerCase() : n);
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) return (x === null) - (y === null);
        if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
        var c = x < y ? -1 : (x > y ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _cell(v, column: str = "", exact: bool = False) -> tuple[str, bool]:
    """A cell's text and whether it is a number. `exact`: a paper's number, printed with the
    decimals it has (up to 2), not rounded to one."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "", False
    if isinstance(v, bool):  # an interval check says no; elsewhere False is a blank
        return ("yes" if v else ("no" if column.endswith("inside CI") else "")), False
    if isinstance(v, float):
        if exact:
            text = f"{v:.2f}"
            return (text[:-1] if text.endswith("0") else text), True  # 65.4, 89.36, 5.0
        return (f"{v:.0f}" if column == "n" else f"{v:.1f}"), True
    if isinstance(v, int):
        return str(v), True
    return html.escape(str(v)), False


def html_table(df: pd.DataFrame, exact: frozenset[str] | set[str] = frozenset()) -> str:
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
            text, num = _cell(row[c], str(c), c in exact)
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


def _paper_section(tables: list[PaperTable]) -> str:
    """Each source's table as published, its source cited, our reproduction beside each number."""
    out = ["<section id='papers'><h2>Papers</h2><p class='note'>Each source's table as it was published: rows "
           "are the reference files of results/reference/, columns the table's benchmarks in its order and "
           "unit. Where a run of the same model exists (matched by name), our score, its 95% interval and "
           "whether the paper's number lies inside it stand beside the paper's number.</p>"]
    if not tables:
        out.append("<p class='note'>No reference file of a paper's table here (results/reference/*.json, "
                   "listed under <code>papers:</code> in leaderboard.yaml).</p>")
    for t in tables:
        exact = {c.title for c in t.spec.columns}  # the paper's numbers, with the decimals it printed
        out.append(f"<h3>{html.escape(t.spec.title)}</h3><p class='note'>Source: {html.escape(t.spec.source)}. "
                   f"{html.escape(units_text(t))}</p>" + ("" if t.frame.empty else html_table(t.frame, exact)))
        if notes(t):
            out.append(f"<p class='note'>{html.escape(' '.join(notes(t)))}</p>")
        out.append(f"<details><summary>Each row's source</summary>{html_table(t.sources)}</details>")
    return "".join(out) + "</section>"


def _heat_color(score: float) -> tuple[str, str]:
    """Background (white to dark blue over 0..100) and a text colour that stays readable on it."""
    x = max(0.0, min(score, 100.0)) / 100
    r, g, b = (round(a + (z - a) * x) for a, z in ((247, 8), (251, 48), (255, 107)))
    return f"#{r:02x}{g:02x}{b:02x}", ("#fff" if x > 0.55 else "#111")


def _language_section(runs, h: Hierarchy) -> str:
    """The Multilingual page's heatmap as HTML tables (a row per model, a column per language,
    grouped by family then script, English first), and the consistency figures."""
    langs = language_frame(runs, h.languages)
    out = ["<section id='languages'><h2>Languages</h2>"]
    if langs.empty:
        out.append("<p class='note'>No run reports per-language scores.</p>")
    for task in sorted(langs["task"].unique()):
        sub = langs[langs["task"] == task].sort_values(["family_order", "family", "script", "lang"])
        order = list(dict.fromkeys(sub["lang"]))
        info = {r["lang"]: r for _, r in sub.iterrows()}
        bands: list[list] = []  # [family, colspan]
        for code in order:
            fam = str(info[code]["family"])
            if bands and bands[-1][0] == fam:
                bands[-1][1] += 1
            else:
                bands.append([fam, 1])
        top = "<th></th>" + "".join(f"<th colspan='{n}'>{html.escape(f)}</th>" for f, n in bands)
        codes = "<th>model</th>" + "".join(
            f"<th title='{html.escape(str(info[c]['name']), quote=True)}'>{html.escape(c)}</th>" for c in order)
        body = []
        for model in sorted(sub["model"].unique()):
            cells = []
            by_lang = {r["lang"]: r for _, r in sub[sub["model"] == model].iterrows()}
            for code in order:
                r = by_lang.get(code)
                if r is None:
                    cells.append("<td class='heat'></td>")
                    continue
                bg, fg = _heat_color(float(r["score"]))
                tip = f"{model} · {r['name']} ({r['family']}, {r['script']}): {r['score']:.1f}"
                if r["vs_en"] == r["vs_en"] and r["vs_en"] is not None:  # NaN: no English score
                    tip += f" · {r['vs_en']:+.1f} vs English"
                cells.append(f"<td class='heat num' style='background:{bg};color:{fg}' "
                             f"title='{html.escape(tip, quote=True)}'>{r['score']:.1f}</td>")
            body.append(f"<tr><td>{html.escape(str(model))}</td>{''.join(cells)}</tr>")
        out.append(f"<h3>{html.escape(str(task))}</h3><table class='heatmap'><thead><tr>{top}</tr><tr>{codes}</tr>"
                   f"</thead><tbody>{''.join(body)}</tbody></table>")
    if not langs.empty:
        out.append("<p class='note'>Languages grouped by family (branch for Indo-European), then by script; "
                   "English first, as the reference. Darker is higher (0..100).</p>")
    cons = consistency_frame(runs)
    if not cons.empty:
        out.append("<h3>Cross-lingual consistency</h3>" + html_table(cons))
    return "".join(out) + "</section>"


def render(h: Hierarchy, runs, refs, results_name: str, papers: list[PaperSpec] | None = None) -> str:
    rows = build_rows(h, runs, refs, {}, None)
    parts = [f"<h1>m3eval leaderboard</h1><p class='note'>Results: {html.escape(results_name)} · "
             f"exported {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC · scores on 0..100 after each "
             "metric's normalization; rank bands from 95% intervals (rows whose intervals overlap share ranks); "
             "partial, overridden and reported rows are not ranked.</p>"]
    df, _, hidden = level_frame(h, rows, "capabilities")
    parts.append("<section id='overview'><h2>All capabilities</h2>")
    if hidden:
        parts.append(f"<p class='note'>{hidden} row(s) hidden: no score in these columns.</p>")
    parts.append(_chart(df, rows, "capabilities", "Overall score") + html_table(df))
    all_tasks = sorted({t for r in runs.values() for t in r.tasks})
    unplaced = [t for t in all_tasks if t not in h.placed(all_tasks)]
    if unplaced:
        parts.append(f"<p class='note'>Not in the hierarchy: {html.escape(', '.join(unplaced))}.</p>")
    parts.append("</section>")
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
    unmatched = unmatched_frame(h, refs, runs)
    if not unmatched.empty:  # a reference number the board cannot place is listed, never dropped
        parts.append(f"<h2>Unmatched reference numbers</h2><p class='note'>{html.escape(UNMATCHED_NOTE)}</p>"
                     + html_table(unmatched))
    counted = counted_frame(runs)
    if not counted.empty:
        parts.append("<h2>Counted beside the scores</h2><p class='note'>Answers no rule could read (scored 0), "
                     "failed samples, and what a metric counted: MMMU's random picks for unreadable answers "
                     "(its authors' protocol), questions left out of a score.</p>" + html_table(counted))
    parts.append(_paper_section(paper_tables(papers_for(h) if papers is None else papers, refs, runs)))
    parts.append(_language_section(runs, h))
    tree = "".join(
        f"<li>{html.escape(c.title)} ({f'weight {c.weight:g}' if c.overall else 'not in overall'})<ul>" + "".join(
            f"<li>{html.escape(n.title)}: {html.escape(', '.join(lf.task for lf in n.leaves))}</li>"
            for n in c.tasks) + "</ul></li>" for c in h.capabilities)
    parts.append(f"<h2>Hierarchy</h2><ul class='tree'>{tree}</ul>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>m3eval leaderboard</title><style>{CSS}</style></head><body>{''.join(parts)}"
            f"<script>{SORT_JS}</script></body></html>")


def export(results_dir: str | Path, out: str | Path) -> int:
    """Write the HTML file atomically; 0 on success, 2 with a one-line error otherwise."""
    root = Path(results_dir)
    try:
        runs, warnings = find_runs(root)
        refs, ref_warnings = load_references(root)
        h = hierarchy_for(root)
        papers = papers_for(h)
    except (ResultsError, HierarchyError) as e:
        print(f"m3eval leaderboard: {e}", file=sys.stderr)
        return 2
    for w in warnings + ref_warnings:
        print(f"m3eval leaderboard: warning: {w}", file=sys.stderr)
    text = render(h, run_keys(runs), refs, root.resolve().name, papers)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, text.encode("utf-8"))
    except OSError as e:
        print(f"m3eval leaderboard: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"m3eval leaderboard: wrote {out} ({len(runs)} runs, {len(refs)} reported rows)", file=sys.stderr)
    return 0
