"""Where the benchmark suite (tasks/) and the leaderboard page (dashboard/) are.

They stay top-level folders of the repository (the layout is part of the design). A
source checkout or an editable install reads them there; a wheel carries copies under
m3eval/_data/ (setup.py puts them there at build time), read from there.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """m3eval/_data/<name> in an installed wheel, else the checkout's top-level <name>/."""
    packaged = PACKAGE / "_data" / name
    return packaged if packaged.is_dir() else PACKAGE.parent / name


TASKS_DIR = data_dir("tasks")
DASHBOARD_DIR = data_dir("dashboard")


def cache_dir() -> Path:
    """Where m3eval builds and keeps things between runs (the demo's tiny models, data digests):
    $M3EVAL_CACHE, else ~/.cache/m3eval."""
    return Path(os.environ.get("M3EVAL_CACHE") or Path.home() / ".cache" / "m3eval")
