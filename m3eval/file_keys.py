"""A key that changes whenever a file's content may have: for caches of what was read from
files (data digests, data/fingerprint.py; the parsed task suite, tasks/suite_cache.py)."""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

# Filesystems whose ctime is a real change time, set by the kernel on every write, rename or
# utime and settable by no user: FAT, exFAT, and FUSE mounts such as sshfs report the mtime
# as the ctime, so a cache keyed on it would be fooled there (those files are read each time).
_CTIME_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs", "overlay", "nfs", "nfs4",
                       "lustre", "gpfs", "ceph", "beegfs"})
_SETTLED_NS = 2_000_000_000  # a ctime this recent may be shared by a later write (coarse clock ticks)


@functools.lru_cache(maxsize=1)
def _fs_types() -> dict[int, str]:
    """Device number -> filesystem type of this process's mounts (Linux); {} elsewhere."""
    out: dict[int, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields, _, rest = line.partition(" - ")
        major, _, minor = fields.split()[2].partition(":")
        if rest and major.isdigit() and minor.isdigit():
            out[os.makedev(int(major), int(minor))] = rest.split()[0]
    return out


def file_key(path: Path | str, st: os.stat_result) -> str | None:
    """A cache's key for a file, or None where a cached value could be stale.
    `cp -p` and `rsync -a` keep the size and mtime but not the ctime, which every write,
    rename (new inode) and utime sets to the current time; so a key holding the ctime and
    inode changes with any edit, on a filesystem that keeps a real ctime and once the ctime
    is older than a clock tick (two edits within one tick share it)."""
    if _fs_types().get(st.st_dev) not in _CTIME_FS or time.time_ns() - st.st_ctime_ns < _SETTLED_NS:
        return None
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_dev}\0{st.st_ino}"
