"""Forked helper processes (the data process, the decoding worker, datasets' first conversion):
whether m3eval may fork, and a child that ends with its parent."""
from __future__ import annotations

import os
import signal
import sys


def may_fork() -> bool:
    """Fork is the start method that costs no second import of torch and the model's code (spawn would
    take seconds): Linux's default, the one DataLoader users rely on. M3EVAL_PREFETCH=thread asks for no
    forked process (a Ray worker sets it: its threads hold locks that a fork would copy)."""
    mode = os.environ.get("M3EVAL_PREFETCH", "process")
    if mode not in ("process", "thread"):
        raise ValueError(f"M3EVAL_PREFETCH={mode!r}: expected process or thread")
    return mode == "process" and sys.platform.startswith("linux")


def die_with_parent(parent: int) -> None:
    """Called in a forked child: it is killed when `parent` ends, however it ends (kill -9, the CLI's
    os._exit), so no helper outlives its run (a worker blocked writing to a full pipe once did)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no libc symbol: the parent's own clean-up remains
        return
    if os.getppid() != parent:  # the parent ended before the call: PDEATHSIG would never come
        os._exit(0)
