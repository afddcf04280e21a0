"""Referring-expression grounding (RefCOCO/+/g): box parsing, IoU, accuracy at IoU >= 0.5.

A prediction names one box, in one of two formats:
- Qwen-VL: `<ref>the man</ref><box>(x1,y1),(x2,y2)</box>` on Qwen-VL's 0-1000 grid;
- plain: `[x1, y1, x2, y2]`, in pixels, or normalized to 0..1 (`units: auto` takes a box
  whose four numbers all lie in [0, 1] as normalized).
The reference is the ground-truth box in pixels, `x1,y1,x2,y2` (any brackets), optionally
followed by the image's width and height (`x1,y1,x2,y2,W,H`); without them the image size
recorded by the runner (media_info["image_size"]) is used.

An answer with no parsable box is never guessed: `parse_box` returns None, the `box` filter
makes it an extraction failure (counted in results.json), and it scores 0.

The official scorer this follows is Qwen-VL's eval_mm/evaluate_grounding.py
(github.com/QwenLM/Qwen-VL, commit 10cb904198d4e0e161d0f9f36ba9fac8ac7899e4): the first
`(x1,y1),(x2,y2)` pair of the answer, divided by 999 (sic: its grid is 0..999) and scaled by
the image width/height, IoU without the +1 pixel convention, correct iff IoU >= 0.5.
`grid` is a named option (999 by default, as there; 1000 for models that use 0..1000).

`protocol: qwen_vl` (the `*_qwen_vl` RefCOCO twins) reproduces that script exactly, where the
default reading above is more lenient: QWEN_VL_GROUNDING_SOURCE, docs/TASKS_SUITE.md section 6.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import Metric, MetricInput, MetricResult, mean, register_metric

_NUM = r"[-+]?\d+(?:\.\d+)?"
# Qwen-VL's scorer takes the first "(a,b),(c,d)" (spaces inside the brackets, none around the
# middle comma); the <box> tag around it is optional there too. Unlike its `(.*?)` groups, a
# bracket pair holding no two numbers is skipped rather than scored as the box (0,0,0,0).
_QWEN = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\),\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_PLAIN = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
UNITS = ("auto", "pixel", "norm")
PROTOCOLS = ("official", "qwen_vl")
QWEN_VL_GROUNDING_SOURCE = ("QwenLM/Qwen-VL eval_mm/evaluate_grounding.py @ e6bbb9dd9e9fc44a4498d372e83b3b172dc1d808 "
                            "(its last change; identical at cfe66a7 and master aa00ed04)")
# evaluate_grounding.py's PATTERN, used as its findall()[0] (the first match): any text without a
# newline inside each bracket pair, the pair's halves joined by exactly "),(".
_QWEN_VL_PAIR = re.compile(r"\((.*?)\),\((.*?)\)")


@dataclass(frozen=True)
class Box:
    coords: tuple[float, float, float, float]  # x1, y1, x2, y2 in `units`
    units: str  # grid | pixel | norm
    text: str  # the matched span, for the extracted-answer column

    def to_pixels(self, width: float, height: float, grid: float = 999) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = self.coords
        if self.units == "pixel":
            return x1, y1, x2, y2
        sx, sy = (width / grid, height / grid) if self.units == "grid" else (width, height)
        return x1 * sx, y1 * sy, x2 * sx, y2 * sy


def parse_box(text: str | None, units: str = "auto", protocol: str = "official") -> Box | None:
    """The first box the text names (Qwen-VL format first, then plain), else None.
    protocol qwen_vl: only evaluate_grounding.py's reading (parse_qwen_vl_box)."""
    if units not in UNITS:
        raise ValueError(f"box units must be one of {UNITS}, got {units!r}")
    _check_protocol(protocol)
    if not text:
        return None
    if protocol == "qwen_vl":
        return parse_qwen_vl_box(text)
    m = _QWEN.search(text)
    if m:
        return Box(tuple(float(v) for v in m.groups()), "grid", m.group(0))  # type: ignore[arg-type]
    m = _PLAIN.search(text)
    if not m:
        return None
    coords = tuple(float(v) for v in m.groups())
    if units == "auto":
        units = "norm" if all(0.0 <= v <= 1.0 for v in coords) else "pixel"
    return Box(coords, units, m.group(0))  # type: ignore[arg-type]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two [x1, y1, x2, y2] boxes (continuous coordinates: no +1). A degenerate or
    inverted box has area 0; two empty boxes have IoU 0."""
    if len(a) != 4 or len(b) != 4:
        raise ValueError(f"box_iou: boxes must have 4 numbers [x1, y1, x2, y2], got {list(a)} and {list(b)}")
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"grounding protocol must be one of {PROTOCOLS}, got {protocol!r}")


def parse_qwen_vl_box(text: str) -> Box | None:
    """The box evaluate_grounding.py reads: the first `(A),(B)` of the answer (PATTERN), each of A
    and B exactly two comma-separated numbers as Python's float() reads them (spaces, signs,
    exponents, inf/nan, underscores, any Unicode digits), else None. The script scores None as the
    box (0,0,0,0), whose IoU with any box is 0 or NaN: never a hit, so None scoring 0 is the same.
    Unlike the default reading, a first pair that is not two numbers is not skipped for a later one."""
    m = _QWEN_VL_PAIR.search(text)  # findall()[0] is the first match, which search() finds
    if m is None:
        return None
    coords: list[float] = []
    for half in m.groups():
        parts = half.split(",")
        if len(parts) != 2:  # no comma: the script's explicit check; more: its unpacking fails
            return None
        try:
            coords += [float(v) for v in parts]
        except ValueError:
            return None
    return Box((coords[0], coords[1], coords[2], coords[3]), "grid", m.group(0))


def qwen_vl_iou(coords: Sequence[float], box: Sequence[float], width: float, height: float) -> float:
    """IoU as evaluate_grounding.py computes it: float32 throughout (torch.float32 tensors), the
    grid box divided by 999 then scaled by the width / height, torchvision's box_area (no clamp:
    an inverted box has a negative area), the intersection clamped at 0, NaN propagated (never a hit)."""
    f32 = np.float32
    with np.errstate(all="ignore"):  # overflow to inf and 0/0 are part of the script's arithmetic
        p = np.array(coords, dtype=f32) / f32(999)
        p[0::2] *= f32(width)
        p[1::2] *= f32(height)
        g = np.array(box, dtype=f32)
        area_p = (p[2] - p[0]) * (p[3] - p[1])
        area_g = (g[2] - g[0]) * (g[3] - g[1])
        lt, rb = np.maximum(p[:2], g[:2]), np.minimum(p[2:], g[2:])
        wh = np.maximum(rb - lt, f32(0))  # clamp(min=0); np.maximum keeps NaN as torch's clamp does
        inter = wh[0] * wh[1]
        union = area_p + area_g - inter
        return float(inter / union)


def grounding_accuracy(prediction: str | None, box: Sequence[float], width: float, height: float,
                       threshold: float = 0.5, units: str = "auto", grid: float = 999,
                       protocol: str = "official") -> float:
    """1.0 if the box the prediction names has IoU >= threshold with `box` (pixels), else 0.0.
    An unparsable prediction scores 0.0 (use parse_box to count those). protocol qwen_vl:
    evaluate_grounding.py's parsing and float32 arithmetic (grid 999 and units do not apply)."""
    return _hit(parse_box(prediction, units, protocol), box, width, height, threshold, grid, protocol)


