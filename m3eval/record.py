"""The run record: typed models of the files a run folder holds (docs/FORMATS.md); the lines of
predictions/ and samples/ files are line_record.py.

Every writer builds these models and every reader (score, compare, export, the page) parses
through them, so a field means one thing everywhere. results.py reads the files into them
(`parse_results`, `field_path` for errors) and writes results.json in one place (`finalize`):
`run`, `score RUN` and `score --predictions` all end in it.

A model is frozen and refuses unknown fields, like the task schema (tasks/schema.py). Fields
a writer leaves out stay out of the file (`exclude_unset`), so optional parts (a video
block, per-language scores) appear only where they apply, and older files load unchanged.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from .public_paths import public_config, public_paths, public_text

RESULTS_FORMAT: Final = "m3eval.results/1"
# A prediction longer than this is refused when read: no backend makes one (max_new_tokens, the
# server reply cap), and scoring a 200 MB answer ran out of memory in exact_match.
MAX_PREDICTION_CHARS: Final = 1 << 20
Number = Annotated[float, Strict()]  # an int or a float; never a numeric string or a bool
# No path of the recording machine in a record, written or read: names only (public_paths.py).
Block = Annotated[dict[str, Any], AfterValidator(public_paths)]
Config = Annotated[dict[str, Any], AfterValidator(public_config)]
Text = Annotated[str, AfterValidator(public_text)]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built at first use: start-up

    def dump(self) -> dict[str, Any]:
        """The JSON object as written: only the fields that were set."""
        return self.model_dump(mode="json", exclude_unset=True)


# ---- per sample ---------------------------------------------------------------------------

Stage = Literal["data", "generate", "external"]


class SampleFailure(Record):
    """Why one sample has no usable prediction. It is scored 0 and counted, never dropped."""

    stage: Stage = Field(description="Where it failed: `data` (its row or media could not be read), "
                                     "`generate` (the model or server failed: retried on resume), "
                                     "`external` (score --predictions: no prediction was given).")
    type: str = Field(description="The exception's class name (e.g. RequestError, MediaError).")
    message: Text = Field(description="What went wrong, for a person (paths reduced to names).")

    def __str__(self) -> str:
        # one line for the samples file and the page (the text failures had before they were typed)
        if self.stage == "external":
            return self.message
        return f"{self.type}: {self.message}" if self.stage == "data" else f"generate: {self.type}: {self.message}"

    @classmethod
    def of(cls, stage: Stage, e: BaseException) -> SampleFailure:
        return cls(stage=stage, type=type(e).__name__, message=str(e))

    @classmethod
    def parse(cls, value: Any) -> SampleFailure | None:
        """From a predictions line: an object, or the string of files written before failures
        were typed ("generate: <Type>: <message>" for a model failure, else a data failure)."""
        if value is None or isinstance(value, SampleFailure):
            return value
        if isinstance(value, dict):
            return cls.model_validate(value)
        text = str(value)
        if text.startswith("generate: "):
            kind, _, message = text[len("generate: "):].partition(": ")
            return cls(stage="generate", type=kind, message=message) if message else \
                cls(stage="generate", type="Exception", message=kind)
        if text == MISSING_PREDICTION.message:
            return MISSING_PREDICTION
        kind, _, message = text.partition(": ")
        if kind.isidentifier() and kind.endswith("Error") and message:
            return cls(stage="data", type=kind, message=message)
        return cls(stage="data", type="DataError", message=text)


# constructed, not validated: validating here would build the model's schema when this module is imported,
# 30 ms of every run's start-up (the values are valid by sight)
MISSING_PREDICTION = SampleFailure.model_construct(stage="external", type="MissingPrediction",
                                                   message="missing prediction")


# ---- run.json -----------------------------------------------------------------------------

class RunIdentity(Record):
    """run.json: what a run folder's predictions were made with. A re-run resumes the folder
    only when these match (run/resume.py)."""

    model: Block = Field(description="backend and public args (no secret; a local path by its name).")
    seed: int = Field(description="The run's seed.")
    instructions: str = Field(description="`default`, `all` or K: which instruction variants ran.")
    max_new_tokens: int | None = Field(default=None, description="The --max-new-tokens override, if any.")
    tasks: dict[str, str] = Field(default_factory=dict, description="Each task's generation key (prompt, doc, "
                                                                    "generation settings).")
    data: dict[str, Block] = Field(default_factory=dict, description="Each task's data fingerprint.")
    model_files: dict[str, str] = Field(default_factory=dict, description="Digests of files named by model "
                                                                          "arguments (a chat template).")
    model_revision: str | None = Field(default=None, description="The loaded weights' revision.")


# ---- results.json -------------------------------------------------------------------------

class MetricEntry(Record):
    """One metric of a task: its value, interval and how they were computed."""

    value: Number = Field(description="The score, on the metric's own scale.")
    ci: tuple[Number, Number] | None = Field(default=None, description="Seeded 95% bootstrap interval "
                                                                     "[low, high], or null.")
    scale: int | float = Field(default=1, description="Full scale: 1 for 0..1 metrics, 100 for BLEU/chrF.")
    higher_is_better: bool = Field(default=True, description="Direction of improvement.")
    kind: str = Field(default="mean", description="`mean` (of per-sample scores) or `corpus` (BLEU, CIDEr).")
    ci_method: str | None = Field(default=None, description="`bca` or `percentile`.")
    signature: str | None = Field(default=None, description="The metric's own signature (sacrebleu's).")
    resamples: int | None = Field(default=None, description="Corpus metrics: re-scorings behind `ci`.")
    args: dict[str, Any] | None = Field(default=None, description="The metric's args from the task YAML, "
                                                                  "so `compare` can re-score the same way.")
    details: dict[str, Any] | None = Field(default=None, description="What the metric counted beside its "
                                                                     "value (unparsed answers, random picks, "
                                                                     "questions excluded).")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"is {v}, not a finite number")
        return v

    @field_validator("ci")
    @classmethod
    def _finite_ci(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(math.isfinite(x) for x in v):
            raise ValueError(f"is {list(v)}, not two finite numbers [low, high]")
        return v

    @field_validator("scale")
    @classmethod
    def _positive(cls, v: int | float) -> int | float:
        if isinstance(v, bool) or not v > 0:
            raise ValueError(f"should be a positive number (1 or 100), got {v!r}")
        return v


class Clusters(Record):
    """What the bootstrap resampled."""

    key: str = Field(description="Where the cluster keys came from (doc.cluster, the base sample id, ...).")
    n: int = Field(description="How many clusters.")


class Instructions(Record):
    """The primary metric per instruction variant (`--instructions all|K`)."""

    n: int = Field(description="Number of instruction variants scored.")
    mode: str | None = Field(default=None, description="Set when the task has no variants (one instruction).")
    metric: str | None = Field(default=None, description="The metric reported per instruction (the primary).")
    per_instruction: list[Number] | None = Field(default=None, description="Its value under each instruction.")
    mean: float | None = Field(default=None, description="Mean over instructions.")
    std: float | None = Field(default=None, description="Population standard deviation over instructions.")
    min: float | None = Field(default=None, description="Lowest value.")
    max: float | None = Field(default=None, description="Highest value.")


class Invocation(Record):
    """The `m3eval run` call that generated a task's predictions."""

    config: Config = Field(default_factory=dict, description="That call's settings (as run.config).")
    model: Block = Field(default_factory=dict, description="The model as that call recorded it "
                                                           "(backend, id, revision, public args).")
    created: str | None = Field(default=None, description="When it finished (UTC, ISO 8601).")
    git_sha: str | None = Field(default=None, description="m3eval's commit, with -dirty for local changes.")
    versions: dict[str, str | None] = Field(default_factory=dict, description="Versions of the packages "
                                                                              "scores depend on.")
    id: str | None = Field(default=None, description="A digest of the fields above: one id per invocation.")
    data: Block | None = Field(default=None, description="The task's data fingerprint then.")
    inferred: bool | None = Field(default=None, description="True when taken from an older file's run block.")


