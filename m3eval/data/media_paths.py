"""Local media paths in a task's rows: resolved against the data's folder (not the
current directory) and confined to the folders the task allows.

A row's `../secret/x.png` or `/etc/passwd` would otherwise be read, copied into the
run's media/ thumbnails and sent to a remote model. Allowed folders: the data's
folder, `doc.video_root`, and `doc.media_root` when the task names one (`/` allows
any). Both the normalised path (`..` removed) and where it really leads are checked: a
symbolic link inside the data folder to a file outside it is refused too, unless the task
says `doc.follow_links: true`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import MediaError

_MAX_PATH = 4096


_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")  # the other string form of an image (line breaks tolerated)


def _looks_like_path(text: str, base: Path) -> bool:
    """A string with a character base64 never holds ('.', '\\', '~', '-', '_', ...) is a path, and so
    is one that names a file (relative to the data folder, or absolute). Every path is then
    confined: a string is never opened from the current directory (media.decode_image opens
    only absolute paths it is given)."""
    t = text.strip()
    if not t or len(t) >= _MAX_PATH or t.startswith("data:"):
        return False
    return not _BASE64.fullmatch(t) or os.path.isfile(os.path.join(base, t))


def confine(value: str | Path, kind: str, base: Path, roots: list[Path], follow_links: bool = False) -> Path:
    """`value` (relative to base, or absolute) as an absolute path inside one of roots; unless
    `follow_links`, the file it really is (symbolic links resolved) must be inside one too."""
    p = Path(os.path.expanduser(str(value).strip()))
    full = Path(os.path.normpath(os.path.abspath(p if p.is_absolute() else base / p)))
    allowed = [Path(os.path.normpath(os.path.abspath(r))) for r in roots]
    if not _inside(full, allowed):
        raise MediaError(f"{kind}: path {str(value)!r} leaves the data folder ({', '.join(map(str, allowed))}); "
                         "media are read only from there: set doc.media_root in the task to allow another folder")
    real = Path(os.path.realpath(full))
    if not follow_links and not _inside(real, [Path(os.path.realpath(r)) for r in allowed]):
        raise MediaError(f"{kind}: path {str(value)!r} is a link to {real}, outside the data folder; "
                         "set doc.follow_links: true in the task to read what links point to")
    return full


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def resolve_media(value: Any, kind: str, base: Path, roots: list[Path], follow_links: bool = False) -> Any:
    """A row's media value with local paths resolved and confined; other forms unchanged."""
    if isinstance(value, list) and kind in ("image", "frames"):  # a list of images, or stored frames
        return [resolve_media(v, "image", base, roots, follow_links) for v in value]
    if isinstance(value, dict) and value.get("path") and not value.get("bytes"):
        return confine(value["path"], kind, base, roots, follow_links)
    if isinstance(value, Path) or isinstance(value, str) and (kind == "video" or _looks_like_path(value, base)):
        return confine(value, kind, base, roots, follow_links)
    return value
