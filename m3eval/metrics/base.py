"""The metric protocol and the one registry every metric is looked up in.

A metric scores a whole task at once (corpus metrics such as BLEU and CIDEr
need the whole corpus) and returns per-sample scores where it can, so the
scorer can bootstrap confidence intervals and `compare` can run paired tests.

Corpus metrics also return `rescore`: the score of a resampled corpus given how
many times each sample is drawn (a numpy int array aligned with the inputs).
The bootstrap calls it instead of re-running the whole metric, so a CI costs
little more than the score itself.

Names starting with "hf:" are HF `evaluate` metrics, loaded on demand (below);
plugins register more through the entry point group `m3eval.metrics` (an entry
point yields a Metric, or a callable returning a list of them). A metric defined
above this package (the LLM judge, in scoring/judge.py: it calls a model) is a
lazy entry here, its module imported when the metric is first looked up or
listed, so metrics/ never imports scoring/.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from m3eval.errors import SampleScoreError
from m3eval.line_record import SampleRecord
from m3eval.plugins import Registry


@dataclass
class MetricInput:
    prediction: str | None  # after the task's filters; None = no answer could be extracted (scores 0)
    references: list[str]
    choices: list[str] | None = None
    lang: str = "en"
    media_info: dict[str, Any] | None = None  # what the runner recorded, e.g. image_size (grounding)
    prompt: str = ""  # the question the model saw (the judge metric shows it to the judge)
    id: str = ""  # the sample id (a metric that draws at random seeds each sample's draw from it)
    cluster: str = ""  # the sample's cluster key (MME's image pair, MMBench's circular shifts of one question)
    category: str | None = None  # doc.category's value (MME's subtask)


OPTIONAL_INPUTS = frozenset({"prompt", "media_info"})  # what a task scored whole drops unless a metric reads it
READS_ANSWERS = frozenset[str]()  # Metric.reads of a metric that reads only the answers, references and keys


def record_input(r: SampleRecord) -> MetricInput:
    """A scored sample's metric input rebuilt from its record (samples/<task>.jsonl), to re-score a
    corpus metric on resampled corpora (group intervals, `compare`) as the task scored it."""
    return MetricInput(r.extracted, list(r.references), r.choices, r.lang or "en", prompt=r.prompt, id=r.id,
                       cluster=r.cluster, category=r.category)


@dataclass
class MetricResult:
    value: float
    per_sample: list[float] | list[float | None] | None  # aligned with the inputs; None where a corpus metric
    # has no per-sample form; an item None: a sample the corpus metric left out (MMBench's incomplete questions)
    signature: str | None = None  # e.g. sacrebleu's signature
    # corpus metrics: rescore(counts) -> score of the corpus where sample i appears counts[i] times
    rescore: Callable[[np.ndarray], float] | None = None
    details: dict[str, Any] | None = None  # what the metric counted beside its value (unparsed answers, guesses)
    sample_details: list[dict[str, Any] | None] | None = None  # per sample, aligned with the inputs (a guess made)


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[..., MetricResult]  # compute(items: list[MetricInput], **args) -> MetricResult
    kind: Literal["mean", "corpus"] = "mean"  # mean: value == mean(per_sample)
    # independent: each sample's score depends on that sample alone; value == mean(per_sample) exactly
    # (`mean` below, math.fsum); details, sample_details, signature and rescore are None; per_sample has
    # no None. A task made only of such metrics can be scored in blocks and the results concatenated.
    # Requires kind "mean". tests/test_metric_independence.py checks the contract for every flagged metric.
    independent: bool = False
    higher_is_better: bool = True
    scale: int = 1  # 1 for 0..1 scores, 100 for 0..100 scores
    resamples: int = 1000  # bootstrap resamples for the CI (corpus metrics: re-scorings, kept small where costly)
    description: str = ""
    source: str = ""  # the official implementation it follows (repo, path, commit), or "m3eval"
    bounds: str = ""  # value range for `m3eval metrics`; default "0-1" / "0-100" from scale
    # an unbounded metric (CIDEr-D): the value / scale at which its normalized score reaches 1, as the
    # board clips it (dashboard/leaderboard.yaml `normalization`); a mixed group averages min(value/scale/clip_max, 1)
    clip_max: float | None = None
    # the MetricInput fields it reads beyond the answer, references, choices, lang, id, cluster and category:
    # a task scored whole keeps only these of every sample (scoring/stream.py). A metric that does not say
    # gets them all: a judge shows the prompt, grounding reads media_info's image size.
    reads: frozenset[str] = frozenset({"prompt", "media_info"})

    def __post_init__(self) -> None:
        if not self.reads <= OPTIONAL_INPUTS:
            raise ValueError(f"metric {self.name!r}: reads {sorted(self.reads)}, expected some of "
                             f"{sorted(OPTIONAL_INPUTS)}")
        if self.independent and self.kind != "mean":
            raise ValueError(f"metric {self.name!r}: independent=True needs kind 'mean' (value == mean of "
                             f"per_sample), got kind {self.kind!r}")


# ---- HF `evaluate` metrics: "hf:<metric>" in task YAML -------------------------------------------
#
#     metrics:
#       - {name: "hf:meteor", args: {key: meteor}}
#
# `evaluate.load` fetches the metric's script from the Hugging Face Hub at load time, so it fails
# offline unless the script is already in the local cache (HF_HOME). Such metrics are scored as a
# corpus with no re-scoring function (no CI) and stored on a 0..1 scale: declare `scale: 100` in
# args for a metric that reports 0..100 (its value is divided by it). Prefer the built-in metrics:
# they are pinned, offline and tested. `evaluate` is imported only when such a metric is computed.

def _load_hf_evaluate(metric: str) -> Any:
    try:
        import evaluate
    except ImportError:
        raise RuntimeError(f"metric 'hf:{metric}' needs the `evaluate` package, which is not installed "
                           f"(pip install evaluate); built-in metrics: see `m3eval.metrics.metric_names()`") from None
    try:
        return evaluate.load(metric)
    except Exception as e:  # evaluate raises several types (ConnectionError, FileNotFoundError, ...)
        raise RuntimeError(
            f"could not load HF evaluate metric {metric!r}: evaluate fetches metric scripts from the "
            f"Hugging Face Hub, which is unreachable here (offline?) and the script is not cached. "
            f"Cause: {type(e).__name__}: {e}") from None


def hf_metric(name: str) -> Metric:
    """A registry entry for "hf:<metric>"; the script is loaded at first compute, not at lookup."""
    metric = name.split(":", 1)[1]
    if not metric:
        raise KeyError(f"metric {name!r}: say which HF evaluate metric, e.g. 'hf:bleu'")

    def compute(items: list[MetricInput], key: str | None = None, scale: int = 1, **kwargs: Any) -> MetricResult:
        module = _load_hf_evaluate(metric)
        out = module.compute(predictions=[it.prediction or "" for it in items],
                             references=[it.references for it in items], **kwargs)
        k = key or (metric if metric in out else next((k for k, v in out.items() if isinstance(v, (int, float))), None))
        if k is None or k not in out:
            raise RuntimeError(f"metric {name!r}: result has keys {sorted(out)}; pick one with args.key")
        return MetricResult(float(out[k]) / scale, None, f"hf-evaluate:{metric}")

    return Metric(name, compute, kind="corpus", resamples=0, reads=READS_ANSWERS,
                  description=f"HF evaluate metric {metric!r} (optional)",
                  source=f"huggingface/evaluate metric {metric!r}", bounds="as the metric defines")


# ---- the registry -----------------------------------------------------------------------------

# Metrics whose module lies above metrics/ (it may import metrics/, never the reverse): name ->
# the module that registers it when imported. Looked up by name, like an entry point.
LAZY_METRICS = {"judge": "m3eval.scoring.judge", "circular_accuracy_judged": "m3eval.scoring.mmbench_judge"}


class _MetricRegistry(Registry[Metric]):
    """The plugin registry, plus the lazy entries of LAZY_METRICS (a lazy metric's module is
    imported the first time the metric is looked up, or when every name is listed) and the
    "hf:<metric>" names, built on lookup and kept apart: the names listed do not depend on
    which lookups came before."""

    def __init__(self, lazy: dict[str, str]):
        super().__init__("metric", "m3eval.metrics", Metric)
        self._lazy = dict(lazy)
        self._hf: dict[str, Metric] = {}

    def _import_lazy(self, names: list[str]) -> None:
        for name in names:
            module = self._lazy.get(name)
            if module is not None:
                importlib.import_module(module)  # registers the metric (register_metric at import)
                del self._lazy[name]

    def get(self, name: str) -> Metric:
        if name.startswith("hf:") and name not in super().names():  # (a plugin may name one)
            if name not in self._hf:
                self._hf[name] = hf_metric(name)
            return self._hf[name]
        self._import_lazy([name])
        try:
            return super().get(name)
        except KeyError:
            if not self._lazy:
                raise
            self._import_lazy(list(self._lazy))  # so the error's "known:" names them too
            return super().get(name)

    def names(self) -> list[str]:
        self._import_lazy(list(self._lazy))
        return super().names()


_REGISTRY: Registry[Metric] = _MetricRegistry(LAZY_METRICS)
register_metric = _REGISTRY.register
get_metric = _REGISTRY.get
metric_names = _REGISTRY.names
all_metrics = _REGISTRY.items  # every registered metric (plugins and lazy ones included), by name


# ---- shared input checks for the plain functions (clear errors, never a silent wrong number) ----

def check_corpus(predictions: Any, references: Any, *, allow_none: bool = False) -> None:
    """predictions: list[str]; references: one list[str] (non-empty) per prediction."""
    if isinstance(predictions, str) or not isinstance(predictions, (list, tuple)):
        raise TypeError(f"predictions must be a list of strings, got {type(predictions).__name__}")
    if isinstance(references, str) or not isinstance(references, (list, tuple)):
        raise TypeError(f"references must be a list (one per prediction) of lists of strings, "
                        f"got {type(references).__name__}")
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length: "
                         f"{len(predictions)} predictions, {len(references)} reference lists")
    if not predictions:
        raise ValueError("no predictions to score (empty list)")
    for i, (p, refs) in enumerate(zip(predictions, references)):
        if not isinstance(p, str) and not (allow_none and p is None):
            raise TypeError(f"prediction at index {i} is {type(p).__name__}, not str")
        if isinstance(refs, str) or not isinstance(refs, (list, tuple)):
            raise TypeError(f"references at index {i} must be a list of strings, got {type(refs).__name__}")
        if not refs:
            raise ValueError(f"references at index {i} are empty")
        for j, r in enumerate(refs):
            if not isinstance(r, str):
                raise TypeError(f"reference {j} at index {i} is {type(r).__name__}, not str")


def per_sample(fn: Callable[[str, list[str]], float], items: list[MetricInput]) -> MetricResult:
    """fn(prediction, references) for each sample, their mean; a sample the metric cannot score
    (TypeError, ValueError) is a SampleScoreError naming it; no prediction (None) scores 0."""
    scores = []
    for i, it in enumerate(items):
        try:
            scores.append(0.0 if it.prediction is None else fn(it.prediction, it.references))
        except (TypeError, ValueError) as e:
            raise SampleScoreError(i, str(e)) from None
    return MetricResult(mean(scores), scores)


def mean(values: list[float]) -> float:
    # math.fsum: exact sum, so the value does not depend on summation order
    import math

    return math.fsum(values) / len(values) if values else 0.0
