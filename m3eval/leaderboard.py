"""`m3eval leaderboard`: start the Streamlit page on a results folder.

The folder reaches the page through $M3EVAL_RESULTS (dashboard/loading.py reads it),
so every page of the multipage app sees the same folder.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
    return run_child(streamlit_command(port, address), env)


def run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run Streamlit and stop it with us: SIGTERM, SIGINT or SIGHUP to this process is passed
    on to the child and we wait for it (else it would be re-parented and keep serving)."""
    child = subprocess.Popen(cmd, env=env)
    forwarded: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    deadline = None
    try:
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if forwarded and deadline is None:
                    deadline = time.monotonic() + 10
                if deadline is not None and time.monotonic() > deadline:  # asked to stop, still serving
                    child.kill()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if forwarded and forwarded[-1] == signal.SIGINT:
        return 0  # Ctrl-C is how one stops the page
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it


def export_html(results_dir: str | Path, out: str | Path) -> int:
    """`--export FILE.html`: the static page (dashboard/export.py), no server."""
    if not (APP.parent / "export.py").is_file():
        print(f"m3eval leaderboard: {APP.parent}/export.py is missing (a broken install: reinstall m3eval)",
              file=sys.stderr)
        return 2
    if str(APP.parent.parent) not in sys.path:
        sys.path.insert(0, str(APP.parent.parent))  # the dashboard package sits beside m3eval
    from dashboard.export import export
    return export(results_dir, out)
