"""`m3eval leaderboard`: start the Streamlit page on a results folder.

The folder reaches the page through $M3EVAL_RESULTS (dashboard/loading.py reads it),
so every page of the multipage app sees the same folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .resources import DASHBOARD_DIR

APP = DASHBOARD_DIR / "app.py"


def streamlit_command(port: int, address: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.port", str(port), "--server.address", address,
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none"]  # results are re-read on change anyway (dashboard/loading.py)


def launch(results_dir: str | Path = "results", port: int = 8501, address: str = "127.0.0.1") -> int:
    """Run the page until interrupted; returns Streamlit's exit code (2 on a bad folder)."""
    root = Path(results_dir)
    if not root.is_dir():
        print(f"m3eval leaderboard: results directory {root} does not exist", file=sys.stderr)
        return 2
    if not APP.is_file():
        print(f"m3eval leaderboard: the page {APP} is missing (a broken install? reinstall m3eval)",
              file=sys.stderr)
        return 2
    env = dict(os.environ, M3EVAL_RESULTS=str(root.resolve()))
    print(f"m3eval leaderboard: http://{address}:{port} (results from {root.resolve()})", file=sys.stderr)
    try:
        return subprocess.call(streamlit_command(port, address), env=env)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="m3eval leaderboard")
    parser.add_argument("--results", default="results", help="results folder (default results/)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1", help="0.0.0.0 to serve beyond this machine")
    a = parser.parse_args(argv)
    return launch(a.results, a.port, a.address)


if __name__ == "__main__":
    raise SystemExit(main())
