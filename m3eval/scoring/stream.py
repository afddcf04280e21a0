"""Scoring a task from its predictions file without holding its predictions (issue 24: memory flat
in the number of samples). What stays for every sample is what the aggregates need (`Columns`: an
id, a cluster key, its groups, a few flags and 8 bytes per metric); the records go to disk as
they are made. Every figure equals what score_task gives on the whole list
(tests/test_stream_scoring.py).

- A task whose metrics are all `independent` (metrics/base.py: a sample's score is its own and
  the value is the exact mean of the scores) is scored block by block, read once: the blocks'
  scores concatenated are the whole task's (`score_task_blocks`).
- A task with a corpus metric (BLEU, CIDEr) or one that groups samples (MMBench, MME, POPE's F1)
  needs every sample at once (`score_task_whole`). It holds each sample's metric input with only
  the strings its metrics read (the answer, the references, the keys; the prompt and media_info
  only for a metric that declares them in `Metric.reads`), computes its metrics one at a time
  (each one's interval drawn and its re-scoring table dropped before the next runs), and writes
  the records in a second read of the file."""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

from ..metrics.base import OPTIONAL_INPUTS, MetricInput, MetricResult, mean
from ..predictions import PredictionSource
from ..types import Prediction
from .task import (
    Resolved,
    cluster_source,
    compute,
    failure_text,
    fill_scores,
    resolve_metrics,
    sample_input,
    sample_record,
    summarize,
)

BLOCK = 1024  # samples scored at once: bounds what a block holds, large enough that the per-call cost is nothing

# Columns.flags bits
ERROR, NOT_EXTRACTED, DECLARED, VARIANT, EMPTY, GENERATE_ERROR = 1, 2, 4, 8, 16, 32


def streams(resolved: Resolved) -> bool:
    """Whether a task with these metrics may be scored block by block."""
    return all(metric.independent for _, metric, _ in resolved)


@dataclass
class Columns:
    """A task's scored samples as the aggregates (counts, intervals, breakdowns) read them."""

    ids: list[str] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    instructions: list[int | None] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    flags: bytearray = field(default_factory=bytearray)
    scores: dict[str, array[float]] = field(default_factory=dict)
    frames: list[dict[str, Any]] = field(default_factory=list)  # video: media_info of the samples that have frames
    _names: dict[str, str] = field(default_factory=dict)  # one string object per distinct lang / category

    def add(self, p: Prediction, record: dict[str, Any]) -> None:
        self.ids.append(record["id"])
        cluster = record["cluster"]
        self.clusters.append(record["id"] if cluster == record["id"] else cluster)  # the id's string, not a copy
        self.langs.append(self._names.setdefault(p.lang, p.lang))  # as given: the breakdowns group by it
        self.instructions.append(p.instruction)
        self.categories.append(None if p.category is None else self._names.setdefault(p.category, p.category))
        error = record["error"] is not None
        self.flags.append(ERROR * error | NOT_EXTRACTED * (not error and record["extracted"] is None)
                          | DECLARED * (p.cluster is not None) | VARIANT * (cluster != p.id)
                          | EMPTY * (p.error is None and not p.prediction.strip())
                          | GENERATE_ERROR * (p.error is not None and p.error.stage == "generate"))
        if p.media_info.get("frames") is not None:
            self.frames.append({k: p.media_info.get(k) for k in ("frames", "rule", "short")})

    def count(self, bit: int, rows: Iterable[int] | None = None) -> int:
        return sum(1 for i in (range(len(self.flags)) if rows is None else rows) if self.flags[i] & bit)

    def summary(self, resolved: Resolved, rows: list[int], seed: int, primary_metric: str | None, with_ci: bool,
                cluster_field: str | None, result_of: Callable[[str], MetricResult] | None = None) -> dict:
        """score_task's aggregate of the samples `rows`: from `result_of(name)`, each metric's result on
        them (summarize), else from their kept scores (independent metrics)."""
        def kept_scores(name: str) -> MetricResult:
            scores = [self.scores[name][i] for i in rows]
            return MetricResult(mean(scores), scores)

        source = cluster_source(bool(self.count(DECLARED, rows)), bool(self.count(VARIANT, rows)), cluster_field)
        return summarize(resolved, result_of or kept_scores, len(rows), self.count(ERROR, rows),
                         self.count(NOT_EXTRACTED, rows), [self.clusters[i] for i in rows], source, seed,
                         primary_metric, with_ci)


def score_blocks(source: PredictionSource, resolved: Resolved, filters: list[Any] | None, lang: str,
                 columns: Columns, key: str | None = None) -> Iterator[dict[str, Any]]:
    """Each sample's record, scored a block at a time, in the source's order, while `columns` fills.
    `key`: a block whose every prediction was scored where it was generated under this key takes
    those scores (scoring/prescore.py); any other block is scored here."""
    for name, _, _ in resolved:
        columns.scores[name] = array("d")
    block: list[Prediction] = []
    first = 0
    for p in source:
        block.append(p)
        if len(block) == BLOCK:
            yield from _score_block(block, first, resolved, filters, lang, columns, key)
            first, block = first + len(block), []
    if block:
        yield from _score_block(block, first, resolved, filters, lang, columns, key)


