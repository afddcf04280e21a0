"""MMBench's CircularEval and rule-based option matching (m3eval/metrics/mmbench.py) against the port of the
authors' VLMEvalKit code (tests/reference/mmbench_circular.py), on seeded random and adversarial cases:

- the rules (`mmbench_infer` vs can_infer) on answers of every form: letters, "answer is", option texts, Chinese,
  refusals, lists, long texts;
- circular and first-pass accuracy, overall, per category and per l2-category, on random corpora (complete
  questions: equal to VLMEvalKit; incomplete ones: excluded, named, and the rest equal to VLMEvalKit on the
  complete questions alone); the re-scoring the bootstrap uses.
The tasks end to end and the judged option: tests/test_mmbench_tasks.py.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from reference import mmbench_circular as ref

from m3eval.metrics.base import MetricInput
from m3eval.metrics.mmbench import circular_accuracy_items, first_pass_accuracy_items, mmbench_choice, mmbench_infer

L2 = {  # the paper's taxonomy, as the task YAML's category_groups
    "coarse_perception": ["image_style", "image_scene", "image_emotion", "image_quality", "image_topic"],
    "finegrained_perception (instance-level)": ["object_localization", "attribute_recognition",
                                                "celebrity_recognition", "ocr"],
    "finegrained_perception (cross-instance)": ["spatial_relationship", "attribute_comparison",
                                                "action_recognition"],
    "attribute_reasoning": ["physical_property_reasoning", "function_reasoning", "identity_reasoning"],
    "relation_reasoning": ["social_relation", "physical_relation", "nature_relation"],
    "logic_reasoning": ["structuralized_imagetext_understanding", "future_prediction"],
}
L2_OF = {c: g for g, cats in L2.items() for c in cats}
OPTION_POOL = ["red", "dark red", "blue", "a dog", "cat", "A", "B", "the cat", "Paris", "London", "2", "12",
               "猫", "狗", "红色", "深红色", "北京", "上海", "yes", "no", "Z", "İstanbul", "none of them", "apple pie"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.delenv("VERBOSE", raising=False)  # can_infer_option reads it; m3eval follows it unset


def _answers(rng: random.Random, choices: list[str], gold: str) -> str:
    """A model's answer: mostly right in some form, else wrong, unreadable, refusing or Chinese."""
    letters = [chr(65 + i) for i in range(len(choices))]
    wrong = rng.choice([x for x in letters if x != gold] or letters)
    pick = rng.choice([gold] * 3 + [wrong])
    text = choices[ord(pick) - 65]
    other = rng.choice(choices)
    forms = [
        pick, pick.lower(), f"{pick}.", f"({pick})", f"**{pick}**", f"[{pick}]", f"{{{pick}}}", f"#{pick}",
        f"{pick}: {text}", f"{pick}. {text}", f"The answer is {pick}.", f"The correct answer is **{pick}**.",
        f"answer is {pick.lower()}", f"Answer: {pick}", f"{pick} is correct because the picture shows it well",
        f"I think it is {pick}", text, f"It is {text}.", f"{text} and {other}", f"{pick} {wrong}",
        f"{pick}, {wrong}", "A B C D", f"{pick} because the image clearly shows {text} in the middle of the scene",
        "Sorry, I can't help with images of people yet.", "Cannot determine the answer", "Z", "z", "",
        "   ", "Failed to obtain answer via API", f"Failed to obtain answer via API {text}", f"答案是{pick}",
        f"选项 {pick}", f"{pick}. 猫", f"我选 {pick}", f"答案：{pick}", f"{text}。", "E", "The answer is E",
        f"A {text}", "A cat is on the mat", f"Option {pick}", f"({pick}) {text} ({wrong})", f"{pick}\n{text}",
        text.upper(), f"{text} " * 8, "我不知道", "None of the above.", f"answer is\n{pick}",
        f"The answer is **{pick.lower()}**", f"{pick}){text}", f"{pick};", f"{pick}!", f"{pick}*",
    ]
    return rng.choice(forms)


def _choices(rng: random.Random, n: int) -> list[str]:
    return rng.sample(OPTION_POOL, n)


