"""TextVQA accuracy, as TextVQA's own evaluator computes it, or as Qwen-VL's eval_mm scored it.

Official sources followed (the ports in tests/reference/textvqa_official.py are the differential-test oracles):
- protocol official: facebookresearch/mmf mmf/utils/m4c_evaluators.py TextVQAAccuracyEvaluator with
  EvalAIAnswerProcessor, at 2dc099af7ce267561e4c2ae033c27eb36be5b3ea (2020-08-05, the file's last change).
  The prediction and each of the 10 answers ALWAYS get EvalAI's processing: lowercase, ',' and '?'
  deleted, "'s" -> " 's", newlines/tabs -> spaces, stripped, then the VQA script's processPunctuation and
  processDigitArticle (tables identical to vqaEval.py's). Score = the mean over leaving each of the 10
  answers out of min(1, #remaining equal to the prediction / 3); 0 when the prediction matches none.
  Unlike vqa_accuracy (vqaEval.py), which compares as given when the 10 answers agree: "Nokia" against
  ten "nokia" is 1.0 here, 0.0 there.
- protocol qwen_vl: QwenLM/Qwen-VL eval_mm/evaluate_vqa.py at cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c
  scores textvqa_val ('vqa_score') with VQAEval of eval_mm/vqa_eval.py (the LAVIS copy of the 2016 VQA
  script; unchanged from 48454c3 to master aa00ed0). The prediction (the decoded output, stripped) is
  cleaned and gets processPunctuation + processDigitArticle always; the gold answers are compared as
  stored (not stripped, not lowercased, no number words or articles), processPunctuation'd only when
  they are not all identical. Same leave-one-out. Assumes Qwen-VL's converted annotation file (not
  readable offline) gives each answer its own answer_id, as the VQA format does.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import Metric, MetricInput, MetricResult, mean, register_metric
from m3eval.metrics.general_vqa import qwen_vl_vqa_score
from m3eval.metrics.vqa import check_answer_types, leave_one_out, process_digit_article, process_punctuation

MMF_SOURCE = "facebookresearch/mmf mmf/utils/m4c_evaluators.py @ 2dc099af7ce267561e4c2ae033c27eb36be5b3ea"
QWEN_VL_SOURCE = ("QwenLM/Qwen-VL eval_mm/evaluate_vqa.py @ cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c "
                  "+ eval_mm/vqa_eval.py (VQAEval, unchanged 48454c3..aa00ed0)")
PROTOCOLS = ("official", "qwen_vl")


@lru_cache(maxsize=1 << 12)
def evalai_normalize(text: str) -> str:
    """mmf EvalAIAnswerProcessor.__call__: word_tokenize (lower; ',' and '?' deleted; "'s" -> " 's";
    strip), newlines/tabs -> spaces, strip, process_punctuation, process_digit_article. No comma is
    left for process_punctuation's digit,digit rule, so every other mark touching a space is deleted
    and the rest become spaces, as vqaEval's processPunctuation does on comma-free text."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def _check(prediction: object, answers: list[str], protocol: object) -> None:
    check_answer_types(prediction, answers)
    if protocol not in PROTOCOLS:
        raise ValueError(f"textvqa_accuracy: protocol must be 'official' or 'qwen_vl', got {protocol!r}")
    if protocol == "official" and len(answers) != 10:
        raise ValueError(f"textvqa_accuracy needs exactly 10 answers (mmf's evaluator asserts it), got {len(answers)}")
    if len(answers) < 2:
        raise ValueError(f"textvqa_accuracy needs at least 2 answers (leave-one-out), got {len(answers)}")


def textvqa_accuracy(prediction: str | None, answers: list[str], protocol: str = "official") -> float:
    """TextVQA accuracy of one answer, 0..1 (see the module doc for the two protocols).
    official: mmf TextVQAAccuracyEvaluator, both sides through EvalAI's answer processor, exactly 10
    answers; qwen_vl: Qwen-VL's VQAEval, the prediction normalized, the answers de-punctuated only
    when they differ. None (no answer extracted) scores 0."""
    _check(prediction, answers, protocol)
    if prediction is None:
        return 0.0
    if protocol == "official":
        return leave_one_out(evalai_normalize(prediction), [evalai_normalize(a) for a in answers])
    return qwen_vl_vqa_score(prediction, answers)  # the VQAEval Qwen-VL scored VQAv2 and OK-VQA with too


def _textvqa_metric(items: list[MetricInput], protocol: Literal["official", "qwen_vl"] = "official") -> MetricResult:
    if protocol not in PROTOCOLS:  # a task-definition error, before any sample
        raise ValueError(f"textvqa_accuracy: protocol must be 'official' or 'qwen_vl', got {protocol!r}")
    scores = []
    for i, it in enumerate(items):
        try:
            scores.append(textvqa_accuracy(it.prediction, it.references, protocol))
        except (TypeError, ValueError) as e:
            raise SampleScoreError(i, str(e)) from None
    return MetricResult(mean(scores), scores)


register_metric(Metric(
    "textvqa_accuracy", _textvqa_metric, independent=True,
    description="TextVQA accuracy: leave-one-out min(1, n/3) over the 10 answers. protocol: official = mmf "
                "TextVQAAccuracyEvaluator (EvalAI normalization of prediction and answers, always); qwen_vl = "
                "Qwen-VL's VQAEval (prediction normalized; answers only de-punctuated, and only when they differ)",
    source=f"{MMF_SOURCE}; qwen_vl: {QWEN_VL_SOURCE}"))
