"""grounding_acc under `protocol: qwen_vl` against the port of Qwen-VL's eval_mm/evaluate_grounding.py
(tests/reference/qwen_vl_grounding.py): random boxes near and far from the reference, boxes at IoU 0.5 where
float32 and float64 disagree, and adversarial answers (odd brackets, Python float() spellings, newlines,
overflow, degenerate reference boxes)."""
from __future__ import annotations

import random

import numpy as np
import pytest
from reference import qwen_vl_grounding as ref

from m3eval.metrics import get_metric, grounding_accuracy
from m3eval.metrics.base import MetricInput
from m3eval.metrics.grounding import parse_box, qwen_vl_iou
from m3eval.scoring.filters import apply_filters

QWEN = [{"name": "box", "args": {"protocol": "qwen_vl"}}]


def _grid_answer(rng: random.Random, gt: list[float], w: float, h: float) -> str:
    """The reference box on Qwen-VL's 0..999 grid, moved a little or a lot, in one of the forms models give."""
    noise = rng.choice([0, 5, 40, 200])
    g = [gt[0] / w * 999, gt[1] / h * 999, gt[2] / w * 999, gt[3] / h * 999]
    g = [round(v + rng.uniform(-noise, noise)) for v in g]
    form = rng.randrange(4)
    if form == 0:
        return f"<ref>the thing</ref><box>({g[0]},{g[1]}),({g[2]},{g[3]})</box>"
    if form == 1:
        return f"({g[0]},{g[1]}),({g[2]},{g[3]})"
    if form == 2:
        return f"It is at ( {g[0]} , {g[1]} ),( {g[2]} ,{g[3]}) in the image."
    return f"the thing<box>({g[0]}.{rng.randrange(10)},{g[1]}),({g[2]},{g[3]}.5)</box> and ({g[3]},{g[2]}),(1,1)"


def _half_iou_case(rng: random.Random) -> tuple[str, list[float], float, float]:
    """A grid answer and a reference box twice its size containing it: IoU 0.5 in exact arithmetic, so the
    float32 rounding of the script decides the hit."""
    w, h = float(rng.randrange(100, 1200)), float(rng.randrange(100, 1200))
    x1, y1 = rng.randrange(0, 400), rng.randrange(0, 400)
    x2, y2 = x1 + rng.randrange(1, 500), y1 + rng.randrange(1, 500)
    px = [x1 / 999 * w, y1 / 999 * h, x2 / 999 * w, y2 / 999 * h]
    gt = [px[0], px[1], px[0] + 2 * (px[2] - px[0]), px[3]] if rng.random() < 0.5 else \
        [px[0], px[1] - (px[3] - px[1]), px[2], px[3]]
    return f"({x1},{y1}),({x2},{y2})", gt, w, h


ADVERSARIAL = [
    "", "no box here", "(1,2)", "(1,2),(3,4", "(1,2), (3,4)", "(1,2) ,(3,4)", "((100,100),(600,600))",
    "(x),(100,100),(600,600)", "(100,100,5),(600,600)", "(100;100),(600,600)", "(,),(,)", "(100,100),(600,600,)",
    "( 100 , 100 ),( 600 , 600 )", "(1e2,1E2),(6e2,600)", "(+100,-0),(600.,6_00)", "(inf,0),(600,600)",
    "(nan,100),(600,600)", "(100,100),(Infinity,600)", "(1e40,100),(600,600)", "(-1e40,-1e40),(1e40,1e40)",
    "(\u0661\u0660\u0660,100),(600,600)", "(\uff11\uff10\uff10,100),(600,600)", "(0x64,100),(600,600)",
    "(100,\n100),(600,600)", "(100,100),(600,600)\n(0,0),(999,999)", "(0,0),(0,0)", "(600,600),(100,100)",
    "(600,100),(100,600)", "(100,100),(100,600)", "(999,999),(0,0)", "(0,0),(999,999)",
    "<ref>a</ref><box>(100,100),(600,600)</box><box>(0,0),(999,999)</box>", "(100 100),(600 600)",
    "(100,100),(600,600))", "((100,100)),((600,600))", "[100, 100, 600, 600]", "[0.1, 0.1, 0.6, 0.6]",
    "(\t100,100 ),(600,\u2003600)", "(100,100)(600,600)", "(100,100),,(600,600)", "(-5,-5),(1004,1004)",
    "(100.0000001,100),(600,600)", "(1_,100),(600,600)", "(True,1),(600,600)", "( ),( )",
]


