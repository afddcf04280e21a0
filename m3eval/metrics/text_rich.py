"""Text-rich VQA scorers: ANLS (DocVQA) and relaxed accuracy (ChartQA), as their official scripts compute them.

Official sources followed (the ports in tests/reference/ are the differential-test oracles):
- ANLS: the DocVQA / InfographicVQA evaluation script distributed by the RRC, as kept in QwenLM/Qwen-VL
  eval_mm/infographicsvqa_eval.py (evaluate_method) at commit e6bbb9dd9e9fc44a4498d372e83b3b172dc1d808
  (2023-08-25; identical at master aa00ed04091eea5fcdd32985e7915f1c53e7d599). Qwen-VL's evaluate_vqa.py
  scores docvqa_val by running this very script, so ANLS needs no separate Qwen-VL protocol.
- Relaxed accuracy: google-research/pix2struct pix2struct/metrics.py relaxed_correctness(target, prediction)
  at master 945f27e936c9464d9d7c133f1bd1f4f383be9e99 (2025-02-28; unchanged since c4b0f9a, 2022-10-19),
  aggregated over a sample's targets as pix2struct's aggregate_metrics does (max).
- The Qwen-VL ChartQA protocol: QwenLM/Qwen-VL eval_mm/evaluate_vqa.py evaluate_relaxed_accuracy at
  cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c (2023-09-04; identical at master aa00ed0) calls
  relaxed_correctness(elem['answer'].strip(), ann): the model's stripped answer is the TARGET, so the 5%
  tolerance is relative to the model's answer; max over the annotations.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

from m3eval.metrics.base import Metric, MetricInput, MetricResult, per_sample, register_metric

ANLS_SOURCE = ("QwenLM/Qwen-VL eval_mm/infographicsvqa_eval.py @ e6bbb9dd9e9fc44a4498d372e83b3b172dc1d808 "
               "(the RRC DocVQA/InfographicVQA script; identical at master aa00ed0)")
PIX2STRUCT_SOURCE = "google-research/pix2struct pix2struct/metrics.py @ 945f27e936c9464d9d7c133f1bd1f4f383be9e99"
QWEN_VL_VQA_SOURCE = "QwenLM/Qwen-VL eval_mm/evaluate_vqa.py @ cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c"


# ---- Levenshtein distance --------------------------------------------------------------------

def levenshtein(a: str, b: str) -> int:
    """Edit distance (unit insert/delete/substitute) between two strings, by code point: the value
    the script's O(n*m) DP gives, computed with Myers/Hyyro's bit-parallel algorithm (Python ints as
    bit vectors: one pass of a dozen integer operations per character of the shorter string)."""
    if a == b:
        return 0
    # the common prefix and suffix never cost anything
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    j = 0
    while j < n - i and a[-1 - j] == b[-1 - j]:
        j += 1
    a, b = a[i:len(a) - j], b[i:len(b) - j]
    if len(a) < len(b):
        a, b = b, a  # a: the bit-vector side (longer), b: the side iterated over
    m = len(a)
    if not b:
        return m
    peq: dict[str, int] = {}
    bit = 1
    for ch in a:
        peq[ch] = peq.get(ch, 0) | bit
        bit <<= 1
    mask = bit - 1
    top = bit >> 1
    pv, mv, score = mask, 0, m
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


# ---- ANLS ------------------------------------------------------------------------------------

def _anls_norm(text: str) -> str:
    # the script's preprocessing of both strings: ' '.join(answer.strip().lower().split())
    return " ".join(text.strip().lower().split())


def _upper_len(text: str) -> int:
    # the script divides by len(raw.upper()): upper() may change the length ("ß" -> "SS"), never for ASCII
    return len(text) if text.isascii() else len(text.upper())


def _check_text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} is {type(value).__name__}, not str")


def _check_answers(answers: object) -> None:
    if isinstance(answers, str) or not isinstance(answers, (list, tuple)):
        raise TypeError(f"answers must be a list of strings, got {type(answers).__name__}")
    if not answers:
        raise ValueError("no gold answers to score against (empty list)")
    for j, a in enumerate(answers):
        _check_text(a, f"answer {j}")


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    """ANLS of one answer against a question's gold answers, 0..1, as infographicsvqa_eval.py computes it.

    Both strings are stripped, lowercased and their whitespace runs collapsed to one space; the
    normalized Levenshtein distance of an answer is dist / max(len(answer.upper()),
    len(prediction.upper())), lengths of the RAW strings as the script takes them (0.0 when both are
    empty); the result is 1 - the smallest over the answers, and 0 when below `threshold`.
    """
    _check_text(prediction, "prediction")
    _check_answers(answers)
    threshold = _check_fraction(threshold, "threshold")
    det = _anls_norm(prediction)
    det_len = _upper_len(prediction)
    best = math.inf  # the script's min(values)
    for answer in answers:
        gt = _anls_norm(answer)
        length = max(_upper_len(answer), det_len)
        if gt == det:  # distance 0: value 0.0, nothing can be smaller
            best = 0.0
            break
        # dist >= the length difference: an answer that cannot reach the threshold cannot change the
        # result (if it held the minimum, the result would be below the threshold, hence 0 anyway)
        if 1 - abs(len(gt) - len(det)) / length < threshold:
            continue
        value = levenshtein(gt, det) / length
        if value < best:
            best = value
    result = 1 - best
    return 0.0 if result < threshold else result


# ---- relaxed accuracy ------------------------------------------------------------------------

def _to_float(text: str) -> Optional[float]:
    # pix2struct relaxed_correctness._to_float: Python float() (so " 12 ", "1_000", "1e3", "nan", "inf" parse;
    # "1,000" does not), a trailing run of '%' stripped and the value divided by 100.
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_correctness(target: str, prediction: str, max_relative_change: float = 0.05) -> bool:
    """pix2struct's relaxed_correctness, argument order and all: when both parse as numbers and the
    target is not 0 (NaN is truthy, and compares False), |prediction - target| / |target| <=
    max_relative_change; otherwise case-insensitive string equality (str.lower, nothing stripped)."""
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        return abs(prediction_float - target_float) / abs(target_float) <= max_relative_change
    return prediction.lower() == target.lower()


def _check_change(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"max_relative_change must be a number >= 0, got {value!r}")
    return float(value)


def relaxed_accuracy(prediction: str, target: str, max_relative_change: float = 0.05) -> float:
    """ChartQA relaxed accuracy of one answer, 1.0 or 0.0: pix2struct relaxed_correctness(target,
    prediction), the tolerance relative to the gold `target` (the official order)."""
    _check_text(prediction, "prediction")
    _check_text(target, "target")
    max_relative_change = _check_change(max_relative_change)
    return 1.0 if relaxed_correctness(target, prediction, max_relative_change) else 0.0


def relaxed_accuracy_sample(prediction: str, references: list[str], max_relative_change: float = 0.05,
                            argument_order: str = "official") -> float:
    """One sample against its gold answers, 1.0 or 0.0, under either protocol:
    official: pix2struct aggregate_metrics, max over targets of relaxed_correctness(target, prediction);
    qwen_vl: Qwen-VL evaluate_relaxed_accuracy, max over annotations of
    relaxed_correctness(prediction.strip(), annotation) (the model's answer as the target)."""
    _check_text(prediction, "prediction")
    _check_answers(references)
    max_relative_change = _check_change(max_relative_change)
    if argument_order == "official":
        hit = any(relaxed_correctness(t, prediction, max_relative_change) for t in references)
    elif argument_order == "qwen_vl":
        answer = prediction.strip()
        hit = any(relaxed_correctness(answer, ann, max_relative_change) for ann in references)
    else:
        raise ValueError(f"argument_order must be 'official' or 'qwen_vl', got {argument_order!r}")
    return 1.0 if hit else 0.0


# ---- registry entries ------------------------------------------------------------------------

def _anls_metric(items: list[MetricInput], threshold: float = 0.5) -> MetricResult:
    _check_fraction(threshold, "anls: threshold")  # a task-definition error, before any sample
    return per_sample(lambda p, refs: anls(p, refs, threshold), items)


def _relaxed_metric(items: list[MetricInput], max_relative_change: float = 0.05,
                    argument_order: Literal["official", "qwen_vl"] = "official") -> MetricResult:
    _check_change(max_relative_change)
    if argument_order not in ("official", "qwen_vl"):
        raise ValueError(f"relaxed_accuracy: argument_order must be 'official' or 'qwen_vl', got {argument_order!r}")
    return per_sample(lambda p, refs: relaxed_accuracy_sample(p, refs, max_relative_change, argument_order), items)


register_metric(Metric(
    "anls", _anls_metric, independent=True,
    description="DocVQA ANLS: 1 - normalized Levenshtein distance to the closest gold answer, 0 below "
                "threshold; strings stripped, lowercased, whitespace collapsed; divided by the longer RAW "
                "string's length, as the official script does",
    source=ANLS_SOURCE))
register_metric(Metric(
    "relaxed_accuracy", _relaxed_metric, independent=True,
    description="ChartQA relaxed accuracy: numbers (percentages parsed) within max_relative_change, else "
                "case-insensitive equality; max over gold answers. argument_order: official = tolerance "
                "relative to the gold answer (pix2struct); qwen_vl = Qwen-VL's call, the model's stripped "
                "answer as the target",
    source=f"{PIX2STRUCT_SOURCE}; qwen_vl: {QWEN_VL_VQA_SOURCE}"))
