"""Openness of a zero-shot classifier: accuracy as its label vocabulary grows.

Following the extensibility protocol of "Delving into the Openness of CLIP" (Ren et al.,
arXiv 2206.01986): the classes are put in a random order (seeded, recorded) and the
vocabulary grows by `step` classes at a time. At each size n the classifier chooses among
the first n classes only, and is scored on the samples whose class is among them:
    extensibility curve  acc(n) = accuracy on the samples of the n classes, argmax over n classes
    stability curve      acc_first(n) = accuracy on the samples of the FIRST step's classes, at size n
Summaries: the mean of each curve over the sizes (and over `trials` random orders), and the
drop from the smallest to the full vocabulary. Ties are broken towards the lower class index
(np.argmax), as any argmax classifier does.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np


def openness_curve(logits: np.ndarray, labels: Sequence[int] | np.ndarray, step: int = 10, trials: int = 3,
                   seed: int = 0) -> dict[str, Any]:
    """logits: samples x classes; labels: each sample's class index. Returns the curve, its
    summaries and the vocabulary orders used (so the result can be reproduced)."""
    logits = np.asarray(logits, dtype=np.float32)  # ImageNet: 50k x 1000, 200 MB
    labels = np.asarray(labels, dtype=np.int64)
    n_cls = logits.shape[1]
    if logits.ndim != 2 or len(labels) != logits.shape[0]:
        raise ValueError(f"openness: logits must be samples x classes with one label per sample, "
                         f"got {logits.shape} and {len(labels)} labels")
    if not np.isfinite(logits).all():
        raise ValueError("openness: the logits contain NaN or infinite values")
    if step < 1 or step >= n_cls:
        raise ValueError(f"openness: step must be in 1..{n_cls - 1} (the number of classes is {n_cls}), got {step}")
    sizes = list(range(step, n_cls, step)) + [n_cls]
    rng = np.random.default_rng(seed)
    orders, ext, stab = [], [], []
    for _ in range(trials):
        order = rng.permutation(n_cls)
        orders.append(order.tolist())
        rank_of = np.empty(n_cls, dtype=np.int64)
        rank_of[order] = np.arange(n_cls)
        label_rank = rank_of[labels]  # position of each sample's class in this order
        reordered = logits[:, order]  # column j = the j-th class of the order
        e, s = [], []
        first = label_rank < sizes[0]
        best = np.full(len(labels), -np.inf, dtype=np.float32)
        pred = np.zeros(len(labels), dtype=np.int64)
        start = 0
        for n in sizes:  # argmax over the first n columns, kept running block by block: O(C), not O(C^2)
            block = reordered[:, start:n]
            top = block.argmax(axis=1)
            top_val = block[np.arange(len(labels)), top]
            better = top_val > best  # strictly: a tie keeps the lower index, as argmax over all n does
            pred[better], best[better] = top[better] + start, top_val[better]
            start = n
            inside = label_rank < n
            correct = pred == label_rank
            e.append(float(correct[inside].mean()) if inside.any() else float("nan"))
            s.append(float(correct[first].mean()) if first.any() else float("nan"))
        ext.append(e)
        stab.append(s)
    with warnings.catch_warnings():  # a size no sample falls in is NaN (null in JSON), not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        ext_mean = np.nanmean(np.array(ext), axis=0)
        stab_mean = np.nanmean(np.array(stab), axis=0)
        summary = {"extensibility": np.nanmean(ext_mean), "stability_mean": np.nanmean(stab_mean),
                   "drop": ext_mean[0] - ext_mean[-1]}
    return {
        "protocol": "CLIP-openness extensibility (arXiv 2206.01986)", "step": step, "trials": trials,
        "seed": seed, "sizes": sizes, "accuracy": _json(ext_mean), "stability": _json(stab_mean),
        "per_trial": [_json(e) for e in ext], **{k: _json([v])[0] for k, v in summary.items()},
        "orders": orders,
    }


def _json(values: Any) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]