class CategoryResult(Record):
    """One category of a task (MME's subtask, SEED-Bench's dimension), scored on its samples alone."""

    n_samples: int = Field(description="Samples of the category.")
    metrics: dict[str, MetricEntry] = Field(description="The task's category_metrics on those samples.")


class TaskResult(Record):
    """One task of results.json."""

    hash: str = Field(description="sha256 of the resolved task definition.")
    version: int | str = Field(description="The task's version.")
    category: str | None = Field(default=None, description="The task's category (knowledge_vqa, video, ...).")
    protocol: str | None = Field(default=None, description="`official`, `paper`, or a model family's own.")
    language: str | None = Field(default=None, description="The task's language.")
    description: str | None = Field(default=None, description="One line on the task.")
    dataset: Block | None = Field(default=None, description="The data source (path, name, split, "
                                                                      "revision).")
    references_sha256: str | None = Field(default=None, description="sha256 over the sorted (id, references) "
                                                                    "pairs: the data it was scored against.")
    n_samples: int | None = Field(default=None, description="Samples scored (failures included).")
    n_errors: int | None = Field(default=None, description="Samples that failed (scored 0).")
    n_extraction_failures: int | None = Field(default=None, description="Answers the filters could not "
                                                                        "extract (scored 0).")
    primary_metric: str = Field(description="The metric the task is ranked by.")
    metrics: dict[str, MetricEntry] = Field(description="Every metric of the task.")
    clusters: Clusters | None = Field(default=None, description="What the intervals resampled.")
    n_empty: int | None = Field(default=None, description="Empty answers (scored 0).")
    n_generate_errors: int | None = Field(default=None, description="Samples the model failed on (retried "
                                                                    "by re-running).")
    n_excluded: int | None = Field(default=None, description="Rows doc.exclude_if dropped (null: unknown).")
    excluded_by: str | None = Field(default=None, description="The rule that dropped them.")
    video: dict[str, Any] | None = Field(default=None, description="Frame sampling rule and what it gave.")
    instructions: Instructions | None = Field(default=None, description="Scores per instruction variant.")
    languages: dict[str, dict[str, MetricEntry]] | None = Field(default=None, description="Metrics per "
                                                                                         "language.")
    categories: dict[str, CategoryResult] | None = Field(default=None, description="doc.category: each "
                                                         "category scored apart (category_metrics).")
    unknown_ids: int | None = Field(default=None, description="score --predictions: ids not in the task.")
    missing_ids: int | None = Field(default=None, description="score --predictions: samples with no "
                                                              "prediction.")
    invocation: Invocation | None = Field(default=None, description="The call that generated it.")
    openness: dict[str, Any] | None = Field(default=None, description="Encoder zero-shot: accuracy as the "
                                                                      "number of classes grows, per language.")

    @model_validator(mode="after")
    def _primary_is_a_metric(self) -> TaskResult:
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric is {self.primary_metric!r}, not one of its metrics "
                             f"({', '.join(self.metrics)})")
        return self

    @property
    def primary(self) -> MetricEntry:
        return self.metrics[self.primary_metric]


