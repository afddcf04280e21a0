"""GQA, VizWiz and Qwen-VL's general-VQA scoring against ports of their official scripts, and ScienceQA's
answer extraction against the authors' (m3eval's `choice_letter` never guesses where theirs draws a random
option). Ports: tests/reference/gqa_official.py (GQA eval.py), vizwiz_official.py (the VizWiz-VQA API's
vqaEval.py), qwen_vl_eval_official.py (Qwen-VL eval_mm/ vqa_eval.py + the GQA branch of evaluate_vqa.py),
scienceqa_official.py (lupantech/ScienceQA run_gpt3.py + evaluate_acc.py). Cases are random and adversarial,
seeded; each differential also shows that a plausible wrong scorer disagrees with the oracle on the same cases."""
import random

import pytest

from m3eval.errors import SampleScoreError
from m3eval.metrics import get_metric, gqa_accuracy, qwen_vl_vqa_score, vizwiz_accuracy, vqa_accuracy
from m3eval.metrics.base import MetricInput
from m3eval.metrics.choice import extract_choice_letter
from m3eval.metrics.general_vqa import VIZWIZ_CONTRACTIONS, qwen_vl_gqa_answer
from m3eval.metrics.vqa import CONTRACTIONS
from m3eval.scoring.task import check_scoring
from reference import gqa_official, qwen_vl_eval_official, scienceqa_official
from reference.vizwiz_official import CONTRACTIONS as VIZWIZ_FILE_TABLE
from reference.vizwiz_official import VizWizVQAEval
from reference.vizwiz_official import evaluate as vizwiz_evaluate

N_CASES = 800

# ---- generators ------------------------------------------------------------------------------

GQA_ANSWERS = ["yes", "no", "left", "right", "man", "table", "white", "black", "wood", "shirt", "the man",
               "tennis racket", "t-shirt", "cell phone", "top", "bottom", "blue", "brown", "pizza", "dog"]
SPACES = ["", " ", "  ", "\t", "\n", "\xa0"]


def _variant(r: random.Random, a: str) -> str:
    """A way a model writes a gold answer: as is, capitalized, in a sentence, with punctuation or spaces."""
    k = r.random()
    if k < 0.30:
        return a
    if k < 0.42:
        return a.capitalize()
    if k < 0.50:
        return a.upper()
    if k < 0.62:
        return a + r.choice([".", "!", ",", "?", ". It is.", ", I think"])
    if k < 0.70:
        return r.choice(SPACES) + a + r.choice(SPACES)
    if k < 0.82:
        return r.choice(["It is ", "The answer is ", "This is a ", "There are ", "it's the ", "A "]) + a + \
            r.choice(["", ".", " of the image.", " on the left"])
    if k < 0.90:
        return r.choice(["The color of the ", "Most of ", "a piece of ", "an "]) + a
    return r.choice(GQA_ANSWERS)


def gqa_cases(seed: int = 0, n: int = N_CASES) -> list[tuple[str, str]]:
    """(prediction, gold)."""
    r = random.Random(seed)
    return [(_variant(r, gold), gold) for gold in (r.choice(GQA_ANSWERS) for _ in range(n))]


VIZWIZ_VOCAB = ["unanswerable", "unsuitable", "yes", "no", "2", "two", "blue", "dark blue", "coca cola",
                "Coca-Cola", "don’t know", "don't know", "dont know", "a dog", "dog", "10,000", "10000", "3.5",
                " cat ", "Cat", "it's red", "its red", "we've", "won’t", "ma’am", "o’clock", "soup.", "i’m"]
PRED_FORMS = ["{}", "{}.", "{}!", " {} ", "{}\n", "\t{}", "The {}", "a {}", "{}?", "({})", "{}, I think",
              "{} - maybe", "\"{}\""]
