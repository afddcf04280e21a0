"""Dataset sources: a hub dataset or a local file/folder, loaded with HF `datasets`.

The result is an Arrow-backed `datasets.Dataset` (memory-mapped, not in RAM);
image columns are cast to `Image(decode=False)` so rows carry encoded bytes and
pixels are decoded only when a sample reaches the model.
"""
from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import datasets

from ..errors import DataError
from ..tasks.schema import DatasetSpec
from .convert import load_dataset
from .fingerprint import content_config, local_fingerprint

_SUFFIX_FORMAT = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}


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


def load_dataset_rows(spec: DatasetSpec, base_dir: Path, task: str) -> tuple[datasets.Dataset, dict[str, Any]]:
    """The task's rows, and what they were read from (m3eval/data/fingerprint.py): a content
    digest of local data, the commit of hub data."""
    local = resolve_local(spec, base_dir)
    where = f"task {task}: dataset {spec.path}" + (f" (config {spec.name})" if spec.name else "")
    read: list[Path] = []
    fingerprint: dict[str, Any] | None = None
    try:
        if spec.format in ("m3it", "m3it80"):
            from .m3it import load_m3it
            ds, read = load_m3it(spec, base_dir)
        elif local is None:
            ds = load_dataset(spec.path, spec.name, split=spec.split, revision=spec.revision,
                              data_files=spec.data_files)
            read = [Path(c["filename"]) for c in ds.cache_files]
        else:
            if not local.exists():
                raise DataError(f"dataset path {local} does not exist")
            fingerprint = local_fingerprint(local.resolve())  # taken once: datasets' cache is keyed on it too
            ds = _load_local(local, spec, content_config(fingerprint["xxh3"]))
        if len(ds) == 0:  # an empty split or raw file: say so here, not "scored nothing" after the model ran
            raise DataError(f"split {spec.split!r} has no rows"
                            + (f" (read: {', '.join(str(p) for p in dict.fromkeys(read))})" if read else ""))
        fingerprint = fingerprint or _fingerprint(spec, base_dir, local, read)
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
    return ds, fingerprint


def _fingerprint(spec: DatasetSpec, base_dir: Path, local: Path | None, read: list[Path]) -> dict[str, Any]:
    from .fingerprint import files_fingerprint, hub_fingerprint
    if local is not None:
        return local_fingerprint(local.resolve())
    if spec.format in ("m3it", "m3it80"):
        from .m3it import snapshot_root
        root = snapshot_root(spec, base_dir)
        if root is not None:  # a local snapshot: the raw files actually read
            return {**files_fingerprint(read, root), "path": root.resolve().name}  # a name: published
    return hub_fingerprint(spec.path, spec.revision, read)


def _no_rows(path: Path) -> DataError:
    return DataError(f"{path}: the file has no rows")


def _load_local(path: Path, spec: DatasetSpec, content: dict[str, str]) -> datasets.Dataset:
    """content: content_config of the data, for datasets' cache."""
    fmt: str = spec.format
    if fmt == "auto":
        if path.is_dir():
            fmt = "disk" if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() \
                else "hub"
        else:
            by_suffix = _SUFFIX_FORMAT.get(path.suffix)
            if by_suffix is None:
                raise DataError(f"{path}: cannot tell the format from the suffix; set dataset.format")
            fmt = by_suffix
    if fmt == "disk":
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if spec.split not in loaded:
                raise DataError(f"{path}: no split {spec.split!r}; it has {', '.join(loaded)}")
            return loaded[spec.split]
        if spec.split != "test":  # a saved Dataset (not a DatasetDict) is one split, like a file
            raise DataError(f"dataset.split {spec.split!r}: {path} holds one saved Dataset, which has no splits; "
                            "remove dataset.split, or save a DatasetDict with this split")
        return loaded
    if fmt == "hub":  # a local folder in hub layout (a snapshot): the datasets builder reads it
        return load_dataset(str(path), spec.name, split=spec.split, data_files=spec.data_files, **content)
    if path.is_file():
        return _load_file(path, spec, fmt, content)
    return load_dataset("json" if fmt == "jsonl" else fmt, data_files=str(path), split="train", **content)


def _load_file(path: Path, spec: DatasetSpec, fmt: str, content: dict[str, str]) -> datasets.Dataset:
    """One file is one split: `dataset.split` cannot choose among its rows, so a split other
    than the default (`test`) is refused rather than recorded as if it had been honoured."""
    if spec.split != "test":
        raise DataError(f"dataset.split {spec.split!r}: {path} is a single {fmt} file, which has no splits "
                        "(its rows are the task's `test` split); remove dataset.split, or point dataset.path at "
                        "a save_to_disk folder or a hub-layout folder that has this split")
    if path.stat().st_size < 4096 and not path.read_bytes().strip():
        raise _no_rows(path)  # the json builder raises a bare StopIteration on an empty file
    try:
        ds = _read_file(path, fmt, content)
    except ValueError as e:
        if "corresponds to no data" in str(e):  # a CSV header alone, a blank JSON-lines file
            raise _no_rows(path) from None
        raise
    if len(ds) == 0:
        raise _no_rows(path)
    return ds


def _read_file(path: Path, fmt: str, content: dict[str, str]) -> datasets.Dataset:
    """One file through datasets' builders. A CSV or JSON file is checked to be UTF-8 first:
    pyarrow's JSON reader takes bad bytes in and fails later, on a row, naming no file; pandas'
    CSV reader names neither file nor line. Every CSV cell is read as text: pandas' guessed
    types turn `007` into 7 and a column with one blank cell into floats ("2.0"). A blank cell
    stays "" (keep_default_na=False), and "NA" or "None" stay the text they are."""
    kwargs: dict[str, Any] = {}
    if fmt in ("csv", "json", "jsonl"):
        check_utf8(path)
    if fmt == "csv":
        import pandas as pd  # datasets' CSV builder reads with pandas; the header names the columns
        columns = pd.read_csv(path, nrows=0).columns
        kwargs = {"features": datasets.Features({c: datasets.Value("string") for c in columns}),
                  "keep_default_na": False}
    return load_dataset("json" if fmt == "jsonl" else fmt, data_files=str(path), split="train", **kwargs,
                        **content)  # datasets' cache follows the content, not the mtime


def check_utf8(path: Path) -> None:
    """A DataError naming the file and line when `path` is not UTF-8 text. Read in chunks; the
    line is looked for only after a failure (a newline byte never falls inside a UTF-8 character)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return
    except UnicodeDecodeError:
        pass
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not UTF-8 text (byte {line[e.start]:#04x} at byte {e.start + 1} "
                                "of the line); save the file as UTF-8") from None
    raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8")
