"""The m3eval leaderboard: `m3eval leaderboard` or `streamlit run dashboard/app.py [-- --results DIR]`.

The pages live in dashboard/pages/; this file only names them for the sidebar.
"""
from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="m3eval leaderboard", page_icon="📊", layout="wide")
st.navigation([
    st.Page(PAGES / "0_Overview.py", title="Overview", url_path="overview", default=True),
    st.Page(PAGES / "1_Task.py", title="Task", url_path="task"),
    st.Page(PAGES / "2_Compare.py", title="Compare", url_path="compare"),
    st.Page(PAGES / "3_Charts.py", title="Charts", url_path="charts"),
    st.Page(PAGES / "4_Run_details.py", title="Run details", url_path="run-details"),
    st.Page(PAGES / "5_Multilingual.py", title="Multilingual", url_path="multilingual"),
    st.Page(PAGES / "6_Papers.py", title="Papers", url_path="papers"),
]).run()
