"""What every page shares: where the results are, cached loading, warnings, tables.

The page reads only results/ (runs and reference rows), never a model or a dataset.
Text that comes from data is shown with st.text / st.dataframe / st.code, or escaped
before it reaches anything that renders Markdown; nothing here passes data to HTML.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.board import run_keys, to_csv  # noqa: F401  (run_keys: the Overview page imports it from here)
from dashboard.hierarchy import Hierarchy, HierarchyError, hierarchy_for
from m3eval.line_record import SampleRecord
from m3eval.report.runs import Reference, ResultsError, Run, find_runs, load_references, load_samples

DEFAULT_RESULTS = "results"
ENV_VAR = "M3EVAL_RESULTS"


def results_dir() -> Path:
    """`streamlit run dashboard/app.py -- --results DIR`, else $M3EVAL_RESULTS, else results/."""
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == "--results" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--results="):
            return Path(arg.split("=", 1)[1])
    return Path(os.environ.get(ENV_VAR) or DEFAULT_RESULTS)


def _fingerprint(root: Path) -> tuple:
    """Changes when any results or reference file changes, so the cache never serves stale runs."""
    if not root.is_dir():
        return ()
    files = list(root.rglob("results.json")) + list((root / "reference").glob("*.json"))
    out = []
    for f in sorted(files):
        try:
            st_ = f.stat()
            out.append((str(f), st_.st_mtime_ns, st_.st_size))
        except OSError:
            continue
    return tuple(out)


# `fingerprint` is part of the cache key (a leading underscore would leave it out)
@st.cache_data(show_spinner=False, max_entries=8)
def _load(root: str, fingerprint: tuple) -> tuple[list[Run], list[Reference], list[str], str | None]:
    try:
        runs, warnings = find_runs(root)
    except ResultsError as e:
        return [], [], [], str(e)
    refs, ref_warnings = load_references(root)
    return runs, refs, warnings + ref_warnings, None


@st.cache_data(show_spinner=False, max_entries=16)
def _samples(path: str, stamp: tuple) -> tuple[list[SampleRecord], list[str]]:
    return load_samples(Path(path))


def samples_of(run: Run, task: str) -> tuple[list[SampleRecord], list[str]]:
    """run.load_samples(task), read again only when the file changes (a row click reruns the page)."""
    path = run.samples_path(task)
    try:
        stamp = (path.stat().st_mtime_ns, path.stat().st_size)
    except OSError:
        stamp = ()
    return _samples(str(path), stamp)


def load_all() -> tuple[list[Run], list[Reference]]:
    """Runs and reference rows; shows the loading warnings on the page and stops on a fatal error."""
    root = results_dir()
    runs, refs, warnings, fatal = _load(str(root), _fingerprint(root))
    if fatal:
        st.error(md_escape(f"{fatal}. Start the page with `m3eval leaderboard --results DIR`."))
        st.stop()
    for w in warnings:
        st.warning(md_escape(w), icon="⚠️")
    return runs, refs


def load_hierarchy_or_stop() -> Hierarchy:
    """The results folder's leaderboard.yaml, else dashboard/leaderboard.yaml."""
    try:
        return hierarchy_for(results_dir())
    except HierarchyError as e:
        st.error(md_escape(str(e)))
        st.stop()


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text: str) -> str:
    """Make data safe for a Markdown-rendering element (labels, st.warning): literal text only."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def table(df: pd.DataFrame, name: str, key: str, **kwargs):
    """A dataframe with a CSV download under it (every table on the page can be downloaded);
    the CSV's text cells cannot start a spreadsheet formula (board.csv_safe)."""
    event = st.dataframe(df, hide_index=True, key=f"df_{key}", **kwargs)
    st.download_button("Download CSV", to_csv(df), file_name=f"{_safe_name(name)}.csv",
                       mime="text/csv", key=f"dl_{key}")
    return event


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)[:120] or "table"


def safe_media(run: Run, rel: str) -> Path | None:
    """A thumbnail path from a samples record, only if it stays inside the run directory."""
    try:
        path = (run.path / rel).resolve()
        path.relative_to(run.path.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


def start_page(title: str, icon: str, heading: str) -> tuple[dict[str, Run], list[Reference]]:
    """A page's head: config and title, then the runs by unique label (stops when there are
    none) and the reference rows."""
    st.set_page_config(page_title=f"m3eval · {title}", page_icon=icon, layout="wide")
    st.title(heading)
    runs, refs = load_all()
    no_runs_stop(runs)
    return run_keys(runs), refs


def no_runs_stop(runs: list[Run]) -> None:
    if not runs:
        st.info(md_escape(f"No runs to show in {results_dir()}. Produce one with `m3eval run ... --output "
                          f"{results_dir()}`."))
        st.stop()
