"""Task: the samples behind a score; selecting a table row opens that sample (media, prompt,
prediction, references, scores), beside run B's answer when a second run is chosen."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard.loading import md_escape, safe_media, samples_of, start_page, table  # noqa: E402
from dashboard.tables import joined, missing_ids_note, sample_frame, select_samples  # noqa: E402
from m3eval.line_record import SampleRecord  # noqa: E402
from m3eval.report.runs import display_value  # noqa: E402

runs_by, _ = start_page("task", "🔎", "Task samples")
all_tasks = sorted({t for r in runs_by.values() for t in r.tasks})

c1, c2, c3 = st.columns(3)
task = c1.selectbox("Task", all_tasks, key="task")
having = [k for k, r in runs_by.items() if task in r.tasks]
label_a = c2.selectbox("Run A", having, key="run_a")
label_b = c3.selectbox("Compare with run B", ["—"] + [k for k in having if k != label_a], key="run_b")
run_a = runs_by[label_a]
run_b = runs_by.get(label_b) if label_b != "—" else None

info = run_a.tasks[task]
metrics = list(info.metrics)
f1, f2, f3, f4 = st.columns(4)
metric = f1.selectbox("Score by", metrics, index=metrics.index(info.primary_metric), key="metric")
threshold = f2.slider("Failure below (fraction of full score)", 0.0, 1.0, 0.5, 0.05, key="threshold")
only_failures = f3.checkbox("Only failures (run A)", key="only_failures")
only_disagree = f4.checkbox("Only where A and B disagree", key="only_disagree", disabled=run_b is None,
                            help="one run passes where the other fails")

recs_a, warn_a = samples_of(run_a, task)
recs_b, warn_b = samples_of(run_b, task) if run_b else ([], [])
for w in warn_a + warn_b:
    st.warning(md_escape(w), icon="⚠️")
if not recs_a:
    st.info("This run has no per-sample records for this task.")
    st.stop()
scale = float(info.metrics[metric].scale)
df = sample_frame(recs_a, recs_b if run_b else None, metric, scale, threshold)
if run_b is not None:
    note = missing_ids_note(run_a, run_b, task, {r.id for r in recs_a}, {r.id for r in recs_b})
    if note:
        st.info(md_escape(note))
shown = select_samples(df, only_failures, only_disagree and run_b is not None)
value = display_value(info.metrics[metric])
st.caption(md_escape(f"{len(shown)} of {len(df)} samples shown · {metric} on a 0..100 scale · "
                     f"task score {value:.1f}") + " · select a row to open its sample")
visible = shown[[c for c in shown.columns if c in ("id", "score A", "failed A") or shown[c].notna().any()]]
event = table(visible, f"{task}_{label_a}_samples", "samples", on_select="rerun", selection_mode="single-row",
              height=320)

if shown.empty:
    st.stop()
ids = list(shown["id"])
picked = list(event.selection.rows) if event is not None and hasattr(event, "selection") else []
if picked != st.session_state.get("_picked"):  # a new row selection opens that sample; the Sample box
    st.session_state["_picked"] = picked       # keeps working while the selection stays the same
    if picked and picked[0] < len(ids):
        st.session_state["sample_id"] = ids[picked[0]]
if st.session_state.get("sample_id") not in ids:
    st.session_state["sample_id"] = ids[0]
sid = st.selectbox("Sample", ids, key="sample_id")
by_id_a = {r.id: r for r in recs_a}
by_id_b = {r.id: r for r in recs_b}


def show_record(rec: SampleRecord, run, title: str) -> None:
    st.caption(md_escape(title))  # a run label is data: never rendered as Markdown (links, images)
    images = [p for p in (safe_media(run, m) for m in rec.media) if p is not None]
    if images:
        st.image([str(p) for p in images], width=120)
    elif rec.media:
        st.caption("thumbnails missing")
    # st.text shows data as plain text: a prediction is never rendered as Markdown or HTML
    st.text("Prompt: " + rec.prompt)
    st.text("Prediction: " + rec.prediction)
    st.text("Extracted: " + ("(none)" if rec.extracted is None else str(rec.extracted)))
    st.text("References: " + joined(rec.references))
    if rec.choices:
        st.text("Choices: " + joined(rec.choices))
    if rec.error:
        st.text("Error: " + rec.error)
    st.text("Scores: " + ", ".join(f"{k}={v:.4g}" if v is not None else f"{k}={v}" for k, v in rec.scores.items()))


row = shown[shown["id"] == sid].iloc[0]
verdict = "✗ failed" if row["failed A"] else "✓ passed"
score = "—" if row["score A"] != row["score A"] or row["score A"] is None else f"{row['score A']:.1f}"
with st.container(border=True, key="sample_view"):
    st.markdown(f"**{md_escape(sid)}** · {verdict} · {md_escape(metric)} {score}")
    if run_b is not None and sid in by_id_b:
        left, right = st.columns(2)
        with left:
            show_record(by_id_a[sid], run_a, f"Run A: {label_a}")
        with right:
            show_record(by_id_b[sid], run_b, f"Run B: {label_b}")
    else:
        show_record(by_id_a[sid], run_a, f"Run A: {label_a}")
