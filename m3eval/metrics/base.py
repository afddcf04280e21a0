"""The metric protocol and the one registry every metric is looked up in.

A metric scores a whole task at once (corpus metrics such as BLEU and CIDEr
need the whole corpus) and returns per-sample scores where it can, so the
scorer can bootstrap confidence intervals and `compare` can run paired tests.

Corpus metrics also return `rescore`: the score of a resampled corpus given how
many times each sample is drawn (a numpy int array aligned with the inputs).
The bootstrap calls it instead of re-running the whole metric, so a CI costs
little more than the score itself.

Names starting with "hf:" are HF `evaluate` metrics, loaded on demand
(see hf_evaluate.py); plugins register more through the entry point group
`m3eval.metrics` (an entry point yields a Metric, or a callable returning
a list of them).
"""
from __future__ import annotations

from dataclasses import dataclass
from m3eval.plugins import Registry
from typing import Any, Callable, Literal

import numpy as np


@dataclass
class MetricInput:
    prediction: str | None  # after the task's filters; None = no answer could be extracted (scores 0)
    references: list[str]
    choices: list[str] | None = None
    lang: str = "en"
    media_info: dict[str, Any] | None = None  # what the runner recorded, e.g. image_size (grounding)
    prompt: str = ""  # the question the model saw (the judge metric shows it to the judge)


@dataclass
class MetricResult:
    value: float
    per_sample: list[float] | None  # aligned with the inputs; None where a corpus metric has no per-sample form
    signature: str | None = None  # e.g. sacrebleu's signature
    # corpus metrics: rescore(counts) -> score of the corpus where sample i appears counts[i] times
    rescore: Callable[[np.ndarray], float] | None = None


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[..., MetricResult]  # compute(items: list[MetricInput], **args) -> MetricResult
    kind: Literal["mean", "corpus"] = "mean"  # mean: value == mean(per_sample)
    higher_is_better: bool = True
    scale: int = 1  # 1 for 0..1 scores, 100 for 0..100 scores
    resamples: int = 1000  # bootstrap resamples for the CI (corpus metrics: re-scorings, kept small where costly)
    description: str = ""
    source: str = ""  # the official implementation it follows (repo, path, commit), or "m3eval"
    bounds: str = ""  # value range for `m3eval metrics`; default "0-1" / "0-100" from scale


def _hf_evaluate(name: str) -> Metric | None:
    if not name.startswith("hf:"):
        return None
    from m3eval.metrics.hf_evaluate import hf_metric  # optional source, imported only when named
    return hf_metric(name)


_REGISTRY: Registry[Metric] = Registry("metric", "m3eval.metrics", Metric, fallback=_hf_evaluate)
register_metric = _REGISTRY.register
get_metric = _REGISTRY.get
metric_names = _REGISTRY.names


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


def mean(values: list[float]) -> float:
    # math.fsum: exact sum, so the value does not depend on summation order
    import math

    return math.fsum(values) / len(values) if values else 0.0
