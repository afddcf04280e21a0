"""VQA accuracy against worked cases of GT-Vision-Lab/VQA vqaEval.py, A-OKVQA DA, open QA, exact match."""
import pytest

from m3eval.metrics import get_metric, vqa_accuracy
from m3eval.metrics.base import MetricInput
from m3eval.metrics.vqa import (aokvqa_da_accuracy, exact_match, normalize_answer, open_qa_match,
                                process_punctuation)


def ten(match: str, n_match: int, other: str = "zzz") -> list[str]:
    return [match] * n_match + [other] * (10 - n_match)


@pytest.mark.parametrize("n_match,expected", [
    (0, 0.0),
    # 1 match: the subset without it sees 0 (-> 0), the 9 others see 1 (-> 1/3): 9*(1/3)/10 = 0.3
    (1, 0.3),
    # 2 matches: 2 subsets see 1 (1/3), 8 see 2 (2/3): (2/3 + 16/3)/10 = 0.6
    (2, 0.6),
    # 3 matches: 3 subsets see 2 (2/3), 7 see 3 (1): (2 + 7)/10 = 0.9
    (3, 0.9),
    # 4 matches: every subset sees >= 3: 1.0
    (4, 1.0),
    (10, 1.0),
])
def test_leave_one_out_over_ten_answers(n_match, expected):
    assert vqa_accuracy("dog", ten("dog", n_match)) == pytest.approx(expected, abs=1e-12)


def test_leave_one_out_other_lengths():
    # 5 answers, 1 match: 4 subsets see 1 match (1/3), one sees 0: (4/3)/5
    assert vqa_accuracy("dog", ["dog", "a", "b", "c", "d"]) == pytest.approx(4 / 15)
    # 3 answers all matching: each subset sees 2 -> 2/3 (documented: < 4 answers cannot reach 1)
    assert vqa_accuracy("dog", ["dog"] * 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        vqa_accuracy("dog", ["dog"])


def test_number_words_and_articles():
    assert vqa_accuracy("two", ["2"] * 10) == 1.0
    assert vqa_accuracy("Ten", ["10"] * 10) == 1.0
    assert normalize_answer("none") == "0"  # vqaEval manualMap quirk
    assert vqa_accuracy("the dog", ["dog"] * 10) == 1.0
    assert vqa_accuracy("An apple", ["apple"] * 10) == 1.0
    assert normalize_answer("a the an") == ""
    assert normalize_answer("Two\tdogs\n") == "2 dogs"


def test_punctuation_rules():
    assert normalize_answer("dog.") == "dog"          # period not followed by a digit: removed
    assert normalize_answer("3.5") == "3.5"           # period before a digit: kept
    assert normalize_answer("u.s.") == "us"
    assert process_punctuation("black/white") == "black white"    # no space next to '/': becomes a space
    assert process_punctuation("yes, it is") == "yes it is"       # ',' touches a space: deleted
    assert process_punctuation("red,blue") == "red blue"
    assert process_punctuation("1,000") == "1000"                 # digit,digit: every mark deleted
    assert normalize_answer("yes!") == "yes!"                     # '!' and '-' are not in vqaEval's list
    assert normalize_answer("hot-dog") == "hot-dog"
    # vqaEval passes re.UNICODE (32) as periodStrip's count: only the first 32 periods go
    assert normalize_answer("." * 40 + "x") == "." * 8 + "x"


def test_ground_truth_normalized_only_when_answers_differ():
    # all-identical ground truths are compared raw (vqaEval: `if len(set(gtAnswers)) > 1`)
    assert vqa_accuracy("dog.", ["dog."] * 10) == 0.0
    assert vqa_accuracy("dog.", ["dog."] * 9 + ["cat"]) == pytest.approx(1.0)


def test_contractions():
    assert normalize_answer("dont") == "don’t"  # curly apostrophe, as in vqaEval's table
    assert vqa_accuracy("dont", ["don’t"] * 10) == 1.0
    assert vqa_accuracy("isnt", ["isn’t"] * 5 + ["no"] * 5) == 1.0
    # a straight apostrophe is punctuation: "don't" -> "don t" on both sides
    assert vqa_accuracy("don't", ["don't"] * 5 + ["no"] * 5) == 1.0


def test_bad_inputs():
    with pytest.raises(TypeError):
        vqa_accuracy(3, ["3"] * 10)
    with pytest.raises(TypeError, match="answer 1"):
        vqa_accuracy("3", ["3", 3])
    with pytest.raises(TypeError):
        vqa_accuracy("3", "3333333333")
    assert vqa_accuracy("", ["dog"] * 10) == 0.0


def test_registry_vqa_none_scores_zero():
    m = get_metric("vqa_accuracy")
    res = m.compute([MetricInput("two", ["2"] * 10), MetricInput(None, ["2"] * 10)])
    assert res.per_sample == [1.0, 0.0] and res.value == 0.5 and m.kind == "mean"
    with pytest.raises(ValueError, match="sample 1"):
        m.compute([MetricInput("two", ["2"] * 10), MetricInput("x", ["2"])])


def test_aokvqa_direct_answer():
    das = ["2"] * 2 + ["3"] * 8
    assert aokvqa_da_accuracy("2", das) == pytest.approx(2 / 3)  # no leave-one-out: min(1, 2/3)
    assert aokvqa_da_accuracy("3", das) == 1.0
    assert aokvqa_da_accuracy("Two.", das) == pytest.approx(2 / 3)  # VQA normalization
    assert aokvqa_da_accuracy("Two.", das, normalize=False) == 0.0  # byte-exact official comparison
    res = get_metric("aokvqa_da").compute([MetricInput("2", das), MetricInput(None, das)])
    assert res.per_sample == pytest.approx([2 / 3, 0.0])


def test_open_qa_and_exact_match():
    assert open_qa_match("A dog.", ["dog"]) == 1.0
    assert open_qa_match("two", ["cat", "2"]) == 1.0
    assert open_qa_match("dogs", ["dog"]) == 0.0
    assert exact_match(["Paris", "北京。"], [["paris"], ["北京"]]) == 0.0
    assert exact_match(["Paris", "北京。"], [["paris"], ["北京"]], ignore_case=True, ignore_punctuation=True) == 1.0
    assert exact_match([" a  b "], [["a b"]]) == 1.0
    with pytest.raises(ValueError, match="1 predictions, 2 reference"):
        exact_match(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="empty"):
        exact_match([], [])
    res = get_metric("exact_match").compute([MetricInput("Yes.", ["yes"])], ignore_case=True, ignore_punctuation=True)
    assert res.value == 1.0
