"""MME (Fu et al., 2023): yes/no questions in pairs (two per image), 14 subtasks.

The official scorer is eval_tool/calculation.py of the MME authors' evaluation tool (tools/eval_tool.zip on the
Evaluation branch of BradyFU/Awesome-Multimodal-Large-Language-Models @ dd2950902889cd614d4edf606827240166d29381;
port: tests/reference/mme_calculation.py). Per subtask:
- an answer is lowercased; it is "yes" or "no" when it is exactly that, else "yes" when "yes" occurs in its
  first 4 characters, else "no" when "no" does, else unparsed ("other", always wrong);
- acc = right questions / questions, acc+ = images with both questions right / images, each x100;
- score = acc + acc+ (0-200); perception = the sum over its 10 subtasks (0-2000), cognition over its 4 (0-800).

Where calculation.py cannot run, m3eval scores instead of failing, and says so in the metric's details:
- a subtask whose answers are all unparsed (sklearn's confusion_matrix fails on the empty rest): acc 0;
- an image with other than two questions (the script asserts pairs; `--limit` can cut one): acc+ counts an
  image right when all of its questions are (n_images_not_pairs);
- line breaks and tabs in an answer (the tool's one-line, tab-separated file has no room for them; its readme
  says to delete line breaks): deleted before parsing.
Pairs are the questions sharing (subtask, image); calculation.py takes consecutive lines, which in MME's files
are the same pairs. Totals are summed in MME's subtask order, as the script does, so values match it exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import READS_ANSWERS, Metric, MetricInput, MetricResult, register_metric

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
              "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION
MME_SOURCE = ("MME eval_tool/calculation.py: BradyFU/Awesome-Multimodal-Large-Language-Models, branch Evaluation, "
              "tools/eval_tool.zip @ dd2950902889cd614d4edf606827240166d29381")
Label = Literal["yes", "no", "other"]
_ORDER = {name: i for i, name in enumerate(SUBTASKS)}
_DELETED = str.maketrans("", "", "\n\r\t")


def mme_parse(prediction: str | None) -> Label:
    """calculation.py's parse_pred_ans on the lowercased answer; None (no answer) is "other"."""
    if prediction is None:
        return "other"
    text = prediction.translate(_DELETED).lower()  # lowercased before the 4-character window, as the script
    if text in ("yes", "no"):
        return text  # type: ignore[return-value]
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


@dataclass(frozen=True)
class _Corpus:
    """A scored corpus, arrays per question. A resampled corpus (question i counted counts[i] times) is scored by
    one product, counts @ weights: its columns give, per subtask present, the question weight, the right questions,
    the image weight (an image weighs the mean count of its questions) and the images all right."""

    present: np.ndarray  # the subtasks present, as indices into SUBTASKS (ascending: MME's order)
    weights: np.ndarray  # questions x 4 * len(present)
    correct: np.ndarray  # 1.0 / 0.0
    image_right: np.ndarray  # 1.0 where every question of the question's image is right
    labels: list[Label]
    n_images: int
    n_images_not_pairs: int


