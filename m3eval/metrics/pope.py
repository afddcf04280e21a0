"""POPE (Li et al., EMNLP 2023): object hallucination probed with "Is there a <object> in the image?" questions,
scored as a yes/no classifier whose positive class is "yes".

Official source followed (the port in tests/reference/pope_evaluate.py is the differential-test oracle):
RUCAIBox/POPE evaluate.py @ 3df3ba1b110ecce25696989577fad583b67d4239 (unchanged since the initial commit
f3ec604, 2023-05-31; LLaVA's eval_pope.py reads answers the same way). An answer is read as the script
reads it: the text before its first ".", commas removed, split on single spaces; "no" when one of the words
is "No", "not" or "no", otherwise "yes" (so "Nope" and "NO" are yes, and an empty answer is yes).

Where m3eval differs from the script, on input the script would crash on or misread:
- a division by zero (no answer read as yes, no positive label) gives 0.0 for that metric instead of
  ZeroDivisionError (lmms-eval's aggregates do the same);
- labels must be "yes" or "no" (case and surrounding spaces ignored); the script reads anything but the
  exact string "no" as positive;
- in the registered metrics, a sample with no answer at all (prediction None: the model failed) counts as
  a WRONG answer (a false negative on a "yes" question, a false positive on a "no" one) and is not counted
  as a "yes" in the yes ratio; the script would read its empty text as "yes". Such samples are counted in
  each metric's details (n_unanswered).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import READS_ANSWERS, Metric, MetricInput, MetricResult, mean, register_metric

POPE_SOURCE = "RUCAIBox/POPE evaluate.py @ 3df3ba1b110ecce25696989577fad583b67d4239"
_NO_WORDS = frozenset({"No", "not", "no"})
_FIELDS = ("tp", "fp", "tn", "fn")


def pope_answer(text: str) -> str:
    """"yes" or "no": how POPE's evaluate.py reads a model's answer (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"a POPE answer must be str, got {type(text).__name__}")
    words = text.split(".", 1)[0].replace(",", "").split(" ")
    return "no" if _NO_WORDS.intersection(words) else "yes"


def pope_label(label: str) -> bool:
    """True for a "yes" question (the object is in the image), False for "no"; anything else is an error."""
    if not isinstance(label, str):
        raise TypeError(f"a POPE label must be str, got {type(label).__name__}")
    norm = label.strip().lower()
    if norm not in ("yes", "no"):
        raise ValueError(f"a POPE label is 'yes' or 'no', got {label!r}")
    return norm == "yes"


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _scores(tp: float, fp: float, tn: float, fn: float, n_yes: float) -> dict[str, float]:
    """The script's formulas, in its order of operations (so the floats are the same)."""
    precision = _ratio(float(tp), float(tp + fp))
    recall = _ratio(float(tp), float(tp + fn))
    f1 = _ratio(2 * precision * recall, precision + recall)
    n = tp + fp + tn + fn
    return {"accuracy": _ratio(tp + tn, n), "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": _ratio(n_yes, n)}


def pope_scores(predictions: list[str], labels: list[str]) -> dict[str, float]:
    """POPE's five numbers for answers and their gold labels ("yes"/"no"), as fractions 0..1:
    accuracy, precision, recall and f1 of "yes" as the positive class, and yes_ratio (the share of
    answers read as "yes")."""
    if isinstance(predictions, str) or not isinstance(predictions, (list, tuple)):
        raise TypeError(f"predictions must be a list of strings, got {type(predictions).__name__}")
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
        raise TypeError(f"labels must be a list of strings, got {type(labels).__name__}")
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if not predictions:
        raise ValueError("no predictions to score (empty list)")
    counts = dict.fromkeys(_FIELDS, 0)
    for p, gold in zip(predictions, labels):
        said_yes, is_yes = pope_answer(p) == "yes", pope_label(gold)
        counts[("t" if said_yes == is_yes else "f") + ("p" if said_yes else "n")] += 1
    return _scores(**counts, n_yes=counts["tp"] + counts["fp"])


