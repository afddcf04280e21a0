"""What a record may say about the machine that made it: no path of it (issue 23).

A results folder is published as it is, so a run names its model by hub id, or a local folder
by its name beside a content fingerprint (`revision`: models/weights.py), and its local data by
file name beside a digest (data/fingerprint.py). Where a machine path reaches a record anyway
(a model argument, a --dataset-override, an error message, a file written before this rule)
it is reduced to its last part, in one place: the typed records (record.py) apply these when
written and when read, so an older file never shows its paths on the page, the export,
`compare`, lm-eval's layout or W&B either.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

# A path that means something on one machine only: absolute (POSIX, a Windows drive, UNC), in a
# home (~), or relative to the directory a command ran in (./x, ../x). `/` or `//` alone is not one.
_MACHINE = re.compile(r"^(?:~(?=[/\\]|$)|\.\.?[/\\]|/[^/\s]|[A-Za-z]:[\\/]|\\\\[^\\])")
_WINDOWS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
# An absolute path inside a message: starting after a space, a quote, a bracket or `:` (never after a
# word character or a dot, and never `//`: `org/name`, `https://host/x` and a row's own relative
# path such as `../x.png` are left alone), up to a space or a quote.
_IN_TEXT = re.compile(r"(?<![\w/\\.~-])(?:~|[A-Za-z]:)?[/\\](?![/\\])[^\s'\"`,;()\[\]{}<>|]+")


def is_machine_path(value: str) -> bool:
    """Whether `value` is a path of the machine that wrote it (not a hub id, a URL or a name)."""
    return bool(_MACHINE.match(value))


def public_path(value: str) -> str:
    """A machine path reduced to what may be published: its last part (a file or folder name); a
    hub cache folder (`.../models--org--name/snapshots/<commit>`) to its repo, `org/name`. Any
    other string is returned as it is."""
    if not is_machine_path(value):
        return value
    path: PurePosixPath | PureWindowsPath = PureWindowsPath(value) if _WINDOWS.match(value) else PurePosixPath(value)
    repo = path.parent.parent.name
    if path.parent.name == "snapshots" and repo.startswith(("models--", "datasets--")):
        return repo.split("--", 1)[1].replace("--", "/")
    return path.name or value.strip("/\\") or "."


def public_text(text: str) -> str:
    """A message (an error, a failure) with each absolute path in it reduced to its name."""
    def one(m: re.Match[str]) -> str:
        path = m.group(0).rstrip(".:")  # the sentence's full stop or colon is not the path's
        return public_path(path) + m.group(0)[len(path):]

    return _IN_TEXT.sub(one, text)


def public_paths(value: Any) -> Any:
    """A record block (model, config, data fingerprint, dataset) with every string in it that is
    a machine path, at any depth, reduced by `public_path`."""
    if isinstance(value, str):
        return public_path(value)
    if isinstance(value, dict):
        return {k: public_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_paths(v) for v in value]
    return value


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """An invocation's settings by `public_paths`, but for --gen_kwargs: text a model is given
    (a stop string such as `/n`), never a path."""
    return {k: v if k == "gen_kwargs" else public_paths(v) for k, v in config.items()}