def _cases(n_random: int = 600) -> list[tuple[str, list[float], float, float]]:
    rng = random.Random(21)
    cases = []
    for _ in range(n_random):
        w, h = float(rng.randrange(40, 1600)), float(rng.randrange(40, 1600))
        if rng.random() < 0.1:
            w, h = w + 0.5, h + 0.25  # sizes that are not integers (the script gets COCO's integers)
        x1, y1 = rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.7)
        gt = [x1, y1, x1 + rng.uniform(1, w - x1), y1 + rng.uniform(1, h - y1)]
        cases.append((_grid_answer(rng, gt, w, h), gt, w, h))
    cases += [_half_iou_case(rng) for _ in range(400)]
    for answer in ADVERSARIAL:
        for gt, (w, h) in [([100.0, 80.0, 400.0, 300.0], (640.0, 480.0)), ([64.0, 48.0, 384.0, 288.0], (640.0, 480.0)),
                           ([50.0, 50.0, 50.0, 90.0], (500.0, 375.0)), ([300.0, 200.0, 100.0, 50.0], (500.0, 375.0)),
                           ([0.0, 0.0, 0.0, 0.0], (999.0, 999.0)), ([100.0, 100.0, 600.0, 600.0], (999.0, 999.0))]:
            cases.append((answer, gt, w, h))
    return cases


CASES = _cases()


def _reference(answer: str, gt: list[float], w: float, h: float) -> float:
    return float(ref.is_correct({"answer": answer, "gt_bbox": gt, "hw": (h, w)}))


def test_plain_function_equals_the_script_on_random_and_adversarial_answers():
    assert len(CASES) >= 500 + len(ADVERSARIAL) * 6
    ours = [grounding_accuracy(a, gt, w, h, protocol="qwen_vl") for a, gt, w, h in CASES]
    theirs = [_reference(a, gt, w, h) for a, gt, w, h in CASES]
    mismatches = [(c, o, t) for c, o, t in zip(CASES, ours, theirs) if o != t]
    assert not mismatches, mismatches[:5]
    assert 0.2 < sum(ours) / len(ours) < 0.8  # both outcomes, often


def test_the_iou_is_the_scripts_float32_value():
    for answer, gt, w, h in CASES:
        box = parse_box(answer, protocol="qwen_vl")
        theirs = ref.iou_of({"answer": answer, "gt_bbox": gt, "hw": (h, w)})
        if box is None:  # the script's (0,0,0,0): IoU 0 or NaN, never a hit
            assert ref.predict_bbox_of(answer) == (0., 0., 0., 0.) and not theirs >= 0.5, answer
            continue
        assert np.array_equal(box.coords, ref.predict_bbox_of(answer), equal_nan=True), answer
        ours = qwen_vl_iou(box.coords, gt, w, h)
        assert ours == theirs or (np.isnan(ours) and np.isnan(theirs)), (answer, gt, ours, theirs)


def test_the_metric_after_the_filter_equals_the_scripts_precision():
    """As the runner scores a task: the box filter (unparsed answers counted, scored 0), then grounding_acc
    with the image size from the reference's W,H; the value is the script's 'Precision @ 1'."""
    metric = get_metric("grounding_acc")
    items = [MetricInput(apply_filters(a, QWEN), [",".join(map(repr, [*gt, w, h]))]) for a, gt, w, h in CASES]
    result = metric.compute(items, threshold=0.5, protocol="qwen_vl")
    outputs = [{"answer": a, "gt_bbox": gt, "hw": (h, w)} for a, gt, w, h in CASES]
    assert result.per_sample == [_reference(a, gt, w, h) for a, gt, w, h in CASES]
    assert result.value == pytest.approx(ref.precision_at_1(outputs), abs=1e-12)
    unparsed = [a for a, it in zip(CASES, items) if it.prediction is None]
    assert unparsed and all(ref.predict_bbox_of(a) == (0., 0., 0., 0.) for a, *_ in unparsed)


def test_the_official_reading_differs_where_the_protocol_matters():
    """Why the twins need their own protocol: the default reading skips a first pair that holds no box, takes
    plain [x1, y1, x2, y2] boxes, reads no inf/nan/exponents and computes in float64."""
    official = [grounding_accuracy(a, gt, w, h) for a, gt, w, h in CASES]
    theirs = [_reference(a, gt, w, h) for a, gt, w, h in CASES]
    differ = {a for (a, *_), o, t in zip(CASES, official, theirs) if o != t}
    assert {"((100,100),(600,600))", "[100, 100, 600, 600]"} <= differ
    assert any(a.count(",") == 3 and a.startswith("(") and "<" not in a for a in differ)  # an IoU-0.5 case
    assert apply_filters("((100,100),(600,600))", QWEN) is None
    assert apply_filters("((100,100),(600,600))", [{"name": "box"}]) == "(100,100),(600,600)"


def test_bad_protocol_names_are_refused():
    with pytest.raises(ValueError, match="protocol"):
        get_metric("grounding_acc").compute([MetricInput("(1,2),(3,4)", ["1,2,3,4,10,10"])], protocol="qwen")
    with pytest.raises(ValueError, match="protocol"):
        apply_filters("(1,2),(3,4)", [{"name": "box", "args": {"protocol": "paper"}}])