PRED_SPECIAL = ["Unanswerable", "Unanswerable.", "unanswerable", "UNANSWERABLE", "Unsuitable", "dont know",
                "I dont know", "wont", "maam", "oclock", "Im", "Two.", "ten", "none", "10,000", "10000", "3.5",
                "It is unanswerable.", "", " ", "yes", "No.", "the soup", "Coca-Cola", "coca-cola", "Cat"]


def vqa_style_cases(seed: int, n: int = N_CASES) -> list[tuple[str, list[str]]]:
    """(prediction, answers): 10 answers (VizWiz, VQAv2), sometimes fewer, often agreeing."""
    r = random.Random(seed)
    cases = []
    for _ in range(n):
        pool = r.sample(VIZWIZ_VOCAB, r.choice([1, 1, 2, 3, 4]))
        answers = [r.choice(pool) for _ in range(r.choice([10, 10, 10, 10, 3, 5]))]
        k = r.random()
        if k < 0.5:
            pred = r.choice(PRED_FORMS).format(r.choice(answers))
        elif k < 0.8:
            pred = r.choice(PRED_SPECIAL)
        else:
            pred = r.choice(PRED_FORMS).format(r.choice(VIZWIZ_VOCAB))
        cases.append((pred, answers))
    return cases


# ---- hand-checked values (the scripts' semantics) ----------------------------------------------

@pytest.mark.parametrize("pred,gold,expected", [
    ("yes", "yes", 1.0),
    ("Yes", "yes", 0.0),       # eval.py compares as given
    ("yes ", "yes", 0.0),
    ("yes.", "yes", 0.0),
    ("t-shirt", "t-shirt", 1.0),
])
def test_gqa_known_values(pred, gold, expected):
    assert gqa_accuracy(pred, gold) == expected
    assert gqa_official.evaluate({"q": {"answer": gold, "isBalanced": True, "types": {"structural": "query"}}},
                                 [{"questionId": "q", "prediction": pred}])[1] == [expected]


@pytest.mark.parametrize("response,processed", [
    ("Yes.", "yes"),
    ("The man is wearing a shirt.", "shirt"),          # "is " -> "wearing a shirt"; "a " -> "shirt"
    ("This is a dog", ""),                             # "this " holds "is ": split('is ')[1] is ""
    ("It is the left one, I think", "left one"),
    ("a piece of cake", "piece"),                      # "a " then " of"
    ("There are two cats!", "two cats"),
    ("Wood", "wood"),
    ("  brown  ", "brown"),
    ("The color is blue. Really.", "blue"),
])
def test_qwen_vl_gqa_post_processing_known_values(response, processed):
    assert qwen_vl_gqa_answer(response) == processed == qwen_vl_eval_official.gqa_postprocess(response)


@pytest.mark.parametrize("pred,answers,expected", [
    ("Unanswerable.", ["unanswerable"] * 10, 1.0),     # the prediction is normalized ...
    ("unanswerable", ["Unanswerable"] * 10, 0.0),      # ... the answers never are
    ("dog", ["dog"] * 3 + ["cat"] * 7, 0.9),           # leave-one-out: 3 matches -> 0.9
    ("dog", ["dog"] * 2 + ["cat"] * 8, 0.6),
    ("dont know", ["don’t know"] * 10, 1.0),           # the API's own contraction table (U+2019) ...
    ("dont know", ["don't know"] * 10, 0.0),           # ... so the straight-quote answer is never reached
    ("Two", ["2"] * 10, 1.0),
    ("the dog", ["a dog"] * 10, 0.0),                  # articles go from the prediction only
])
def test_vizwiz_known_values(pred, answers, expected):
    assert vizwiz_accuracy(pred, answers) == pytest.approx(expected, abs=1e-15)
    assert VizWizVQAEval().image_accuracy(pred, answers) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("pred,answers,expected,official", [
    ("Two", ["2"] * 10, 1.0, 0.0),                     # Qwen-VL always normalizes the prediction; vqaEval.py
    ("two", ["two"] * 10, 0.0, 1.0),                   # compares as given when the answers agree
    ("dog", ["dog"] * 3 + ["Dog"] * 7, 0.9, 1.0),      # answers never lowercased by Qwen-VL's copy
    ("the dog", ["dog"] * 9 + ["a dog"], 1.0, 1.0),
    ("yes", [" yes"] * 5 + ["yes"] * 5, 1.0, 1.0),     # answers never stripped: 5 matches of 10
])
def test_qwen_vl_vqa_score_known_values(pred, answers, expected, official):
    assert qwen_vl_vqa_score(pred, answers) == pytest.approx(expected, abs=1e-15)
    assert qwen_vl_eval_official.QwenVLVQAEval().question_accuracy(pred, answers) == pytest.approx(expected)
    assert vqa_accuracy(pred, answers) == pytest.approx(official)


