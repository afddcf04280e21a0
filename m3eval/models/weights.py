"""Where a model's weights are and what they are, for every backend that loads them from a
folder or a hub id (hf, clip, vllm): device and dtype arguments, local folders, display names,
and revisions (a hub commit, or a cheap fingerprint of a local folder)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from m3eval.errors import ModelLoadError

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_device(device: str | None) -> str:
    """cpu / cuda / cuda:N / auto. Under torchrun each rank takes cuda:LOCAL_RANK."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device == "auto":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device={device!r} but no CUDA GPU is available (use device=cpu)")
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        return device
    if device in ("cpu", "mps"):
        return device
    raise ModelLoadError(f"device={device!r}: expected cpu, cuda, cuda:N or auto")


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ModelLoadError(f"{name}={value!r}: expected true or false")


def image_limit(value: Any, name: str = "max_images") -> int | None:
    """A backend's image limit from its model args: a whole number >= 1, or None for none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(f"{name}={value!r}: expected a whole number of images, at least 1")
    return value


def resolve_dtype(dtype: str | None) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        return "auto"
    if str(dtype) not in _DTYPES:
        raise ModelLoadError(f"dtype={dtype!r}: expected auto, float32, bfloat16 or float16")
    return getattr(torch, _DTYPES[str(dtype)])


def folder_fingerprint(folder: Path) -> str:
    """A cheap, copy-stable id of a local checkpoint: config bytes plus each
    weight file's size and first and last MiB (hashing many GB would be slow)."""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        if f.suffix in (".json", ".jinja", ".model", ".txt"):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            size = f.stat().st_size
            with open(f, "rb") as fh:
                head = fh.read(1 << 20)
                fh.seek(max(0, size - (1 << 20)))
                tail = fh.read()
            h.update(f.name.encode() + b"\0" + str(size).encode() + head + tail)
    return "local-sha256:" + h.hexdigest()[:16]


def revision_of(local: Path | None, config: Any) -> str | None:
    """The weights' revision: the hub commit the config was loaded at, a hub snapshot folder's
    commit, or a local folder's fingerprint; None for a hub id with no commit known."""
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return commit
    if local is not None:
        # A hub cache snapshot folder is named by its commit sha.
        if local.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", local.name):
            return local.name
        return folder_fingerprint(local)
    return None


def local_revision(model_args: dict[str, Any]) -> str | None:
    """The revision a loaded model would record, read without loading it: for a local
    `pretrained` folder (a cheap fingerprint, or a hub snapshot's commit), else None."""
    if not model_args.get("pretrained"):
        return None
    path = Path(str(model_args["pretrained"])).expanduser()
    return revision_of(path.resolve(), None) if path.is_dir() else None


def display_name(pretrained: str, local: Path | None) -> str:
    """The model's `id` in results: a hub id, or a local folder's name (never its path: results
    are published; its content fingerprint is the `revision` beside it)."""
    if local is None:
        return pretrained  # a hub id
    # hub cache: .../models--org--name/snapshots/<sha> -> org/name
    if local.parent.name == "snapshots" and local.parent.parent.name.startswith("models--"):
        return local.parent.parent.name[len("models--"):].replace("--", "/")
    return local.name


def local_folder(pretrained: str) -> Path | None:
    """The local model folder `pretrained` names, or None for a hub id (checked, not fetched)."""
    p = Path(pretrained).expanduser()
    if p.exists():
        if not p.is_dir() or not (p / "config.json").is_file():
            raise ModelLoadError(f"model path {pretrained!r} exists but is not a model folder (no config.json)")
        return p.resolve()
    looks_like_path = pretrained.startswith(("/", ".", "~")) or pretrained.count("/") > 1 or "\\" in pretrained
    if looks_like_path or not _HUB_ID.match(pretrained):
        raise ModelLoadError(f"model path {pretrained!r} does not exist and is not a hub id reachable offline")
    return None
