"""Dataset rows -> Samples, as a task's `doc:` section says.

Text fields are read for every row (cheap); media columns are never read here:
a Sample carries `LazyField` references that the runner resolves batch by batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

import datasets

from ..errors import NotText, SampleError, TemplateLimitError
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


def _excluded(row: dict[str, Any], spec: str) -> bool:
    """doc.exclude_if: a field's truth value, or a template whose output is `True` (a subset of one split,
    e.g. ChartQA's human questions: "{{ type != 'human_test' }}"; Jinja prints a comparison as True/False)."""
    if is_template(spec):
        return render(spec, row).strip().lower() in ("true", "1")
    return bool(get_field(row, spec))


def as_text(value: Any) -> str | None:
    """The one way a field value becomes text (references, choices, ids, lang, cluster,
    instructions): the data's own text, or None for a missing value (null, NaN), never str()
    of a typed value ("b'red'", "None"). CSV cells arrive as text (data/sources.py reads them
    so). A number is written in its shortest form, an integral one without ".0": JSON has one
    number type, and Arrow reads a JSON list [2, 2.5] (or a column mixing 2 and 2.5) as
    float64, so 2.0 here was 2 in the file. Booleans keep Python's "True"/"False" (as before)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, Decimal)):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    kinds: dict[type, str] = {bytes: "binary data", dict: "a mapping", list: "a list"}
    raise NotText(f"holds {kinds.get(type(value), type(value).__name__)}, not text")


def text_list(value: Any, *, keep_places: bool = False) -> list[str]:
    """A field's value as a list of texts, nulls left out (a null among a row's answers is no
    answer). keep_places (choices): only trailing nulls may go, since a null between options
    would move the later ones to other letters."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    texts = [as_text(v) for v in items]
    while keep_places and texts and texts[-1] is None:
        texts.pop()
    if keep_places and None in texts:
        raise NotText(f"has a null at item {texts.index(None)} of {len(items)}, between options")
    return [t for t in texts if t is not None]


def instruction_set(spec: TaskSpec, ds: datasets.Dataset) -> list[str]:
    """A task's instruction variants: declared in YAML, or the distinct values of
    its instruction field in order of first appearance (M3IT rows each hold one of
    the task's 10 instructions)."""
    if spec.instructions:
        return list(spec.instructions)
    field = spec.doc.instruction
    if field is None or field.split(".")[0] not in ds.column_names:
        return []
    return list(dict.fromkeys(t for t in map(as_text, ds[field.split(".")[0]]) if t is not None))


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
    for key in ("images", "video", "frames"):  # read lazily, per sample: a wrong name would fail every sample
        field = getattr(doc, key)
        if field and not is_template(field) and field.split(".")[0] not in ds.column_names:
            raise SampleError(f"task {spec.task}: no field {field.split('.')[0]!r} (doc.{key}; columns: "
                              f"{', '.join(ds.column_names)})")
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
                if _excluded(row, doc.exclude_if):
                    n_excluded += 1
                    continue
            except KeyError:
                raise SampleError(f"task {spec.task}: row {i}: no field {doc.exclude_if!r} (doc.exclude_if; "
                                  f"columns: {', '.join(ds.column_names)})") from None
        problems: list[str] = []  # fields of this row that are not text: the row fails, counted
        try:
            choices = _text(problems, "choices", doc.choices, get_field(row, doc.choices), _choice_texts, None) \
                if doc.choices else None
            base_id = _required(_text_or_field(row, doc.id, choices)) if doc.id else str(i)
            references = _text(problems, "references", doc.references,  # none on a submission task
                               _text_or_field(row, doc.references, choices), text_list, []) \
                if doc.references is not None else []
            lang = _text(problems, "lang", doc.lang, get_field(row, doc.lang), _required, spec.language) \
                if doc.lang else spec.language
            cluster = _text(problems, "cluster", doc.cluster, _text_or_field(row, doc.cluster, choices), as_text,
                            None) if doc.cluster else None  # a null cluster: the row is a cluster of its own
            category = _text(problems, "category", doc.category, _text_or_field(row, doc.category, choices),
                             as_text, None) if doc.category else None
        except KeyError as e:
            raise SampleError(f"task {spec.task}: row {i}: no field {e.args[0]!r} "
                              f"(columns: {', '.join(ds.column_names)})") from None
        except NotText as e:  # a sample without a usable id cannot be recorded, resumed or scored
            raise SampleError(f"task {spec.task}: row {i}: doc.id ({doc.id}) {e}; ids must be text or "
                              "numbers") from None
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
        missing = None
        if problems:
            missing = SampleFailure(stage="data", type="NotText", message=f"row {i} (id {base_id!r}): "
                                    + "; ".join(problems))
        elif doc.references is not None and not any(r.strip() for r in references):
            missing = SampleFailure(stage="data", type="MissingReferences", message=f"row {i} (id {base_id!r}) "
                                    f"has no references (doc.references: {doc.references})")
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
                                  instruction=None if text is None else k, cluster=cluster, category=category,
                                  failure=failure,
                                  metadata={"row": i}))
    return samples, n_excluded


def _text(problems: list[str], key: str, field: str, value: Any, convert: Callable[[Any], Any], default: Any) -> Any:
    """convert(value); a value that is not text notes the problem (the row fails) and gives default."""
    try:
        return convert(value)
    except NotText as e:
        problems.append(f"doc.{key} ({field}) {e}")
        return default


def _choice_texts(value: Any) -> list[str]:
    return text_list(value, keep_places=True)


def _required(value: Any) -> str:
    text = as_text(value)
    if text is None or not text.strip():
        raise NotText("is null or blank")
    return text


def _instruction_key(field: str | None) -> str:
    return field.split(".")[0] if field else "instruction"


def limit_count(limit: int | float | None, n: int) -> int:
    """How many of a task's n rows a limit keeps (the first ones): a count N >= 1, or a fraction
    0 < x < 1 of the rows, rounded up as lm-eval does; None keeps all."""
    if limit is None:
        return n
    return min(n, math.ceil(n * limit) if limit < 1 else int(limit))
