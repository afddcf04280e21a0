"""Dataset rows -> Samples, as a task's `doc:` section says.

Text fields are read for every row (cheap); media columns are never read here:
a Sample carries `LazyField` references that the runner resolves batch by batch.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import datasets

from ..errors import NotText, SampleError, TemplateLimitError
from ..prompts import is_template, render
from ..record import SampleFailure
from ..tasks.schema import TaskSpec
from ..types import Media, Sample, variant_id
from .media_paths import resolve_media

if TYPE_CHECKING:
    from .join import JoinedTable

SHARED_CHARS = 32  # texts up to this long are shared between samples (answers, options), longer ones rarely repeat
EXPLODE_INDEX = "explode_index"  # doc.explode: the item's place in its row's lists, for templates (doc.id)


@dataclass(slots=True)  # slots: one per media field of every sample
class LazyField:
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
                  media_root: Path | None = None, media_roots: list[Path] | None = None,
                  join: JoinedTable | None = None) -> tuple[list[Sample], int]:
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
    every other key read the row so made; n_excluded counts those rows."""
    samples: list[Sample] = []
    doc = spec.doc
    variants: Sequence[str | None] = [None]
    pool = instruction_set(spec, ds) if instructions != "default" else []
    if pool:  # a task without variants runs its one prompt (results note it): tasks mix in one run
        k = len(pool) if instructions == "all" else int(instructions)
        variants = pool[:k]
    image_fields = doc.images if isinstance(doc.images, list) else [doc.images] if doc.images else []
    media_fields = [("images", f) for f in image_fields] + [("video", doc.video), ("frames", doc.frames)]
    columns = list(dict.fromkeys(ds.column_names + (join.ds.column_names if join else [])))  # a joined row's too
    named = [(f"doc.{key}", f, columns) for key, f in media_fields] + \
        [("doc.explode", f, columns) for f in doc.explode or []] + \
        ([("dataset.join.field", join.field, ds.column_names)] if join else [])
    for key, field, have in named:  # read lazily, per sample: a wrong name would fail every sample
        if field and not is_template(field) and field.split(".")[0] not in have:
            raise SampleError(f"task {spec.task}: no field {field.split('.')[0]!r} ({key}; columns: "
                              f"{', '.join(have)})")
    media_cols = {f.split(".")[0] for _, f in media_fields if f}
    text_cols = [c for c in ds.column_names if c not in media_cols]
    seen: dict[str, int] = {}
    n_excluded = 0
    roots = tuple(media_roots) if media_roots else None
    data_dir = media_roots[0] if media_roots else None
    links = bool(doc.follow_links)
    shared: dict[str, str] = {}  # one object per distinct short text: VQA's answers repeat (issue 24: memory)

    def share(text: str) -> str:
        return shared.setdefault(text, text) if len(text) <= SHARED_CHARS else text

    def lazy(i: int, j: int | None, field: str, kind: str, root: Path | None, optional: bool = False) -> LazyField:
        """Row i's media field; from joined row j when only the joined table has its column."""
        if join is not None and j is not None and not is_template(field) and field.split(".")[0] not in ds.column_names:
            own = join.video_root if kind == "video" else join.roots[0] if join.roots else None
            return LazyField(join.ds, j, field, own, join.roots, kind, links, optional)
        return LazyField(ds, i, field, root, roots, kind, links, optional)

    for i, row, item, j, unusable in _rows(ds.select_columns(text_cols), join, doc.explode):
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
            if doc.literal_fields:
                row = _with_literals(row, doc.literal_fields, problems)
            choices = _text(problems, "choices", str(doc.choices), _choice_value(row, doc.choices),
                            _choice_texts, None) \
                if doc.choices else None
            base_id = _required(_text_or_field(row, doc.id, choices)) if doc.id else str(i)
            references = _text(problems, "references", doc.references,  # none on a submission task
                               _text_or_field(row, doc.references, choices), text_list, []) \
                if doc.references is not None else []
            references, choices = [share(r) for r in references], None if choices is None else list(map(share, choices))
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
            hint = f" (doc.explode: doc.id must use {{{{ {EXPLODE_INDEX} }}}})" if doc.explode else ""
            raise SampleError(f"task {spec.task}: rows {seen[base_id]} and {i} have the same id {base_id!r} "
                              f"(doc.id: {doc.id or 'the row index'}); ids must be unique{hint}")
        seen[base_id] = i
        optional = isinstance(doc.images, list)  # several image fields: nulls are images a row lacks
        media = [Media("image", lazy(i, j, f, "image", data_dir, optional)) for f in image_fields]
        if doc.frames:
            media.append(Media("frames", lazy(i, j, doc.frames, "frames", data_dir)))
        if doc.video:
            media.append(Media("video", lazy(i, j, doc.video, "video", media_root)))
        missing = None
        if unusable:  # no joined row, or lists doc.explode cannot pair up
            missing = SampleFailure(stage="data", type=unusable[0], message=f"row {i} (id {base_id!r}): "
                                    + unusable[1])
        elif problems:
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
                                  prompt=prompt, references=references, media=media, choices=choices,
                                  lang=share(lang),
                                  instruction=None if text is None else k, cluster=cluster, category=category,
                                  image_markers=doc.image_markers, failure=failure,
                                  metadata={"row": i} if item is None else {"row": i, "item": item}))
    return samples, n_excluded


