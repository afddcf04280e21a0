"""`datasets.load_dataset`, with a first read's conversion made in a child process.

The first time datasets reads a file (or a hub repo), its builder converts it into an Arrow file
in its cache; every later read maps that file. The conversion decodes whole parquet row groups (up
to 100 MB) and leaves freed memory scattered in the process: in a run's own process it stayed in
the run's peak, about +0.5 KiB a sample of the whole run (benchmarks/bench_memory.py, first runs
against second runs). Made in a forked child, it is given back when the child ends; the run then
reads the cache as any later run does. A child that fails leaves nothing: the run's own process
then converts, and fails with datasets' own error, as it did before.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import datasets

from ..forks import die_with_parent, may_fork


def load_dataset(path: str, name: str | None = None, *, split: str, **kwargs: Any) -> datasets.Dataset:
    """What `datasets.load_dataset(path, name, split=split, **kwargs)` returns (its own three steps:
    the builder, download_and_prepare, as_dataset), the conversion in a child when nothing is cached.
    The dataset is memory-mapped, as load_dataset's is unless HF_DATASETS_IN_MEMORY_MAX_SIZE is set."""
    builder = datasets.load_dataset_builder(path, name, **kwargs)
    cached = (Path(builder.cache_dir) / datasets.config.DATASET_INFO_FILENAME).exists()
    if not cached and may_fork():
        _in_child(builder.download_and_prepare)
    builder.download_and_prepare()  # reads the cache the child wrote (else converts here)
    return builder.as_dataset(split=split)


def _in_child(work: Any) -> None:
    """`work()` in a forked child, waited for. The child ends with its parent (kill -9 included)
    and writes nothing to the terminal: a failure shows when the parent does the work itself."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: only this thread; it leaves with os._exit, running no cleanup of the parent's
        code = 1
        try:
            die_with_parent(parent)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            work()
            code = 0
        finally:
            os._exit(code)
    try:
        os.waitpid(pid, 0)
    except BaseException:  # interrupted: the child goes too
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
