"""A row's fields read as text: the one way a task's keys (doc.id, references, choices, ...) get their values."""
from __future__ import annotations

import ast
import math
from decimal import Decimal
from typing import Any, Callable

from ..errors import NotText
from ..prompts import is_template, render


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


def text_or_field(row: dict[str, Any], spec: str, choices: list[str] | None = None) -> Any:
    return render(spec, row, choices=choices) if is_template(spec) else get_field(row, spec)


def excluded(row: dict[str, Any], spec: str) -> bool:
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


def noted(problems: list[str], key: str, field: str, value: Any, convert: Callable[[Any], Any], default: Any) -> Any:
    """convert(value); a value that is not text notes the problem (the row fails) and gives default."""
    try:
        return convert(value)
    except NotText as e:
        problems.append(f"doc.{key} ({field}) {e}")
        return default


def choice_texts(value: Any) -> list[str]:
    return text_list(value, keep_places=True)


def choice_value(row: dict[str, Any], spec: str | list[str]) -> Any:
    """doc.choices: a field holding the options, or one field or template per option (MMBench's A..D
    columns), where a template printing nothing (a missing option) counts as null."""
    if isinstance(spec, str):
        return get_field(row, spec)
    values = [text_or_field(row, s) for s in spec]
    return [None if is_template(s) and not str(v).strip() else v for s, v in zip(spec, values)]


MAX_LITERAL_CHARS = 100_000  # ast.literal_eval's own recursion and memory stay small below this


def with_literals(row: dict[str, Any], fields: list[str], problems: list[str]) -> dict[str, Any]:
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


def required(value: Any) -> str:
    text = as_text(value)
    if text is None or not text.strip():
        raise NotText("is null or blank")
    return text
