"""Multilingual (M3IT-80): models × languages per task, grouped by family and script, English as
the reference, and the cross-lingual consistency figures of results.json."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import altair as alt  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard.loading import load_hierarchy_or_stop, start_page, table  # noqa: E402
from dashboard.multilingual import consistency_frame, language_frame  # noqa: E402

runs_by, _ = start_page("multilingual", "🌐", "Multilingual")
h = load_hierarchy_or_stop()
langs = language_frame(runs_by, h.languages)
if langs.empty:
    st.info("No run reports per-language scores (M3IT-80 tasks <task>_<lang>, or tasks with `languages`).")
else:
    c1, c2 = st.columns([3, 2])
    task = c1.selectbox("Task", sorted(langs["task"].unique()), key="lang_task")
    relative = c2.toggle("Difference from English", key="relative", help="each language's score minus the "
                         "same model's English score (the reference)")
    sub = langs[langs["task"] == task]
    if relative and sub["en_score"].isna().all():
        st.caption("No English score for this task: showing scores.")
        relative = False
    color = (alt.Color("vs_en:Q", title="Δ vs English", scale=alt.Scale(scheme="redblue", domainMid=0))
             if relative else alt.Color("score:Q", title="score", scale=alt.Scale(scheme="viridis")))
    order = list(sub.sort_values(["family_order", "family", "script", "lang"])["lang"].drop_duplicates())
    heat = alt.Chart(sub).mark_rect().encode(
        x=alt.X("lang:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)), y=alt.Y("model:N", title=None), color=color,
        tooltip=["model", "lang", "name", "family", "script", alt.Tooltip("score:Q", format=".1f"),
                 alt.Tooltip("en_score:Q", title="English", format=".1f"),
                 alt.Tooltip("vs_en:Q", title="Δ vs English", format="+.1f")])
    families = list(sub.sort_values("family_order")["family"].drop_duplicates())
    st.altair_chart(heat.properties(width=alt.Step(34)).facet(
        row=alt.Row("family:N", title=None, sort=families, header=alt.Header(
            labelAngle=0, labelAlign="left", labelLimit=0, labelFontWeight="bold")))
        .resolve_scale(x="independent"), width="content")
    st.caption("Languages grouped by family (branch for Indo-European), then by script; English first, as "
               "the reference (dashboard/leaderboard.yaml `languages`).")
    with st.expander("Data"):
        table(sub.drop(columns=["family_order"]), f"languages_{task}", "languages")

st.subheader("Cross-lingual consistency")
cons = consistency_frame(runs_by)
if cons.empty:
    st.caption("No run has consistency figures (task pairs over the same items, `consistency_with`).")
else:
    table(cons, "consistency", "consistency",
          column_config={c: st.column_config.NumberColumn(c, format="%.2f")
                         for c in ("correctness agreement", "answer agreement")})
    st.caption("Correctness agreement: the share of shared items the model gets right in both languages or "
               "wrong in both; answer agreement (multiple choice): the share where it picks the same option.")
