"""Overview: capability -> task -> dataset scores with CIs, rank bands, provenance, paper vs reproduced.

The view (level, protocols, weights) lives in the URL query, so a link shares it.
"""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard.board import build_rows, counted_frame, level_frame, paper_vs_measured  # noqa: E402
from dashboard.loading import load_all, load_hierarchy_or_stop, md_escape, run_keys, table  # noqa: E402
from dashboard.references import UNMATCHED_NOTE, reference_protocols, unmatched_frame  # noqa: E402

st.set_page_config(page_title="m3eval leaderboard", page_icon="📊", layout="wide")
st.title("m3eval leaderboard")
runs, refs = load_all()
if not runs and not refs:
    st.info("No runs or reference rows to show yet. Produce a run with `m3eval run ... --output results/`.")
    st.stop()
h = load_hierarchy_or_stop()
runs_by = run_keys(runs)
q = st.query_params

levels = {"capabilities": "All capabilities"}
for c in h.capabilities:
    levels[c.key] = f"{c.title} → tasks"
    for n in c.tasks:
        levels[f"{c.key}/{n.key}"] = f"{c.title} → {n.title} → datasets"
present = sorted({t.protocol for r in runs for t in r.tasks.values() if t.protocol}
                 | reference_protocols(refs, runs_by))

c1, c2 = st.columns([3, 2])
level_default = q.get("level") if q.get("level") in levels else "capabilities"
level = c1.selectbox("Level", list(levels), index=list(levels).index(level_default),
                     format_func=lambda k: levels[k], key="level")
proto_default = [p for p in q.get_all("protocol") if p in present]
protocols = c2.pills("Protocol", present, selection_mode="multi", default=proto_default or None, key="protocol",
                     format_func=md_escape,  # pill labels render Markdown; protocols come from results files
                     help="paper: M3IT's ROUGE-L for every task; official: each benchmark's own metric. "
                          "None selected: all.")
o1, o2, o3 = st.columns(3)
show_ci = o1.toggle("Show 95% CIs", value=q.get("ci", "1") == "1", key="show_ci")
show_reported = o2.toggle("Show reported rows", value=q.get("reported", "1") == "1", key="show_reported")
rank_all = o3.toggle("Rank partial and overridden runs", value=q.get("rank_all") == "1", key="rank_all",
                     help="by default only full runs on the task's own data get a rank")

weights = {}
in_overall = [c for c in h.capabilities if c.overall]  # the demo's capability has no weight: not in overall
with st.expander("Capability weights (saved in the link)"):
    cols = st.columns(max(1, len(in_overall)))
    for col, c in zip(cols, in_overall):
        try:
            default = float(q.get(f"w_{c.key}", c.weight))
        except ValueError:
            default = c.weight
        weights[c.key] = col.number_input(md_escape(c.title), 0.0, 10.0, min(max(default, 0.0), 10.0), 0.5,
                                          key=f"w_{c.key}")  # widget labels render Markdown: titles are data

# the view, written back to the URL so it can be shared
view = {"level": level, "ci": "1" if show_ci else "0", "reported": "1" if show_reported else "0",
        "rank_all": "1" if rank_all else "0"}
view |= {f"w_{k}": f"{v:g}" for k, v in weights.items() if v != next(c.weight for c in h.capabilities if c.key == k)}
for key in list(q.keys()):
    if key not in view:
        del q[key]
q.update(view)
if protocols:
    q["protocol"] = list(protocols)

rows = build_rows(h, runs_by, refs if show_reported else [], weights, set(protocols or []) or None)
df, score_cols, hidden = level_frame(h, rows, level, show_ci=show_ci, rank_all=rank_all)
if df.empty:
    st.info("No row has a score at this level with these filters.")
    st.stop()
config = {c: st.column_config.NumberColumn(c, format="%.1f") for c in score_cols}
config["reported"] = st.column_config.CheckboxColumn("reported", help="score reported in a paper, not measured here")
config["rank"] = st.column_config.TextColumn("rank", help="rank band: rows whose 95% intervals overlap share ranks")
config["n"] = st.column_config.NumberColumn("n", help="samples scored", format="%d")
table(df, "leaderboard", "overview", column_config=config)
notes = [f"{hidden} row(s) hidden: no score in these columns."] if hidden else []
unranked = int(((df["rank"] == "") & ~df["reported"]).sum())
if unranked:
    notes.append(f"{unranked} measured row(s) without a rank: partial (--limit or failed tasks), "
                 "overridden data, or not every dataset at this level (see status and coverage).")
if df["coverage"].str.endswith("partial").any():
    notes.append("A row marked partial in coverage lacks datasets that other rows shown have: its score is over "
                 "the datasets it has, and it is not ranked by default.")
for n in notes:
    st.caption(n)
st.caption("Scores on 0..100 after each metric's normalization (accuracy and ROUGE-L ×100; CIDEr-D ÷ 2, "
           "capped at 100); a parent is the weighted mean of its children present, with a 95% interval "
           "combined from theirs (docs/LEADERBOARD.md). Rows marked reported are from papers, never ranked.")
all_tasks = sorted({t for r in runs for t in r.tasks})
unplaced = [t for t in all_tasks if t not in h.placed(all_tasks)]
if unplaced:
    st.caption(md_escape(f"Not in the hierarchy ({h.source.name}), shown on the Task and Charts pages only: "
                         f"{', '.join(unplaced[:20])}{' …' if len(unplaced) > 20 else ''}"))

st.subheader("Reported vs reproduced")
pvm = paper_vs_measured(rows, refs, runs_by)
if pvm.empty:
    st.caption("No run of a model that a reference row reports on (matched by name, e.g. run `ying-vlm` for "
               "Ying-VLM).")
else:
    table(pvm, "reported_vs_reproduced", "pvm",
          column_config={c: st.column_config.NumberColumn(c, format="%.1f")
                         for c in ("reported", "measured", "Δ (measured − reported)")})
    st.caption("Reported: the paper's number; measured: this harness's run of the same model and task, "
               "same metric, with its 95% bootstrap interval.")

unmatched = unmatched_frame(h, refs, runs_by)
if not unmatched.empty:
    st.subheader("Unmatched reference numbers")
    table(unmatched, "unmatched_reference_numbers", "unmatched")
    st.caption(UNMATCHED_NOTE)

counted = counted_frame(runs_by)
if not counted.empty:
    st.subheader("Counted beside the scores")
    table(counted, "counted", "counted", column_config={"n": st.column_config.NumberColumn("n", format="%d")})
    st.caption("Answers no rule could read (scored 0), failed samples, and what a metric counted: MMMU's random "
               "picks for unreadable answers (its authors' protocol), questions left out of a score.")
