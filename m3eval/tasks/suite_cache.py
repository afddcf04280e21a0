"""The suite's tasks as last read, kept between processes in `$M3EVAL_CACHE/suite.pickle`.

Reading the ~140 task files of tasks/ (YAML, includes, templates compiled, validation) takes
~0.1 s: a third of what m3eval added to a run's start-up, before the model's libraries load.
The registry they make is kept with a key of everything it was made from: every YAML file
under the suite's folder and each file they include from elsewhere, m3eval's own modules (an
edited loader in a checkout), and the installs of pydantic, PyYAML and Jinja2. Each file's
part of the key is file_keys.file_key (size, mtime, ctime, inode), so any edit, a file added
or removed, or an upgrade reads the suite afresh; where a key cannot be trusted (a file
changed a moment ago, a filesystem without a real ctime) nothing is kept.

Only the suite is kept: --include-path folders are read each time (tests make thousands, and
a kept copy of each would grow without bound). A kept file that cannot be read back (another
version's, damaged) is read afresh and replaced.
"""
from __future__ import annotations

import os
import pickle
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..file_keys import file_key
from ..resources import PACKAGE, cache_dir

if TYPE_CHECKING:
    from .loader import Reads
    from .registry import Registry

_LIBRARIES = ("pydantic", "pydantic_core", "yaml", "jinja2")  # what parses and validates the files


def _files(root: Path, suffixes: tuple[str, ...]) -> list[str]:
    out, stack = [], [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):  # as rglob, which discovery walks with
                    stack.append(e.path)
                elif e.name.endswith(suffixes):
                    out.append(e.path)
    return sorted(out)


def _key(paths: list[str]) -> list[str] | None:
    keys = []
    for p in paths:
        try:
            key = file_key(p, os.stat(p))
        except OSError:
            return None
        if key is None:
            return None
        keys.append(key)
    return keys


def _state(root: Path, own: list[str], outside: list[str]) -> list[str] | None:
    """The key of the suite as it is now: the code that reads it, then its files (None: one
    cannot be trusted or read)."""
    libraries = sorted(spec.origin for name in _LIBRARIES if (spec := find_spec(name)) is not None and spec.origin)
    try:
        files = _key([*_files(PACKAGE, (".py",)), *libraries, *own, *outside])
    except OSError:
        return None
    return None if files is None else [sys.version, str(root), *files]


def kept_suite(root: Path, read: Callable[[], Registry], reads: Reads) -> Registry:
    """The registry of the suite at `root`: as kept, where nothing it came from changed, else
    `read()` (which fills `reads` with the files it read), then kept."""
    store = cache_dir() / "suite.pickle"
    try:
        own = _files(root, (".yaml", ".yml"))
    except OSError:  # a folder that cannot be listed: discovery says which
        return read()
    try:
        with open(store, "rb") as f:
            key, outside, registry = pickle.load(f)  # noqa: S301 - this user's own cache
        if key == _state(root, own, outside):
            return registry
    except Exception:  # noqa: BLE001 - none yet, or unreadable: read afresh
        pass
    registry = read()
    outside = sorted({str(real) for real, _ in reads.values()} - set(own))
    key = _state(root, own, outside)
    if key is not None:
        from ..results import atomic_write_bytes
        try:
            atomic_write_bytes(store, pickle.dumps((key, outside, registry), protocol=pickle.HIGHEST_PROTOCOL),
                               durable=False)
        except OSError:  # a read-only home: read each time
            pass
    return registry
