"""Dataset rows -> Samples, as a task's `doc:` section says.

Text fields are read for every row (cheap); media columns are never read here:
a Sample carries `LazyField` references that the runner resolves batch by batch.
"""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import datasets

from ..errors import NotText, SampleError, TemplateLimitError
from ..prompts import is_template, render
from ..record import SampleFailure
from ..tasks.schema import TaskSpec
from ..types import LazySource, Media, Sample, variant_id
from .fields import (
    as_text,
    choice_texts,
    choice_value,
    excluded,
    get_field,
    noted,
    required,
    text_list,
    text_or_field,
    with_literals,
)
from .media_paths import resolve_media
from .sample_set import SampleSet, work_key

if TYPE_CHECKING:
    from .join import JoinedTable

EXPLODE_INDEX = "explode_index"  # doc.explode: the item's place in its row's lists, for templates (doc.id)


@dataclass(slots=True)  # slots: one per media field of every sample
class LazyField(LazySource):
    """One media field of one row, read from the Arrow table only when needed."""

    ds: datasets.Dataset
    row: int
    path: str
    root: Path | None = None  # relative media paths start here (the data's folder, or video_root)
    roots: tuple[Path, ...] | None = None  # folders local media may come from; None: no resolution
    kind: str = "video"
    follow_links: bool = False  # doc.follow_links: read what a link inside the roots points to, wherever
    optional: bool = False  # one of several image fields: a null is no image (None), not a bad one

    def get(self) -> Any:
        row = self.ds[self.row]
        value = render(self.path, row) if is_template(self.path) else get_field(row, self.path)
        if value is None and self.optional:
            return None
        if self.roots is not None and self.root is not None:
            return resolve_media(value, self.kind, self.root, list(self.roots), self.follow_links)
        if self.root is not None and isinstance(value, str) and not Path(value).is_absolute():
            return str(self.root / value)
        return value


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
                  media_root: Path | None = None, media_roots: list[Path] | None = None,
                  join: JoinedTable | None = None) -> tuple[SampleSet, int]:
    """The task's samples, and how many rows doc.exclude_if dropped. instructions: "default" (each row's own),
    "all" (every row under every variant), or "K" (the first K variants).
    Relative video paths are resolved against media_root. With media_roots (the data's
    folder first), relative image paths resolve against the data's folder and every local
    media path must lie in one of media_roots (else that sample fails, counted).
    A row with no references, or whose prompt exceeds the size bound, becomes a sample
    carrying its `failure`: recorded and counted, never generated. Media stay lazy
    references: a sample holds text only until it reaches a model.
    join (dataset.join): each row takes the matched row's text columns; a media field only the joined
    table has is read from it. doc.explode: one sample per item of the row's lists. doc.exclude_if and
    every other key read the row so made; n_excluded counts those rows.
    Every row is read here once, to check it and to note each sample's id, work-order key and place;
    the set builds a sample again from its row when it is read (sample_set.py)."""
    doc, rows = spec.doc, _RowSamples(spec, ds, instructions, media_root, media_roots, join)
    ids: list[str] = []
    keys, places = array("q"), array("q")  # a place: row << 32 | item * variants + variant
    seen: dict[str, int] = {}
    n_excluded = 0
    for i, own in enumerate(table_rows(rows.text)):
        for row, item, j, unusable in _row_items(own, join, doc.explode):
            if doc.exclude_if:
                try:
                    if excluded(row, doc.exclude_if):
                        n_excluded += 1
                        continue
                except KeyError:
                    raise SampleError(f"task {spec.task}: row {i}: no field {doc.exclude_if!r} (doc.exclude_if; "
                                      f"columns: {', '.join(ds.column_names)})") from None
            fields = rows.fields(i, row, item, j, unusable)
            if fields.base_id in seen:  # two rows under one id would overwrite each other's predictions
                hint = f" (doc.explode: doc.id must use {{{{ {EXPLODE_INDEX} }}}})" if doc.explode else ""
                raise SampleError(f"task {spec.task}: rows {seen[fields.base_id]} and {i} have the same id "
                                  f"{fields.base_id!r} (doc.id: {doc.id or 'the row index'}); ids must be unique{hint}")
            seen[fields.base_id] = i
            for k in range(len(rows.variants)):
                sample = rows.sample(fields, k)
                ids.append(sample.id)
                keys.append(work_key(sample))
                places.append(i << 32 | rows.sub(item, k))
    return SampleSet(ids, keys, partial(rows.fetch, places)), n_excluded


@dataclass(frozen=True)
class _Fields:
    """What one row (or doc.explode item) gives every instruction variant of its sample."""

    row: dict[str, Any]
    index: int
    item: int | None
    base_id: str
    references: list[str]
    choices: list[str] | None
    lang: str
    cluster: str | None
    category: str | None
    media: list[Media]
    failure: SampleFailure | None


