"""Contrastive-encoder metrics: retrieval recall@K and zero-shot top-K accuracy.

Ranks are computed in query chunks, so a 10k x 50k similarity matrix is never held whole
(`chunk_rows` bounds memory to chunk_rows x n_candidates float32).

Ties: a query's rank is the number of NON-positive candidates scoring >= its best positive
(a tie counts against the model), so a constant encoder gets recall ~K/N, never 1.0.
R@K of a query = 1 if that rank < K. This equals the usual argsort protocol (CLIP, ALBEF,
open_clip: the query counts as retrieved if any positive is in the top K) whenever scores
are distinct.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import READS_ANSWERS, Metric, MetricResult, mean, register_metric

CHUNK_BYTES = 256 * 2**20  # similarity block per chunk: 256 MB


def _positives_matrix(positives: Sequence[Iterable[int]], n_candidates: int) -> np.ndarray:
    """Per-query positive indices, padded with -1 -> (Q, P) int64."""
    lists = [sorted({int(i) for i in p}) for p in positives]
    for q, p in enumerate(lists):
        if not p:
            raise ValueError(f"query {q} has no positive candidate")
        if p[0] < 0 or p[-1] >= n_candidates:
            raise ValueError(f"query {q}: positive index out of range 0..{n_candidates - 1}: {p}")
    width = max(len(p) for p in lists)
    out = np.full((len(lists), width), -1, dtype=np.int64)
    for q, p in enumerate(lists):
        out[q, :len(p)] = p
    return out


def _ranks_block(sim: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """sim (q, C), pos (q, P) padded with -1 -> 0-based rank of each query's best positive."""
    valid = pos >= 0
    pos_scores = np.take_along_axis(sim, np.where(valid, pos, 0), axis=1)
    best = np.where(valid, pos_scores, -np.inf).max(axis=1)
    at_or_above = np.count_nonzero(sim >= best[:, None], axis=1)  # count_nonzero: ~3x faster than sum
    positives_at_or_above = np.count_nonzero(valid & (pos_scores >= best[:, None]), axis=1)
    return at_or_above - positives_at_or_above


def ranks(similarity: np.ndarray, positives: Sequence[Iterable[int]]) -> np.ndarray:
    """0-based rank of each query's best positive in a (queries x candidates) similarity matrix."""
    sim = np.asarray(similarity)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be a 2-D (queries x candidates) array, got shape {sim.shape}")
    if len(positives) != sim.shape[0]:
        raise ValueError(f"{len(positives)} positive sets for {sim.shape[0]} queries")
    return _ranks_block(sim, _positives_matrix(positives, sim.shape[1]))


