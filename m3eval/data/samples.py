"""Dataset rows -> Samples, as a task's `doc:` section says.

Text fields are read for every row (cheap); media columns are never read here:
a Sample carries `LazyField` references that the runner resolves batch by batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import datasets

from ..errors import SampleError, TemplateLimitError
from ..prompts import is_template, render
from ..record import SampleFailure
from ..tasks.schema import TaskSpec
from ..types import Media, Sample, variant_id
from .media_paths import resolve_media


@dataclass
class LazyField:
    """One media field of one row, read from the Arrow table only when needed."""

    ds: datasets.Dataset
    row: int
    path: str
    root: Path | None = None  # relative media paths start here (the data's folder, or video_root)
    roots: tuple[Path, ...] | None = None  # folders local media may come from; None: no resolution
    kind: str = "video"
    follow_links: bool = False  # doc.follow_links: read what a link inside the roots points to, wherever

    def get(self) -> Any:
        row = self.ds[self.row]
        value = render(self.path, row) if is_template(self.path) else get_field(row, self.path)
        if self.roots is not None and self.root is not None:
            return resolve_media(value, self.kind, self.root, list(self.roots), self.follow_links)
        if self.root is not None and isinstance(value, str) and not Path(value).is_absolute():
            return str(self.root / value)
        return value


def get_field(row: dict[str, Any], path: str) -> Any:
    """`a.b.c` into nested dicts; a list on the way maps the rest of the path over its items."""
    value: Any = row
    parts = path.split(".")
    for i, key in enumerate(parts):
        if isinstance(value, list):
            rest = ".".join(parts[i:])
            return [get_field(v, rest) for v in value]
        if not isinstance(value, dict) or key not in value:
            raise KeyError(path)
        value = value[key]
    return value


def _text_or_field(row: dict[str, Any], spec: str, choices: list[str] | None = None) -> Any:
    return render(spec, row, choices=choices) if is_template(spec) else get_field(row, spec)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def instruction_set(spec: TaskSpec, ds: datasets.Dataset) -> list[str]:
    """A task's instruction variants: declared in YAML, or the distinct values of
    its instruction field in order of first appearance (M3IT rows each hold one of
    the task's 10 instructions)."""
    if spec.instructions:
        return list(spec.instructions)
    field = spec.doc.instruction
    if field is None or field.split(".")[0] not in ds.column_names:
        return []
    return list(dict.fromkeys(str(v) for v in ds[field.split(".")[0]]))


def build_samples(spec: TaskSpec, ds: datasets.Dataset, *, instructions: str = "default",
                  media_root: Path | None = None, media_roots: list[Path] | None = None
                  ) -> tuple[list[Sample], int]:
    """The task's samples, and how many rows doc.exclude_if dropped. instructions: "default" (each row's own),
    "all" (every row under every variant), or "K" (the first K variants).
    Relative video paths are resolved against media_root. With media_roots (the data's
    folder first), relative image paths resolve against the data's folder and every local
    media path must lie in one of media_roots (else that sample fails, counted).
    A row with no references, or whose prompt exceeds the size bound, becomes a sample
    carrying its `failure`: recorded and counted, never generated. Media stay lazy
    references: a sample holds text only until it reaches a model."""
    samples: list[Sample] = []
    doc = spec.doc
    variants: Sequence[str | None] = [None]
    pool = instruction_set(spec, ds) if instructions != "default" else []
    if pool:  # a task without variants runs its one prompt (results note it): tasks mix in one run
        k = len(pool) if instructions == "all" else int(instructions)
        variants = pool[:k]
    media_cols = {f.split(".")[0] for f in (doc.images, doc.video, doc.frames) if f}
    text_cols = [c for c in ds.column_names if c not in media_cols]
    seen: dict[str, int] = {}
    n_excluded = 0
    roots = tuple(media_roots) if media_roots else None
    data_dir = media_roots[0] if media_roots else None
    links = bool(doc.follow_links)
    for i, row in enumerate(ds.select_columns(text_cols)):
        if doc.exclude_if:
            try:
                if get_field(row, doc.exclude_if):
                    n_excluded += 1
                    continue
            except KeyError:
                raise SampleError(f"task {spec.task}: row {i}: no field {doc.exclude_if!r} (doc.exclude_if; "
                                  f"columns: {', '.join(ds.column_names)})") from None
        try:
            choices = _as_list(get_field(row, doc.choices)) if doc.choices else None
            base_id = str(_text_or_field(row, doc.id, choices)) if doc.id else str(i)
            references = _as_list(_text_or_field(row, doc.references, choices))
            lang = str(get_field(row, doc.lang)) if doc.lang else spec.language
            cluster = str(_text_or_field(row, doc.cluster, choices)) if doc.cluster else None
        except KeyError as e:
            raise SampleError(f"task {spec.task}: row {i}: no field {e.args[0]!r} "
                              f"(columns: {', '.join(ds.column_names)})") from None
        if base_id in seen:  # two rows under one id would overwrite each other's predictions
            raise SampleError(f"task {spec.task}: rows {seen[base_id]} and {i} have the same id {base_id!r} "
                              f"(doc.id: {doc.id or 'the row index'}); ids must be unique")
        seen[base_id] = i
        media = []
        if doc.images:
            media.append(Media("image", LazyField(ds, i, doc.images, data_dir, roots, "image", links)))
        if doc.frames:
            media.append(Media("frames", LazyField(ds, i, doc.frames, data_dir, roots, "frames", links)))
        if doc.video:
            media.append(Media("video", LazyField(ds, i, doc.video, media_root, roots, "video", links)))
        missing = None if any(r.strip() for r in references) else SampleFailure(
            stage="data", type="MissingReferences",
            message=f"row {i} (id {base_id!r}) has no references (doc.references: {doc.references})")
        for k, text in enumerate(variants):
            ctx = dict(row) if text is None else {**row, _instruction_key(doc.instruction): text}
            failure = missing
            try:
                prompt = render(doc.prompt, ctx, choices=choices)
            except TemplateLimitError as e:  # this row's expansion: one failed sample, not the task
                prompt, failure = "", SampleFailure(stage="data", type=type(e).__name__,
                                                    message=f"prompt of row {i} (id {base_id!r}): {e.args[0]}")
            except KeyError as e:
                raise SampleError(f"task {spec.task}: row {i}: prompt template: {e.args[0]}") from None
            samples.append(Sample(id=base_id if text is None else variant_id(base_id, k), task=spec.task,
                                  prompt=prompt, references=references, media=media, choices=choices, lang=lang,
                                  instruction=None if text is None else k, cluster=cluster, failure=failure,
                                  metadata={"row": i}))
    return samples, n_excluded


def _instruction_key(field: str | None) -> str:
    return field.split(".")[0] if field else "instruction"


def limit_count(limit: int | float | None, n: int) -> int:
    """How many of a task's n rows a limit keeps (the first ones): a count N >= 1, or a fraction
    0 < x < 1 of the rows, rounded up as lm-eval does; None keeps all."""
    if limit is None:
        return n
    return min(n, math.ceil(n * limit) if limit < 1 else int(limit))