def _build(subtasks: list[str], images: list[str], predictions: list[str | None], answers: list[str]) -> _Corpus:
    if not subtasks:
        raise ValueError("MME: no questions to score")
    sub, img, labels, correct = [], [], [], []
    img_index: dict[tuple[int, str], int] = {}  # (subtask, image) -> image number
    for i, (s, key, pred, gold) in enumerate(zip(subtasks, images, predictions, answers)):
        if s not in _ORDER:
            raise SampleScoreError(i, f"subtask {s!r} is not one of MME's 14: {', '.join(SUBTASKS)}")
        if not isinstance(key, str) or not key:
            raise SampleScoreError(i, f"image key must be a non-empty string, got {key!r}")
        if pred is not None and not isinstance(pred, str):
            raise SampleScoreError(i, f"prediction is {type(pred).__name__}, not str")
        if not isinstance(gold, str) or gold.lower() not in ("yes", "no"):
            raise SampleScoreError(i, f"answer must be Yes or No (any case, as calculation.py asserts), got {gold!r}")
        k = _ORDER[s]
        j = img_index.setdefault((k, key), len(img_index))
        label = mme_parse(pred)
        sub.append(k)
        img.append(j)
        labels.append(label)
        correct.append(label == gold.lower())
    sub_a, img_a = np.asarray(sub, dtype=np.int64), np.asarray(img, dtype=np.int64)
    correct_a = np.asarray(correct, dtype=np.float64)
    size = np.bincount(img_a, minlength=len(img_index)).astype(np.float64)
    image_right = (np.bincount(img_a, weights=correct_a, minlength=len(img_index)) == size).astype(np.float64)[img_a]
    present = np.unique(sub_a)
    onehot = (sub_a[:, None] == present[None, :]).astype(np.float64)
    share = onehot / size[img_a][:, None]  # 1/2 of an image per question of a pair: exact sums
    weights = np.hstack([onehot, onehot * correct_a[:, None], share, share * image_right[:, None]])
    return _Corpus(present, weights, correct_a, image_right, labels, len(img_index), int((size != 2).sum()))


def _fractions(c: _Corpus, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per subtask present: question weight, acc and acc+ fractions (NaN where the weight is 0), image weight."""
    q_w, q_right, i_w, i_right = np.split(counts @ c.weights, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        return q_w, q_right / q_w, i_right / i_w, i_w


def _totals(c: _Corpus, counts: np.ndarray) -> tuple[float, float]:
    """perception and cognition: subtask scores acc*100 + acc_plus*100 summed from 0 in MME's subtask order, as
    calculation.py sums them (so the same float); a subtask absent from a resample adds nothing."""
    q_w, acc, acc_plus, _ = _fractions(c, counts)
    scores = acc * 100 + acc_plus * 100
    perception, cognition = 0.0, 0.0
    for s, w, score in zip(c.present, q_w, scores):
        if w > 0:
            if s < len(PERCEPTION):
                perception += float(score)
            else:
                cognition += float(score)
    return perception, cognition


def _micro_acc(c: _Corpus, counts: np.ndarray) -> float:
    """Right questions / questions x100, over every question (one subtask: its acc)."""
    n = float(counts.sum())
    return float((float(counts @ c.correct) / n) * 100) if n > 0 else 0.0


def _micro_acc_plus(c: _Corpus, counts: np.ndarray) -> float:
    """Images all right / images x100, over every image (one subtask: its acc+)."""
    _, _, i_w, i_right = np.split(counts @ c.weights, 4)
    n = float(i_w.sum())
    return float((float(i_right.sum()) / n) * 100) if n > 0 else 0.0


def mme_scores(rows: list[dict]) -> dict:
    """MME's scores of rows {subtask, image, prediction, answer} (image: the pair key, unique within a subtask;
    answer: "Yes"/"No"; prediction: the model's answer, None for none). Returns {"perception", "cognition",
    "subtasks": {name: {"acc", "acc_plus", "score"}}, "n_questions", "n_unparsed", "n_images_not_pairs"}, each
    number on calculation.py's scale (acc, acc+ 0-100; score = acc + acc+); only the subtasks present."""
    if isinstance(rows, dict) or not isinstance(rows, (list, tuple)):
        raise TypeError(f"rows must be a list of dicts, got {type(rows).__name__}")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise TypeError(f"row {i} is {type(r).__name__}, not dict")
        missing = [f for f in ("subtask", "image", "prediction", "answer") if f not in r]
        if missing:
            raise ValueError(f"row {i} lacks {', '.join(missing)}")
    c = _build([r["subtask"] for r in rows], [r["image"] for r in rows], [r["prediction"] for r in rows],
               [r["answer"] for r in rows])
    ones = np.ones(len(rows))
    _, acc, acc_plus, _ = _fractions(c, ones)
    subtasks = {}
    for s, a_frac, p_frac in zip(c.present, acc, acc_plus):
        a, p = float(a_frac * 100), float(p_frac * 100)
        subtasks[SUBTASKS[s]] = {"acc": a, "acc_plus": p, "score": a + p}
    perception, cognition = _totals(c, ones)
    return {"perception": perception, "cognition": cognition, "subtasks": subtasks,
            "n_questions": len(rows), "n_unparsed": c.labels.count("other"),
            "n_images_not_pairs": c.n_images_not_pairs}