def embedding_ranks(queries: np.ndarray, candidates: np.ndarray, positives: Sequence[Iterable[int]],
                    chunk_rows: int | None = None) -> np.ndarray:
    """ranks() of queries @ candidates.T, computed chunk by chunk (float32)."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    c = np.ascontiguousarray(candidates, dtype=np.float32)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(f"embeddings must be 2-D with the same width, got {q.shape} and {c.shape}")
    if len(positives) != q.shape[0]:
        raise ValueError(f"{len(positives)} positive sets for {q.shape[0]} queries")
    pos = _positives_matrix(positives, c.shape[0])
    rows = chunk_rows or max(1, CHUNK_BYTES // (4 * max(c.shape[0], 1)))
    ct = np.ascontiguousarray(c.T)
    out = np.empty(q.shape[0], dtype=np.int64)
    for s in range(0, q.shape[0], rows):
        out[s:s + rows] = _ranks_block(_matmul(q[s:s + rows], ct), pos[s:s + rows])
    return out


def retrieval_ranks(images: np.ndarray, texts: np.ndarray, owner: Sequence[int],
                    chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both directions from ONE pass over the image x text similarities (half the work of two
    embedding_ranks calls). owner[j] = the image caption j describes.
    Returns (i2t: rank of each image's best caption, t2i: rank of each caption's image)."""
    img = np.ascontiguousarray(images, dtype=np.float32)
    txt = np.ascontiguousarray(texts, dtype=np.float32)
    own = np.asarray(owner, dtype=np.int64)
    if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1] or len(own) != len(txt):
        raise ValueError(f"retrieval_ranks: images {img.shape}, texts {txt.shape}, {len(own)} owners")
    if len(own) and (own.min() < 0 or own.max() >= len(img)):
        raise ValueError(f"retrieval_ranks: owner index out of range 0..{len(img) - 1}")
    caps: list[list[int]] = [[] for _ in range(len(img))]
    for j, o in enumerate(own.tolist()):
        caps[o].append(j)
    has = np.array([bool(c) for c in caps])
    pos = _positives_matrix([c or [0] for c in caps], len(txt)) if len(txt) else np.zeros((len(img), 1), np.int64)
    best_t = np.einsum("ij,ij->i", img[own], txt)  # each caption's score with its own image
    t2i = np.zeros(len(txt), dtype=np.int64)
    i2t = np.full(len(img), -1, dtype=np.int64)
    rows = chunk_rows or max(1, CHUNK_BYTES // (4 * max(len(txt), 1)))
    tt = np.ascontiguousarray(txt.T)
    for s in range(0, len(img), rows):
        block = _matmul(img[s:s + rows], tt)
        i2t[s:s + rows] = np.where(has[s:s + rows], _ranks_block(block, pos[s:s + rows]), -1)
        ge = block >= best_t[None, :]
        t2i += np.count_nonzero(ge, axis=0)
        mine = np.nonzero((own >= s) & (own < s + len(block)))[0]  # the own image never counts
        t2i[mine] -= ge[own[mine] - s, mine]
    return i2t, t2i


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in float32; through torch when it is installed (its sgemm is ~3x numpy's for the
    narrow embedding widths of contrastive encoders). Same products, same float32 rounding
    up to summation order."""
    try:
        import torch
    except ImportError:
        return a @ b
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(b)).numpy()


def recall_at_k(similarity: np.ndarray, positives: Sequence[Iterable[int]], k: int) -> float:
    """Fraction of queries with a correct candidate among their top k (0..1).

    similarity: queries x candidates scores; positives: per query, the set of correct
    candidate indices (e.g. an image's 5 captions for image->text)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float((ranks(similarity, positives) < k).mean())


# ---- registered metrics over the predictions m3eval/run/encode.py writes ----------------------
# zero-shot: prediction "i1 i2 ... i10" (class indices, best first), reference the label index;
# retrieval: prediction {"i2t": rank of the image's best caption, "t2i": [rank of the image for
# each of its captions]} (0-based ranks, as embedding_ranks gives).

def _topk_items(items: list, k: int) -> MetricResult:
    scores = [float(it.prediction is not None and it.references[0] in it.prediction.split()[:k]) for it in items]
    return MetricResult(mean(scores), scores)


def _records(items: list, *keys: str) -> list[list[Any]]:
    """Per key, each sample's ranks under it (None for a failed sample); each prediction is
    parsed once for all the keys."""
    out: list[list[Any]] = [[] for _ in keys]
    for i, it in enumerate(items):
        try:
            rec = None if it.prediction is None else json.loads(it.prediction)
            for col, key in zip(out, keys):
                col.append(None if rec is None else rec[key])
        except (ValueError, KeyError, TypeError) as e:
            key = e.args[0] if isinstance(e, KeyError) else keys[0]
            raise SampleScoreError(i, f"prediction is not a retrieval record with {key!r}: "
                                      f"{it.prediction[:80]!r}") from None
    return out


def _i2t_scores(ranks_: list, k: int) -> list[float]:
    return [float(r is not None and r < k) for r in ranks_]


def _i2t_items(items: list, k: int) -> MetricResult:
    scores = _i2t_scores(_records(items, "i2t")[0], k)
    return MetricResult(mean(scores), scores)


def _t2i_counts(items: list, ranks_: list, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (hits among its captions, number of captions)."""
    n = np.array([len(r) if r is not None else len(it.references)  # a failed sample's captions all miss
                  for it, r in zip(items, ranks_)], dtype=float)
    hits = np.array([sum(x < k for x in r) if r is not None else 0 for r in ranks_], dtype=float)
    return hits, n


def _t2i_items(items: list, k: int) -> MetricResult:
    """Mean over captions (the queries); the CI resamples images with all their captions (a
    cluster bootstrap: the captions of one image are not independent)."""
    hits, n = _t2i_counts(items, _records(items, "t2i")[0], k)
    return MetricResult(float(hits.sum() / n.sum()), (hits / np.maximum(n, 1)).tolist(),
                        rescore=lambda c: float((c * hits).sum() / max((c * n).sum(), 1)))


def _mean_recall_items(items: list) -> MetricResult:
    """Mean of image->text and text->image R@1, R@5, R@10 (the six numbers M2-Encoder, ALBEF and
    Chinese-CLIP average as "mean recall"), resampled over images."""
    i2t_ranks, t2i_ranks = _records(items, "i2t", "t2i")
    i2t = [np.asarray(_i2t_scores(i2t_ranks, k)) for k in (1, 5, 10)]
    t2i = [_t2i_counts(items, t2i_ranks, k) for k in (1, 5, 10)]

    def score(c: np.ndarray) -> float:
        parts = [float((c * s).sum() / c.sum()) for s in i2t] + \
                [float((c * h).sum() / max((c * n).sum(), 1)) for h, n in t2i]
        return sum(parts) / 6

    per = (sum(i2t) + sum(h / np.maximum(n, 1) for h, n in t2i)) / 6
    return MetricResult(score(np.ones(len(items))), per.tolist(), rescore=score)


for _k in (1, 5):
    register_metric(Metric(f"top{_k}_accuracy", (lambda k: lambda items: _topk_items(items, k))(_k), independent=True,
                           description=f"zero-shot classification: label among the {_k} best classes"))
# independent: top-k and i2t read only the sample's own prediction (i2t: the rank over the whole gallery,
# computed at encode time); t2i and mean_recall weigh images by their caption counts (corpus).
for _k in (1, 5, 10):
    register_metric(Metric(f"i2t_r{_k}", (lambda k: lambda items: _i2t_items(items, k))(_k), independent=True,
                           description=f"image->text recall@{_k} (a caption of the image in the top {_k})"))
    register_metric(Metric(f"t2i_r{_k}", (lambda k: lambda items: _t2i_items(items, k))(_k), kind="corpus",
                           reads=READS_ANSWERS,
                           description=f"text->image recall@{_k} over captions; CI resamples images"))
register_metric(Metric("mean_recall", _mean_recall_items, kind="corpus",
                       reads=READS_ANSWERS, description="mean of i2t and t2i R@1/5/10"))