# ---- the rules ------------------------------------------------------------------------------------------

def test_rules_equal_vlmevalkit_can_infer_on_random_and_adversarial_answers():
    rng = random.Random(22)
    cases = 0
    for _ in range(3000):
        choices = _choices(rng, rng.choice([2, 3, 4, 4, 5]))
        gold = chr(65 + rng.randrange(len(choices)))
        text = _answers(rng, choices, gold)
        official = ref.can_infer(text, ref.build_choices({chr(65 + i): c for i, c in enumerate(choices)}))
        assert mmbench_infer(text, choices) == (official or None), (text, choices)
        cases += 1
    assert cases >= 500


@pytest.mark.parametrize("text, choices, want", [
    ("B", ["cat", "dog"], "B"),
    ("The answer is B because it is on the left of the image here", ["x", "y", "z"], "B"),
    ("B is the answer because the cat is clearly sitting there", ["cat", "dog"], None),  # letter too early
    ("答案是B", ["猫", "狗"], None),  # the letter inside a word: the authors' rules do not read it
    ("选项 B", ["猫", "狗"], "B"),
    ("这是狗", ["猫", "狗"], "B"),
    ("Cannot determine the answer", ["cat", "dog"], "Z"),
    ("Z", ["cat", "dog"], "Z"),
    ("dark red", ["red", "dark red"], None),  # both texts are in the answer
    ("red", ["red", "dark red"], "A"),
    ("A B", ["cat", "dog"], None),
])
def test_rules_on_named_cases(text, choices, want):
    official = ref.can_infer(text, ref.build_choices({chr(65 + i): c for i, c in enumerate(choices)}))
    assert mmbench_infer(text, choices) == want == (official or None)


def test_filter_counts_refusals_and_misses_as_unparsed():
    assert mmbench_choice("(B) dog", ["cat", "dog"]) == "B"
    assert mmbench_choice("Cannot determine the answer", ["cat", "dog"]) is None
    assert mmbench_choice("no idea", ["cat", "dog"]) is None
    with pytest.raises(ValueError, match="no choices"):
        mmbench_choice("B", None)


# ---- CircularEval ---------------------------------------------------------------------------------------

def _corpus(rng: random.Random, n_questions: int) -> list[dict[str, Any]]:
    """Rows in the hub's layout: question g's shift k is index g + k * 1e6, options rotated k times."""
    rows = []
    for g in rng.sample(range(1, 5000), n_questions):
        n = rng.choice([2, 3, 4, 4])
        options, gold = _choices(rng, n), rng.randrange(n)
        category = rng.choice(list(L2_OF))
        good = rng.random() < 0.5  # a model that knows this one answers every shift right
        for k in range(n):
            shifted = options[k:] + options[:k]
            letter = chr(65 + shifted.index(options[gold]))
            pred = letter if good and rng.random() < 0.9 else _answers(rng, shifted, letter)
            row = {"index": g + k * 1_000_000, "question": f"q{g}?", "answer": letter, "category": category,
                   "L2-category": L2_OF[category], "split": "dev", "prediction": pred}
            row.update({chr(65 + i): shifted[i] if i < n else None for i in range(4)})
            rows.append(row)
    rng.shuffle(rows)
    return rows


def _items(rows: list[dict[str, Any]]) -> list[MetricInput]:
    items = []
    for r in rows:
        choices = [r[c] for c in "ABCD" if r[c] is not None]
        items.append(MetricInput(mmbench_choice(str(r["prediction"]), choices), [r["answer"]], choices,
                                 id=str(r["index"]), cluster=str(r["index"] % 1_000_000), category=r["category"]))
    return items


def _by_category(items: list[MetricInput], metric) -> dict[str, float]:
    return {c: metric([it for it in items if it.category == c]).value for c in {it.category for it in items}}


