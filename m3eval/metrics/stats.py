"""Confidence intervals and paired significance tests: SciPy / statsmodels where they fit,
seeded and deterministic (the same scores, clusters, resamples and seed give the same
interval, bit for bit).

Clusters. Samples that share an image, a video or a base item (the same image under K
instructions, several questions per video, one item in 80 languages) are not independent:
resampling them as rows makes intervals too narrow. Every function takes `clusters`, one
key per sample (None: each sample is its own cluster), and resamples whole clusters. A
task's mean over a cluster resample is a ratio of cluster sums, sum(S_c) / sum(N_c), which
`scipy.stats.bootstrap` takes as a paired, vectorized statistic of (S, N).

- Mean metrics: 95% bootstrap of the mean (1,000 resamples): BCa up to BCA_MAX_CLUSTERS
  clusters, percentile above (SciPy's BCa jackknife costs O(n^2); with thousands of clusters
  BCa and percentile agree to well under the interval's own Monte-Carlo noise).
- Corpus metrics (BLEU, chrF, CIDEr, METEOR): each resample re-scores the resampled corpus
  through the metric's `rescore(counts)` (the fast path, clusters drawn as wholes);
  percentile interval.
- Paired tests for `m3eval compare` (differences are B - A): paired (cluster) bootstrap CI,
  sign-flip permutation test (`scipy.stats.permutation_test`; clusters flip as wholes),
  McNemar for 0/1 scores (SciPy's binomial / chi-square, equal to statsmodels'), paired corpus bootstrap.
"""
from __future__ import annotations

import warnings
from typing import Callable, Hashable, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike


def _scipy_stats():
    """scipy.stats, imported at first use: ~0.6 s that a run's start-up (and `m3eval compare`
    without a test to run) should not pay; scoring runs in a thread beside generation."""
    from scipy import stats
    return stats


_CHUNK_ELEMS = 1_000_000  # indices drawn per chunk: bounds memory (8 MB of them; 4M took 90-120 MB with the
# gathered values and BCa's jackknife, as fast or faster); the draws, and so the interval, do not depend on it
BCA_MAX_CLUSTERS = 2000


def cluster_labels(clusters: Sequence[Hashable] | None, n: int) -> tuple[np.ndarray, int]:
    """(label 0..k-1 per sample, k) in order of first appearance; None: one cluster per sample."""
    if clusters is None:
        return np.arange(n), n
    if len(clusters) != n:
        raise ValueError(f"clusters: {len(clusters)} keys for {n} samples")
    index: dict[Hashable, int] = {}
    labels = np.fromiter((index.setdefault(c, len(index)) for c in clusters), dtype=np.int64, count=n)
    return labels, len(index)


