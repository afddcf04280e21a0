"""VQA accuracy = GT-Vision-Lab/VQA vqaEval.py at master (a013f00), checked against the port in
tests/reference/vqa_eval_official.py; A-OKVQA DA/MC against tests/reference/aokvqa_eval_official.py;
open-ended QA and exact match."""
import random

import pytest

from m3eval.metrics import aokvqa_da_accuracy, get_metric, vqa_accuracy
from m3eval.metrics.base import MetricInput
from m3eval.metrics.vqa import exact_match, normalize_answer, open_qa_match, process_punctuation
from reference.aokvqa_eval_official import eval_aokvqa
from reference.vqa_eval_official import CONTRACTIONS, OfficialVQAEval

OFFICIAL = OfficialVQAEval()


def ten(match: str, n_match: int, other: str = "zzz") -> list[str]:
    return [match] * n_match + [other] * (10 - n_match)


@pytest.mark.parametrize("n_match,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_over_ten_answers(n_match, expected):
    # 3 matches: 3 subsets see 2 (2/3), 7 see 3 (1): (2 + 7)/10 = 0.9
    assert vqa_accuracy("dog", ten("dog", n_match)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("pred,answers,expected", [
    # the examples of issue 8: normalization happens only when the answers are not unanimous
    ("two", ["2"] * 10, 0.0),
    ("dont", ["don't"] * 5 + ["no"] * 5, 1.0),
    ("yes!", ["yes"] * 5 + ["no"] * 5, 1.0),
    ("t-shirt", ["t shirt"] * 5 + ["shirt"] * 5, 1.0),
    ("Yes", ["yes"] * 10, 0.0),              # unanimous: exact, case-sensitive comparison
    (" yes\n", ["yes"] * 10, 1.0),           # ...after the strip and \n/\t replacement
    ("yes", ["yes"] * 9 + [" yes\t"], 1.0),  # answers that strip to one value count as unanimous
    ("the dog", ["dog"] * 9 + ["cat"], 1.0),
    ("Two dogs.", ["2 dogs"] * 3 + ["dogs"] * 7, 0.9),
    ("none", ["0"] * 4 + ["1"] * 6, 1.0),    # manualMap maps "none" to "0"
])
def test_official_examples(pred, answers, expected):
    assert vqa_accuracy(pred, answers) == expected
    assert OFFICIAL.question_accuracy(pred, answers) == expected


def test_normalization_tables():
    assert normalize_answer("dog.") == "dog" and normalize_answer("3.5") == "3.5" and normalize_answer("u.s.") == "us"
    assert process_punctuation("black/white") == "black white"  # no space next to '/': becomes a space
    assert process_punctuation("yes, it is") == "yes it is"     # ',' touches a space: deleted
    assert process_punctuation("1,000") == "1000"               # digit,digit: every mark deleted
    assert normalize_answer("yes!") == "yes" and normalize_answer("hot-dog") == "hot dog"
    assert normalize_answer("12:30") == "12:30" and normalize_answer("dont") == "don't"  # ':' and "'" stay
    assert normalize_answer("." * 40 + "x") == "." * 8 + "x"    # re.UNICODE passed as count: 32 removed


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        vqa_accuracy("dog", ["dog"])
    with pytest.raises(TypeError):
        vqa_accuracy(3, ["3"] * 10)
    with pytest.raises(TypeError):
        vqa_accuracy("3", "3333333333")
    m = get_metric("vqa_accuracy")
    res = m.compute([MetricInput("2", ["2"] * 10), MetricInput(None, ["2"] * 10)])
    assert res.per_sample == [1.0, 0.0] and res.value == 0.5 and m.kind == "mean"
    with pytest.raises(ValueError, match="sample 1"):
        m.compute([MetricInput("two", ["2"] * 10), MetricInput("x", ["2"])])


# ---- differential test against the port of the official script ----

_WORDS = (["yes", "no", "dog", "cat", "red", "blue", "shirt", "t", "man", "it", "is", "of", "hot", "pizza", "Yes",
           "No", "DOG", "2", "3", "10", "1,000", "3.5", "12:30", "u.s.", "none", "zero", "one", "two", "three",
           "ten", "eleven", "a", "an", "the", "A", "The", "don’t"] + list(CONTRACTIONS)[:60]
          + list(CONTRACTIONS.values())[:40])
_MARKS = list(";/[]\"{}()=+\\_-><@`,?!.:'") + ["...", " .", ", ", " ,"]


def _phrase(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
    text = ""
    for w in words:
        sep = rng.choice([" ", " ", " ", "", "  ", "\t", "-", "/"]) if text else ""
        text += sep + w
    if rng.random() < 0.4:
        m = rng.choice(_MARKS)
        text = text + m if rng.random() < 0.7 else m + text
    if rng.random() < 0.15:
        text = rng.choice([" ", "\n", "\t", "  "]) + text + rng.choice(["", " ", "\n"])
    return text


def _variant(rng: random.Random, text: str) -> str:
    """The same answer as a model might write it."""
    r = rng.random()
    if r < 0.2:
        return text.upper() if rng.random() < 0.5 else text.capitalize()
    if r < 0.4:
        return rng.choice(["the ", "a ", "An "]) + text
    if r < 0.6:
        return text + rng.choice([".", "!", "?", " .", "\n", "\tfoo"])
    if r < 0.7:
        return text.replace(" ", "-")
    return text


def _case(rng: random.Random) -> tuple[str, list[str]]:
    kind = rng.random()
    if kind < 0.3:  # unanimous (possibly differing only in surrounding whitespace)
        a = _phrase(rng)
        answers = [a if rng.random() < 0.8 else f" {a}\t" for _ in range(10)]
    else:
        pool = [_phrase(rng) for _ in range(rng.choice([2, 3, 4, 6]))]
        answers = [rng.choice(pool) for _ in range(10)]
    n = 10 if rng.random() < 0.9 else rng.choice([2, 3, 5, 11])
    answers = (answers * 2)[:n]
    pred = _variant(rng, rng.choice(answers)) if rng.random() < 0.85 else _phrase(rng)
    return pred, answers


def test_vqa_differential_6000_cases():
    rng = random.Random(8)
    cases = [_case(rng) for _ in range(6000)]
    diffs = [(p, a) for p, a in cases if vqa_accuracy(p, a) != OFFICIAL.question_accuracy(p, a)]
    assert not diffs, f"{len(diffs)} differ from the official script, e.g. {diffs[:3]}"
    # the cases exercise every branch: unanimous and mixed sets, partial credit, zero and full marks
    scores = [vqa_accuracy(p, a) for p, a in cases]
    assert len({s for s in scores}) >= 8 and 0.0 in scores and 1.0 in scores
    assert sum(len(set(x.strip() for x in a)) == 1 for _, a in cases) > 1000


# ---- A-OKVQA ----

def test_aokvqa_direct_answer_official_by_default():
    das = ["2"] * 2 + ["3"] * 8
    assert aokvqa_da_accuracy("2", das) == pytest.approx(2 / 3)  # no leave-one-out: min(1, 2/3)
    assert aokvqa_da_accuracy("3", das) == 1.0
    assert aokvqa_da_accuracy("Two.", ["2"] * 3) == 0.0          # official: strings as given
    assert aokvqa_da_accuracy("3 ", das) == 0.0
    assert aokvqa_da_accuracy("Two.", ["2"] * 3, normalize=True) == 1.0  # the named convenience
    res = get_metric("aokvqa_da").compute([MetricInput("2", das), MetricInput(None, das)])
    assert res.per_sample == pytest.approx([2 / 3, 0.0])
    assert get_metric("aokvqa_da").compute([MetricInput("Two", ["2"] * 3)], normalize=True).value == 1.0


def _aokvqa_rows(rng: random.Random, n: int) -> list[dict]:
    vocab = ["2", "two", "red", "Red", "red.", "dog", "dogs", "a dog", "yes", "no", "surfing", "surf board"]
    rows = []
    for q in range(n):
        choices = rng.sample(vocab, 4)
        rows.append({"question_id": f"q{q}", "choices": choices, "correct_choice_idx": rng.randrange(4),
                     "direct_answers": [rng.choice(choices + vocab[:3]) for _ in range(10)],
                     "difficult_direct_answer": rng.random() < 0.2})
    return rows


def test_aokvqa_differential():
    rng = random.Random(11)
    for _ in range(40):
        rows = _aokvqa_rows(rng, 50)
        da_preds = {r["question_id"]: rng.choice(r["direct_answers"] + ["Two.", "red", "dog"]) for r in rows}
        kept = [r for r in rows if not r["difficult_direct_answer"]]  # what aokvqa_da.yaml's exclude_if keeps
        res = get_metric("aokvqa_da").compute([MetricInput(da_preds[r["question_id"]], r["direct_answers"])
                                               for r in kept])
        assert res.value * 100 == pytest.approx(eval_aokvqa(rows, da_preds, strict=False), abs=1e-9)
        mc_preds = {r["question_id"]: rng.choice(r["choices"]) for r in rows}
        res = get_metric("aokvqa_mc").compute([MetricInput(mc_preds[r["question_id"]],
                                                           [r["choices"][r["correct_choice_idx"]]], r["choices"])
                                               for r in rows])
        assert res.value * 100 == pytest.approx(eval_aokvqa(rows, mc_preds, multiple_choice=True, strict=False),
                                                abs=1e-9)


def test_open_qa_and_exact_match():
    assert open_qa_match("A dog.", ["dog"]) == 1.0
    assert open_qa_match("two", ["cat", "2"]) == 1.0
    assert open_qa_match("dogs", ["dog"]) == 0.0
    assert open_qa_match("A dog.", ["dog"], normalize="none") == 0.0
    assert open_qa_match(" dog ", ["dog"], normalize="none") == 1.0
    with pytest.raises(ValueError, match="normalize"):
        open_qa_match("dog", ["dog"], normalize="lower")
    assert exact_match(["Paris", "北京。"], [["paris"], ["北京"]]) == 0.0
    assert exact_match(["Paris", "北京。"], [["paris"], ["北京"]], ignore_case=True, ignore_punctuation=True) == 1.0
    assert exact_match([" a  b "], [["a b"]]) == 1.0
    with pytest.raises(ValueError, match="1 predictions, 2 reference"):
        exact_match(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="empty"):
        exact_match([], [])
    res = get_metric("exact_match").compute([MetricInput("Yes.", ["yes"])], ignore_case=True, ignore_punctuation=True)
    assert res.value == 1.0
