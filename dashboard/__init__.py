"""The m3eval leaderboard (Streamlit): `m3eval leaderboard` or `streamlit run dashboard/app.py`."""