def _as_array(scores: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: need a non-empty 1-D list of per-sample scores, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: per-sample scores contain NaN or infinity")
    return a


def percentile_ci(stats: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.percentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _cluster_sums(a: np.ndarray, clusters: Sequence[Hashable] | None) -> tuple[np.ndarray, np.ndarray | None]:
    labels, k = cluster_labels(clusters, a.size)
    if k == a.size:  # singletons (labels are 0..n-1): the plain mean, one gather per resample
        return a, None
    return np.bincount(labels, weights=a, minlength=k), np.bincount(labels, minlength=k).astype(np.float64)


def _ratio(s: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
    return s.sum(axis=axis) / c.sum(axis=axis)


def bootstrap_interval(scores: ArrayLike, n: int = 1000, seed: int = 0, level: float = 0.95,
                       clusters: Sequence[Hashable] | None = None) -> tuple[float, float, str]:
    """(low, high, method) of the mean of per-sample scores, resampling clusters;
    method is "bca" or "percentile"."""
    a = _as_array(scores, "bootstrap")
    s, c = _cluster_sums(a, clusters)
    if np.ptp(a) == 0:
        return float(a[0]), float(a[0]), "percentile"  # every resample gives the same mean
    data, stat = ((s,), np.mean) if c is None else ((s, c), _ratio)
    method = "bca" if s.size <= BCA_MAX_CLUSTERS else "percentile"
    for m in (method, "percentile"):
        with warnings.catch_warnings():  # a degenerate BCa (e.g. 2 clusters) falls back below
            warnings.simplefilter("ignore")
            res = _scipy_stats().bootstrap(data, stat, n_resamples=n, confidence_level=level, method=m,
                                paired=c is not None, vectorized=True, random_state=np.random.default_rng(seed),
                                batch=max(1, _CHUNK_ELEMS // s.size))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            return lo, hi, m.lower()
    raise ValueError("bootstrap: no finite interval")


def bootstrap_ci(scores: ArrayLike, n: int = 1000, seed: int = 0, level: float = 0.95,
                 clusters: Sequence[Hashable] | None = None) -> tuple[float, float]:
    """95% bootstrap interval of the mean of per-sample scores (see bootstrap_interval)."""
    return bootstrap_interval(scores, n, seed, level, clusters)[:2]


def bootstrap_means(scores: ArrayLike, n: int = 1000, seed: int = 0,
                    clusters: Sequence[Hashable] | None = None) -> np.ndarray:
    """The n resampled means (clusters drawn as wholes): for group intervals and paired tests."""
    a = _as_array(scores, "bootstrap")
    labels, k = cluster_labels(clusters, a.size)
    s = np.bincount(labels, weights=a, minlength=k)
    c = np.bincount(labels, minlength=k).astype(np.float64)
    return np.concatenate([_ratio(s[idx], c[idx]) for idx in index_chunks(k, n, seed)])


def index_chunks(n_items: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """n_resamples rows of n_items draws with replacement (0..n_items-1), a memory-bounded chunk at a time."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMS // max(n_items, 1))
    done = 0
    while done < n_resamples:
        k = min(rows, n_resamples - done)
        yield rng.integers(0, n_items, size=(k, n_items))
        done += k


def resample_counts(n_items: int, n: int, seed: int, clusters: Sequence[Hashable] | None = None
                    ) -> Iterator[np.ndarray]:
    """For each resample, how many times each sample is drawn: clusters are drawn with
    replacement and every sample of a drawn cluster comes with it."""
    labels, k = cluster_labels(clusters, n_items)
    for idx in index_chunks(k, n, seed):
        for row in idx:
            yield np.bincount(row, minlength=k)[labels]


def corpus_bootstrap_ci(rescore: Callable[[np.ndarray], float], n_items: int, n: int = 200, seed: int = 0,
                        level: float = 0.95, clusters: Sequence[Hashable] | None = None) -> tuple[float, float]:
    """Percentile interval of a corpus metric over `n` re-scored resampled corpora."""
    if n_items <= 0:
        raise ValueError("corpus bootstrap: empty corpus")
    vals = np.array([rescore(c) for c in resample_counts(n_items, n, seed, clusters)], dtype=np.float64)
    return percentile_ci(vals, level)


def _p_two_sided(centered: np.ndarray, observed: float) -> float:
    # Shifted-null bootstrap p-value: how often a resample deviates from the observed difference
    # by at least the observed difference itself; +1 smoothing so p is never exactly 0.
    return float((1 + np.sum(np.abs(centered) >= abs(observed) - 1e-12)) / (centered.size + 1))


def _pair(a_scores: ArrayLike, b_scores: ArrayLike, name: str) -> np.ndarray:
    a, b = _as_array(a_scores, f"{name} a"), _as_array(b_scores, f"{name} b")
    if a.size != b.size:
        raise ValueError(f"{name}: {a.size} scores for A but {b.size} for B (must be the same samples)")
    return b - a


def paired_bootstrap(a_scores: ArrayLike, b_scores: ArrayLike, n: int = 1000, seed: int = 0,
                     clusters: Sequence[Hashable] | None = None) -> tuple[float, tuple[float, float], float]:
    """(mean(b) - mean(a), 95% percentile CI of that difference, two-sided p-value for "no difference")."""
    d = _pair(a_scores, b_scores, "paired_bootstrap")
    diff = float(d.mean())
    means = bootstrap_means(d, n, seed, clusters)
    return diff, percentile_ci(means), _p_two_sided(means - diff, diff)


def paired_permutation(a_scores: ArrayLike, b_scores: ArrayLike, n: int = 10000, seed: int = 0,
                       clusters: Sequence[Hashable] | None = None) -> tuple[float, float]:
    """(mean(b) - mean(a), two-sided p-value of a paired sign-flip permutation test; the
    differences of one cluster flip sign together)."""
    d = _pair(a_scores, b_scores, "paired_permutation")
    diff = float(d.mean())
    labels, k = cluster_labels(clusters, d.size)
    sums = np.bincount(labels, weights=d, minlength=k)
    if not np.any(sums):
        return diff, 1.0
    total = d.size
    res = _scipy_stats().permutation_test((sums,), lambda x, axis=-1: x.sum(axis=axis) / total,
                               permutation_type="samples", vectorized=True, n_resamples=n, alternative="two-sided",
                               random_state=np.random.default_rng(seed), batch=max(1, _CHUNK_ELEMS // k))
    return diff, float(min(1.0, res.pvalue))


def mcnemar(a01: ArrayLike, b01: ArrayLike, exact_below: int = 25) -> float:
    """Two-sided McNemar p-value for paired 0/1 outcomes: the exact binomial test when the
    discordant pairs number fewer than exact_below, else chi-square with continuity
    correction -- statsmodels' `mcnemar(table, exact, correction=True)`, computed with SciPy
    because statsmodels imports pandas (~1 s that `m3eval compare` must not pay); the test
    suite checks equality with statsmodels. Assumes independent pairs (compare uses it only
    without clusters)."""
    a, b_ = np.asarray(a01, dtype=np.float64), np.asarray(b01, dtype=np.float64)
    if a.shape != b_.shape:
        raise ValueError(f"mcnemar: {a.size} outcomes for A but {b_.size} for B")
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b_, (0.0, 1.0)).all()):
        raise ValueError("mcnemar: outcomes must be 0 or 1 (use paired_bootstrap for graded scores)")
    b = int(np.sum((a == 1) & (b_ == 0)))
    c = int(np.sum((a == 0) & (b_ == 1)))
    if b + c == 0:
        return 1.0
    if b + c < exact_below:
        return float(min(1.0, 2 * _scipy_stats().binom.cdf(min(b, c), b + c, 0.5)))
    return float(_scipy_stats().chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1))


def paired_corpus_bootstrap(rescore_a: Callable[[np.ndarray], float], rescore_b: Callable[[np.ndarray], float],
                            n_items: int, n: int = 200, seed: int = 0, clusters: Sequence[Hashable] | None = None
                            ) -> tuple[float, tuple[float, float], float]:
    """Corpus-metric paired bootstrap: both systems re-scored on the same resampled corpora.
    Returns (score_b - score_a on the full corpus, 95% CI of the difference, two-sided p-value)."""
    full = np.ones(n_items, dtype=np.int64)
    diff = float(rescore_b(full) - rescore_a(full))
    diffs = np.array([rescore_b(c) - rescore_a(c) for c in resample_counts(n_items, n, seed, clusters)])
    return diff, percentile_ci(diffs), _p_two_sided(diffs - diff, diff)
