"""Make `m3eval` and `dashboard` importable however the page is started.

`streamlit run dashboard/app.py` puts only dashboard/ on sys.path; the repository root
(which holds both packages) is added here when m3eval is not installed.
"""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