class SubmissionResult(Record):
    """A submission-only task of results.json (answers withheld): never a score, the file to upload."""

    hash: str = Field(description="sha256 of the resolved task definition.")
    version: int | str = Field(description="The task's version.")
    category: str | None = Field(default=None, description="The task's category.")
    protocol: str | None = Field(default=None, description="`official`, or a model family's own.")
    language: str | None = Field(default=None, description="The task's language.")
    description: str | None = Field(default=None, description="One line on the task.")
    dataset: Block | None = Field(default=None, description="The data source (path, name, split, "
                                                                      "revision).")
    format: str = Field(description="The submission format (m3eval/scoring/submission.py): `vqav2`, "
                                    "`vizwiz`, `docvqa`.")
    server: str = Field(description="Where the file is uploaded.")
    file: str = Field(description="The file, relative to the run folder (submissions/<task>.json).")
    n_samples: int = Field(description="Questions in the file (each once).")
    n_errors: int = Field(description="Samples that failed: in the file with an empty answer (the server "
                                      "needs every question).")
    n_extraction_failures: int = Field(default=0, description="Answers the filters could not extract: "
                                                              "empty in the file.")
    n_generate_errors: int = Field(default=0, description="Samples the model failed on (retried by re-running).")
    invocation: Invocation | None = Field(default=None, description="The call that generated it.")


