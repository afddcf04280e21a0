"""A task's samples: its dataset (or a --dataset-override) read, limited, and turned into
Samples whose media may only come from the folders the task allows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from ..errors import DataError
from ..tasks.schema import DatasetSpec, DocSpec, JoinSpec, TaskSpec
from .join import JoinedTable, index_join
from .sample_set import TaskData
from .samples import build_samples, limit_count
from .sources import load_dataset_rows, resolve_local


def load_task_data(spec: TaskSpec, limit: int | float | None, instructions: str,
                   override: str | None = None) -> TaskData:
    """The task's samples and what they were read from. An override replaces the task's own table; a
    task with dataset.join keeps its joined table, unless the override is a local copy of the hub repo
    both tables come from (a folder in hub layout): then each is read from it, with its config."""
    yaml_dir = Path(spec.source).parent if spec.source else Path.cwd()
    dspec, join = spec.dataset, spec.dataset.join
    if override:
        path = Path(override).expanduser().resolve()
        if dspec.format in ("m3it", "m3it80") and path.is_dir():  # a local snapshot of the repo
            dspec = dspec.model_copy(update={"path": str(path)})
        elif join is not None and join.path == dspec.path and _hub_layout(path):
            local = {"path": str(path), "format": "auto", "revision": None}  # auto: read as a local folder
            dspec, join = dspec.model_copy(update=local), join.model_copy(update=local)
        else:
            # a single file replaces the task's split; a DatasetDict folder still picks dataset.split
            dspec = DatasetSpec(path=str(path), format="auto", **({"split": dspec.split} if path.is_dir() else {}))
    ds, fingerprint = load_dataset_rows(dspec, yaml_dir, spec.task)
    if limit is not None:
        ds = ds.select(range(limit_count(limit, len(ds))))
    roots = media_roots(spec, dspec, yaml_dir)
    # relative video paths start at doc.video_root (relative to the YAML), else at the data's folder
    # (so an overridden dataset finds its videos beside it), else at the YAML's folder
    video_root = yaml_dir / Path(spec.doc.video_root).expanduser() if spec.doc.video_root else roots[0]
    joined = None
    if join is not None:
        joined, join_fingerprint = _load_join(spec, join, yaml_dir)
        fingerprint = {**fingerprint, "join": join_fingerprint}
    samples, n_excluded = build_samples(spec, ds, instructions=instructions, media_root=video_root,
                                        media_roots=roots, join=joined)
    # Arrow's allocator keeps what reading the data freed (26 MiB after converting 20,000 rows): give it back
    pa.default_memory_pool().release_unused()
    tables = [ds] if joined is None else [ds, joined.ds]
    names = {col: list(feature.names) for table in reversed(tables) for col, feature in table.features.items()
             if isinstance(feature, datasets.ClassLabel)}  # the task's own table's win
    return TaskData(samples, fingerprint, n_excluded, names)


def _hub_layout(path: Path) -> bool:
    """A folder the datasets builder reads as a hub repo (not a save_to_disk folder)."""
    return path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists()


def _load_join(spec: TaskSpec, join: JoinSpec, yaml_dir: Path) -> tuple[JoinedTable, dict[str, Any]]:
    """dataset.join's table, indexed by its key, and its fingerprint. Its local media may come from its
    own folder (first) and the task's doc.video_root / doc.media_root."""
    table = join.table()
    try:
        ds, fingerprint = load_dataset_rows(table, yaml_dir, spec.task)
    except DataError as e:  # an override of the task's own table leaves this one as the YAML names it
        raise DataError(f"{e} [the joined table, dataset.join: --dataset-override {spec.task}=FOLDER with a local "
                        "copy of the hub repo reads both tables from it]") from None
    roots = media_roots(spec, table, yaml_dir)
    video_root = yaml_dir / Path(spec.doc.video_root).expanduser() if spec.doc.video_root else roots[0]
    where = f"task {spec.task}: joined dataset {join.path}" + (f" (config {join.name})" if join.name else "")
    return index_join(ds, join, _media_columns(spec.doc), where, tuple(roots), video_root), fingerprint


def _media_columns(doc: DocSpec) -> set[str]:
    images = doc.images if isinstance(doc.images, list) else [doc.images]
    return {f.split(".")[0] for f in [*images, doc.video, doc.frames] if f}


def media_roots(spec: TaskSpec, dspec: DatasetSpec, yaml_dir: Path) -> list[Path]:
    """Folders local media paths may come from: the data's folder, doc.video_root, and
    doc.media_root (relative to the YAML) when the task allows one more."""
    local = resolve_local(dspec, yaml_dir)
    roots = [yaml_dir if local is None else local if local.is_dir() else local.parent]
    roots += [yaml_dir / Path(p).expanduser() for p in (spec.doc.video_root, spec.doc.media_root) if p]
    return roots