def _score_block(block: list[Prediction], first: int, resolved: Resolved, filters: list[Any] | None, lang: str,
                 columns: Columns, key: str | None) -> list[dict[str, Any]]:
    names = [name for name, _, _ in resolved]
    if key is not None and all(p.scored is not None and p.scored.by == key for p in block):
        records = [sample_record(p, lang, p.scored.extracted, failure_text(p), {n: p.scored.scores[n] for n in names})
                   for p in block if p.scored is not None]
        for name in names:
            columns.scores[name].extend(r["scores"][name] for r in records)
    else:
        inputs = [sample_input(p, filters, lang) for p in block]
        items = [item for item, _ in inputs]
        records = [record for _, record in inputs]
        for name, metric, args in resolved:
            result = compute(name, metric, args, items, first)
            if result.per_sample is None or len(result.per_sample) != len(items) or None in result.per_sample:
                raise RuntimeError(f"metric {name!r} is declared independent but returned no aligned "
                                   "per-sample scores")
            fill_scores(records, name, result)
            columns.scores[name].extend(float(s or 0) for s in result.per_sample)
    for p, record in zip(block, records):
        columns.add(p, record)
    return records


ScoreRows = Callable[[list[int], list[Any], "str | None", bool], dict]  # a part of a task's aggregate


def score_task_blocks(source: PredictionSource, resolved: Resolved, filters: list[Any] | None, lang: str,
                      seed: int, primary_metric: str | None, cluster_field: str | None,
                      write: Callable[[Iterator[dict[str, Any]]], None], key: str | None = None
                      ) -> tuple[dict, Columns, ScoreRows]:
    """score_task, block by block: `write(records)` takes the records as they come (a generator, read once);
    `key`: take the scores made where the predictions were generated under it (score_blocks).
    Returns the task's aggregate, the columns, and how to score a part of the task (rows, metric specs,
    primary metric, with intervals or not) for the breakdowns: from the kept scores."""
    if not len(source):
        raise ValueError("score_task: no predictions to score")
    columns = Columns()
    write(score_blocks(source, resolved, filters, lang, columns, key))
    if len(columns.ids) != len(source):
        raise RuntimeError(f"scored {len(columns.ids)} of {len(source)} predictions")

    def score_rows(rows: list[int], metrics: list[Any], primary: str | None, with_ci: bool) -> dict:
        return columns.summary(resolve_metrics(metrics, primary), rows, seed, primary, with_ci, cluster_field)

    rows = list(range(len(columns.ids)))
    return columns.summary(resolved, rows, seed, primary_metric, True, cluster_field), columns, score_rows


def score_task_whole(source: PredictionSource, resolved: Resolved, filters: list[Any] | None, lang: str,
                     seed: int, primary_metric: str | None, cluster_field: str | None,
                     write: Callable[[Iterator[dict[str, Any]]], None]) -> tuple[dict, Columns, ScoreRows]:
    """score_task for metrics that need every sample at once, holding only what they read (module
    docstring). Returns what score_task_blocks returns; a part is scored again from the held inputs."""
    if not len(source):
        raise ValueError("score_task: no predictions to score")
    unread = OPTIONAL_INPUTS.difference(*(metric.reads for _, metric, _ in resolved))
    blank: dict[str, Any] = {k: v for k, v in (("prompt", ""), ("media_info", None)) if k in unread}
    columns, items = Columns(), []
    for p in source:
        item, record = sample_input(p, filters, lang)
        columns.add(p, record)
        items.append(replace(item, **blank) if blank else item)
    rows = list(range(len(items)))
    summary, results = _metric_by_metric(columns, resolved, items, rows, seed, primary_metric, True, cluster_field)
    write(_records(source, filters, lang, results))

    def score_rows(rows: list[int], metrics: list[Any], primary: str | None, with_ci: bool) -> dict:
        return _metric_by_metric(columns, resolve_metrics(metrics, primary), [items[i] for i in rows], rows, seed,
                                 primary, with_ci, cluster_field)[0]

    return summary, columns, score_rows


def _metric_by_metric(columns: Columns, resolved: Resolved, items: list[MetricInput], rows: list[int], seed: int,
                      primary_metric: str | None, with_ci: bool, cluster_field: str | None
                      ) -> tuple[dict, dict[str, MetricResult]]:
    """Columns.summary of the samples `rows` (whose inputs are `items`), each metric computed when the
    summary asks for it: its interval is drawn before the next metric runs, and its re-scoring function
    is dropped then (CIDEr's holds every reference's n-gram statistics, often the largest thing a metric
    makes). Returns the aggregate and the results without their re-scoring functions."""
    by_name = {name: (metric, args) for name, metric, args in resolved}
    kept: dict[str, MetricResult] = {}

    def result_of(name: str) -> MetricResult:
        result = compute(name, *by_name[name], items)
        kept[name] = replace(result, rescore=None)
        return result

    return columns.summary(resolved, rows, seed, primary_metric, with_ci, cluster_field, result_of), kept


def _records(source: PredictionSource, filters: list[Any] | None, lang: str, results: dict[str, MetricResult]
             ) -> Iterator[dict[str, Any]]:
    """Each sample's record, made again from the source (the filters are deterministic) and given its scores."""
    for i, p in enumerate(source):
        _, record = sample_input(p, filters, lang)
        for name, result in results.items():
            fill_scores([record], name, _one(result, i))
        yield record


def _one(result: MetricResult, i: int) -> MetricResult:
    """Sample i's part of a result, as fill_scores reads it."""
    return MetricResult(result.value, None if result.per_sample is None else [result.per_sample[i]],
                        sample_details=None if result.sample_details is None else [result.sample_details[i]])
