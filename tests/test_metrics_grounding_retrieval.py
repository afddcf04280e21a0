"""Plain functions for grounding (box parsing, IoU, accuracy) and retrieval (recall@K),
checked against faithful ports of the original scorers kept here."""
from __future__ import annotations

import re

import numpy as np
import pytest

from m3eval.scoring.filters import apply_filters
from m3eval.metrics import box_iou, get_metric, grounding_accuracy, recall_at_k
from m3eval.metrics.base import MetricInput
from m3eval.metrics.grounding import parse_box
from m3eval.metrics.retrieval import embedding_ranks, ranks, retrieval_ranks


# ---- reference ports -----------------------------------------------------------------------

def qwen_vl_correct(answer: str, gt_bbox: list[float], h: float, w: float) -> bool:
    """Qwen-VL eval_mm/evaluate_grounding.py (QwenLM/Qwen-VL @ 10cb904198d4e0e161d0f9f36ba9fac8ac7899e4):
    first (a,b),(c,d) pair, / 999, scaled by w/h, IoU (no +1) >= 0.5; unparsable -> box 0."""
    found = re.findall(r"\((.*?)\),\((.*?)\)", answer)
    try:
        if "," not in found[0][0] or "," not in found[0][1]:
            box = (0., 0., 0., 0.)
        else:
            x1, y1 = [float(t) for t in found[0][0].split(",")]
            x2, y2 = [float(t) for t in found[0][1].split(",")]
            box = (x1, y1, x2, y2)
    except Exception:
        box = (0., 0., 0., 0.)
    p = [box[0] / 999 * w, box[1] / 999 * h, box[2] / 999 * w, box[3] / 999 * h]
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    iw = max(0.0, min(p[2], gt_bbox[2]) - max(p[0], gt_bbox[0]))
    ih = max(0.0, min(p[3], gt_bbox[3]) - max(p[1], gt_bbox[1]))
    inter = iw * ih
    union = area(p) + area(gt_bbox) - inter
    return union > 0 and inter / union >= 0.5


def argsort_recall(sim: np.ndarray, positives: list[set[int]], k: int) -> float:
    """The usual protocol (CLIP / ALBEF evaluation): a query is a hit if any positive is in its top k."""
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return float(np.mean([bool(set(order[q]) & positives[q]) for q in range(sim.shape[0])]))


# ---- grounding -----------------------------------------------------------------------------

def test_box_iou_known_values():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    with pytest.raises(ValueError, match="4 numbers"):
        box_iou([0, 0, 1], [0, 0, 1, 1])


def test_parse_box_formats_and_failures():
    q = parse_box("<ref>the man</ref><box>(100,200),(300,400)</box>")
    assert q.units == "grid" and q.coords == (100, 200, 300, 400)
    assert parse_box("[10, 20, 30, 40]").units == "pixel"
    assert parse_box("The box is [0.1, 0.2, 0.5, 0.9].").units == "norm"
    assert parse_box("[0.1, 0.2, 0.5, 0.9]", units="pixel").units == "pixel"
    for bad in ["", "a man on the left", "(1,2)", "[1, 2, 3]", "<box>(a,b),(c,d)</box>"]:
        assert parse_box(bad) is None
    assert apply_filters("nothing here", [{"name": "box"}]) is None
    assert apply_filters("sure: [1, 2, 3, 4] ok", [{"name": "box"}]) == "[1, 2, 3, 4]"


def test_grounding_accuracy_matches_qwen_vl_scorer():
    rng = np.random.default_rng(0)
    answers, gts, sizes = [], [], []
    for _ in range(300):
        w, h = float(rng.integers(50, 800)), float(rng.integers(50, 800))
        x1, y1 = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
        gt = [x1, y1, x1 + rng.uniform(5, w / 2), y1 + rng.uniform(5, h / 2)]
        g = [round(v) for v in (gt[0] / w * 999, gt[1] / h * 999, gt[2] / w * 999, gt[3] / h * 999)]
        g = [min(999, max(0, v + int(rng.integers(-150, 150)))) for v in g]
        kind = rng.integers(0, 3)
        ans = (f"<ref>x</ref><box>({g[0]},{g[1]}),({g[2]},{g[3]})</box>" if kind == 0
               else f"({g[0]},{g[1]}),({g[2]},{g[3]})" if kind == 1 else "I am not sure")
        answers.append(ans), gts.append(gt), sizes.append((w, h))
    ours = [grounding_accuracy(a, b, w, h) for a, b, (w, h) in zip(answers, gts, sizes)]
    ref = [float(qwen_vl_correct(a, b, h, w)) for a, b, (w, h) in zip(answers, gts, sizes)]
    assert ours == ref
    assert 0 < sum(ours) < len(ours)  # both outcomes occur


