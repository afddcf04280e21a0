"""The lines of the files a run writes a sample at a time: predictions/<task>.jsonl (`PredictionLine`,
with the scores a worker made, `Scored`) and samples/<task>.jsonl (`SampleRecord`). The rest of the
run record, and what these lines share with it (`Record`, `SampleFailure`), is record.py."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from .record import MAX_PREDICTION_CHARS, Record, SampleFailure, Text


class Scored(Record):
    """A prediction's per-sample scores, made where its batch was generated (scoring/prescore.py)."""

    by: str = Field(description="What they were computed under: a hash of the task's metrics, filters and "
                                "language and of the m3eval version. Scoring in the run uses them when it "
                                "matches; `m3eval score` computes again.")
    extracted: str | None = Field(description="The answer after the task's filters; null when extraction failed.")
    scores: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(description="Each metric's score.")


class PredictionLine(Record):
    """One line of predictions/<task>.jsonl as read back (types.Prediction is what it becomes):
    checked so that a damaged line is an error naming the file and line, never a wrong score."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)  # lines of later versions load

    id: str | int = Field(description="The sample id.")
    prediction: str = Field(max_length=MAX_PREDICTION_CHARS, description="The model's raw answer.")
    prompt: str = Field(default="", description="The prompt text the model received.")
    references: list[str] = Field(default_factory=list, description="The reference answers.")
    choices: list[str] | None = Field(default=None, description="Options of a multiple-choice sample.")
    lang: str = Field(default="en", description="The sample's language.")
    instruction: int | None = Field(default=None, description="Index of the instruction variant, if any.")
    cluster: str | None = Field(default=None, description="doc.cluster's value, when the task declares one.")
    category: str | None = Field(default=None, description="doc.category's value, when the task declares one.")
    error: SampleFailure | str | None = Field(default=None, description="Why the sample failed (the one-line "
                                                                        "text in files written before failures "
                                                                        "were typed).")
    seconds: float = Field(default=0.0, description="This sample's share of its batch's generate() time.")
    media_info: dict[str, Any] = Field(default_factory=dict, description="Frames sampled, image size, ...")
    scored: Scored | None = Field(default=None, description="Per-sample scores, when every metric of the task "
                                                            "is independent (null otherwise).")


class SampleRecord(Record):
    """One line of samples/<task>.jsonl: a scored sample, as the page shows it."""

    id: str = Field(description="The sample id (with `#i<k>` for instruction variant k).")
    prompt: str = Field(description="The prompt text the model received.")
    prediction: str = Field(description="The model's raw answer.")
    extracted: Any = Field(description="The answer after the task's filters; null when extraction failed.")
    references: list[str] = Field(description="The reference answers.")
    choices: list[str] | None = Field(default=None, description="Options of a multiple-choice sample.")
    lang: str = Field(default="en", description="The sample's language (tokenization follows it).")
    instruction: int | None = Field(default=None, description="Index of the instruction variant, if any.")
    cluster: str = Field(description="The key the bootstrap resampled this sample under.")
    category: str | None = Field(default=None, description="doc.category's value (a subtask, a dimension), if any.")
    error: Text | None = Field(default=None, description="Why the sample failed (scored 0), or null.")
    scores: dict[str, float | None] = Field(description="Per-sample score of each metric (sentence-level "
                                                        "for corpus metrics, for browsing).")
    media: list[str] = Field(default_factory=list, description="Thumbnails, relative to the run folder.")
    details: dict[str, dict[str, Any]] | None = Field(default=None, description="What a metric recorded of "
                                                      "this sample, by metric (MMMU's random pick).")