class _RowSamples:
    """How a task's rows become samples: read once by build_samples, and again for each sample read."""

    def __init__(self, spec: TaskSpec, ds: datasets.Dataset, instructions: str, media_root: Path | None,
                 media_roots: list[Path] | None, join: JoinedTable | None):
        doc = spec.doc
        self.spec, self.ds, self.join, self.media_root = spec, ds, join, media_root
        self.variants: Sequence[str | None] = [None]
        pool = instruction_set(spec, ds) if instructions != "default" else []
        if pool:  # a task without variants runs its one prompt (results note it): tasks mix in one run
            self.variants = pool[:len(pool) if instructions == "all" else int(instructions)]
        self.image_fields = doc.images if isinstance(doc.images, list) else [doc.images] if doc.images else []
        media_fields = [("images", f) for f in self.image_fields] + [("video", doc.video), ("frames", doc.frames)]
        columns = list(dict.fromkeys(ds.column_names + (join.ds.column_names if join else [])))  # a joined row's too
        named = [(f"doc.{key}", f, columns) for key, f in media_fields] + \
            [("doc.explode", f, columns) for f in doc.explode or []] + \
            ([("dataset.join.field", join.field, ds.column_names)] if join else [])
        for key, field, have in named:  # read lazily, per sample: a wrong name would fail every sample
            if field and not is_template(field) and field.split(".")[0] not in have:
                raise SampleError(f"task {spec.task}: no field {field.split('.')[0]!r} ({key}; columns: "
                                  f"{', '.join(have)})")
        media_cols = {f.split(".")[0] for _, f in media_fields if f}
        self.text = ds.select_columns([c for c in ds.column_names if c not in media_cols])
        self.roots = tuple(media_roots) if media_roots else None
        self.data_dir = media_roots[0] if media_roots else None

    def sub(self, item: int | None, k: int) -> int:
        """A sample's place within its row (the low 32 bits of its place)."""
        sub = (item or 0) * len(self.variants) + k
        if sub >= 1 << 32:
            raise SampleError(f"task {self.spec.task}: a row gives more than 2**32 samples")
        return sub

    def fetch(self, places: array, positions: Sequence[int]) -> list[Sample]:
        """The samples at these positions, their rows read in one go."""
        wanted = [places[p] for p in positions]
        numbers = sorted({place >> 32 for place in wanted})
        columns = self.text[numbers] if numbers and self.text.column_names else {}
        own = dict(zip(numbers, (dict(zip(columns, values)) for values in zip(*columns.values())))) \
            if columns else {n: {} for n in numbers}
        out = []
        for place in wanted:
            i = place >> 32
            item, k = divmod(place & 0xFFFFFFFF, len(self.variants))
            row, it, j, unusable = next(x for x in _row_items(own[i], self.join, self.spec.doc.explode)
                                        if (x[1] or 0) == item)
            out.append(self.sample(self.fields(i, row, it, j, unusable), k))
        return out

    def lazy(self, i: int, j: int | None, field: str, kind: str, root: Path | None, optional: bool = False
             ) -> LazyField:
        """Row i's media field; from joined row j when only the joined table has its column."""
        join, links = self.join, bool(self.spec.doc.follow_links)
        if join is not None and j is not None and not is_template(field) \
                and field.split(".")[0] not in self.ds.column_names:
            own = join.video_root if kind == "video" else join.roots[0] if join.roots else None
            return LazyField(join.ds, j, field, own, join.roots, kind, links, optional)
        return LazyField(self.ds, i, field, root, self.roots, kind, links, optional)

    def fields(self, i: int, row: dict[str, Any], item: int | None, j: int | None,
               unusable: tuple[str, str] | None) -> _Fields:
        spec, doc = self.spec, self.spec.doc
        problems: list[str] = []  # fields of this row that are not text: the row fails, counted
        try:
            if doc.literal_fields:
                row = with_literals(row, doc.literal_fields, problems)
            choices = noted(problems, "choices", str(doc.choices), choice_value(row, doc.choices),
                            choice_texts, None) \
                if doc.choices else None
            base_id = required(text_or_field(row, doc.id, choices)) if doc.id else str(i)
            references = noted(problems, "references", doc.references,  # none on a submission task
                               text_or_field(row, doc.references, choices), text_list, []) \
                if doc.references is not None else []
            lang = noted(problems, "lang", doc.lang, get_field(row, doc.lang), required, spec.language) \
                if doc.lang else spec.language
            cluster = noted(problems, "cluster", doc.cluster, text_or_field(row, doc.cluster, choices), as_text,
                            None) if doc.cluster else None  # a null cluster: the row is a cluster of its own
            category = noted(problems, "category", doc.category, text_or_field(row, doc.category, choices),
                             as_text, None) if doc.category else None
        except KeyError as e:
            raise SampleError(f"task {spec.task}: row {i}: no field {e.args[0]!r} "
                              f"(columns: {', '.join(self.ds.column_names)})") from None
        except NotText as e:  # a sample without a usable id cannot be recorded, resumed or scored
            raise SampleError(f"task {spec.task}: row {i}: doc.id ({doc.id}) {e}; ids must be text or "
                              "numbers") from None
        optional = isinstance(doc.images, list)  # several image fields: nulls are images a row lacks
        media = [Media("image", self.lazy(i, j, f, "image", self.data_dir, optional)) for f in self.image_fields]
        if doc.frames:
            media.append(Media("frames", self.lazy(i, j, doc.frames, "frames", self.data_dir)))
        if doc.video:
            media.append(Media("video", self.lazy(i, j, doc.video, "video", self.media_root)))
        failure = None
        if unusable:  # no joined row, or lists doc.explode cannot pair up
            failure = SampleFailure(stage="data", type=unusable[0], message=f"row {i} (id {base_id!r}): "
                                    + unusable[1])
        elif problems:
            failure = SampleFailure(stage="data", type="NotText", message=f"row {i} (id {base_id!r}): "
                                    + "; ".join(problems))
        elif doc.references is not None and not any(r.strip() for r in references):
            failure = SampleFailure(stage="data", type="MissingReferences", message=f"row {i} (id {base_id!r}) "
                                    f"has no references (doc.references: {doc.references})")
        return _Fields(row, i, item, base_id, references, choices, lang, cluster, category, media, failure)

    def sample(self, f: _Fields, k: int) -> Sample:
        """Instruction variant k of the row's sample (the row's own prompt when the task has none)."""
        doc, text = self.spec.doc, self.variants[k]
        ctx = dict(f.row) if text is None else {**f.row, _instruction_key(doc.instruction): text}
        failure = f.failure
        try:
            prompt = render(doc.prompt, ctx, choices=f.choices)
        except TemplateLimitError as e:  # this row's expansion: one failed sample, not the task
            prompt, failure = "", SampleFailure(stage="data", type=type(e).__name__,
                                                message=f"prompt of row {f.index} (id {f.base_id!r}): {e.args[0]}")
        except KeyError as e:
            raise SampleError(f"task {self.spec.task}: row {f.index}: prompt template: {e.args[0]}") from None
        return Sample(id=f.base_id if text is None else variant_id(f.base_id, k), task=self.spec.task,
                      prompt=prompt, references=f.references, media=f.media, choices=f.choices, lang=f.lang,
                      instruction=None if text is None else k, cluster=f.cluster, category=f.category,
                      image_markers=doc.image_markers, failure=failure,
                      metadata={"row": f.index} if f.item is None else {"row": f.index, "item": f.item})


