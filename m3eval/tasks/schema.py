"""The task and group schema. See docs/TASKS.md for the user-facing description.

Pydantic with extra="forbid": an unknown key is an error, never ignored.
YAML never names code: filters and metrics are names looked up in registries.
"""
from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .encoder_schema import EncoderSpec, TaskType, check_encoder_task


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Strict):
    path: str  # hub id, or a local parquet/jsonl/json/csv/arrow file or save_to_disk folder (relative to the YAML)
    name: str | None = None  # hub config
    split: str = "test"
    revision: str | None = None
    # m3it / m3it80: the raw files of the MMInstruction/M3IT(-80) repos (their loading scripts
    # do not run under datasets>=4), read by m3eval/data/m3it.py
    format: Literal["auto", "hub", "parquet", "json", "jsonl", "csv", "arrow", "disk", "m3it", "m3it80"] = "auto"
    data_files: str | list[str] | dict[str, str | list[str]] | None = None


class JoinSpec(TableSpec):
    """A second table (m3eval/data/join.py): each task row takes the columns of the one row here whose
    `key` equals the task row's `field` (lmms-lab/GQA keeps questions and images in two configs, joined
    by imageId == id; the name is not `on`, which YAML reads as true). The row's own columns win a name
    clash. Its media are read from this table, lazily: an image shared by 30 questions is stored once.
    A row with no match fails, counted; a key held by two rows here is a DataError."""

    field: str  # field of the task's rows (a dotted path) whose value is looked up...
    key: str  # ...in this column of this table

    @model_validator(mode="after")
    def _plain_table(self) -> "JoinSpec":
        if self.format in ("m3it", "m3it80"):
            raise ValueError("join: an M3IT repo cannot be joined")
        if not self.key or "." in self.key:
            raise ValueError(f"join.key {self.key!r}: name a column of the joined table")
        return self

    def table(self) -> "DatasetSpec":
        return DatasetSpec(**self.model_dump(exclude={"field", "key"}))


class DatasetSpec(TableSpec):
    join: JoinSpec | None = None  # a second table each row takes columns from (see JoinSpec)


class DocSpec(_Strict):
    """How a dataset row becomes a sample.

    `prompt` is a Jinja2 template over the row's fields. `id`, `references`,
    `images`, `video`, `frames`, `choices`, `lang`, `instruction` and `cluster`
    name a field (dotted paths map over lists: `answers.answer`); `id`, `references`,
    `video` and `cluster` may instead be templates (anything containing `{{`), e.g.
    `video: "{{ video_id }}.mp4"`.

    Several images (MMMU's image_1..image_7): `images` may be a list of fields, read in order;
    a null among them is no image (a row with two images leaves image_3..image_7 null). With
    `image_markers` (e.g. "<image {k}>"), image k (k from 1: the k-th image of `images`, nulls
    keeping their numbers) takes the place of its first marker in the prompt, so the message
    interleaves text and images; a marker naming no image stays text, and images no marker
    names go before the text, as without markers. `literal_fields` names fields whose text is
    a Python literal (MMMU's options "['a', 'b']"): parsed with ast.literal_eval (never eval)
    before any other key reads the row; a value that is not one fails its row, counted.
    """

    prompt: str
    references: str | None = None  # required, except on a submission task (its answers are withheld)
    id: str | None = None  # default: the row's index
    images: str | list[str] | None = None  # one image or a list of images; or a list of image fields
    image_markers: str | None = None  # images go at these markers in the prompt, e.g. "<image {k}>"
    literal_fields: list[str] | None = None  # fields holding a Python literal as text, parsed first
    video: str | None = None  # a path to a video file (relative to video_root)
    frames: str | None = None  # a list of already-extracted frames (e.g. M3IT's 8 base64 frames)
    video_root: str | None = None  # folder video paths are relative to (relative to the YAML);
    # default: the local data file's folder, else the YAML's folder
    media_root: str | None = None  # one more folder local image/video paths may come from (relative to
    # the YAML; "/" allows any); by default only the data's folder and video_root are read
    follow_links: bool | None = None  # true: a symbolic link in those folders may point anywhere (default: no)
    # a field holding the list of options, or one field (or template) per option (MMBench's A..D columns);
    # an option that is null, or whose template prints nothing, is absent (only trailing ones may be)
    choices: str | list[str] | None = None
    lang: str | None = None  # per-row language field; default: the task's language
    instruction: str | None = None  # field holding the row's instruction (M3IT), for --instructions
    # rows where this field is truthy are not evaluated, and counted in results as `excluded`
    # (e.g. A-OKVQA's official DA evaluation drops `difficult_direct_answer` questions)
    exclude_if: str | None = None
    # cluster key (field or template, e.g. the video's id): samples sharing it are resampled together
    # by the bootstrap; default: the sample id without its `#i<k>` instruction suffix
    cluster: str | None = None
    # parallel list fields (e.g. [questions, answers]): each row becomes one sample per list position, each
    # field replaced by its item; templates also see `explode_index` (0, 1, ...), which doc.id must use.
    # Lists of unequal length (or a value that is no list): that row fails, counted; empty lists: no sample
    explode: list[str] | None = None
    # a sample's category (MME's subtask, SEED-Bench's dimension, MMMU's subject): field or template;
    # results score each category apart (TaskSpec.category_metrics)
    category: str | None = None

    @model_validator(mode="after")
    def _images(self) -> "DocSpec":
        if isinstance(self.images, list) and (not self.images or not all(self.images)):
            raise ValueError("doc.images: name at least one field, none empty")
        if self.image_markers is not None:
            if self.image_markers.count("{k}") != 1 or self.image_markers == "{k}":
                raise ValueError(f"doc.image_markers {self.image_markers!r}: write the marker with one {{k}} "
                                 "(the image's number) and some text around it, e.g. \"<image {k}>\"")
            if not self.images:
                raise ValueError("doc.image_markers: set doc.images, the images the markers place")
        return self

    @field_validator("explode")
    @classmethod
    def _columns(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or len(set(v)) != len(v) or any(not f or "." in f for f in v)):
            raise ValueError("doc.explode: name one or more distinct columns of the table (no dotted paths)")
        return v