def test_contraction_tables_are_the_files():
    assert VIZWIZ_CONTRACTIONS == VIZWIZ_FILE_TABLE and len(VIZWIZ_CONTRACTIONS) == 120
    assert VIZWIZ_CONTRACTIONS["dont"] == "don\u2019t" and VIZWIZ_CONTRACTIONS["aint"] == "ain't"
    assert VIZWIZ_CONTRACTIONS != CONTRACTIONS  # the VQA table (and Qwen-VL's copy) has straight apostrophes


# ---- differential ----------------------------------------------------------------------------

def test_gqa_differential_and_a_case_folding_scorer_fails():
    cases = gqa_cases()
    questions = {f"q{i}": {"answer": g, "isBalanced": i % 7 != 0,
                           "types": {"structural": "query" if i % 2 else "verify"}} for i, (_, g) in enumerate(cases)}
    preds = [{"questionId": f"q{i}", "prediction": p} for i, (p, _) in enumerate(cases)]
    scores, per_question = gqa_official.evaluate(questions, preds)
    balanced = [c for i, c in enumerate(cases) if questions[f"q{i}"]["isBalanced"]]
    result = get_metric("gqa_accuracy").compute([MetricInput(p, [g]) for p, g in balanced])
    assert result.per_sample == per_question
    assert result.value == pytest.approx(scores["accuracy"] / 100, abs=1e-12)
    assert 0.15 < result.value < 0.6
    # lmms-eval's exact_match (ignore_case, ignore_punctuation) is not GQA's comparison: it must disagree
    wrong = [float(p.strip().strip(".!,?").lower() == g) for p, g in balanced]
    assert sum(w != s for w, s in zip(wrong, per_question)) >= 50


def test_qwen_vl_gqa_differential_and_a_wrong_split_fails():
    cases = gqa_cases(seed=1)
    entries = [{"answer": p, "annotation": g} for p, g in cases]
    expected = qwen_vl_eval_official.gqa_accuracy([dict(e) for e in entries])
    per_entry = [qwen_vl_eval_official.evaluate_exact_match_accuracy(
        [{"answer": qwen_vl_eval_official.gqa_postprocess(p), "annotation": g}]) for p, g in cases]
    result = get_metric("gqa_accuracy").compute([MetricInput(p, [g]) for p, g in cases], protocol="qwen_vl")
    assert result.per_sample == per_entry
    assert result.value == pytest.approx(expected, abs=1e-12)
    for p, _ in cases:
        assert qwen_vl_gqa_answer(p) == qwen_vl_eval_official.gqa_postprocess(p), p
    official = get_metric("gqa_accuracy").compute([MetricInput(p, [g]) for p, g in cases]).per_sample
    assert sum(a != b for a, b in zip(official, per_entry)) >= 100  # the two protocols really differ

    def last_part(text: str) -> str:  # split(sep)[-1] instead of [1]: a plausible misreading
        text = text.strip().split(".")[0].split(",")[0].split("!")[0].lower()
        for sep in ("is ", "are ", "a ", "an ", "the "):
            if sep in text:
                text = text.split(sep)[-1]
        return text.split(" of")[0].strip()
    assert sum(last_part(p) != qwen_vl_eval_official.gqa_postprocess(p) for p, _ in cases) >= 10