def _hit(parsed: Box | None, box: Sequence[float], width: float, height: float, threshold: float,
         grid: float, protocol: str = "official") -> float:
    if parsed is None:
        return 0.0
    if protocol == "qwen_vl":
        return float(qwen_vl_iou(parsed.coords, box, width, height) >= threshold)
    return float(box_iou(parsed.to_pixels(width, height, grid), box) >= threshold)


def parse_reference(ref: str) -> tuple[list[float], tuple[float, float] | None]:
    """'x1,y1,x2,y2' or 'x1,y1,x2,y2,W,H' (brackets and spaces allowed) -> (box, size or None)."""
    nums = [float(v) for v in re.findall(_NUM, ref)]
    if len(nums) not in (4, 6):
        raise ValueError(f"grounding reference {ref!r}: expected 4 numbers (x1,y1,x2,y2 in pixels) "
                         "or 6 (then the image width and height)")
    return nums[:4], ((nums[4], nums[5]) if len(nums) == 6 else None)


def _grounding_items(items: list[MetricInput], threshold: float = 0.5, units: str = "auto",
                     grid: float = 999, protocol: str = "official") -> MetricResult:
    _check_protocol(protocol)  # a task-definition error, before any sample
    scores = []
    for i, it in enumerate(items):
        if not it.references:
            raise SampleScoreError(i, "no reference box")
        box, size = parse_reference(it.references[0])
        parsed = parse_box(it.prediction, units, protocol)
        if parsed is None:
            scores.append(0.0)
            continue
        if size is None and parsed.units != "pixel":
            size = tuple((it.media_info or {}).get("image_size") or ()) or None
            if size is None:
                raise SampleScoreError(i, f"a {parsed.units} box needs the image size: give it in the "
                                          "reference (x1,y1,x2,y2,W,H) or keep the run's media_info")
        w, h = size if size is not None else (0.0, 0.0)
        scores.append(_hit(parsed, box, w, h, threshold, grid, protocol))
    return MetricResult(mean(scores), scores)


def box_filter(text: str, choices: object, units: str = "auto", protocol: str = "official") -> str | None:
    """The first box the answer names (Qwen-VL `(x1,y1),(x2,y2)` or plain `[x1, y1, x2, y2]`), else None;
    protocol qwen_vl: the `(..),(..)` span evaluate_grounding.py reads, None if it holds no box."""
    parsed = parse_box(text, units, protocol)
    return None if parsed is None else parsed.text


def check_box_args(units: str = "auto", protocol: str = "official") -> None:
    """The box filter's args, checked when the task is read."""
    if units not in UNITS:
        raise ValueError(f"box units must be one of {UNITS}, got {units!r}")
    _check_protocol(protocol)


register_metric(Metric("grounding_acc", _grounding_items, independent=True,
                       description="RefCOCO-style accuracy: IoU >= threshold (0.5) with the reference box "
                                   "(Qwen-VL grid / plain pixel / normalized boxes); protocol qwen_vl: "
                                   "Qwen-VL's own parsing and float32 IoU",
                       source=QWEN_VL_GROUNDING_SOURCE))
