"""dataset.join: a second table whose matching row lends each task row its columns.

lmms-lab/GQA keeps its questions and its images in two configs (about 32 questions an image).
The joined table stays a table of its own: a task row gets the joined row's text columns when
its samples are built, and a media field that only the joined table has is read from that
table's row, lazily (samples.LazyField), so each image is stored once, not once per question.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from ..errors import DataError, NotText
from ..tasks.schema import JoinSpec
from .fields import as_text, get_field


@dataclass(frozen=True)
class JoinedTable:
    """A loaded dataset.join: the table, its text columns, and which row holds each key."""

    ds: datasets.Dataset  # the joined table; its media columns are read from here, per sample
    text: datasets.Dataset  # its columns that are not media, merged into each matched row
    field: str  # field of the task's rows
    key: str  # column of `ds`
    rows: dict[str, int]  # key (as text, as ids are) -> its row in ds
    roots: tuple[Path, ...] | None = None  # folders its local media may come from, its own folder first
    video_root: Path | None = None  # relative video paths of this table start here

    def match(self, row: dict[str, Any]) -> tuple[int | None, str | None]:
        """The joined row for a task row, or None and why there is none (that sample fails, counted).
        A task row without that field at all is a KeyError: the task is wrong, not the row."""
        try:
            value = as_text(get_field(row, self.field))
        except NotText as e:
            return None, f"join.field ({self.field}) {e}"
        if value is None:
            return None, f"join.field ({self.field}) is null"
        j = self.rows.get(value)
        return (j, None) if j is not None else (None, f"no row of the joined table has {self.key} {value!r} "
                                                      f"(join.field: {self.field})")

    def columns(self, j: int | None) -> dict[str, Any]:
        """Row j's text columns; without a match, each is null (as a left join gives)."""
        return dict(self.text[j]) if j is not None else dict.fromkeys(self.text.column_names)


def index_join(ds: datasets.Dataset, spec: JoinSpec, media_cols: set[str], where: str,
               roots: tuple[Path, ...] | None = None, video_root: Path | None = None) -> JoinedTable:
    """The joined table with each key's row. A key held by two rows is a DataError (which row would a
    question take?); a null key matches nothing."""
    if spec.key not in ds.column_names:
        raise DataError(f"{where}: no column {spec.key!r} (join.key; columns: {', '.join(ds.column_names)})")
    rows: dict[str, int] = {}
    for j, value in enumerate(ds.select_columns([spec.key])[spec.key]):
        try:
            text = as_text(value)
        except NotText as e:
            raise DataError(f"{where}: row {j}: join.key ({spec.key}) {e}; keys must be text or numbers") from None
        if text is None:
            continue
        if text in rows:
            raise DataError(f"{where}: rows {rows[text]} and {j} have the same {spec.key} {text!r}; the joined "
                            "table's join.key must be unique")
        rows[text] = j
    text_cols = [c for c in ds.column_names if c not in media_cols]
    return JoinedTable(ds, ds.select_columns(text_cols), spec.field, spec.key, rows, roots, video_root)
