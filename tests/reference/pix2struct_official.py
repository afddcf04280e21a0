"""Ports of ChartQA relaxed accuracy, written from reading the sources.

1. google-research/pix2struct, pix2struct/metrics.py at master 945f27e936c9464d9d7c133f1bd1f4f383be9e99
   (2025-02-28; relaxed_correctness and aggregate_metrics unchanged since c4b0f9a, 2022-10-19):
   relaxed_correctness(target, prediction) and the dataset aggregation pix2struct_metrics uses
   for it (aggregate_metrics with the identity normalize_fn: max over a sample's targets, then
   100 * total / n).
2. QwenLM/Qwen-VL, eval_mm/evaluate_vqa.py at cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c (2023-09-04,
   "add chartqa gqa ocrvqa ai2d evaluation files"; identical at master aa00ed04091eea5fcdd32985e7915f1c53e7d599):
   its copy of relaxed_correctness (the same code) and evaluate_relaxed_accuracy, which calls it as
   relaxed_correctness(elem['answer'].strip(), ann): the model's answer, stripped, as the TARGET and
   the (unstripped) annotation as the prediction; a string annotation becomes a one-item list; max
   over annotations (of bools); sum(scores) / len(scores), no x100.
"""
from typing import Optional


# ---- pix2struct/metrics.py ----

def relaxed_correctness(target: str,
                        prediction: str,
                        max_relative_change: float = 0.05) -> bool:
    def _to_float(text: str) -> Optional[float]:
        try:
            if text.endswith("%"):
                # Convert percentages to floats.
                return float(text.rstrip("%")) / 100.0
            else:
                return float(text)
        except ValueError:
            return None

    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    else:
        return prediction.lower() == target.lower()


def aggregate_metrics(targets, predictions, metric_fn, normalize_fn=lambda v: v) -> float:
    assert len(targets) == len(predictions)
    total = 0
    for prediction, target in zip(predictions, targets):
        p = normalize_fn(prediction)
        total += max(metric_fn(normalize_fn(t), p) for t in target)
    return (100.0 * total) / len(targets)


def pix2struct_relaxed_accuracy(targets, predictions) -> float:
    """pix2struct_metrics(...)['relaxed_accuracy'] (0..100)."""
    return aggregate_metrics(targets=targets, predictions=predictions, metric_fn=relaxed_correctness)


def pix2struct_sample(target_list, prediction) -> bool:
    """The per-sample term aggregate_metrics adds to `total`."""
    return max(relaxed_correctness(t, prediction) for t in target_list)


# ---- Qwen-VL eval_mm/evaluate_vqa.py ----

def evaluate_relaxed_accuracy(entries) -> float:
    """entries: dicts with 'answer' (the model's decoded answer) and 'annotation' (str or list)."""
    scores = []
    for elem in entries:
        if isinstance(elem["annotation"], str):
            elem["annotation"] = [elem["annotation"]]
        score = max([
            relaxed_correctness(elem["answer"].strip(), ann)
            for ann in elem["annotation"]
        ])
        scores.append(score)
    return sum(scores) / len(scores)


def qwen_vl_sample(annotation, answer) -> bool:
    """One entry's score in evaluate_relaxed_accuracy."""
    if isinstance(annotation, str):
        annotation = [annotation]
    return max([relaxed_correctness(answer.strip(), ann) for ann in annotation])