# ---- registry entries: label = references[0]; prediction None = unanswered (counted wrong) ----------

def _read(items: list[MetricInput]) -> tuple[np.ndarray, list[str | None]]:
    """Per sample: a row of 0/1 indicators (tp, fp, tn, fn, said yes) and what the answer was read as."""
    rows, read = np.zeros((len(items), 5), dtype=np.int64), []
    for i, it in enumerate(items):
        if not it.references:
            raise SampleScoreError(i, "no gold label in references")
        try:
            is_yes = pope_label(it.references[0])
            answer = None if it.prediction is None else pope_answer(it.prediction)
        except (TypeError, ValueError) as e:
            raise SampleScoreError(i, str(e)) from None
        read.append(answer)
        said_yes = (not is_yes) if answer is None else answer == "yes"  # unanswered: the wrong answer
        rows[i, _FIELDS.index(("t" if said_yes == is_yes else "f") + ("p" if said_yes else "n"))] = 1
        rows[i, 4] = answer == "yes"
    return rows, read


def _details(rows: np.ndarray, read: list[str | None]) -> dict[str, Any]:
    tot = rows.sum(axis=0)
    return {**{k: int(v) for k, v in zip(_FIELDS, tot)}, "n_unanswered": sum(r is None for r in read)}


def _corpus(key: str):
    def compute(items: list[MetricInput]) -> MetricResult:
        rows, read = _read(items)

        def rescore(counts: np.ndarray) -> float:
            tp, fp, tn, fn, n_yes = (counts @ rows).tolist()
            return _scores(tp, fp, tn, fn, n_yes)[key]

        return MetricResult(rescore(np.ones(len(items), dtype=np.int64)), None, rescore=rescore,
                            details=_details(rows, read))
    return compute


def _pope_accuracy(items: list[MetricInput]) -> MetricResult:
    rows, read = _read(items)
    per = [float(r) for r in rows[:, 0] + rows[:, 2]]
    return MetricResult(mean(per), per, details=_details(rows, read),
                        sample_details=[None if r is None else {"read_as": r} for r in read])


def _pope_yes_ratio(items: list[MetricInput]) -> MetricResult:
    rows, read = _read(items)
    per = [float(r) for r in rows[:, 4]]
    return MetricResult(mean(per), per, details=_details(rows, read))


_READ = "answers read as POPE's evaluate.py does (first sentence; 'No'/'not'/'no' among its words -> no, else yes)"
register_metric(Metric("pope_accuracy", _pope_accuracy, source=POPE_SOURCE,
                       reads=READS_ANSWERS, description=f"POPE accuracy: answer == label; {_READ}"))
register_metric(Metric("pope_precision", _corpus("precision"), kind="corpus", source=POPE_SOURCE,
                       reads=READS_ANSWERS,
                       description="POPE precision of 'yes': TP / (TP + FP); 0 when nothing is read as yes"))
register_metric(Metric("pope_recall", _corpus("recall"), kind="corpus", source=POPE_SOURCE,
                       reads=READS_ANSWERS, description="POPE recall of 'yes': TP / (TP + FN); 0 when no label is yes"))
register_metric(Metric("pope_f1", _corpus("f1"), kind="corpus", source=POPE_SOURCE,
                       reads=READS_ANSWERS,
                       description="POPE F1 of 'yes' (the paper's major metric): 2PR / (P + R); 0 when P + R = 0"))
# a diagnostic, not a score: 0.5 is unbiased on POPE's balanced sets, above it the yes-bias POPE exposes
register_metric(Metric("pope_yes_ratio", _pope_yes_ratio, higher_is_better=False, source=POPE_SOURCE,
                       reads=READS_ANSWERS,
                       description="POPE yes ratio: share of answers read as yes (diagnostic; 0.5 = unbiased on "
                                   "POPE's balanced sets, higher = yes-bias)"))
