"""Multiple-choice letter extraction (never a random fallback) and choice accuracy."""
import pytest

from m3eval.filters import apply_filters, filter_names, get_filter
from m3eval.metrics import get_metric
from m3eval.metrics.base import MetricInput
from m3eval.metrics.choice import extract_choice_letter

CHOICES = ["cat", "dog", "red", "red and blue"]


@pytest.mark.parametrize("text,expected", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("B)", "B"), ("b", "B"), ("[C]", "C"),
    ("The answer is B", "B"), ("Answer: B", "B"), ("answer: (C) red", "C"),
    ("The correct option is D.", "D"), ("Option A", "A"), ("Option A is wrong; the answer is B.", "B"),
    ("选项A不对，答案是C", "C"), ("我选择选项D", "D"), ("Final answer: (B)", "B"),
    ("答案是B", "B"), ("答案：B", "B"), ("选B", "B"), ("选项B", "B"), ("答案为（Ｃ）", "C"),
    ("B. dog", "B"), ("(B) dog", "B"), ("I pick (C).", "C"),
    ("dog", "B"), ("It is a dog.", "B"), ("Red and blue", "D"), ("I like red and blue", "D"),
    # failures: nothing named, several named, out of range -> None, never a guess
    ("I am not sure", None), ("A or B?", None), ("Answer: A. No, the answer is B", None),
    ("E", None), ("The answer is F", None), ("", None), ("it is red, or maybe a dog", None),
])
def test_extraction_table(text, expected):
    assert extract_choice_letter(text, CHOICES) == expected


def test_no_choices_uses_n_choices():
    assert extract_choice_letter("E", None) is None
    assert extract_choice_letter("E", None, n_choices=5) == "E"
    assert extract_choice_letter(None, CHOICES) is None


def test_filters_pipeline():
    assert {"strip", "lowercase", "first_line", "first_sentence", "regex", "remove_prefix",
            "choice_letter", "choice_text", "map"} <= set(filter_names())
    specs = [{"name": "remove_prefix", "args": {"prefixes": ["Answer:"]}}, {"name": "choice_letter"},
             {"name": "choice_text"}]
    assert apply_filters("Answer: (B) because", specs, CHOICES) == "dog"
    assert apply_filters("no idea", specs, CHOICES) is None
    assert apply_filters("  Yes. It is.\nmore", [{"name": "first_line"}, {"name": "first_sentence"}], None) == "Yes."
    rx = [{"name": "regex", "args": {"pattern": r"answer is (\w+)", "ignore_case": True}}]
    assert apply_filters("The Answer is Paris.", rx, None) == "Paris"
    assert apply_filters("nothing", rx, None) is None
    keep = [{"name": "regex", "args": {"pattern": r"x(\d)", "fallback": "keep"}}]
    assert apply_filters("nothing", keep, None) == "nothing"
    with pytest.raises(ValueError, match="invalid pattern"):
        apply_filters("a", [{"name": "regex", "args": {"pattern": "("}}], None)
    with pytest.raises(KeyError, match="unknown filter"):
        get_filter("nope")
    assert apply_filters("是", [{"name": "map", "args": {"mapping": {"是": "yes"}}}], None) == "yes"


class _Spec:  # the task schema's spec objects: .name and .args
    def __init__(self, name, args=None):
        self.name, self.args = name, args or {}


def test_spec_objects_accepted():
    assert apply_filters(" B ", [_Spec("strip"), _Spec("choice_letter")], CHOICES) == "B"


def test_choice_accuracy_gold_forms():
    m = get_metric("choice_accuracy")
    items = [MetricInput("B", ["B"], CHOICES), MetricInput("B", ["dog"], CHOICES),
             MetricInput("dog", ["B"], CHOICES), MetricInput("A", ["B"], CHOICES),
             MetricInput(None, ["B"], CHOICES)]
    res = m.compute(items)
    assert res.per_sample == [1.0, 1.0, 1.0, 0.0, 0.0] and res.value == pytest.approx(0.6)
    with pytest.raises(ValueError, match="sample 0: gold answer 'bird'"):
        m.compute([MetricInput("B", ["bird"], CHOICES)])
    with pytest.raises(ValueError, match="needs choices"):
        m.compute([MetricInput("B", ["B"], None)])


def test_aokvqa_mc_exact_choice():
    m = get_metric("aokvqa_mc")
    res = m.compute([MetricInput("dog", ["dog"], CHOICES), MetricInput("Dog", ["dog"], CHOICES),
                     MetricInput("cat", ["B"], CHOICES), MetricInput(None, ["B"], CHOICES)])
    assert res.per_sample == [1.0, 0.0, 0.0, 0.0]  # official: pred == choices[correct_choice_idx]
