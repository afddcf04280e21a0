"""Multiple-choice letter extraction (never a random fallback) and choice accuracy."""
import pytest

from m3eval.scoring.filters import apply_filters, filter_names, get_filter
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



COLORS = ["red", "blue", "green", "yellow"]
ANIMALS = ["cat", "dog", "bird", "fish"]

# Adversarial responses (issue 8 item 3): (response, choices, expected). A wrong letter is far worse
# than None, so the expected value is None wherever the response does not settle one option.
ADVERSARIAL = [
    # echoed options
    ("A. red B. blue C. green D. yellow", COLORS, None),
    ("A. red\nB. blue\nC. green\nD. yellow", COLORS, None),
    ("(A) red (B) blue (C) green (D) yellow", COLORS, None),
    ("A) red\nB) blue\nC) green\nD) yellow", COLORS, None),
    ("Options:\nA: red\nB: blue\nC: green\nD: yellow", COLORS, None),
    ("A. red\nB. blue\nC. green\nD. yellow\nAnswer: B", COLORS, "B"),
    ("(A) red (B) blue (C) green (D) yellow\nThe answer is (C).", COLORS, "C"),
    # the article is not a letter
    ("Answer: A dog", ANIMALS, "B"),
    ("The answer is A dog.", ANIMALS, "B"),
    ("A dog.", ANIMALS, "B"),
    ("A fish is swimming", ANIMALS, "D"),
    ("A cow is shown", ANIMALS, None),
    ("Answer: A cow", ANIMALS, None),
    ("the answer is a bird", ANIMALS, "C"),
    ("It is a dog.", ANIMALS, "B"),
    ("Answer: A cat", ANIMALS, "A"),
    ("A cat", ANIMALS, "A"),
    ("It is a cat or a dog", ANIMALS, None),
    ("Answer: A dog or a cat", ANIMALS, None),
    ("Answer: A cat, not a dog", ANIMALS, None),
    ("A\nDog.", ANIMALS, "A"),
    # a label followed by an explanation
    ("B because it is not red", COLORS, "B"),
    ("B\nIt is not red.", COLORS, "B"),
    ("B. blue, since the sky is blue", COLORS, "B"),
    ("A because it is red", COLORS, "A"),
    ("C - green is the color of grass", COLORS, "C"),
    ("D: yellow", COLORS, "D"),
    ("(B) blue", COLORS, "B"),
    ("A. blue", COLORS, None),
    ("Answer: (C) red", COLORS, None),
    ("A. It is the colour of blood", COLORS, "A"),
    # several options, no settling cue
    ("Answer: A, B", COLORS, None),
    ("A or B?", COLORS, None),
    ("A and C", COLORS, None),
    ("The answer is B or C", COLORS, None),
    ("It is B or maybe C", COLORS, None),
    ("答案是A或者B", COLORS, None),
    ("Answer: A. No, the answer is B", COLORS, None),
    ("It could be red or blue", COLORS, None),
    ("red, blue", COLORS, None),
    ("Either (A) or (B)", COLORS, None),
    # cues
    ("I think it's B", COLORS, "B"),
    ("I would choose C", COLORS, "C"),
    ("I'd go with D.", COLORS, "D"),
    ("Answer: b", COLORS, "B"),
    ("**B**", COLORS, "B"),
    ("The correct answer is **C**.", COLORS, "C"),
    ("Final answer: (D)", COLORS, "D"),
    ("My answer is B.", COLORS, "B"),
    ("The best option is A.", COLORS, "A"),
    ("Option A is wrong; the answer is B.", COLORS, "B"),
    ("Option C", COLORS, "C"),
    ("The answer is not A", COLORS, None),
    ("blue", COLORS, "B"),
    ("It is yellow.", COLORS, "D"),
    ("I don't know", COLORS, None),
    ("None of the above", COLORS, None),
    ("E", COLORS, None),
    ("The answer is F", COLORS, None),
    ("", COLORS, None),
    # Chinese
    ("答案是B", COLORS, "B"),
    ("答案：C", COLORS, "C"),
    ("正确答案是D。", COLORS, "D"),
    ("选B", COLORS, "B"),
    ("我选C", COLORS, "C"),
    ("应该选A，因为它是红色的", COLORS, "A"),
    ("选项A和B", COLORS, None),
    ("答案是A或B", COLORS, None),
    ("答案不是A", COLORS, None),
    ("B选项正确", COLORS, "B"),
    ("答案为（Ｃ）", COLORS, "C"),
    ("A. 红色\nB. 蓝色\nC. 绿色\nD. 黄色", ["红色", "蓝色", "绿色", "黄色"], None),
    ("蓝色", ["红色", "蓝色", "绿色", "黄色"], "B"),
    ("我认为是红色或者蓝色", ["红色", "蓝色", "绿色", "黄色"], None),
]


def test_adversarial_suite_has_no_confident_wrong_pick():
    assert len(ADVERSARIAL) >= 60 and sum(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t, _, _ in ADVERSARIAL) >= 12
    got = [(t, extract_choice_letter(t, c), e) for t, c, e in ADVERSARIAL]
    wrong = [(t, g, e) for t, g, e in got if g is not None and g != e]
    assert not wrong, f"confident wrong picks: {wrong}"
    missed = [(t, g, e) for t, g, e in got if g != e]
    assert not missed, f"not extracted: {missed}"


_POOL = ["cat", "dog", "red", "blue", "a bird", "two", "the sea", "yellow car", "红色", "一只猫", "tree", "Apple"]
_ONE = ["{L}", "({L})", "{L}.", "**{L}**", "The answer is {L}.", "Answer: {l}", "I think it's {L}", "I would choose {L}",
        "{L}. {T}", "({L}) {T}", "Answer: {L} {T}", "{L} because it is {T}", "{L}\nIt is {T}.", "答案是{L}", "我选{L}",
        "选{L}", "正确答案是：{L}", "{T}", "It is {T}.", "The answer is ({L}) {T}."]
_MANY = ["{L} or {M}", "Answer: {L}, {M}", "{T} or {U}", "选项{L}和{M}", "答案是{L}或{M}", "{ECHO}", "Either ({L}) or ({M})",
         "It is {T}, or maybe {U}", "{L}/{M}"]


def test_generated_responses_never_pick_a_wrong_letter():
    import random
    rng = random.Random(3)
    wrong, missed = [], []
    for _ in range(1500):
        n = rng.choice([2, 3, 4, 5])
        choices = rng.sample(_POOL, n)
        i, j = rng.sample(range(n), 2)
        fill = {"L": chr(65 + i), "l": chr(97 + i), "M": chr(65 + j), "T": choices[i], "U": choices[j],
                "ECHO": rng.choice(["\n", " "]).join(f"{chr(65 + k)}. {c}" for k, c in enumerate(choices))}
        if rng.random() < 0.6:
            text, expected = rng.choice(_ONE).format(**fill), chr(65 + i)
        else:
            text, expected = rng.choice(_MANY).format(**fill), None
        got = extract_choice_letter(text, choices)
        if got is not None and got != expected:
            wrong.append((text, choices, got))
        elif got != expected:
            missed.append((text, choices))
    assert not wrong, f"{len(wrong)} confident wrong picks, e.g. {wrong[:5]}"
    assert not missed, missed[:10]  # answers a reader settles are extracted too


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
