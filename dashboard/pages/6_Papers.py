"""Papers: each source paper's table as it was published (rows: the reference files, columns: its
benchmarks in its order and unit), its source cited, and this harness's reproduction beside each
number where a run of the same model exists (dashboard/papers.py; `papers:` in leaderboard.yaml)."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard.hierarchy import HierarchyError  # noqa: E402
from dashboard.loading import load_all, load_hierarchy_or_stop, md_escape, run_keys, table  # noqa: E402
from dashboard.papers import notes, paper_tables, papers_for, units_text  # noqa: E402

st.set_page_config(page_title="m3eval · papers", page_icon="📄", layout="wide")
st.title("Papers")
runs, refs = load_all()
h = load_hierarchy_or_stop()
try:
    specs = papers_for(h)
except HierarchyError as e:
    st.error(md_escape(str(e)))
    st.stop()
tables = paper_tables(specs, refs, run_keys(runs))
if not tables:
    st.info("No reference file of a paper's table in this results folder (results/reference/*.json, "
            "listed under `papers:` in leaderboard.yaml).")
    st.stop()
st.caption("Each source's table as it was published: rows are the reference files, columns the table's "
           "benchmarks in its order and unit. Where a run of the same model exists (matched by name, e.g. run "
           "`ying-vlm` for Ying-VLM), our score on the same task and metric, its 95% interval and whether the "
           "paper's number lies inside it stand beside the paper's number.")

for t in tables:
    st.subheader(md_escape(t.spec.title))  # titles come from leaderboard.yaml: data, shown as text
    st.caption(md_escape(f"Source: {t.spec.source}. {units_text(t)}"))
    config = {c: st.column_config.NumberColumn(c, format="%.1f") for c in t.number_columns
              if c not in {col.title for col in t.spec.columns}}  # ours: one decimal; the paper's: as printed
    config |= {c: st.column_config.CheckboxColumn(c, help="the paper's number lies inside our 95% interval")
               for c in t.inside_columns}
    if not t.frame.empty:
        table(t.frame, f"paper_{t.spec.key}", f"paper_{t.spec.key}", column_config=config)
    for n in notes(t):
        st.caption(md_escape(n))
    with st.expander("Each row's source"):
        st.dataframe(t.sources, hide_index=True, key=f"sources_{t.spec.key}")