# ---- registered metrics: doc.category is the subtask, doc.cluster the image -----------------------------

def _corpus(items: list[MetricInput]) -> _Corpus:
    for i, it in enumerate(items):
        if it.category is None:
            raise SampleScoreError(i, "MME metrics need the subtask: set doc.category (lmms-lab/MME: category)")
        if not it.cluster:
            raise SampleScoreError(i, "MME metrics need the image pair key: set doc.cluster "
                                      "(lmms-lab/MME: question_id)")
        if len(it.references) != 1:
            raise SampleScoreError(i, f"expects one answer (Yes/No), got {len(it.references)}")
    return _build([it.category or "" for it in items], [it.cluster for it in items],
                  [it.prediction for it in items], [it.references[0] for it in items])


def _result(items: list[MetricInput], value: Callable[[_Corpus, np.ndarray], float],
            per_question: Callable[[_Corpus], np.ndarray] | None, record: bool = False) -> MetricResult:
    """record: note each answer's reading in its sample record (once, under the primary mme_score)."""
    c = _corpus(items)
    unparsed = [it.id or str(i) for i, (it, lab) in enumerate(zip(items, c.labels)) if lab == "other"]
    details: dict[str, Any] = {"n_questions": len(items), "n_images": c.n_images,
                               "n_unparsed": len(unparsed), "unparsed_ids": unparsed[:10],
                               "n_images_not_pairs": c.n_images_not_pairs,
                               "subtasks": [SUBTASKS[s] for s in c.present]}
    per = (per_question(c) * 100).tolist() if per_question is not None else None
    return MetricResult(value(c, np.ones(len(items))), per, rescore=lambda counts: value(c, counts),
                        details=details, sample_details=[{"parsed": lab} for lab in c.labels] if record else None)


def _mme_score(items: list[MetricInput]) -> MetricResult:
    return _result(items, lambda c, n: sum(_totals(c, n)), None, record=True)


def _mme_perception(items: list[MetricInput]) -> MetricResult:
    return _result(items, lambda c, n: _totals(c, n)[0], None)


def _mme_cognition(items: list[MetricInput]) -> MetricResult:
    return _result(items, lambda c, n: _totals(c, n)[1], None)


def _mme_acc(items: list[MetricInput]) -> MetricResult:
    return _result(items, _micro_acc, lambda c: c.correct)


def _mme_acc_plus(items: list[MetricInput]) -> MetricResult:
    return _result(items, _micro_acc_plus, lambda c: c.image_right)


_PARSE = "answers parsed as calculation.py (lowercased; yes/no, else 'yes' then 'no' in the first 4 characters)"
for _name, _fn, _scale, _desc in (  # scale: the full score of the whole benchmark
    ("mme_score", _mme_score, 2800,
     "MME: sum of the subtask scores (acc + acc+) of the subtasks present: perception + cognition on the whole "
     "task, the subtask's score on one subtask"),
    ("mme_perception", _mme_perception, 2000, "MME perception: sum of the scores of its 10 subtasks present"),
    ("mme_cognition", _mme_cognition, 800, "MME cognition: sum of the scores of its 4 subtasks present"),
    ("mme_acc", _mme_acc, 100, "MME acc: right questions / questions x100 (one subtask: its acc)"),
    ("mme_acc_plus", _mme_acc_plus, 100,
     "MME acc+: images with both questions right / images x100 (one subtask: its acc+)"),
):
    register_metric(Metric(_name, _fn, kind="corpus", scale=_scale,
                           bounds=f"0-{_scale}" + (" (200 per subtask present)" if _name == "mme_score" else ""),
                           reads=READS_ANSWERS,
                           description=f"{_desc}; {_PARSE}; needs doc.category (subtask) and doc.cluster (image)",
                           source=MME_SOURCE))
