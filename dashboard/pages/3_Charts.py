"""Charts: scores per task and per category, a language heatmap, the spread over instructions."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import altair as alt  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard.loading import load_all, no_runs_stop, run_keys, table  # noqa: E402
from dashboard.tables import instruction_scores, language_scores, long_scores  # noqa: E402

st.set_page_config(page_title="m3eval · charts", page_icon="📈", layout="wide")
st.title("Charts")
runs, _ = load_all()
no_runs_stop(runs)
runs_by = run_keys(runs)
chosen = st.multiselect("Runs", list(runs_by), default=list(runs_by), key="runs")
runs_by = {k: runs_by[k] for k in chosen}
if not runs_by:
    st.info("Choose at least one run.")
    st.stop()
all_tasks = sorted({t for r in runs_by.values() for t in r.tasks})
scores = long_scores(runs_by, all_tasks)
score_axis = alt.Y("score:Q", title="score (0..100; CIDEr ×100 can exceed 100)")

st.subheader("Scores per task")
bars = alt.Chart(scores).mark_bar().encode(
    x=alt.X("task:N", title=None), xOffset="model:N", y=score_axis, color="model:N",
    tooltip=["model", "task", "metric", alt.Tooltip("score:Q", format=".1f"),
             alt.Tooltip("ci_low:Q", format=".1f"), alt.Tooltip("ci_high:Q", format=".1f")])
rules = alt.Chart(scores).mark_rule().encode(x="task:N", xOffset="model:N", y="ci_low:Q", y2="ci_high:Q")
st.altair_chart(bars + rules, width="stretch")
with st.expander("Data"):
    table(scores, "scores_per_task", "per_task")

st.subheader("Scores per category")
per_cat = (scores.groupby(["model", "category"], dropna=False)["score"].mean().reset_index()
           if not scores.empty else scores)
st.altair_chart(alt.Chart(per_cat).mark_bar().encode(
    x=alt.X("category:N", title=None), xOffset="model:N", y=score_axis, color="model:N",
    tooltip=["model", "category", alt.Tooltip("score:Q", format=".1f")]), width="stretch")
st.caption("Category score: the mean of its tasks' primary metrics (both protocols).")
with st.expander("Data"):
    table(per_cat, "scores_per_category", "per_category")

st.subheader("Languages")
langs = language_scores(runs_by)
if langs.empty:
    st.caption("No run reports per-language scores (tasks with `languages`).")
else:
    task = st.selectbox("Multilingual task", sorted(langs["task"].unique()), key="lang_task")
    sub = langs[langs["task"] == task]
    heat = alt.Chart(sub).mark_rect().encode(
        x=alt.X("lang:N", title="language"), y=alt.Y("model:N", title=None),
        color=alt.Color("score:Q", scale=alt.Scale(scheme="viridis")),
        tooltip=["model", "lang", alt.Tooltip("score:Q", format=".1f")])
    st.altair_chart(heat, width="stretch")
    with st.expander("Data"):
        table(sub, f"languages_{task}", "languages")

st.subheader("Spread over instructions")
inst = instruction_scores(runs_by)
if inst.empty:
    st.caption("No run reports per-instruction scores (tasks with `instructions`).")
else:
    box = alt.Chart(inst).mark_boxplot(extent="min-max").encode(
        x=alt.X("task:N", title=None), xOffset="model:N", y=score_axis, color="model:N")
    dots = alt.Chart(inst).mark_circle(size=30, color="black").encode(
        x="task:N", xOffset="model:N", y="score:Q", tooltip=["model", "task", "instruction",
                                                             alt.Tooltip("score:Q", format=".1f")])
    st.altair_chart(box + dots, width="stretch")
    st.caption("Each dot is one instruction variant's score; the box spans min to max.")
    with st.expander("Data"):
        table(inst, "instructions", "instructions")
