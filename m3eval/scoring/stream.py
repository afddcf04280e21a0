"""Scoring a task block by block, read once from its predictions file (issue 24: memory flat in the
number of samples). Only for a task whose metrics are all `independent` (metrics/base.py): a sample's
score is its own and the value is the exact mean of the scores, so the blocks' scores concatenated
are the whole task's. What stays for every sample is what the aggregates need (`Columns`: an id, a
cluster key, its groups, a few flags and 8 bytes per metric); each block's records go to disk.
Every figure equals what score_task gives on the whole list (tests/test_stream_scoring.py)."""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..metrics.base import MetricInput, MetricResult, mean
from ..predictions import PredictionSource
from ..types import Prediction
from .task import Resolved, cluster_source, compute, fill_scores, sample_input, summarize

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
                cluster_field: str | None) -> dict:
        """score_task's aggregate of the samples `rows`, from their kept scores."""
        results = {}
        for name, _, _ in resolved:
            scores = [self.scores[name][i] for i in rows]
            results[name] = MetricResult(mean(scores), scores)
        source = cluster_source(bool(self.count(DECLARED, rows)), bool(self.count(VARIANT, rows)), cluster_field)
        return summarize(resolved, results, len(rows), self.count(ERROR, rows), self.count(NOT_EXTRACTED, rows),
                         [self.clusters[i] for i in rows], source, seed, primary_metric, with_ci)


def score_blocks(source: PredictionSource, resolved: Resolved, filters: list[Any] | None, lang: str,
                 columns: Columns) -> Iterator[dict[str, Any]]:
    """Each sample's record, scored a block at a time, in the source's order, while `columns` fills."""
    for name, _, _ in resolved:
        columns.scores[name] = array("d")
    block: list[tuple[Prediction, MetricInput, dict[str, Any]]] = []
    first = 0
    for p in source:
        block.append((p, *sample_input(p, filters, lang)))
        if len(block) == BLOCK:
            yield from _score_block(block, first, resolved, columns)
            first, block = first + len(block), []
    if block:
        yield from _score_block(block, first, resolved, columns)


def _score_block(block: list[tuple[Prediction, MetricInput, dict[str, Any]]], first: int, resolved: Resolved,
                 columns: Columns) -> list[dict[str, Any]]:
    items = [item for _, item, _ in block]
    records = [record for _, _, record in block]
    for name, metric, args in resolved:
        result = compute(name, metric, args, items, first)
        if result.per_sample is None or len(result.per_sample) != len(items) or None in result.per_sample:
            raise RuntimeError(f"metric {name!r} is declared independent but returned no aligned per-sample scores")
        fill_scores(records, name, result)
        columns.scores[name].extend(float(s or 0) for s in result.per_sample)
    for p, _, record in block:
        columns.add(p, record)
    return records


def score_task_blocks(source: PredictionSource, resolved: Resolved, filters: list[Any] | None, lang: str,
                      seed: int, primary_metric: str | None, cluster_field: str | None,
                      write: Callable[[Iterator[dict[str, Any]]], None]) -> tuple[dict, Columns]:
    """score_task, block by block: `write(records)` takes the records as they come (a generator, read once).
    Returns the task's aggregate and the columns its breakdowns are computed from."""
    if not len(source):
        raise ValueError("score_task: no predictions to score")
    columns = Columns()
    write(score_blocks(source, resolved, filters, lang, columns))
    if len(columns.ids) != len(source):
        raise RuntimeError(f"scored {len(columns.ids)} of {len(source)} predictions")
    return columns.summary(resolved, list(range(len(columns.ids))), seed, primary_metric, True, cluster_field), \
        columns
