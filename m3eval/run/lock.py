"""One run at a time in a run folder.

Two runs writing one folder (`--tasks A` and `--tasks B` with the same `--run-name`) would
overwrite each other's run.json and mix predictions. Rank 0 holds an exclusive flock on
<run>/.m3eval.lock for the whole run (the kernel drops it when the process dies, even on
kill -9); a second run fails at once with one line. The other ranks of the same launch
pass a barrier only with their own rank 0, so no rank of a second launch gets in.

A forked child (the decoding worker) closes its copy of the lock at once: a lock is held
while any copy is open, and an orphaned worker must not hold the folder after a kill -9.

Taking the lock also proves the folder is writable before the model loads, and while
holding it rank 0 removes temp files that an interrupted atomic write left behind.
"""
from __future__ import annotations

import fcntl
import os
import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import RunError
from ..results import LOCK_NAME, TMP_PREFIX, TMP_SUFFIX
from .distributed import Dist

# atomic_write_bytes' temp names (results.TMP_PREFIX/TMP_SUFFIX around mkstemp's 8 random characters)
_TMP = re.compile(re.escape(TMP_PREFIX) + r".+\.[A-Za-z0-9_]{8}" + re.escape(TMP_SUFFIX))
_HELD: set[int] = set()  # this process's lock descriptors


def _close_in_child() -> None:
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def launch_token() -> str:
    """The same in every rank of one launch, different between launches."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun / accelerate launch
        return "launch " + ":".join(os.environ.get(k, "") for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR",
                                                                     "MASTER_PORT"))
    return f"pid {os.getpid()}"


def clean_stale_tmp(run_dir: Path, before: float) -> list[Path]:
    """Remove our temp files older than `before` (this run's start) under run_dir."""
    removed = []
    for f in run_dir.rglob("*.tmp"):
        try:
            if _TMP.fullmatch(f.name) and f.is_file() and f.stat().st_mtime < before:
                f.unlink()
                removed.append(f)
        except FileNotFoundError:
            pass
    return removed


@contextmanager
def run_folder_lock(run_dir: Path, dist: Dist) -> Iterator[None]:
    """Hold the run folder for the duration of the `with` block (see the module docstring)."""
    start = time.time()
    fd = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)  # OSError naming the path: read-only, a file in the way
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 300).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunError(f"{run_dir} is in use by another m3eval run ({holder}); wait for it to finish, "
                           "or use another --run-name or --output") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{launch_token()} on {socket.gethostname()}\n".encode(), 0)
            clean_stale_tmp(run_dir, start)
        except BaseException:
            os.close(fd)
            raise
        _HELD.add(fd)
    dist.barrier()  # the other ranks enter only after their own rank 0 holds the folder
    if not dist.is_main and (run_dir / LOCK_NAME).exists():
        holder = (run_dir / LOCK_NAME).read_text(errors="replace")
        if not holder.startswith(launch_token() + " "):
            raise RunError(f"{run_dir} is held by another launch ({holder.strip()})")
    try:
        yield
    finally:
        if fd is not None:
            _HELD.discard(fd)
            os.close(fd)  # releases the lock
