"""Charts: scores per task and per capability with their intervals, the spread over instructions."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import altair as alt  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard.loading import load_hierarchy_or_stop, md_escape, start_page, table  # noqa: E402
from dashboard.tables import capability_scores, instruction_scores, long_scores, task_count_notes  # noqa: E402

runs_by, _ = start_page("charts", "📈", "Charts")
chosen = st.multiselect("Runs", list(runs_by), default=list(runs_by), key="runs")
runs_by = {k: runs_by[k] for k in chosen}
if not runs_by:
    st.info("Choose at least one run.")
    st.stop()
all_tasks = sorted({t for r in runs_by.values() for t in r.tasks})
h = load_hierarchy_or_stop()
per_language = h.placed(all_tasks) - {t for c in h.capabilities for n in c.tasks for lf in n.leaves
                                      if "{lang}" not in lf.task for t in h.leaf_tasks(lf, all_tasks)}
default_tasks = [t for t in all_tasks if t not in per_language][:30]
tasks = st.multiselect("Tasks", all_tasks, default=default_tasks, key="tasks",
                       help="per-language M3IT-80 tasks are on the Multilingual page")
scores = long_scores(runs_by, tasks)
score_axis = alt.X("score:Q", title="score (0..100; CIDEr ×100 can exceed 100)")


def panels(layers, row: str):
    """One panel per `row` value, its title never cut; a panel lists only the runs that have it."""
    header = alt.Header(labelAngle=0, labelAlign="left", labelLimit=0, labelFontWeight="bold")
    return layers.properties(width=640).facet(row=alt.Row(f"{row}:N", title=None, header=header)
                                              ).resolve_scale(y="independent")


def bars_with_ci(data, row: str, fields: list):
    """Horizontal bars, one panel per `row`: each 95% rule is drawn on its own bar's band
    (y = model inside the panel), so it sits centred on the bar. Tooltip: `fields`, the score
    and its interval."""
    tooltip = fields + [alt.Tooltip(f"{f}:Q", format=".1f") for f in ("score", "ci_low", "ci_high")]
    base = alt.Chart(data).encode(y=alt.Y("model:N", title=None))
    bar = base.mark_bar().encode(x=score_axis, color=alt.Color("model:N", legend=None), tooltip=tooltip)
    rule = base.mark_rule(color="black", strokeWidth=1.5).encode(x="ci_low:Q", x2="ci_high:Q")
    return panels(alt.layer(bar, rule), row)


st.subheader("Scores per task")
if scores.empty:
    st.caption("No score for these tasks.")
else:
    st.altair_chart(bars_with_ci(scores, "task", ["model", "task", "metric"]), width="stretch")
    st.caption("Bars: each task's primary metric; black rule: its 95% bootstrap interval.")
    with st.expander("Data"):
        table(scores, "scores_per_task", "per_task")

st.subheader("Scores per capability")
caps = capability_scores(h, runs_by)
if caps.empty:
    st.caption("No run has a task of the hierarchy.")
else:
    st.altair_chart(bars_with_ci(caps, "capability", ["model", "capability", "tasks"]), width="stretch")
    uneven = task_count_notes(caps)
    for note in uneven:
        st.warning(md_escape(note), icon="⚠️")
    st.caption("Capability score: the weighted mean of its tasks' normalized scores (docs/LEADERBOARD.md), "
               "with a combined 95% interval; `tasks` counts the tasks each run has.")
    with st.expander("Data"):
        table(caps, "scores_per_capability", "per_category")

st.subheader("Spread over instructions")
inst = instruction_scores(runs_by)
if inst.empty:
    st.caption("No run reports per-instruction scores (tasks with `instructions`).")
else:
    base = alt.Chart(inst).encode(y=alt.Y("model:N", title=None))
    box = base.mark_boxplot(extent="min-max").encode(x=score_axis, color=alt.Color("model:N", legend=None))
    dots = base.mark_circle(size=30, color="black").encode(
        x="score:Q", tooltip=["model", "task", "instruction", alt.Tooltip("score:Q", format=".1f")])
    st.altair_chart(panels(alt.layer(box, dots), "task"), width="stretch")
    st.caption("Each dot is one instruction variant's score; the box spans min to max.")
    with st.expander("Data"):
        table(inst, "instructions", "instructions")
