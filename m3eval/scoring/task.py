"""Scoring a task's stored predictions: filters -> metrics -> aggregates with CIs + per-sample records.

Needs no model: `m3eval score` re-runs this on predictions/<task>.jsonl. The output is the
`n_samples` / `n_errors` / `n_extraction_failures` / `primary_metric` / `metrics` part of a task
entry of results.json, and the samples/<task>.jsonl records (without `media`), as in
docs/FORMATS.md.

Rules: a prediction with `error` set, or whose answer the filters cannot extract, stays in the
denominator and scores 0 on every metric (for corpus metrics it enters the corpus as an empty
hypothesis); dropping it would inflate the score. Each sample is tokenized in its own language.
Same inputs and seed -> byte-identical output.

Intervals resample clusters (metrics/stats.py): the task's `doc.cluster` key when it declares
one, else the sample id without its `#i<k>` instruction suffix (the same item under K
instructions is one cluster); the task entry says which key and how many clusters.
"""
from __future__ import annotations

import functools
import typing
from typing import Any, Callable, Iterable, Sequence

from pydantic import TypeAdapter, ValidationError

from m3eval.errors import SampleScoreError
from m3eval.metrics import get_metric  # registers the built-in metrics
from m3eval.metrics.base import Metric, MetricInput, MetricResult
from m3eval.metrics.stats import bootstrap_interval, cluster_labels, corpus_bootstrap_ci
from m3eval.plugins import arguments, unknown_arguments
from m3eval.types import Prediction, base_id  # base_id: the "#i<k>" sample-id convention

from .filters import apply_filters, get_filter, step_spec

# a task's bad data or definition met while scoring: that task fails, not the run
SCORING_ERRORS = (ValueError, TypeError, KeyError, RuntimeError)


def _check_params(fn: Callable, args: dict, skip: int, what: str) -> None:
    """Unknown args, and args of another type than the parameter's annotation (else its default's)
    are task-definition errors: `ignore_case: 'false'`, a string, would act as true."""
    unknown, accepted = unknown_arguments(fn, args, skip)
    if unknown:
        raise ValueError(f"{what}: unknown args {sorted(unknown)}; accepted: {accepted or 'none'}")
    defaults, hints = arguments(fn, skip), _hints(fn)
    for key, value in args.items():
        if key in hints:
            try:
                _adapter(hints[key]).validate_python(value, strict=True)
            except ValidationError:
                raise ValueError(f"{what}: arg {key!r} should be {_type_name(hints[key])}, got {value!r}") from None
            continue
        kinds = _KINDS.get(type(defaults.get(key)))
        if kinds and (isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds)):
            raise ValueError(f"{what}: arg {key!r} should be {' or '.join(k.__name__ for k in kinds)} "
                             f"(as its default {defaults[key]!r}), got {value!r}")


def _adapter(hint: Any) -> TypeAdapter[Any]:
    """Built once per type: score_task checks its metrics' args on every call (per language, per
    instruction). An annotation that cannot be hashed (a plugin's) is built each time."""
    try:
        return _cached_adapter(hint)
    except TypeError:
        return TypeAdapter(hint)


@functools.lru_cache(maxsize=256)
def _cached_adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