def _check_equal(rows: list[dict[str, Any]], items: list[MetricInput]) -> None:
    """m3eval's scores of `items` == VLMEvalKit's of `rows`: overall, each category, each l2-category."""
    official = ref.evaluate_circular(rows).iloc[0]
    result = circular_accuracy_items(items, category_groups=L2)
    assert result.value == official["Overall"]
    for c, v in _by_category(items, circular_accuracy_items).items():
        assert v == official[c], c
    groups = result.details["category_groups"]
    assert set(groups) == {r["L2-category"] for r in rows}
    for name, got in groups.items():
        assert got["value"] == pytest.approx(official[ref.MMB_abbrs[name]], abs=1e-15), name
    vanilla = ref.evaluate_vanilla_circ0(rows).iloc[0]
    assert first_pass_accuracy_items(items).value == vanilla["Overall"]
    for c, v in _by_category(items, first_pass_accuracy_items).items():
        assert v == vanilla[c], c


def test_circular_accuracy_equals_vlmevalkit_on_random_corpora():
    rng = random.Random(2024)
    n_rows = 0
    for _ in range(60):
        rows = _corpus(rng, rng.randint(1, 12))
        items = _items(rows)
        _check_equal(rows, items)
        result = circular_accuracy_items(items)
        assert result.details["n_excluded_questions"] == 0
        assert result.details["n_unparsed_answers"] == sum(it.prediction is None for it in items)
        n_rows += len(rows)
    assert n_rows >= 500


def test_incomplete_questions_are_excluded_named_and_the_rest_scored_as_vlmevalkit():
    rng = random.Random(7)
    for _ in range(40):
        rows = _corpus(rng, rng.randint(2, 10))
        cut = set(rng.sample(sorted({r["index"] % 1_000_000 for r in rows}), rng.randint(1, 2)))
        dropped = {g: rng.randint(1, sum(r["index"] % 1_000_000 == g for r in rows) - 1) for g in cut}
        kept = []
        for r in rows:  # drop some (not all) shifts of the cut questions, the original pass possibly among them
            g = r["index"] % 1_000_000
            if g in dropped and dropped[g] > 0 and rng.random() < 0.7:
                dropped[g] -= 1
                continue
            kept.append(r)
        incomplete = {g for g in cut if sum(r["index"] % 1_000_000 == g for r in kept)
                      < sum(r["index"] % 1_000_000 == g for r in rows)}
        if not incomplete or len(incomplete) == len({r["index"] % 1_000_000 for r in rows}):
            continue
        items = _items(kept)
        result = circular_accuracy_items(items)
        assert result.details["n_excluded_questions"] == len(incomplete)
        assert set(result.details["excluded_questions"]) == {str(g) for g in incomplete}
        complete = [r for r in kept if r["index"] % 1_000_000 not in incomplete]
        assert result.value == ref.evaluate_circular(complete).iloc[0]["Overall"]
        for it, d, s in zip(items, result.sample_details, result.per_sample):
            excluded = int(it.cluster) in incomplete
            assert (d is not None and "excluded" in d) == excluded and (s is None) == excluded
        # first pass: every question whose original pass is present, as VLMEvalKit's vanilla circ0
        assert first_pass_accuracy_items(items).value == ref.evaluate_vanilla_circ0(kept).iloc[0]["Overall"]


def test_rescore_weighs_questions_by_their_resampled_count():
    rng = random.Random(3)
    rows = _corpus(rng, 8)
    items = _items(rows)
    result = circular_accuracy_items(items)
    assert result.rescore is not None
    assert result.rescore(np.ones(len(items))) == result.value
    keys = [it.cluster for it in items]
    twice = sorted(set(keys))[0]
    counts = np.array([2 if k == twice else 1 for k in keys])
    # a question drawn twice scores as that question and a copy of it under another key
    copy = [MetricInput(it.prediction, it.references, it.choices, id=it.id + "/2", cluster=it.cluster + "/2")
            for it in items if it.cluster == twice]
    assert result.rescore(counts) == pytest.approx(circular_accuracy_items(items + copy).value)


def test_bad_gold_and_missing_options_are_named():
    from m3eval.errors import SampleScoreError
    with pytest.raises(SampleScoreError, match="not an option letter"):
        circular_accuracy_items([MetricInput("A", ["C"], ["x", "y"], id="1", cluster="1")])
    with pytest.raises(SampleScoreError, match="options"):
        circular_accuracy_items([MetricInput("A", ["A"], None, id="1", cluster="1")])
