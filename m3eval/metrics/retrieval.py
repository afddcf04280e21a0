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

from typing import Iterable, Sequence

import numpy as np

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
    at_or_above = (sim >= best[:, None]).sum(axis=1)
    positives_at_or_above = (valid & (pos_scores >= best[:, None])).sum(axis=1)
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
        out[s:s + rows] = _ranks_block(q[s:s + rows] @ ct, pos[s:s + rows])
    return out


def recall_at_k(similarity: np.ndarray, positives: Sequence[Iterable[int]], k: int) -> float:
    """Fraction of queries with a correct candidate among their top k (0..1).

    similarity: queries x candidates scores; positives: per query, the set of correct
    candidate indices (e.g. an image's 5 captions for image->text)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float((ranks(similarity, positives) < k).mean())


def topk_hits(logits: np.ndarray, labels: Sequence[int], k: int) -> np.ndarray:
    """Per sample 1.0 if its label is among the k highest logits (ties count against), else 0.0."""
    return (ranks(logits, [[int(y)] for y in labels]) < k).astype(np.float64)
