"""Bootstrap CIs and paired tests: determinism, coverage, hand-computed McNemar."""
import math

import numpy as np
import pytest

from m3eval.metrics import get_metric
from m3eval.metrics.base import MetricInput
from m3eval.metrics.stats import (bootstrap_ci, corpus_bootstrap_ci, mcnemar, paired_bootstrap,
                                  paired_corpus_bootstrap, paired_permutation, resample_counts)

rng = np.random.default_rng(123)
SCORES = rng.random(500).tolist()


def test_bootstrap_deterministic_and_contains_mean():
    a = bootstrap_ci(SCORES, 1000, seed=0)
    assert a == bootstrap_ci(SCORES, 1000, seed=0)
    assert a != bootstrap_ci(SCORES, 1000, seed=1)
    assert a[0] < np.mean(SCORES) < a[1]
    # width ~ 2 * 1.96 * sd / sqrt(n) for a mean
    expected = 2 * 1.96 * np.std(SCORES) / math.sqrt(len(SCORES))
    assert (a[1] - a[0]) == pytest.approx(expected, rel=0.15)
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)


def test_bootstrap_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.1, float("nan")])


def test_resample_counts_sum_to_n():
    cs = list(resample_counts(7, 5, seed=3))
    assert len(cs) == 5 and all(c.sum() == 7 for c in cs)
    assert all((x == y).all() for x, y in zip(cs, resample_counts(7, 5, seed=3)))


def test_corpus_bootstrap_bleu():
    preds = [f"the cat number {i} sat on the mat" if i % 3 else "a dog" for i in range(60)]
    refs = [[f"the cat number {i} is on the mat"] for i in range(60)]
    r = get_metric("bleu").compute([MetricInput(p, rs) for p, rs in zip(preds, refs)])
    ci = corpus_bootstrap_ci(r.rescore, 60, 200, seed=0)
    assert ci == corpus_bootstrap_ci(r.rescore, 60, 200, seed=0)
    assert ci[0] < r.value < ci[1]


def test_mcnemar_hand_computed():
    # b = 1 (A right, B wrong), c = 9: exact, P[X <= 1] for Bin(10, 1/2) = 11/1024, two-sided 22/1024
    a = [1] * 1 + [0] * 9 + [1] * 5 + [0] * 5
    b = [0] * 1 + [1] * 9 + [1] * 5 + [0] * 5
    assert mcnemar(a, b) == pytest.approx(22 / 1024, abs=1e-15)
    # b = 10, c = 30 (n = 40 >= 25): chi2 = (|10 - 30| - 1)^2 / 40 = 9.025, p = P[chi2_1 > 9.025] ~ 0.00266
    a = [1] * 10 + [0] * 30
    b = [0] * 10 + [1] * 30
    assert mcnemar(a, b) == pytest.approx(0.002663, abs=5e-6)
    assert mcnemar([1, 0, 1], [1, 0, 1]) == 1.0
    with pytest.raises(ValueError, match="0 or 1"):
        mcnemar([0.5], [1])


def test_paired_bootstrap_and_permutation():
    a = np.array(SCORES)
    d, ci, p = paired_bootstrap(a, a, 1000, seed=0)
    assert d == 0 and ci == (0.0, 0.0) and p == 1.0
    better = a + 0.1
    d, ci, p = paired_bootstrap(a, better, 1000, seed=0)
    assert d == pytest.approx(0.1) and ci[0] <= 0.1 <= ci[1] and p < 0.01
    assert paired_bootstrap(a, better, 1000, seed=0) == (d, ci, p)
    noisy = a + np.random.default_rng(5).normal(0, 0.2, a.size)
    d2, p2 = paired_permutation(a, noisy, 2000, seed=0)
    assert p2 > 0.05  # no systematic difference
    d3, p3 = paired_permutation(a, better, 2000, seed=0)
    assert d3 == pytest.approx(0.1) and p3 < 0.01
    with pytest.raises(ValueError, match="same samples"):
        paired_bootstrap([1, 2], [1])


def test_paired_corpus_bootstrap():
    refs = [[f"the cat number {i} is on the mat"] for i in range(40)]
    good = get_metric("bleu").compute([MetricInput(f"the cat number {i} is on a mat", r) for i, r in enumerate(refs)])
    bad = get_metric("bleu").compute([MetricInput("a dog", r) for r in refs])
    diff, ci, p = paired_corpus_bootstrap(bad.rescore, good.rescore, 40, 100, seed=0)
    assert diff == pytest.approx(good.value - bad.value, abs=1e-9) and ci[0] > 0 and p < 0.05


def test_mcnemar_equals_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 120))
        a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
        nb, nc = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
        want = 1.0 if nb + nc == 0 else min(1.0, sm_mcnemar([[0, nb], [nc, 0]], exact=nb + nc < 25,
                                                             correction=True).pvalue)
        assert mcnemar(a, b) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_intervals_do_not_depend_on_the_chunk_the_draws_come_in(monkeypatch):
    """The resamples are drawn a memory-bounded chunk at a time; the chunk's size changes no figure."""
    import numpy as np

    from m3eval.metrics import stats
    rng = np.random.default_rng(3)
    scores = (rng.random(3000) < 0.55).astype(float)
    clusters = [i // 4 for i in range(3000)]

    def figures() -> tuple:
        return (stats.bootstrap_interval(scores, seed=1), stats.bootstrap_interval(scores, seed=1, clusters=clusters),
                stats.bootstrap_interval(scores[:1500], seed=1), stats.bootstrap_means(scores, 200, 1, clusters).tolist(),
                stats.paired_permutation(scores, scores[::-1], 2000, 1))

    whole = figures()
    monkeypatch.setattr(stats, "_CHUNK_ELEMS", 7_919)  # a prime: chunks of 2 rows, and of 5 of 1,500 items
    assert figures() == whole