class VideoSpec(_Strict):
    frames: int | None = Field(8, ge=1)  # uniform sampling of N frames
    fps: float | None = Field(None, gt=0)  # or sampling at this rate...
    max_frames: int | None = Field(32, ge=1)  # ...capped at this many


class GenerationSpec(_Strict):
    max_new_tokens: int = Field(32, ge=1)
    do_sample: bool = False
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    num_beams: int = Field(1, ge=1)
    stop: list[str] = []


class SubmissionSpec(_Strict):
    """A split whose answers are withheld (VQAv2 test-dev, DocVQA test): the run writes the file an
    evaluation server takes instead of a score. Its question ids are the sample ids (doc.id)."""

    format: str  # a registered submission format (m3eval/scoring/submission.py: vqav2, vizwiz, docvqa)


class StepSpec(_Strict):
    """A named filter or metric with its arguments."""

    name: str
    args: dict[str, Any] = {}


# added after tasks were first hashed: left out of the hash while unset (None)
_ADDED_DOC_FIELDS = ("cluster", "exclude_if", "media_root", "follow_links", "category", "image_markers",
                     "literal_fields", "explode")


class TaskSpec(_Strict):
    task: str
    version: int = 1
    description: str = ""
    category: str = "other"  # knowledge_vqa | video | chinese | multilingual | demo | ...
    protocol: str = "official"  # paper (M3IT's ROUGE-L) | official (the benchmark's own metric) | demo
    language: str = "en"
    dataset: DatasetSpec
    doc: DocSpec
    instructions: list[str] | None = None  # instruction variants; default: distinct values of doc.instruction
    video: VideoSpec = VideoSpec()
    generation: GenerationSpec = GenerationSpec()
    filters: list[StepSpec] = []
    metrics: list[StepSpec] = []  # at least one, except on a submission task (none)
    primary_metric: str | None = None  # default: the first metric
    # with doc.category: the metrics scored on each category apart (default: the primary metric)
    category_metrics: list[str] | None = None
    submission: SubmissionSpec | None = None  # answers withheld: write the server's file, never a score
    consistency_with: str | None = None  # a task over the same items in another language
    type: TaskType = "generate"  # or an encoder task type (m3eval/run/encode.py)
    encoder: EncoderSpec | None = None  # see tasks/encoder_schema.py
    source: str = Field("", exclude=True)  # the YAML file, for messages; not part of the hash

    @field_validator("task")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or any(c in v for c in " /\\,."):
            raise ValueError("a task name must be non-empty, without spaces, commas, dots or slashes")
        return name_checked(v)

    @model_validator(mode="after")
    def _primary_is_a_metric(self) -> "TaskSpec":
        names = [m.name for m in self.metrics]
        if self.primary_metric is not None and self.primary_metric not in names:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not one of the metrics {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"a metric is named twice in {names}")
        if self.category_metrics is not None:
            if self.doc.category is None:
                raise ValueError("category_metrics: set doc.category, the field each sample's category is read from")
            unknown = [m for m in self.category_metrics if m not in names]
            if unknown:
                raise ValueError(f"category_metrics {unknown} are not among the metrics {names}")
        check_encoder_task(self.type, self.encoder)
        if self.submission is not None:
            _check_submission_task(self)
        elif not self.metrics:
            raise ValueError("metrics: name at least one metric (only a task with `submission:` has none)")
        elif self.doc.references is None:
            raise ValueError("doc.references: name the field of the reference answers (only a task with "
                             "`submission:` has none)")
        return self

    @property
    def primary(self) -> str:
        return self.primary_metric or self.metrics[0].name

    def stable_dump(self, include: set[str] | None = None) -> dict[str, Any]:
        """The definition as JSON data for hashing: fields added since the first task files
        are left out while unset, so a task that does not use them keeps the hash (and the
        resume key) it had before they existed."""
        d = self.model_dump(mode="json", include=include)
        doc = d.get("doc") or {}
        for key in _ADDED_DOC_FIELDS:
            if key in doc and doc[key] is None:
                del doc[key]
        if (d.get("dataset") or {}).get("join", 0) is None:  # joins came later too
            del d["dataset"]["join"]
        if d.get("submission") is None:  # submission tasks came later too
            d.pop("submission", None)
        if d.get("category_metrics") is None:  # as did categories
            d.pop("category_metrics", None)
        if d.get("type") == "generate" and d.get("encoder") is None:  # the task types came later too
            d.pop("type", None)
            d.pop("encoder", None)
        return d

    def content_hash(self) -> str:
        """sha256 of the resolved definition; a change in any field changes it."""
        canon = json.dumps(self.stable_dump(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()

    def generation_key(self) -> str:
        """What predictions depend on (data, prompt, media rule, generation): the resume key. A
        change to metrics or filters alone keeps the predictions valid: re-score instead."""
        parts = self.stable_dump(include={"dataset", "doc", "instructions", "video", "generation"})
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _check_submission_task(spec: TaskSpec) -> None:
    """A submission task scores nothing, so it names no metric and no reference field (a YAML that
    includes its val task's file sets `metrics: []`, `primary_metric: null`, `doc.references: null`):
    refused rather than ignored, so no one reads a metric in the file and expects a number. The
    server needs each question once, under its own id: one prompt per row, doc.id set."""
    if spec.metrics or spec.primary_metric is not None:
        raise ValueError("a submission task has no metrics (its answers are withheld): set `metrics: []` "
                         "and `primary_metric: null`")
    if spec.doc.references is not None:
        raise ValueError("a submission task has no references: set `doc.references: null`")
    if spec.type != "generate":
        raise ValueError(f"submission: only a generate task writes a submission file, not type {spec.type!r}")
    if not spec.doc.id:
        raise ValueError("submission: doc.id must name the question id field the server expects")
    if spec.instructions or spec.doc.instruction:
        raise ValueError("submission: the server takes one answer per question; a submission task has no "
                         "instruction variants")


def apply_gen_kwargs(spec: TaskSpec, gen_kwargs: dict[str, Any]) -> TaskSpec:
    """The task with its generation settings overridden by `gen_kwargs` (GenerationSpec fields,
    e.g. from `--gen_kwargs`), validated; its hash and resume key change with them."""
    if not gen_kwargs:
        return spec
    generation = GenerationSpec(**{**spec.generation.model_dump(), **gen_kwargs})
    return spec.model_copy(update={"generation": generation})


def name_checked(name: str) -> str:
    """A task or group name names files (predictions/<task>.rank<k>.jsonl) and is printed on output
    lines: it must fit a file name and hold no control or bidirectional-formatting character."""
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"a name may have at most {MAX_NAME_BYTES} bytes (it names the task's files), "
                         f"got {len(name.encode())}")
    bad = next((c for c in name if unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise ValueError(f"a name may not hold control or formatting characters (found U+{ord(bad):04X})")
    return name


MAX_NAME_BYTES = 200  # with ".rank<k>.jsonl" and the run folder, well inside a file name's 255 bytes


class GroupSpec(_Strict):
    group: str
    tasks: list[str] = Field(min_length=1)  # tasks or groups
    description: str = ""
    category: str | None = None
    # how members combine (docs/TASKS.md, Groups): macro = unweighted mean, micro = weighted by samples
    aggregate: Literal["macro", "micro"] = "macro"
    # "scale": allow members with different primary metrics, each divided by its scale; "none": refuse
    normalize: Literal["none", "scale"] = "none"
    source: str = Field("", exclude=True)

    @field_validator("group")
    @classmethod
    def _name(cls, v: str) -> str:
        return name_checked(v)
