"""results/reference/*.json: scores a paper reported, shown beside runs on the page and never
measured here. Not a file a run folder holds, so apart from record.py, on the same base model."""
from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from .record import MetricEntry, Record

REFERENCE_FORMAT: Final = "m3eval.reference/1"


class ReferenceTask(Record):
    """A task's scores as a paper reported them."""

    metrics: dict[str, MetricEntry] = Field(description="Reported metrics (value and scale).")


class ReferenceFile(Record):
    """results/reference/*.json: scores reported in a paper, shown beside runs, never measured here."""

    format: Literal["m3eval.reference/1"] = Field(description="The file format and its version.")
    model: str = Field(description="The model the paper reports.")
    source: str = Field(default="", description="Where the numbers come from (paper, table).")
    reported: bool = Field(default=True, description="Always true: these are reported, not measured.")
    tasks: dict[str, ReferenceTask] = Field(description="Reported scores per task.")
