"""Compare: two runs side by side per task, with the paired difference and its significance."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository: m3eval and dashboard import from it
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard.loading import md_escape, start_page, table  # noqa: E402
from dashboard.tables import comparison_frame  # noqa: E402
from m3eval.report.compare import compare_runs, render  # noqa: E402
from m3eval.report.runs import load_run  # noqa: E402

runs_by, _ = start_page("compare", "⚖️", "Compare two runs")
labels = list(runs_by)
if len(labels) < 2:
    st.info("Comparing needs two runs in the results folder.")
    st.stop()


@st.cache_data(show_spinner="Running paired tests…", max_entries=16)
def cached_compare(base_dir: str, new_dir: str, tolerance: float, alpha: float, _stamp: tuple):
    # the runs are reloaded from disk so the cache key is plain paths (+ mtimes in _stamp)
    return compare_runs(load_run(base_dir), load_run(new_dir), tolerance=tolerance, alpha=alpha)


c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
base_label = c1.selectbox("BASE run", labels, index=0, key="base")
new_label = c2.selectbox("NEW run", labels, index=1, key="new")
tolerance = c3.number_input("Tolerance (points of 0..100)", 0.0, 100.0, 1.0, 0.5, key="tolerance")
alpha = c4.number_input("Alpha", 0.001, 0.5, 0.05, 0.01, format="%.3f", key="alpha")
base, new = runs_by[base_label], runs_by[new_label]
stamp = tuple((r.path / "results.json").stat().st_mtime_ns for r in (base, new))
cmp = cached_compare(str(base.path), str(new.path), float(tolerance), float(alpha), stamp)

if cmp.problems:
    st.error("These runs cannot be compared (`m3eval compare` exits 2):")
    for p in cmp.problems:
        st.warning(md_escape(p), icon="⚠️")
elif cmp.regressions:
    st.error(f"{len(cmp.regressions)} significant regression(s) beyond {tolerance:g} points "
             "(`m3eval compare` exits 1)")
else:
    st.success("No significant regression (`m3eval compare` exits 0)")

left, right = st.columns(2)
for col, label, run in ((left, "BASE", base), (right, "NEW", new)):
    col.caption(md_escape(f"{label}: {run.name} · {run.model_id} · created {run.results.run.created}"))
table(comparison_frame(cmp), f"compare_{base.name}_vs_{new.name}", "compare",
      column_config={c: st.column_config.NumberColumn(c, format="%.2f")
                     for c in ("base", "new", "Δ (pts)", "CI low", "CI high")}
      | {"p": st.column_config.NumberColumn("p", format="%.4f")})
st.caption("Δ = NEW − BASE in points of the 0..100 scale; 95% paired-bootstrap interval; "
           "p from McNemar (0/1 scores), a sign-flip permutation test (other per-sample scores) "
           "or a paired bootstrap re-scoring resampled corpora (BLEU, CIDEr). A regression is "
           "significant at alpha and worse than the tolerance.")
for n in cmp.notes:
    st.caption(md_escape(n))
with st.expander("Markdown for a pull-request comment"):
    st.code(render(cmp, "markdown"), language="markdown")
