"""Local media paths in a task's rows: resolved against the data's folder (not the
current directory) and confined to the folders the task allows.

A row's `../secret/x.png` or `/etc/passwd` would otherwise be read, copied into the
run's media/ thumbnails and sent to a remote model. Allowed folders: the data's
folder, `doc.video_root`, and `doc.media_root` when the task names one (`/` allows
any). The check is on the normalised path (`..` removed), not on symlink targets:
links inside the data folder are its owner's choice.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import MediaError

_MAX_PATH = 4096


def _looks_like_path(text: str, base: Path) -> bool:
    """Base64 (the other string form of an image) never holds '.', '\\' or whitespace."""
    t = text.strip()
    if not t or len(t) >= _MAX_PATH or t.startswith("data:") or any(c.isspace() for c in t):
        return False
    if "." in t[-8:] or "\\" in t or t.startswith(("./", "../", "~")):
        return True
    return os.path.isfile(os.path.join(base, t)) or os.path.isfile(t)


def confine(value: str | Path, kind: str, base: Path, roots: list[Path]) -> Path:
    """`value` (relative to base, or absolute) as an absolute path inside one of roots."""
    p = Path(os.path.expanduser(str(value).strip()))
    full = Path(os.path.normpath(os.path.abspath(p if p.is_absolute() else base / p)))
    allowed = [Path(os.path.normpath(os.path.abspath(r))) for r in roots]
    if not any(full == r or full.is_relative_to(r) for r in allowed):
        raise MediaError(f"{kind}: path {str(value)!r} leaves the data folder ({', '.join(map(str, allowed))}); "
                         "media are read only from there: set doc.media_root in the task to allow another folder")
    return full


def resolve_media(value: Any, kind: str, base: Path, roots: list[Path]) -> Any:
    """A row's media value with local paths resolved and confined; other forms unchanged."""
    if isinstance(value, list) and kind in ("image", "frames"):  # a list of images, or stored frames
        return [resolve_media(v, "image", base, roots) for v in value]
    if isinstance(value, dict) and value.get("path") and not value.get("bytes"):
        return confine(value["path"], kind, base, roots)
    if isinstance(value, Path):
        return confine(value, kind, base, roots)
    if isinstance(value, str) and (kind == "video" or _looks_like_path(value, base)):
        return confine(value, kind, base, roots)
    return value