class GroupResult(Record):
    """A group's one number over its tasks (scoring/groups.py)."""

    tasks: list[str] = Field(description="Its leaf tasks.")
    members: list[str] | None = Field(default=None, description="Its direct tasks or groups.")
    category: str | None = Field(default=None, description="The group's category.")
    aggregate: str | None = Field(default=None, description="`macro` (mean over members) or `micro`.")
    normalize: str | None = Field(default=None, description="`none` or `scale`.")
    scale: int | float | None = Field(default=None, description="The value's full scale (1).")
    n_tasks: int | None = Field(default=None, description="Number of leaf tasks.")
    n_samples: int | None = Field(default=None, description="Samples over its leaf tasks.")
    metric: str | None = Field(default=None, description="The members' primary metric, or `normalized score` "
                                                         "when they differ (`normalize: scale`).")
    normalization: dict[str, str] | None = Field(default=None, description="Mixed metrics: how each member "
                                                 "metric maps to 0..1 (value / scale, clipped when unbounded).")
    value: Number | None = Field(description="The aggregate, or null when it cannot be computed.")
    ci: tuple[Number, Number] | None = Field(default=None, description="Joint cluster bootstrap interval.")
    ci_method: str | None = Field(default=None, description="How `ci` was computed.")
    ci_note: str | None = Field(default=None, description="Why `ci` is null.")
    error: str | None = Field(default=None, description="Why `value` is null.")


class Consistency(Record):
    """Agreement between two tasks over the same items in two languages."""

    tasks: list[str] = Field(description="The two tasks.")
    n: int = Field(description="Shared items.")
    correctness_agreement: float = Field(description="Share right in both or wrong in both.")
    answer_agreement: float | None = Field(default=None, description="Multiple choice: share with the same "
                                                                     "option.")
    langs: list[str | None] = Field(description="The two tasks' languages.")


class InvocationSummary(Record):
    """One invocation of a run folder and the tasks it produced."""

    id: str | None = Field(default=None, description="The invocation's id.")
    created: str | None = Field(default=None, description="When it finished.")
    git_sha: str | None = Field(default=None, description="m3eval's commit.")
    limit: int | float | None = Field(default=None, description="Its --limit.")
    batch_size: int | None = Field(default=None, description="Its --batch-size.")
    tasks: list[str] = Field(default_factory=list, description="The tasks it produced.")


class RunBlock(Record):
    """Who made the run: model, settings, provenance."""

    name: str = Field(description="The run's name (its folder's).")
    model: Block | None = Field(default=None, description="backend, id (a hub id or a local folder's name), "
                                                         "revision, class, dtype, device, public args.")
    config: Config | None = Field(default=None, description="The latest invocation's settings.")
    created: str | None = Field(default=None, description="When the latest invocation finished.")
    git_sha: str | None = Field(default=None, description="m3eval's commit then.")
    versions: dict[str, str | None] | None = Field(default=None, description="Package versions then.")
    failures: list[Text] | None = Field(default=None, description="Tasks or groups that could not be "
                                                                 "run or scored.")
    merged: bool | None = Field(default=None, description="True when the tasks come from several "
                                                          "invocations.")
    invocations: list[InvocationSummary] | None = Field(default=None, description="Each invocation and "
                                                                                  "its tasks.")
    rescored: str | None = Field(default=None, description="When `m3eval score` last re-scored it.")
    rescored_git_sha: str | None = Field(default=None, description="m3eval's commit then.")


class Timings(Record):
    """Where the run's time went (seconds)."""

    load_s: float | None = Field(default=None, description="Loading the model.")
    generate_s: float | None = Field(default=None, description="Generating (ranks side by side: the slowest).")
    score_s: float | None = Field(default=None, description="Scoring (overlapped with generation).")
    total_s: float | None = Field(default=None, description="The whole invocation.")
    samples: int | None = Field(default=None, description="Samples generated by this invocation.")
    samples_per_s: float | None = Field(default=None, description="Throughput outside model loading.")


class Results(Record):
    """results.json: a run's scores, intervals and provenance."""

    format: Literal["m3eval.results/1"] = Field(description="The file format and its version.")
    run: RunBlock = Field(description="The run's identity and provenance.")
    timings: Timings = Field(default_factory=Timings, description="Where the time went.")
    tasks: dict[str, TaskResult] = Field(description="Each task's scores.")
    groups: dict[str, GroupResult] = Field(default_factory=dict, description="Each group's aggregate.")
    consistency: dict[str, Consistency] = Field(default_factory=dict, description="Cross-language agreement.")
    submissions: dict[str, SubmissionResult] = Field(default_factory=dict, description="Submission-only "
                                                     "tasks (answers withheld): the file written, no score.")