def test_vizwiz_differential_and_wrong_scorers_fail():
    cases = vqa_style_cases(seed=2)
    overall, per_image = vizwiz_evaluate([p for p, _ in cases], [a for _, a in cases])
    result = get_metric("vizwiz_accuracy").compute([MetricInput(p, a) for p, a in cases])
    assert result.per_sample == per_image  # bit-identical, the script's summation order
    assert result.value == pytest.approx(overall, abs=1e-12)
    for (p, a), expected in zip(cases, per_image):
        assert vizwiz_accuracy(p, a) == expected, (p, a)
    partial = sum(0 < s < 1 for s in per_image)
    assert partial >= 30 and sum(s == 1 for s in per_image) >= 50 and sum(s == 0 for s in per_image) >= 50
    # the VQA script (answers normalized when they differ) and the VQA contraction table are not VizWiz's
    assert sum(vqa_accuracy(p, a) != s for (p, a), s in zip(cases, per_image)) >= 50
    straight = VizWizVQAEval()
    straight.contractions = dict(CONTRACTIONS)
    assert sum(straight.image_accuracy(p, a) != s for (p, a), s in zip(cases, per_image)) >= 5


def test_qwen_vl_vqa_score_differential_and_the_2016_script_fails():
    cases = vqa_style_cases(seed=3)
    ev = qwen_vl_eval_official.QwenVLVQAEval()
    expected = [ev.question_accuracy(p, a) for p, a in cases]
    result = get_metric("qwen_vl_vqa_score").compute([MetricInput(p, a) for p, a in cases])
    assert result.per_sample == expected
    assert sum(0 < s < 1 for s in expected) >= 30 and sum(s == 0 for s in expected) >= 50
    assert sum(vqa_accuracy(p, a) != s for (p, a), s in zip(cases, expected)) >= 50
    assert sum(vizwiz_accuracy(p, a) != s for (p, a), s in zip(cases, expected)) >= 10


# ---- ScienceQA: the authors' extraction vs choice_letter -------------------------------------

SQA_CHOICES = [["yes", "no"], ["Asia", "Europe", "Africa"], ["weather", "climate"],
               ["sample A", "sample B", "neither; the samples have the same temperature"],
               ["Apple", "Banana", "Cherry", "Date", "Elderberry"]]
LECTURES = ["Plants need light. ", "A solid has a shape. ", "In Asia, Big cities grow. ", "Compare the samples. "]


def sqa_cases(seed: int = 4, n: int = N_CASES) -> list[tuple[str, list[str]]]:
    """(model output, choices) in the forms the authors' prompts elicit and forms they do not."""
    r = random.Random(seed)
    cases = []
    for _ in range(n):
        choices = r.choice(SQA_CHOICES)
        letter = "ABCDEFG"[r.randrange(len(choices) + 1)]  # sometimes one past the options
        other = "ABCDE"[r.randrange(len(choices))]
        forms = [
            f"The answer is {letter}.",
            f"The answer is {letter}. BECAUSE: {r.choice(LECTURES)}",
            f"{r.choice(LECTURES)}The answer is {letter}.",
            f"{r.choice(LECTURES)}The answer is {letter}, since {r.choice(LECTURES)}",
            f"The answer is {letter}. The answer is {other}.",
            f"The answer is {letter}",            # no character after the letter: the pattern needs one
            f"{letter}", f"({letter})", f"{letter}.", f"Answer: {letter}",
            f"The answer is {choices[0]}.",       # the text, not the letter
            "I am not sure.", r.choice(LECTURES),
        ]
        cases.append((r.choice(forms), choices))
    return cases