def _hints(fn: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - a plugin's annotation that does not resolve: its defaults still check
        return {}


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


# what a YAML value may be, by the type of the arg's default (an int is a float too; a bool is neither)
_KINDS: dict[type, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (float, int), str: (str,),
                                        list: (list,), tuple: (list, tuple)}


def _check_args(metric: Metric, args: dict) -> None:
    """Unknown metric args are a task-definition error, named before any scoring."""
    _check_params(metric.compute, args, 1, f"metric {metric.name!r}")


def check_scoring(metrics: list[Any], filters: list[Any] | None) -> None:
    """Every metric and filter a task names exists and takes the args it is given, so a
    typo in a task file shows before the model runs, not after."""
    for spec in metrics:
        name, args = step_spec(spec)
        _check_args(get_metric(name), args)
    for spec in filters or []:
        name, args = step_spec(spec)
        f = get_filter(name)
        _check_params(f.fn, args, 2, f"filter {name!r}")
        if f.check is not None:
            f.check(**args)


def cluster_keys(predictions: list[Prediction], declared: str | None = None) -> tuple[list[str], str]:
    """One cluster key per prediction and a description of where the keys came from."""
    keys = [cluster_key(p) for p in predictions]
    return keys, cluster_source(any(p.cluster is not None for p in predictions),
                                any(k != p.id for k, p in zip(keys, predictions)), declared)


def cluster_key(p: Prediction) -> str:
    """The sample's cluster: its doc.cluster value, else its id without the #i<k> instruction suffix."""
    return p.cluster if p.cluster is not None else base_id(p.id)


def cluster_source(any_declared: bool, any_variant: bool, declared: str | None) -> str:
    """Where a task's cluster keys came from (results' clusters.key), given whether any sample has
    a doc.cluster value and whether any key differs from its sample's id."""
    if any_declared:
        return f"doc.cluster ({declared})" if declared else "doc.cluster"
    if any_variant:
        return "sample id without its #i<k> instruction suffix"
    return "sample id (one sample per cluster)"


def _metric_entry(metric: Metric, result: MetricResult, n: int, seed: int, clusters: list[str],
                  with_ci: bool = True) -> dict:
    entry: dict[str, Any] = {"value": float(result.value), "ci": None, "scale": metric.scale,
                             "higher_is_better": metric.higher_is_better, "kind": metric.kind}
    if not with_ci:
        return {**entry, **({"details": result.details} if result.details is not None else {})}
    if metric.kind == "mean":
        scores = result.per_sample
        if scores is None or len(scores) != n or any(s is None for s in scores):
            raise RuntimeError(f"metric {metric.name!r} is a mean metric but returned no aligned per-sample scores")
        lo, hi, entry["ci_method"] = bootstrap_interval([float(s or 0) for s in scores], metric.resamples, seed,
                                                        clusters=clusters)
        entry["ci"] = [lo, hi]
    elif result.rescore is not None and metric.resamples > 0:
        entry["ci"] = list(corpus_bootstrap_ci(result.rescore, n, metric.resamples, seed, clusters=clusters))
        entry["ci_method"] = "percentile"
    if result.signature is not None:
        entry["signature"] = result.signature
    if result.details is not None:
        entry["details"] = result.details
    if metric.kind == "corpus":
        entry["resamples"] = metric.resamples if result.rescore is not None else 0
    return entry


Resolved = list[tuple[str, Metric, dict[str, Any]]]  # (name, metric, args) of each of a task's metrics


def resolve_metrics(metrics: list[Any], primary_metric: str | None = None) -> Resolved:
    """A task's metric specs looked up and checked: known, args they take, no name twice."""
    if not metrics:
        raise ValueError("score_task: the task names no metrics")
    resolved = []
    for spec in metrics:
        name, args = step_spec(spec)
        metric = get_metric(name)
        _check_args(metric, args)
        resolved.append((name, metric, args))
    names = [n for n, _, _ in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"score_task: metric named twice in {names}; "
                         "use distinct names (e.g. coco_bleu_1, coco_bleu_4)")
    if primary_metric is not None and primary_metric not in names:
        raise ValueError(f"primary_metric {primary_metric!r} is not one of the task's metrics {names}")
    return resolved


def sample_input(p: Prediction, filters: list[Any] | None, lang: str) -> tuple[MetricInput, dict[str, Any]]:
    """One prediction as its metrics take it (the filters' answer) and its samples/ record, scores
    still empty. An error, or an answer the filters cannot extract, scores 0 and stays counted."""
    if not isinstance(p, Prediction):
        raise TypeError(f"prediction {p!r:.80} is {type(p).__name__}, not m3eval.types.Prediction")
    error = failure_text(p)
    extracted = None
    if error is None and not isinstance(p.prediction, str):
        error = f"prediction is {type(p.prediction).__name__}, not str"
    if error is None:
        try:
            extracted = apply_filters(p.prediction, filters, p.choices)
        except (TypeError, ValueError) as e:
            raise ValueError(f"sample {p.id!r}: {e}") from None
    item = MetricInput(extracted, list(p.references), p.choices, p.lang or lang, p.media_info, p.prompt,
                       id=str(p.id), cluster=cluster_key(p), category=p.category)
    return item, sample_record(p, lang, extracted, error)


def failure_text(p: Prediction) -> str | None:
    """Why the sample failed, as its record says it."""
    return None if p.error is None else str(p.error)


def sample_record(p: Prediction, lang: str, extracted: Any, error: str | None = None,
                  scores: dict[str, float | None] | None = None) -> dict[str, Any]:
    """A prediction's samples/ record, given its filtered answer (and its scores when they are known)."""
    return {"id": p.id, "prompt": p.prompt, "prediction": p.prediction, "extracted": extracted,
            "references": list(p.references), "choices": p.choices, "lang": p.lang or lang,
            "instruction": p.instruction, "cluster": cluster_key(p), "error": error, "scores": scores or {},
            **({"category": p.category} if p.category is not None else {})}


def compute(name: str, metric: Metric, args: dict[str, Any], items: list[MetricInput], first: int = 0
            ) -> MetricResult:
    """metric.compute on items (samples first.. of the task), its errors naming the metric and the sample."""
    try:
        return metric.compute(items, **args)
    except SampleScoreError as e:  # name the sample by its id too
        raise ValueError(f"metric {name!r}: sample {items[e.index].id!r} (index {first + e.index}): "
                         f"{e.reason}") from None
    except (TypeError, ValueError) as e:
        raise type(e)(f"metric {name!r}: {e}") from None


def fill_scores(records: list[dict[str, Any]], name: str, result: MetricResult) -> None:
    """A metric's per-sample scores and details into the samples' records."""
    per_sample: list[Any] = list(result.per_sample) if result.per_sample is not None else [None] * len(records)
    for rec, s in zip(records, per_sample):
        rec["scores"][name] = None if s is None else float(s)
    for rec, d in zip(records, result.sample_details or []):
        if d is not None:
            rec.setdefault("details", {})[name] = d


def summarize(resolved: Resolved, result_of: Callable[[str], MetricResult], n: int, n_err: int, n_fail: int,
              clusters: list[str], source: str, seed: int, primary_metric: str | None, with_ci: bool) -> dict:
    """A task's (or a part's) aggregate: counts, each metric's value and interval, the clusters.
    `result_of(name)` is asked once a metric, in order, and its result is dropped once its entry is
    made: a caller may compute each metric only when asked (scoring/stream.py)."""
    entries: dict[str, dict] = {}
    for name, metric, args in resolved:
        entries[name] = _metric_entry(metric, result_of(name), n, seed, clusters, with_ci)
        if args:  # so `compare` can re-score resampled corpora exactly as the task did
            entries[name]["args"] = args
    return {"n_samples": n, "n_errors": n_err, "n_extraction_failures": n_fail,
            "primary_metric": primary_metric or resolved[0][0], "metrics": entries,
            "clusters": {"key": source, "n": cluster_labels(clusters, len(clusters))[1]}}


def score_task(predictions: list[Prediction], metrics: list[Any], filters: list[Any] | None = None,
               lang: str = "en", seed: int = 0, primary_metric: str | None = None,
               with_ci: bool = True, cluster_field: str | None = None) -> tuple[dict, list[dict]]:
    """Score one task's predictions. `metrics` / `filters` are specs with .name and .args (or
    {"name", "args"} dicts, or bare metric names); `cluster_field` names the task's doc.cluster
    (for the results' description only). Returns (task aggregate dict, per-sample records)."""
    if not predictions:
        raise ValueError("score_task: no predictions to score")
    resolved = resolve_metrics(metrics, primary_metric)
    items: list[MetricInput] = []
    records: list[dict[str, Any]] = []
    for p in predictions:
        item, rec = sample_input(p, filters, lang)
        items.append(item)
        records.append(rec)
    results = {}
    for name, metric, args in resolved:
        results[name] = compute(name, metric, args, items)
        fill_scores(records, name, results[name])
    clusters, source = cluster_keys(predictions, cluster_field)
    n_err = sum(r["error"] is not None for r in records)
    n_fail = sum(r["error"] is None and r["extracted"] is None for r in records)
    return summarize(resolved, results.__getitem__, len(records), n_err, n_fail, clusters, source, seed, primary_metric,
                     with_ci), records


def split_by(predictions: list[Prediction], key: str | Callable[[Prediction], Any]) -> dict[Any, list[Prediction]]:
    """Group predictions by an attribute ("lang", "instruction") or a function, keeping their
    order; groups sorted by str(key) so output order is stable."""
    get = key if callable(key) else (lambda p: getattr(p, key))
    return {k: [predictions[i] for i in rows]
            for k, rows in group_rows([get(p) for p in predictions], range(len(predictions))).items()}


def group_rows(values: Sequence[Any], rows: Iterable[int]) -> dict[Any, list[int]]:
    """The rows by their value, in order within a group; groups sorted by str(value), so output
    order is stable."""
    groups: dict[Any, list[int]] = {}
    for i in rows:
        groups.setdefault(values[i], []).append(i)
    return dict(sorted(groups.items(), key=lambda kv: str(kv[0])))


def score_by(predictions: list[Prediction], key: str | Callable[[Prediction], Any], metrics: list[Any],
             filters: list[Any] | None = None, lang: str = "en", seed: int = 0,
             primary_metric: str | None = None, with_ci: bool = True,
             cluster_field: str | None = None) -> dict[Any, dict]:
    """score_task on each group of split_by(predictions, key): e.g. per instruction variant
    (key="instruction") or per language (key="lang"). Returns {group: task aggregate dict}."""
    return {k: score_task(ps, metrics, filters, lang, seed, primary_metric, with_ci, cluster_field)[0]
            for k, ps in split_by(predictions, key).items()}