def test_grounding_plain_pixel_and_normalized():
    gt = [20, 40, 60, 80]
    assert grounding_accuracy("[20, 40, 60, 80]", gt, 100, 200) == 1.0
    assert grounding_accuracy("[0.2, 0.2, 0.6, 0.4]", gt, 100, 200) == 1.0
    assert grounding_accuracy("[0.2, 0.2, 0.6, 0.4]", gt, 100, 200, units="pixel") == 0.0
    assert grounding_accuracy("no box", gt, 100, 200) == 0.0
    assert grounding_accuracy("[20, 40, 60, 80]", [60, 80, 100, 120], 100, 200) == 0.0


def test_grounding_metric_size_from_reference_or_media_info():
    m = get_metric("grounding_acc")
    items = [MetricInput("(200,200),(600,400)", ["[20, 40, 60, 80, 100, 200]"]),
             MetricInput("[0.2, 0.2, 0.6, 0.4]", ["20,40,60,80"], media_info={"image_size": [100, 200]}),
             MetricInput(None, ["20,40,60,80"]),
             MetricInput("[20, 40, 60, 80]", ["20,40,60,80"])]
    r = m.compute(items)
    assert r.per_sample == [1.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="image size"):
        m.compute([MetricInput("[0.2, 0.2, 0.6, 0.4]", ["20,40,60,80"])])
    with pytest.raises(ValueError, match="4 numbers"):
        m.compute([MetricInput("[1, 2, 3, 4]", ["1,2,3"])])


# ---- retrieval -----------------------------------------------------------------------------

def test_recall_at_k_matches_argsort_protocol():
    rng = np.random.default_rng(1)
    sim = rng.normal(size=(40, 120)).astype(np.float32)
    positives = [set(rng.choice(120, size=int(rng.integers(1, 6)), replace=False).tolist()) for _ in range(40)]
    for k in (1, 5, 10):
        assert recall_at_k(sim, positives, k) == argsort_recall(sim, positives, k)
    assert 0 < recall_at_k(sim, positives, 10) < 1


def test_recall_ties_count_against_and_chunks_agree():
    assert recall_at_k(np.zeros((3, 50)), [{0}, {1}, {2}], 1) == 0.0  # constant scores: no free hits
    assert recall_at_k(np.eye(3), [{0}, {1}, {2}], 1) == 1.0
    rng = np.random.default_rng(2)
    q, c = rng.normal(size=(37, 8)), rng.normal(size=(90, 8))
    pos = [{i % 90, (i * 7) % 90} for i in range(37)]
    whole = ranks((q.astype(np.float32) @ c.astype(np.float32).T), pos)
    assert np.array_equal(embedding_ranks(q, c, pos, chunk_rows=5), whole)
    with pytest.raises(ValueError, match="no positive"):
        recall_at_k(np.zeros((2, 3)), [{0}, set()], 1)
    with pytest.raises(ValueError, match="out of range"):
        recall_at_k(np.zeros((1, 3)), [{3}], 1)


def test_qwen_pattern_spacing_follows_the_official_scorer():
    for answer in ["(10,20),(300,400)", "( 10, 20),(300 ,400 )", "(10,20), (300,400)", "(10,20) ,(300,400)"]:
        assert grounding_accuracy(answer, [10, 20, 300, 400], 999, 999) == float(
            qwen_vl_correct(answer, [10, 20, 300, 400], 999, 999)), answer


def test_one_pass_both_directions_equals_two_passes():
    rng = np.random.default_rng(5)
    img, txt = rng.normal(size=(23, 8)), rng.normal(size=(70, 8))
    owner = [j % 21 for j in range(70)]  # images 21 and 22 have no caption
    caps = [[j for j, o in enumerate(owner) if o == i] for i in range(23)]
    for rows in (None, 4, 1):
        i2t, t2i = retrieval_ranks(img, txt, owner, chunk_rows=rows)
        assert np.array_equal(i2t[:21], embedding_ranks(img[:21], txt, caps[:21])) and list(i2t[21:]) == [-1, -1]
        assert np.array_equal(t2i, embedding_ranks(txt, img, [[o] for o in owner]))
