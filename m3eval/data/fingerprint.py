"""What a task's predictions were made from: a fast content fingerprint of local data,
the resolved commit of hub data, and the text of files named by model arguments.

run.json keeps one record per task (`data`), so a re-run refuses to resume when the
data changed under the same path (same ids, new answers), and results can say which
data a score came from. xxh3-128 (installed with `datasets`) reads and hashes a 1 GB file
in 0.07-0.10 s from the page cache and 0.4-2 s from this machine's (shared) disk; blake2b
takes 1.5 s and sha256 0.75 s from the page cache. A file's digest is cached in `$M3EVAL_CACHE/digests.json` (default
~/.cache/m3eval) under its path, size, mtime, ctime and inode, so a re-run or resume re-reads
only files that changed, not a whole data folder; see `file_keys.file_key` for why that key cannot
be fooled by an edit that keeps the size and mtime (`cp -p`, `rsync -a`).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import xxhash

from ..file_keys import file_key
from ..resources import cache_dir

_CHUNK = 4 << 20  # one reused buffer: 4 MiB reads are the fastest here, warm or cold
_MAX_CACHED = 200_000  # digests kept in the cache file
_cache: dict[str, str] | None = None  # file_key(...) -> digest
_new = 0  # digests computed since the cache file was last written
_SHA = re.compile(r"^[0-9a-f]{40}$")


def _cache_file() -> Path:
    return cache_dir() / "digests.json"


def _digests() -> dict[str, str]:
    global _cache
    if _cache is None:
        try:
            stored = json.loads(_cache_file().read_text())
        except (OSError, ValueError):  # none yet, or unreadable: start afresh
            stored = {}
        # keys of another shape (the old path/size/mtime key) could name edited files: dropped
        _cache = {k: v for k, v in stored.items() if k.count("\0") == 5} if isinstance(stored, dict) else {}
    return _cache


def _save() -> None:
    """Persist new digests; a failed write (read-only home) only costs re-hashing next time."""
    global _new
    if not _new:
        return
    from ..results import atomic_write_json
    cache = _digests()
    keep = dict(list(cache.items())[-_MAX_CACHED:])
    try:
        atomic_write_json(_cache_file(), keep)
        _new = 0
    except OSError:
        pass


def file_digest(path: Path) -> str:
    """The file's xxh3-128 digest, from the cache or read in chunks of up to 4 MiB into one
    buffer. Its status is taken from the open file (NFS revalidates a file's attributes on
    open) and again after the read: a file written to meanwhile is not cached."""
    global _new
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        key = file_key(path, st)
        cache = _digests()
        if key is not None and key in cache:
            return cache[key]
        h = xxhash.xxh3_128()
        buf = bytearray(min(_CHUNK, st.st_size + 1))  # a small file (an image): a small buffer
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
        digest = h.hexdigest()
        if key is not None and key == file_key(path, os.fstat(f.fileno())):
            cache[key] = digest
            _new += 1
    return digest


def files_fingerprint(files: Iterable[Path], base: Path | None = None) -> dict[str, Any]:
    """One digest over the files' relative names, sizes and contents (order-free)."""
    paths = sorted({Path(f) for f in files})
    h = xxhash.xxh3_128()
    size = 0
    for f in paths:
        st = f.stat()
        name = str(f.relative_to(base)) if base is not None and f.is_relative_to(base) else f.name
        h.update(f"{name}\0{st.st_size}\0{file_digest(f)}\n".encode())
        size += st.st_size
    _save()
    return {"kind": "local", "files": len(paths), "bytes": size, "xxh3": h.hexdigest()}


def content_config(digest: str) -> dict[str, str]:
    """Keyword arguments for `datasets.load_dataset` reading local data whose content digest is
    `digest`, so that its Arrow cache follows the content: datasets keys that cache on the paths
    and mtimes alone, so a file rewritten with its mtime kept (`cp -p`, `rsync -a`) would be read
    from the old cache. Every builder config has a `description`, and datasets hashes a config's
    arguments into the cache folder's name."""
    return {"description": f"m3eval content xxh3 {digest}"}


def local_fingerprint(path: Path) -> dict[str, Any]:
    """A data file, or every file of a data folder (save_to_disk arrow + json, a local snapshot).
    `path` is its name only: the record is published, and the digest tells the data apart."""
    path = Path(path)
    if path.is_dir():
        files = [f for f in path.rglob("*") if f.is_file() and ".cache" not in f.relative_to(path).parts]
        return {**files_fingerprint(files, path), "path": path.name}
    return {**files_fingerprint([path]), "path": path.name}


def commit_from_paths(paths: Iterable[str | Path]) -> str | None:
    """The hub commit a cached file belongs to: huggingface_hub caches `.../snapshots/<sha>/file`,
    datasets caches a hub dataset's Arrow files under `.../<config>/<version>/<sha>/`."""
    for p in paths:
        parts = Path(p).parts
        for i, part in enumerate(parts):
            if _SHA.match(part) and (i == 0 or parts[i - 1] != "blobs"):
                return part
    return None


def hub_fingerprint(repo: str, revision: str | None, cached: Iterable[str | Path]) -> dict[str, Any]:
    """A hub dataset: the commit of the data actually read (None when it cannot be told)."""
    return {"kind": "hub", "path": repo, "revision": revision, "commit": commit_from_paths(cached)}


def model_files_fingerprint(model_args: dict[str, Any]) -> dict[str, str]:
    """Digests of the regular files named by model arguments (e.g. chat_template=FILE):
    the same argument may name new text. Folders (weights) are checked by model revision."""
    out = {}
    for key, value in sorted(model_args.items()):
        if isinstance(value, str) and len(value) < 4096 and "\n" not in value:
            p = Path(value).expanduser()
            try:
                if p.is_file():
                    out[key] = file_digest(p.resolve())
            except OSError:
                continue
    _save()
    return out


def data_changed(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str | None:
    """Why data fingerprinted `new` is not the data fingerprinted `old` (a short reason), or
    None. Unknown on either side (a run from before fingerprints, a hub commit not told) is
    not a change; the same content under another path is none either."""
    if not old or not new:
        return None
    if "join" in old or "join" in new:  # dataset.join: the joined table is data too
        why = data_changed(old.get("join"), new.get("join")) if old.get("join") and new.get("join") else \
            None if old.get("join") == new.get("join") else "a joined table added or removed"
        if why:
            return f"joined table: {why}"
        old, new = ({k: v for k, v in d.items() if k != "join"} for d in (old, new))
    if old.get("kind") != new.get("kind") or (new.get("kind") == "hub" and old.get("path") != new.get("path")):
        return f"data source {old.get('path')!r} -> {new.get('path')!r}"
    if new.get("kind") == "hub":
        told = old.get("commit") and new.get("commit")
        return f"hub commit {old['commit']} -> {new['commit']}" if told and old["commit"] != new["commit"] else None
    if old.get("xxh3") == new.get("xxh3"):
        return None
    return (f"the content of {new.get('path')} differs: {old.get('files')} file(s), {old.get('bytes')} bytes then, "
            f"{new.get('files')} file(s), {new.get('bytes')} bytes now")
