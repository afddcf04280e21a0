"""Confidence intervals and paired significance tests, numpy + math only, seeded and deterministic.

Resampling draws sample indices with numpy's Generator(PCG64(seed)): the same scores, number of
resamples and seed always give the same interval, bit for bit.

- Mean metrics: 95% percentile bootstrap of the mean of per-sample scores (1,000 resamples).
- Corpus metrics (BLEU, chrF, CIDEr, METEOR): each resample re-scores the resampled corpus
  through the metric's `rescore(counts)`; the number of resamples is the metric's `resamples`
  (BLEU, chrF, COCO BLEU-n and METEOR 1,000: sums of per-sample statistics; CIDEr 200: its IDF
  is recomputed for each resample, ~6 ms per re-scoring at 5,000 captions; see
  benchmarks/bench_metrics.py for the cost).
- Paired tests for `m3eval compare` (same samples scored by two systems A and B; differences
  are B - A): paired bootstrap, paired sign-flip permutation, McNemar for 0/1 scores, and a
  paired bootstrap for corpus metrics that re-scores both systems on the same resampled indices.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np

_CHUNK_ELEMS = 4_000_000  # indices drawn per chunk: bounds memory for large tasks


def _index_chunks(n_items: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMS // max(n_items, 1))
    done = 0
    while done < n_resamples:
        k = min(rows, n_resamples - done)
        yield rng.integers(0, n_items, size=(k, n_items))
        done += k


def _as_array(scores: Sequence[float], name: str) -> np.ndarray:
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: need a non-empty 1-D list of per-sample scores, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: per-sample scores contain NaN or infinity")
    return a


def _percentile_ci(stats: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.percentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_means(scores: Sequence[float], n: int = 1000, seed: int = 0) -> np.ndarray:
    a = _as_array(scores, "bootstrap")
    return np.concatenate([a[idx].mean(axis=1) for idx in _index_chunks(a.size, n, seed)])


def bootstrap_ci(scores: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-sample scores."""
    return _percentile_ci(bootstrap_means(scores, n, seed), level)


def resample_counts(n_items: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """For each resample, how many times each sample is drawn (same index stream as bootstrap_ci)."""
    for idx in _index_chunks(n_items, n, seed):
        for row in idx:
            yield np.bincount(row, minlength=n_items)


def corpus_bootstrap_ci(rescore: Callable[[np.ndarray], float], n_items: int, n: int = 200, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a corpus metric over `n` re-scored resampled corpora."""
    if n_items <= 0:
        raise ValueError("corpus bootstrap: empty corpus")
    vals = np.array([rescore(c) for c in resample_counts(n_items, n, seed)], dtype=np.float64)
    return _percentile_ci(vals, level)


def _p_two_sided(centered: np.ndarray, observed: float) -> float:
    # Shifted-null bootstrap p-value: how often a resample deviates from the observed difference
    # by at least the observed difference itself; +1 smoothing so p is never exactly 0.
    return float((1 + np.sum(np.abs(centered) >= abs(observed) - 1e-12)) / (centered.size + 1))


def paired_bootstrap(a_scores: Sequence[float], b_scores: Sequence[float], n: int = 1000,
                     seed: int = 0) -> tuple[float, tuple[float, float], float]:
    """(mean(b) - mean(a), 95% CI of that difference, two-sided p-value for "no difference")."""
    a, b = _as_array(a_scores, "paired_bootstrap a"), _as_array(b_scores, "paired_bootstrap b")
    if a.size != b.size:
        raise ValueError(f"paired_bootstrap: {a.size} scores for A but {b.size} for B (must be the same samples)")
    d = b - a
    diff = float(d.mean())
    means = bootstrap_means(d, n, seed)
    return diff, _percentile_ci(means), _p_two_sided(means - diff, diff)


def paired_permutation(a_scores: Sequence[float], b_scores: Sequence[float], n: int = 10000,
                       seed: int = 0) -> tuple[float, float]:
    """(mean(b) - mean(a), two-sided p-value of a paired sign-flip permutation test)."""
    a, b = _as_array(a_scores, "paired_permutation a"), _as_array(b_scores, "paired_permutation b")
    if a.size != b.size:
        raise ValueError(f"paired_permutation: {a.size} scores for A but {b.size} for B")
    d = b - a
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMS // d.size)
    hits, done = 0, 0
    while done < n:
        k = min(rows, n - done)
        signs = rng.integers(0, 2, size=(k, d.size)) * 2 - 1
        hits += int(np.sum(np.abs((signs * d).mean(axis=1)) >= abs(diff) - 1e-12))
        done += k
    return diff, (1 + hits) / (n + 1)


def mcnemar(a01: Sequence[float], b01: Sequence[float], exact_below: int = 25) -> float:
    """Two-sided McNemar p-value for paired 0/1 outcomes.

    With b = #(A right, B wrong) and c = #(A wrong, B right): when b + c < exact_below, the exact
    binomial test (p = min(1, 2 * P[X <= min(b, c)]), X ~ Bin(b + c, 1/2)); otherwise the
    chi-square statistic with continuity correction (|b - c| - 1)^2 / (b + c), 1 degree of freedom.
    """
    a, b_ = np.asarray(a01, dtype=np.float64), np.asarray(b01, dtype=np.float64)
    if a.shape != b_.shape:
        raise ValueError(f"mcnemar: {a.size} outcomes for A but {b_.size} for B")
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b_, (0.0, 1.0)).all()):
        raise ValueError("mcnemar: outcomes must be 0 or 1 (use paired_bootstrap for graded scores)")
    b = int(np.sum((a == 1) & (b_ == 0)))
    c = int(np.sum((a == 0) & (b_ == 1)))
    n = b + c
    if n == 0:
        return 1.0
    if n < exact_below:
        k = min(b, c)
        tail = math.fsum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
        return min(1.0, 2.0 * tail)
    chi2 = (abs(b - c) - 1) ** 2 / n
    return math.erfc(math.sqrt(chi2 / 2.0))  # survival function of chi-square with 1 df


def paired_corpus_bootstrap(rescore_a: Callable[[np.ndarray], float], rescore_b: Callable[[np.ndarray], float],
                            n_items: int, n: int = 200, seed: int = 0) -> tuple[float, tuple[float, float], float]:
    """Corpus-metric paired bootstrap: both systems re-scored on the same resampled corpora.
    Returns (score_b - score_a on the full corpus, 95% CI of the difference, two-sided p-value)."""
    full = np.ones(n_items, dtype=np.int64)
    diff = float(rescore_b(full) - rescore_a(full))
    diffs = np.array([rescore_b(c) - rescore_a(c) for c in resample_counts(n_items, n, seed)])
    return diff, _percentile_ci(diffs), _p_two_sided(diffs - diff, diff)
