"""A task's samples: its dataset (or a --dataset-override) read, limited, and turned into
Samples whose media may only come from the folders the task allows."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..tasks.schema import DatasetSpec, TaskSpec
from ..types import Sample
from .samples import build_samples, limit_count
from .sources import load_dataset_rows, resolve_local


@dataclass(frozen=True)
class TaskData:
    """What reading a task's data produces."""

    samples: list[Sample]  # the task's samples, in dataset order
    fingerprint: dict[str, Any]  # what they were read from (data/fingerprint.py), to tell a changed dataset
    n_excluded: int  # rows doc.exclude_if dropped (0 for a task without one)


def load_task_data(spec: TaskSpec, limit: int | float | None, instructions: str,
                   override: str | None = None) -> TaskData:
    """The task's samples and what they were read from."""
    yaml_dir = Path(spec.source).parent if spec.source else Path.cwd()
    dspec = spec.dataset
    if override:
        path = Path(override).expanduser().resolve()
        if dspec.format in ("m3it", "m3it80") and path.is_dir():  # a local snapshot of the repo
            dspec = dspec.model_copy(update={"path": str(path)})
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
    samples, n_excluded = build_samples(spec, ds, instructions=instructions, media_root=video_root,
                                        media_roots=roots)
    return TaskData(samples, fingerprint, n_excluded)


def media_roots(spec: TaskSpec, dspec: DatasetSpec, yaml_dir: Path) -> list[Path]:
    """Folders local media paths may come from: the data's folder, doc.video_root, and
    doc.media_root (relative to the YAML) when the task allows one more."""
    local = resolve_local(dspec, yaml_dir)
    roots = [yaml_dir if local is None else local if local.is_dir() else local.parent]
    roots += [yaml_dir / Path(p).expanduser() for p in (spec.doc.video_root, spec.doc.media_root) if p]
    return roots