def table_rows(ds: datasets.Dataset, batch: int = 1024) -> Iterator[dict[str, Any]]:
    """Each row as a dict, formatted a batch at a time: datasets formats (and decodes) a row
    at a time 15 times slower, which was most of a task's loading time."""
    if not ds.column_names:  # no text column: the rows are still there
        yield from ({} for _ in range(len(ds)))
        return
    for columns in ds.iter(batch_size=batch):
        names = list(columns)
        yield from (dict(zip(names, values)) for values in zip(*columns.values()))


def _row_items(own: dict[str, Any], join: JoinedTable | None, explode: list[str] | None
               ) -> Iterator[tuple[dict[str, Any], int | None, int | None, tuple[str, str] | None]]:
    """A row as its samples read it: (the row with the joined row's columns (its own win), item index
    of doc.explode, joined row, why the row cannot be used: (failure type, message)), once per item.
    A row whose lists differ in length gives one failed sample, its lists' fields null, item 0."""
    j, why = join.match(own) if join is not None else (None, None)
    row = own if join is None else {**join.columns(j), **own}
    bad = ("NoJoinMatch", why) if why else None
    if not explode:
        yield row, None, j, bad
        return
    lists = {f: row[f] for f in explode}
    sizes = {f: len(v) if isinstance(v, (list, tuple)) else None for f, v in lists.items()}
    if None in sizes.values() or len(set(sizes.values())) > 1:
        told = ", ".join(f"{f}: {'not a list' if n is None else f'{n} items'}" for f, n in sizes.items())
        yield {**row, **dict.fromkeys(explode), EXPLODE_INDEX: 0}, 0, j, \
            bad or ("ExplodeLengths", f"doc.explode needs lists of one length ({told})")
        return
    for k in range(next(iter(sizes.values())) or 0):
        yield {**row, **{f: v[k] for f, v in lists.items()}, EXPLODE_INDEX: k}, k, j, bad


def _instruction_key(field: str | None) -> str:
    return field.split(".")[0] if field else "instruction"


def limit_count(limit: int | float | None, n: int) -> int:
    """How many of a task's n rows a limit keeps (the first ones): a count N >= 1, or a fraction
    0 < x < 1 of the rows, rounded up as lm-eval does; None keeps all."""
    if limit is None:
        return n
    return min(n, math.ceil(n * limit) if limit < 1 else int(limit))
