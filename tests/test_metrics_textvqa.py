"""TextVQA accuracy against ports of its two scorers (tests/reference/textvqa_official.py):
protocol official = facebookresearch/mmf mmf/utils/m4c_evaluators.py TextVQAAccuracyEvaluator (@ 2dc099a);
protocol qwen_vl = QwenLM/Qwen-VL eval_mm/evaluate_vqa.py (@ cfe66a7) -> eval_mm/vqa_eval.py VQAEval.
Differential cases are random and adversarial, seeded."""
import random

import pytest

from m3eval.errors import SampleScoreError
from m3eval.metrics import get_metric, textvqa_accuracy, vqa_accuracy
from m3eval.metrics.base import MetricInput
from m3eval.metrics.textvqa import evalai_normalize
from m3eval.scoring.task import check_scoring
from reference.textvqa_official import (EvalAIAnswerProcessor, TextVQAAccuracyEvaluator, mmf_question_accuracy,
                                        qwen_vl_question_accuracy)

N_CASES = 3000


def ten(match: str, n_match: int, other: str = "zzz") -> list[str]:
    return [match] * n_match + [other] * (10 - n_match)


# ---- hand-checked values ---------------------------------------------------------------------

@pytest.mark.parametrize("n_match,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_over_ten_answers(n_match, expected):
    # 3 matches: 3 left-out subsets see 2 (2/3), 7 see 3 (1): (2 + 7) / 10 = 0.9
    for protocol in ("official", "qwen_vl"):
        assert textvqa_accuracy("dog", ten("dog", n_match), protocol) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("pred,answers,official,qwen_vl,vqa", [
    # EvalAI's processor runs on BOTH sides ALWAYS (mmf); vqaEval.py compares as given when all 10 agree
    ("Nokia", ["nokia"] * 10, 1.0, 1.0, 0.0),
    # Qwen-VL lowercases only the prediction: capitalized gold answers never match
    ("nokia", ["Nokia"] * 10, 1.0, 0.0, 0.0),
    ("Nokia", ["Nokia"] * 10, 1.0, 0.0, 1.0),
    ("Two", ["2"] * 10, 1.0, 1.0, 0.0),                       # number words (both normalize the prediction)
    ("1,000", ["1000"] * 10, 1.0, 1.0, 0.0),                  # ',' dropped (mmf) / digit,digit rule (Qwen-VL)
    ("the stop sign.", ["stop sign"] * 10, 1.0, 1.0, 0.0),    # article and final period
    (" the dog", ["the dog"] * 10, 1.0, 0.0, 1.0),            # Qwen-VL keeps the answers' article
    ("dog", ["dog "] * 10, 1.0, 0.0, 1.0),                    # ...and their spaces (never stripped)
    ("dog", ["dog "] * 5 + ["cat"] * 5, 1.0, 0.0, 1.0),       # de-punctuated only: still not stripped
    ("coca-cola", ["coca cola"] * 5 + ["coke"] * 5, 1.0, 1.0, 1.0),
    ("What's", ["what's"] * 10, 1.0, 1.0, 0.0),               # mmf splits "'s" on both sides
    ("whats", ["what's"] * 10, 0.0, 1.0, 0.0),                # mmf: "what's" -> "what 's", "whats" -> "what's"
    ("Yes", ["yes"] * 3 + ["no"] * 7, 0.9, 0.9, 0.9),
    ("YES?", ["yes"] * 2 + ["Yes"] * 2 + ["no"] * 6, 1.0, 0.6, 1.0),  # Qwen-VL: "Yes" answers stay capitalized
    ("none", ["0"] * 4 + ["1"] * 6, 1.0, 1.0, 1.0),           # the number map sends "none" to "0"
    ("", ["x"] * 10, 0.0, 0.0, 0.0),
    ("", ["", "a"] * 5, 1.0, 1.0, 1.0),
])
def test_hand_checked(pred, answers, official, qwen_vl, vqa):
    assert textvqa_accuracy(pred, answers) == official
    assert mmf_question_accuracy(pred, answers) == official
    assert textvqa_accuracy(pred, answers, "qwen_vl") == qwen_vl
    assert qwen_vl_question_accuracy(pred, answers) == qwen_vl
    assert vqa_accuracy(pred, answers) == vqa


def test_evalai_normalization():
    proc = EvalAIAnswerProcessor()
    for text, expected in [("Nokia", "nokia"), ("1,000", "1000"), ("3.5", "3.5"), ("u.s.", "us"), ("What?", "what"),
                           ("McDonald's", "mcdonald 's"), ("black/white", "black white"), ("x - y", "x y"),
                           ("The Two Dogs.", "2 dogs"), ("dont", "don't"), (" x\ty\n", "x y"), ("12:30", "12:30"),
                           ("." * 40 + "x", "." * 8 + "x")]:  # re.UNICODE passed as count: 32 periods removed
        assert evalai_normalize(text) == expected == proc(text), text


def test_bad_input():
    with pytest.raises(ValueError, match="exactly 10"):
        textvqa_accuracy("dog", ["dog"] * 9)
    with pytest.raises(ValueError, match="at least 2"):
        textvqa_accuracy("dog", ["dog"], "qwen_vl")
    assert textvqa_accuracy("dog", ["dog"] * 3, "qwen_vl") == pytest.approx(2 / 3)  # Qwen-VL asserts no count
    with pytest.raises(ValueError, match="protocol"):
        textvqa_accuracy("dog", ["dog"] * 10, "paper")
    with pytest.raises(TypeError):
        textvqa_accuracy(3, ["3"] * 10)
    with pytest.raises(TypeError):
        textvqa_accuracy("3", "3333333333")
    assert textvqa_accuracy(None, ["3"] * 10) == 0.0
    m = get_metric("textvqa_accuracy")
    res = m.compute([MetricInput("Nokia", ["nokia"] * 10), MetricInput(None, ["nokia"] * 10)])
    assert res.per_sample == [1.0, 0.0] and res.value == 0.5 and m.kind == "mean" and "mmf" in m.source
    with pytest.raises(SampleScoreError, match="sample 1"):
        m.compute([MetricInput("x", ["x"] * 10), MetricInput("x", ["x"] * 2)])
    check_scoring([{"name": "textvqa_accuracy", "args": {"protocol": "qwen_vl"}}], None)
    with pytest.raises(ValueError, match="protocol"):  # a task-definition error, before any sample
        check_scoring([{"name": "textvqa_accuracy", "args": {"protocol": "paper"}}], None)


# ---- differential tests against the ports -----------------------------------------------------

_WORDS = ["Nokia", "nokia", "NOKIA", "stop", "Stop sign", "stop-sign", "coca-cola", "Coca Cola", "the", "a", "An",
          "two", "Two", "2", "ten", "10", "none", "zero", "0", "one", "1,000", "1000", "1.000", "3.5", "3,5", "$5.99",
          "5.99", "u.s.", "U.S.A", "12:30", "e.g.", "no.", "dont", "don't", "won't", "wont", "whats", "what's", "it's",
          "McDonald's", "mcdonalds", "Joe's", "'s", "its", "yall", "y'all", "Im", "I'm", "ive", "café", "cafe\u0301",
          "İstanbul", "istanbul", "STRASSE", "straße", "ǅ", "東京", "Ελλάδα", "ﬁ", "🙂", "x,y", "1,2,3", "b/w",
          "(a)", "[b]", "yes!", "?", "...", "-", "rock'n'roll", "o'clock", "oclock", "#1", "100%", "n/a"]
_SEPS = [" ", " ", " ", "", "  ", "\t", "\n", "-", "/", ", ", ",", ".", ". ", " . ", "'s ", "\xa0", "\u3000"]
_EDGES = ["", "", "", " ", "\n", "\t", ".", "?", "!", ",", " .", "\"", "'", ")", "\u2003"]


def _phrase(rng: random.Random) -> str:
    text = ""
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        text += (rng.choice(_SEPS) if text else "") + rng.choice(_WORDS)
    if rng.random() < 0.15:
        text = text.upper() if rng.random() < 0.5 else text.title()
    return rng.choice(_EDGES) + text + rng.choice(_EDGES)


def _variant(rng: random.Random, text: str) -> str:
    """The same answer as a model might write it."""
    r = rng.random()
    if r < 0.2:
        return text.upper() if rng.random() < 0.5 else text.capitalize()
    if r < 0.35:
        return rng.choice(["the ", "a ", "An ", "The answer is "]) + text
    if r < 0.5:
        return text + rng.choice([".", "!", "?", " .", "\n", "'s", ",", "\tfoo"])
    if r < 0.6:
        return text.replace(" ", rng.choice(["-", "  ", "\t", ","]))
    return text


def _case(rng: random.Random) -> tuple[str, list[str]]:
    kind = rng.random()
    if kind < 0.3:  # all 10 agree, or agree up to surrounding whitespace or case
        a = _phrase(rng)
        answers = [a] * 10 if rng.random() < 0.6 else \
            [a if rng.random() < 0.8 else rng.choice([f" {a}\t", a.upper(), a.lower()]) for _ in range(10)]
    else:
        pool = [_phrase(rng) for _ in range(rng.choice([2, 3, 4, 6]))]
        answers = [rng.choice(pool) for _ in range(10)]
    pred = _variant(rng, rng.choice(answers)) if rng.random() < 0.85 else _phrase(rng)
    return pred, answers


@pytest.fixture(scope="module")
def cases() -> list[tuple[str, list[str]]]:
    rng = random.Random(21)
    return [_case(rng) for _ in range(N_CASES)]


def test_official_differential(cases):
    diffs = [(p, a) for p, a in cases if textvqa_accuracy(p, a) != mmf_question_accuracy(p, a)]
    assert not diffs, f"{len(diffs)} of {len(cases)} differ from mmf's evaluator, e.g. {diffs[:3]}"
    scores = [textvqa_accuracy(p, a) for p, a in cases]
    assert len(set(scores)) >= 8 and 0.0 in scores and 1.0 in scores  # partial credit, zero and full marks
    assert sum(len(set(a)) == 1 for _, a in cases) > 400  # the all-10-agree branch of vqaEval.py
    # the cases reach where TextVQA's evaluator and the VQA script disagree
    assert sum(textvqa_accuracy(p, a) != vqa_accuracy(p, a) for p, a in cases) > 100


def test_qwen_vl_differential(cases):
    diffs = [(p, a) for p, a in cases if textvqa_accuracy(p, a, "qwen_vl") != qwen_vl_question_accuracy(p, a)]
    assert not diffs, f"{len(diffs)} of {len(cases)} differ from Qwen-VL's VQAEval, e.g. {diffs[:3]}"
    scores = [textvqa_accuracy(p, a, "qwen_vl") for p, a in cases]
    assert len(set(scores)) >= 8 and 0.0 in scores and 1.0 in scores
    # the two protocols differ, each way, on these cases
    official = [textvqa_accuracy(p, a) for p, a in cases]
    assert sum(q < o for q, o in zip(scores, official)) > 100 and sum(q > o for q, o in zip(scores, official)) > 0
    assert sum(q != vqa_accuracy(p, a) for q, (p, a) in zip(scores, cases)) > 100


def test_corpus_value_is_eval_pred_list(cases):
    """The task score is the mean over questions, as eval_pred_list computes it."""
    chunk = cases[:500]
    res = get_metric("textvqa_accuracy").compute([MetricInput(p, a) for p, a in chunk])
    expected = TextVQAAccuracyEvaluator().eval_pred_list([{"pred_answer": p, "gt_answers": a} for p, a in chunk])
    assert res.value == pytest.approx(expected, abs=1e-12)
    qwen = get_metric("textvqa_accuracy").compute([MetricInput(p, a) for p, a in chunk], protocol="qwen_vl")
    assert qwen.per_sample == [qwen_vl_question_accuracy(p, a) for p, a in chunk]