def _rows(rows: Iterable[dict[str, Any]], join: JoinedTable | None, explode: list[str] | None
          ) -> Iterator[tuple[int, dict[str, Any], int | None, int | None, tuple[str, str] | None]]:
    """Each row as its samples read it: (row index, the row with the joined row's columns (its own win),
    item index of doc.explode, joined row, why the row cannot be used: (failure type, message)).
    A row whose lists differ in length gives one failed sample, its lists' fields null, item 0."""
    for i, own in enumerate(rows):
        j, why = join.match(own) if join is not None else (None, None)
        row = own if join is None else {**join.columns(j), **own}
        bad = ("NoJoinMatch", why) if why else None
        if not explode:
            yield i, row, None, j, bad
            continue
        lists = {f: row[f] for f in explode}
        sizes = {f: len(v) if isinstance(v, (list, tuple)) else None for f, v in lists.items()}
        if None in sizes.values() or len(set(sizes.values())) > 1:
            told = ", ".join(f"{f}: {'not a list' if n is None else f'{n} items'}" for f, n in sizes.items())
            yield i, {**row, **dict.fromkeys(explode), EXPLODE_INDEX: 0}, 0, j, \
                bad or ("ExplodeLengths", f"doc.explode needs lists of one length ({told})")
            continue
        for k in range(next(iter(sizes.values())) or 0):
            yield i, {**row, **{f: v[k] for f, v in lists.items()}, EXPLODE_INDEX: k}, k, j, bad


def _text(problems: list[str], key: str, field: str, value: Any, convert: Callable[[Any], Any], default: Any) -> Any:
    """convert(value); a value that is not text notes the problem (the row fails) and gives default."""
    try:
        return convert(value)
    except NotText as e:
        problems.append(f"doc.{key} ({field}) {e}")
        return default


def _choice_texts(value: Any) -> list[str]:
    return text_list(value, keep_places=True)


def _choice_value(row: dict[str, Any], spec: str | list[str]) -> Any:
    """doc.choices: a field holding the options, or one field or template per option (MMBench's A..D
    columns), where a template printing nothing (a missing option) counts as null."""
    if isinstance(spec, str):
        return get_field(row, spec)
    values = [_text_or_field(row, s) for s in spec]
    return [None if is_template(s) and not str(v).strip() else v for s, v in zip(spec, values)]


MAX_LITERAL_CHARS = 100_000  # ast.literal_eval's own recursion and memory stay small below this


def _with_literals(row: dict[str, Any], fields: list[str], problems: list[str]) -> dict[str, Any]:
    """The row with each of doc.literal_fields parsed from the text of a Python literal (MMMU's options
    "['a', 'b']") by ast.literal_eval, which builds plain data and runs nothing; a value that is not
    text (null, already a list) is kept. One that is no literal notes the problem (the row fails)."""
    out = dict(row)
    for name in fields:
        value = row[name]
        if not isinstance(value, str):
            continue
        try:
            if len(value) > MAX_LITERAL_CHARS:
                raise ValueError(f"longer than {MAX_LITERAL_CHARS:,} characters")
            out[name] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
            problems.append(f"doc.literal_fields ({name}) is not a Python literal: {type(e).__name__}: {e}")
    return out


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
