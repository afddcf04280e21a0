"""Dataset sources: a hub dataset or a local file/folder, loaded with HF `datasets`.

The result is an Arrow-backed `datasets.Dataset` (memory-mapped, not in RAM);
image columns are cast to `Image(decode=False)` so rows carry encoded bytes and
pixels are decoded only when a sample reaches the model.
"""
from __future__ import annotations

from pathlib import Path

import datasets

from ..tasks.schema import DatasetSpec

_SUFFIX_FORMAT = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}


class DataError(ValueError):
    """A dataset cannot be loaded; the message names the task, source and cause."""


def resolve_local(spec: DatasetSpec, base_dir: Path) -> Path | None:
    """The local path a spec names, or None when it is a hub id."""
    if spec.format in ("hub", "m3it", "m3it80"):
        return None
    p = Path(spec.path).expanduser()
    if not p.is_absolute():
        p = base_dir / p
    looks_local = spec.format != "auto" or spec.path.startswith((".", "/", "~")) or p.exists() \
        or Path(spec.path).suffix in _SUFFIX_FORMAT
    return p if looks_local else None


def load_dataset_rows(spec: DatasetSpec, base_dir: Path, task: str) -> datasets.Dataset:
    local = resolve_local(spec, base_dir)
    where = f"task {task}: dataset {spec.path}" + (f" (config {spec.name})" if spec.name else "")
    try:
        if spec.format in ("m3it", "m3it80"):
            from .m3it import load_m3it
            ds = load_m3it(spec, base_dir)
        elif local is None:
            ds = datasets.load_dataset(spec.path, spec.name, split=spec.split, revision=spec.revision,
                                       data_files=spec.data_files)
        else:
            ds = _load_local(local, spec)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    except FileNotFoundError as e:
        raise DataError(f"{where}: file not found: {e}") from None
    except (ValueError, KeyError) as e:
        raise DataError(f"{where}, split {spec.split}: {e}") from None
    except Exception as e:  # network, hub, arrow errors: all end the task with a clear cause
        offline = " (no hub is reachable: point the task at local data with --dataset-override)" \
            if local is None else ""
        raise DataError(f"{where}, split {spec.split}: {type(e).__name__}: {e}{offline}") from None
    for col, feat in ds.features.items():
        if isinstance(feat, datasets.Image) and feat.decode:
            ds = ds.cast_column(col, datasets.Image(decode=False))
    return ds


def _load_local(path: Path, spec: DatasetSpec) -> datasets.Dataset:
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist")
    fmt = spec.format
    if fmt == "auto":
        if path.is_dir():
            fmt = "disk" if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() \
                else "hub"
        else:
            fmt = _SUFFIX_FORMAT.get(path.suffix)
            if fmt is None:
                raise DataError(f"{path}: cannot tell the format from the suffix; set dataset.format")
    if fmt == "disk":
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if spec.split not in loaded:
                raise DataError(f"{path}: no split {spec.split!r}; it has {', '.join(loaded)}")
            return loaded[spec.split]
        return loaded
    if fmt == "hub":  # a local folder in hub layout (a snapshot): the datasets builder reads it
        return datasets.load_dataset(str(path), spec.name, split=spec.split, data_files=spec.data_files)
    builder = "json" if fmt == "jsonl" else fmt
    return datasets.load_dataset(builder, data_files=str(path), split="train")
