"""Run details: provenance (model, config, versions, task hashes, datasets, timings) and files."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard.loading import md_escape, start_page, table  # noqa: E402
from dashboard.tables import metrics_frame  # noqa: E402
from m3eval.report.runs import display_value  # noqa: E402

runs_by, refs = start_page("run details", "🧾", "Run details")
label = st.selectbox("Run", list(runs_by), key="run")
run = runs_by[label]
meta = run.results.run
st.caption(md_escape(f"{run.path} · created {meta.created} · git {meta.git_sha}"))

st.subheader("Model and configuration")
left, right = st.columns(2)
left.json(meta.model or {})  # st.json shows data as a JSON tree, never as HTML
right.json(meta.config or {})

st.subheader("Versions")
versions = pd.DataFrame(sorted((meta.versions or {}).items()), columns=["package", "version"])
table(versions, f"{run.name}_versions", "versions")

st.subheader("Tasks")
rows = []
for name, t in sorted(run.tasks.items()):
    ds = t.dataset or {}
    rows.append({"task": name, "category": t.category, "protocol": t.protocol,
                 "language": t.language, "version": t.version, "hash": t.hash,
                 "primary": t.primary_metric, "value (0..100)": round(display_value(t.primary), 1),
                 "n_samples": t.n_samples, "n_errors": t.n_errors,
                 "n_extraction_failures": t.n_extraction_failures,
                 "dataset": ds.get("path"), "split": ds.get("split"), "revision": ds.get("revision"),
                 "video": str(t.video) if t.video else None})
table(pd.DataFrame(rows), f"{run.name}_tasks", "tasks")

st.subheader("Metrics")
table(metrics_frame(run), f"{run.name}_metrics", "metrics",
      column_config={"value": st.column_config.NumberColumn("value (0..100)", format="%.1f")})
st.caption("Values on the page's 0..100 scale (0..1 metrics × 100; CIDEr-D × 100 can exceed 100); "
           "95% bootstrap intervals rounded to 0.1.")

st.subheader("Timings")
timings = pd.DataFrame(sorted(run.results.timings.dump().items()), columns=["timing", "value"])  # as written
table(timings, f"{run.name}_timings", "timings")

if run.groups:
    st.subheader("Groups")
    groups = pd.DataFrame([{"group": g, "tasks": ", ".join(d.tasks), "value": d.value,
                            "n_tasks": d.n_tasks, "category": d.category}
                           for g, d in sorted(run.groups.items())])
    table(groups, f"{run.name}_groups", "groups")

st.subheader("Files")
files = [{"file": str(p.relative_to(run.path)), "bytes": p.stat().st_size}
         for p in sorted(run.path.rglob("*")) if p.is_file() and "media" not in p.relative_to(run.path).parts]
table(pd.DataFrame(files, columns=["file", "bytes"]), f"{run.name}_files", "files")

if refs:
    st.subheader("Reported reference rows")
    table(pd.DataFrame([{"model": r.model, "source": r.source, "file": r.path.name,
                         "tasks": ", ".join(sorted(r.tasks))} for r in refs]), "references", "references")
