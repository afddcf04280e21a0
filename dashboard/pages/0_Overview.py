"""Overview: models × tasks and groups, with CIs, sorting and filters; reported rows marked."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard.loading import load_all, md_escape, run_keys, table  # noqa: E402
from dashboard.tables import CATEGORIES, filter_tasks, overview_frame, task_infos  # noqa: E402

st.set_page_config(page_title="m3eval leaderboard", page_icon="📊", layout="wide")
st.title("m3eval leaderboard")
runs, refs = load_all()
if not runs and not refs:
    st.info("No runs or reference rows to show yet. Produce a run with `m3eval run ... --output results/`.")
    st.stop()

runs_by = run_keys(runs)
infos = task_infos(runs, refs)
present_cats = sorted({i.category for i in infos.values() if i.category},
                      key=lambda c: (CATEGORIES.index(c) if c in CATEGORIES else 99, c))
c1, c2, c3 = st.columns([3, 2, 2])
categories = c1.pills("Category", present_cats, selection_mode="multi", key="category")
protocols = c2.pills("Protocol", sorted({i.protocol for i in infos.values() if i.protocol}),
                     selection_mode="multi", key="protocol",
                     help="paper: M3IT's ROUGE-L for every task; official: each benchmark's own metric")
languages = c3.multiselect("Language", sorted({i.language for i in infos.values() if i.language}), key="language")
o1, o2, o3, o4 = st.columns(4)
show_ci = o1.toggle("Show 95% CIs", value=True, key="show_ci")
show_reported = o2.toggle("Show reported rows", value=True, key="show_reported")
descending = o3.toggle("Highest first", value=True, key="descending")
groups_only = o4.toggle("Groups only", value=False, key="groups_only", help="hide single tasks (M3IT-80 has 240)")

tasks = filter_tasks(infos, categories, languages, protocols)
df, score_cols = overview_frame(runs_by, refs if show_reported else [], tasks, show_ci)
if not tasks:
    st.info("No task matches these filters.")
    st.stop()
if groups_only:
    score_cols = [c for c in score_cols if c.endswith(" (avg)")]
    df = df[[c for c in df.columns if c in ("model", "reported", "source") or c in score_cols]]
    if not score_cols:
        st.info("No group has all its tasks among the filtered tasks.")
        st.stop()
sort_by = st.selectbox("Sort by", score_cols + ["model"], key="sort_by")
df = df.sort_values(sort_by, ascending=not descending if sort_by != "model" else True, na_position="last")

st.caption(md_escape(f"Showing {len(tasks)} tasks: {', '.join(tasks)}"))
config = {c: st.column_config.NumberColumn(c, format="%.1f") for c in score_cols}
config["reported"] = st.column_config.CheckboxColumn("reported", help="score reported in a paper, not measured here")
table(df, "overview", "overview", column_config=config)
st.caption("Scores on a 0..100 scale (0..1 metrics × 100), each task's primary metric; "
           "rows marked (reported) are scores from papers, not measured by m3eval; "
           "group columns average their tasks' primary metrics.")