def test_scienceqa_extraction_agrees_where_the_authors_read_a_label_and_never_guesses():
    cases = sqa_cases()
    agree = refused = 0
    for text, choices in cases:
        official = scienceqa_official.extract(text)
        ours = extract_choice_letter(text, choices)
        valid = official in scienceqa_official.OPTIONS[:len(choices)]
        after = text.find(f"The answer is {official}") + len(f"The answer is {official}")
        label = valid and (after >= len(text) or not text[after].isalnum())
        if label:  # the authors' pattern found exactly one real label: m3eval reads the same one
            assert ours == official, (text, choices, ours, official)
            agree += 1
        if ours is None:  # unparsed: scored 0 and counted, where the authors' get_pred_idx draws at random
            refused += 1
            assert official == "FAILED" or not valid or not label, text
        assert ours is None or ours in "ABCDE"[:len(choices)], (text, ours)
        assert extract_choice_letter(text, choices) == ours  # deterministic
    assert agree >= 150 and refused >= 100, (agree, refused)
    # a first-capital-letter reader (no cue) disagrees with the authors on the same cases
    first_capital = [next((c for c in t if c in "ABCDE"[:len(ch)]), None) for t, ch in cases]
    assert sum(f != scienceqa_official.extract(t) for f, (t, _) in zip(first_capital, cases)
               if scienceqa_official.extract(t) != "FAILED") >= 50


def test_scienceqa_accuracy_is_the_authors_on_extracted_indices():
    cases = sqa_cases(seed=5, n=600)
    r = random.Random(6)
    labels = [r.randrange(len(ch)) for _, ch in cases]
    preds = [scienceqa_official.get_pred_idx(scienceqa_official.extract(t), ch, scienceqa_official.OPTIONS,
                                             rng=random.Random(0)) for t, ch in cases]
    # choice_accuracy on the authors' indices (as letters) is their accuracy
    items = [MetricInput("ABCDE"[p], ["ABCDE"[g]], choices=ch) for p, g, (_, ch) in zip(preds, labels, cases)]
    result = get_metric("choice_accuracy").compute(items)
    assert result.value * 100 == pytest.approx(scienceqa_official.accuracy(labels, preds), abs=1e-9)


# ---- registry and bad input ------------------------------------------------------------------

def test_registered_metrics_none_prediction_and_args():
    items = [MetricInput(None, ["yes"] * 10), MetricInput("Yes.", ["yes"] * 10)]
    assert get_metric("vizwiz_accuracy").compute(items).per_sample == [0.0, 1.0]
    assert get_metric("qwen_vl_vqa_score").compute(items).per_sample == [0.0, 1.0]
    assert get_metric("gqa_accuracy").compute(items).per_sample == [0.0, 0.0]
    assert get_metric("gqa_accuracy").compute(items, protocol="qwen_vl").per_sample == [0.0, 1.0]
    check_scoring([{"name": "gqa_accuracy", "args": {"protocol": "qwen_vl"}}, {"name": "vizwiz_accuracy"},
                   {"name": "qwen_vl_vqa_score"}], None)
    with pytest.raises(ValueError, match="protocol"):
        check_scoring([{"name": "gqa_accuracy", "args": {"protocol": "lmms_eval"}}], None)
    with pytest.raises(ValueError, match="protocol"):
        get_metric("gqa_accuracy").compute(items, protocol="lmms_eval")


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        vizwiz_accuracy("a", ["a"])
    with pytest.raises(TypeError):
        vizwiz_accuracy("a", "a")
    with pytest.raises(TypeError):
        qwen_vl_vqa_score(3, ["a", "a"])
    with pytest.raises(TypeError):
        gqa_accuracy("a", None)
    with pytest.raises(SampleScoreError, match="sample 1"):
        get_metric("vizwiz_accuracy").compute([MetricInput("a", ["a", "b"]), MetricInput("a", [])])
    with pytest.raises(SampleScoreError, match="sample 0"):
        get_metric("gqa_accuracy").compute([MetricInput("a", [])])
