"""MMMU's scoring against the port of the authors' eval_utils.py (tests/reference/mmmu_eval_utils.py): the
multiple-choice parse with its random pick (the port draws from the same seeded generator), the open parse, both
evaluations and the per-discipline / overall accuracy, on random and adversarial cases (seeded). Then the metric's
own contract: picks recorded and counted, independent of order, `unparsed: wrong`, and the task file's subject ->
discipline table equal to the authors'."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from reference import mmmu_eval_utils as ref

from m3eval.metrics import get_metric
from m3eval.metrics.base import MetricInput
from m3eval.metrics.mmmu import eval_open, open_gold, parse_multi_choice, parse_open, pick_at_random
from m3eval.prompts import render
from m3eval.tasks.loader import load_file

ROOT = Path(__file__).resolve().parents[1]
N_CASES = 700
SEED = 42
WORDS = ["cell", "Cell", "mitosis", "the", "a", "A", "B", "an apple", "red", "blue", "0.5", "1/2", "$x^2$", "C++",
         "e", "100", "1,000", "none", "", " ", "(A)", "b.", "Option", "energy", "<image 2>", "mRNA", "is", "so"]
LEADS = ["", "The answer is ", "Answer: ", "I think ", "answer ", "It is option ", "Final answer: ", "so ", "(",
         "**", "\n", "Between ", "Because the cell divides, the correct one is "]
TAILS = ["", ".", ")", " because it is red.", ".,", "!", "'", ";", "\n", " and (C)", ", not B", " is correct."]


def _phrase(r: random.Random, k: int = 3) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(1, k))).strip() or r.choice(["x", "dna"])


def mc_cases(seed: int, n: int = N_CASES) -> list[tuple[str, list[str]]]:
    """(response, options): letters with and without brackets, several letters, option texts in long and short
    replies, punctuation the parser strips one kind at a time, and replies naming nothing (a random pick)."""
    r = random.Random(seed)
    cases = []
    for _ in range(n):
        options = [_phrase(r) for _ in range(r.randint(2, 6))]
        if r.random() < 0.15:  # options that contain each other, or are letters themselves
            options[-1] = options[0] + " " + r.choice(WORDS)
            options[0] = r.choice(["A", "B", "a", "(B)", ""])
        letters = [chr(65 + i) for i in range(len(options))]
        k = r.random()
        if k < 0.25:
            body = r.choice(["({})", "{}", "{}.", " {} ", "{})", "[{}]"]).format(r.choice(letters + ["E", "Z", "a"]))
        elif k < 0.40:
            body = " ".join(r.choice(["({})", "{}", "{},"]).format(r.choice(letters)) for _ in range(r.randint(2, 4)))
        elif k < 0.62:  # long replies naming an option's text (more than 5 words)
            body = "I believe that the right choice here is " + r.choice(options) + r.choice(
                ["", " and maybe " + r.choice(options), " rather than " + r.choice(options)])
        elif k < 0.72:
            body = r.choice(options)
        elif k < 0.85:
            body = _phrase(r, 8)
        else:
            body = r.choice(["", " ", ".", ".,A", "A.,", "'B'", ";(C);", "!D!", "a", "b c", "\t(A)\n",
                             "None of the above options are correct here at all"])
        cases.append((r.choice(LEADS) + body + r.choice(TAILS), options))
    return cases


NUMBERS = ["42", "-120", "3.5", "0.286", "1,249", "7,243,000", "1.06e3", "2E-5", ".5", "1/64", "24/7", "3.429",
           "30.0", "0", "-0.0", "1_000", "nan", "inf", "12.97", "9.20", "6.333", "100,00", "1,2345"]
TEXTS = ["Transformation", "embryonic", "trans-1-Chloro-4-methylcyclohexane", "$MgS$", "MgS", "Tampa", "Florida",
         "C", "B", "x", "A", "yes", "no"]
CUES = ["", "The answer is ", "so ", "Thus ", "therefore, ", "Final answer ", "x = ", "the result is ", "It could be ",
        "= ", "is "]


def open_cases(seed: int, n: int = N_CASES) -> list[tuple[str, list[str]]]:
    """(response, gold answers): numbers in every form the patterns read, cue words, several sentences and
    lines, a capital after ". ", single-character answers, empty and trivial tails."""
    r = random.Random(seed)
    cases = []
    for _ in range(n):
        gold = [r.choice(NUMBERS + TEXTS)] if r.random() < 0.85 else r.sample(NUMBERS + TEXTS, r.randint(2, 3))
        ans = r.choice(gold) if r.random() < 0.6 else r.choice(NUMBERS + TEXTS)
        k = r.random()
        if k < 0.3:
            resp = r.choice(CUES) + ans + r.choice(["", ".", "..", " .", ":", " m/s"])
        elif k < 0.5:
            resp = f"{r.choice(CUES)}{r.choice(NUMBERS)}. {r.choice(['So', 'Thus', 'The'])} value is {ans}."
        elif k < 0.65:
            resp = "\n".join(r.choice(CUES) + r.choice(NUMBERS + TEXTS) for _ in range(r.randint(2, 4)))
        elif k < 0.8:
            resp = f"{ans} {r.choice(['units', 'kg', '%', 'is the answer', ''])}".strip()
        elif k < 0.9:
            resp = r.choice(["", " ", ".", "is .", "so :", "answer is ,", "The answer is", "is\nso", "...",
                             "the answer is 1,000,000 or 2.5e10", "1e5 and 100,000", "value = -3.14 =", "A. B. C"])
        else:
            resp = " ".join(r.choice(NUMBERS + TEXTS + CUES) for _ in range(r.randint(1, 6)))
        cases.append((resp, gold))
    return cases


class _Recorder(random.Random):
    """The port's rng: the same seeded draw as m3eval's, noting that a draw was made."""

    def __init__(self, key: str):
        super().__init__(key)
        self.drawn = False

    def choice(self, seq):  # noqa: D102
        self.drawn = True
        return super().choice(seq)


# ---- differential: the port is the oracle --------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_multiple_choice_parse_and_random_pick_match_the_authors(seed):
    cases = mc_cases(seed)
    n_random = 0
    for i, (response, options) in enumerate(cases):
        index2ans, all_choices = ref.get_multi_choice_info(options)
        rng = _Recorder(f"mmmu:{SEED}:q{i}")
        theirs = ref.parse_multi_choice_response(response, all_choices, index2ans, rng=rng)
        ours = parse_multi_choice(response, options)
        assert (ours is None) == rng.drawn, (response, options)
        if ours is None:
            n_random += 1
            ours = pick_at_random(SEED, f"q{i}", len(options))
        assert ours == theirs, (response, options)
        gold = random.Random(i).choice(all_choices)
        assert (ours == gold) == ref.eval_multi_choice(gold, theirs) == ref.eval_multi_choice([gold], theirs)
    assert 50 < n_random < len(cases) - 200  # both paths are exercised


@pytest.mark.parametrize("seed", [0, 1])
def test_open_parse_and_eval_match_the_authors(seed):
    cases = open_cases(seed)
    n_correct = 0
    for response, gold in cases:
        theirs, ours = ref.parse_open_response(response), parse_open(response)
        assert Counter(map(repr, theirs)) == Counter(map(repr, ours)), response  # sets of the same values
        gold_arg = gold[0] if len(gold) == 1 else gold  # the authors' gold: a string, or a list
        expected = ref.eval_open(gold_arg, theirs)
        assert eval_open(gold, ours) == expected, (response, gold)
        n_correct += expected
    assert 0.15 * len(cases) < n_correct < 0.85 * len(cases)  # neither all right nor all wrong


def test_adversarial_replies_match_the_authors():
    """Cases picked to hit each rule's edge: the one-kind-at-a-time strip, brackets beating bare letters, the last
    mention winning, ties (numpy's argmax: the first), empty options matching everything, cue words with empty
    tails, the lower-cased sentence split, commas, scientific notation, 2-place rounding."""
    mc = [(".,A", ["x", "y"]), ("A.,", ["x", "y"]), ("'(B)'", ["x", "y"]), ("(A) or (B)", ["x", "y"]),
          ("B then (A)", ["x", "y"]), ("A B A", ["x", "y", "z"]), ("it is a long answer without letters", ["", "q"]),
          ("the options x and y both look right here", ["x", "y"]), ("the options y and x both look right here",
                                                                       ["x", "y"]),
          ("a b c d e f", ["a", "b"]), ("(a)", ["x", "y"]), ("E", ["p", "q", "r", "s"]), ("", ["x"]),
          ("five words are not enough", ["five"]), ("six words are now enough here", ["six", "words"]),
          ("The answer is (A). Wait, (B)", ["p", "q"]), ("(B) (A) (B)", ["p", "q"]), ("x" * 50, ["x" * 10, "x"])]
    for i, (response, options) in enumerate(mc):
        index2ans, all_choices = ref.get_multi_choice_info(options)
        theirs = ref.parse_multi_choice_response(response, all_choices, index2ans, rng=random.Random(f"mmmu:1:{i}"))
        assert (parse_multi_choice(response, options) or pick_at_random(1, str(i), len(options))) == theirs, response
    opened = [("The answer is 1,000.", ["1000"]), ("so 1.06e3", ["1060"]), ("x = 3.14159", ["3.14"]),
              ("is .", ["."]), ("so :", [":"]), ("the value is 5. The next is 6", ["6"]), ("A", ["a"]),
              ("answer is a", ["a"]), ("thus 24/7", ["24/7", "3.429"]), ("3.429", ["24/7", "3.429"]),
              ("nan", ["nan"]), ("inf", ["inf"]), ("1_000", ["1000"]), ("so -0.0", ["0"]), ("", [""]),
              ("It is MgS", ["$MgS$", "MgS"]), ("result 9.2", ["9.20"]), ("therefore 7,243,000 dollars", ["7243000"])]
    for response, gold in opened:
        theirs = ref.parse_open_response(response)
        assert Counter(map(repr, theirs)) == Counter(map(repr, parse_open(response))), response
        assert eval_open(gold, parse_open(response)) == ref.eval_open(gold[0] if len(gold) == 1 else gold, theirs)


def _subjects() -> list[str]:
    return [s for subjects in ref.DOMAIN_CAT2SUB_CAT.values() for s in subjects]


def test_overall_and_discipline_accuracy_match_the_authors():
    """The authors' main_eval_only.py on parsed predictions vs the metric on the same samples, overall and per
    discipline (the task's doc.category, rendered from the task file's template)."""
    spec = load_file(ROOT / "tasks" / "instruction" / "mmmu_val.yaml")[0]
    r = random.Random(7)
    mc, opened = mc_cases(11, 600), open_cases(12, 150)
    examples, items = [], []
    for k in range(len(mc) + len(opened)):
        sample_id = f"validation_{r.choice(_subjects())}_{k}"
        if k < len(mc):
            response, options = mc[k]
            gold = chr(65 + r.randrange(len(options)))
            index2ans, all_choices = ref.get_multi_choice_info(options)
            parsed = ref.parse_multi_choice_response(response, all_choices, index2ans,
                                                     rng=random.Random(f"mmmu:{SEED}:{sample_id}"))
            examples.append({"id": sample_id, "question_type": "multiple-choice", "answer": gold,
                             "parsed_pred": parsed})
            items.append(MetricInput(response, [gold], options, id=sample_id))
        else:
            response, gold_list = opened[k - len(mc)]
            examples.append({"id": sample_id, "question_type": "short-answer",
                             "answer": gold_list[0] if len(gold_list) == 1 else gold_list,
                             "parsed_pred": ref.parse_open_response(response)})
            items.append(MetricInput(response, gold_list, [], id=sample_id))
    official = ref.main_eval(examples)
    metric = get_metric("mmmu_accuracy")
    result = metric.compute(items, unparsed="random", seed=SEED)
    assert result.value == pytest.approx(official["Overall"]["acc"], abs=1e-12)
    assert official["Overall"]["num"] == len(items) == 750
    by_discipline: dict[str, list[MetricInput]] = {}
    for it in items:
        by_discipline.setdefault(render(spec.doc.category, {"id": it.id}), []).append(it)
    assert set(by_discipline) == set(ref.DOMAIN_CAT2SUB_CAT)
    for discipline, members in by_discipline.items():
        got = metric.compute(members, unparsed="random", seed=SEED)
        assert got.value == pytest.approx(official["Overall-" + discipline]["acc"], abs=1e-12), discipline
        assert len(members) == official["Overall-" + discipline]["num"]
    judge, _ = ref.evaluate(examples)
    assert [judge[e["id"]] == "Correct" for e in examples] == [s == 1.0 for s in result.per_sample]


# ---- the metric's contract ---------------------------------------------------------------------

def _mc(pred: str | None, gold: str = "B", sid: str = "validation_Art_1", options=("cat", "dog", "cow")):
    return MetricInput(pred, [gold], list(options), id=sid)


def test_random_picks_are_recorded_counted_and_independent_of_order():
    metric = get_metric("mmmu_accuracy")
    items = [_mc("I cannot tell", sid=f"validation_Math_{i}") for i in range(40)] + [_mc("(B)"), _mc(None)]
    res = metric.compute(items, unparsed="random", seed=SEED)
    assert res.details == {"unparsed": "random", "n_unparsed": 40, "n_random_picks": 40}
    picks = [d["random_pick"] for d in res.sample_details[:40]]
    assert set(picks) == {"A", "B", "C"}  # a draw per sample, not one for all
    assert res.sample_details[40] is None and res.sample_details[41] is None  # parsed; failed (no draw)
    assert res.per_sample[40:] == [1.0, 0.0]
    assert res.per_sample[:40] == [1.0 if p == "B" else 0.0 for p in picks]
    shuffled = list(reversed(items[:40]))  # another order (another batch size, another worker): the same picks
    again = metric.compute(shuffled, unparsed="random", seed=SEED)
    assert [d["random_pick"] for d in again.sample_details] == list(reversed(picks))
    other_seed = metric.compute(items[:40], unparsed="random", seed=SEED + 1)
    assert [d["random_pick"] for d in other_seed.sample_details] != picks


def test_unparsed_wrong_scores_zero_and_guesses_nothing():
    metric = get_metric("mmmu_accuracy")
    items = [_mc("no idea", sid=f"validation_Math_{i}") for i in range(10)] + [_mc("B")]
    res = metric.compute(items, unparsed="wrong")
    assert res.per_sample == [0.0] * 10 + [1.0]
    assert res.details == {"unparsed": "wrong", "n_unparsed": 10, "n_random_picks": 0}
    assert res.sample_details[:10] == [{"unparsed": True}] * 10
    with pytest.raises(ValueError, match="unparsed"):
        metric.compute(items, unparsed="guess")


def test_open_gold_written_as_a_list_literal_is_a_list():
    assert open_gold(["['24/7', '3.429']"]) == ["24/7", "3.429"]
    assert open_gold(["[1, 2]"]) == ["[1, 2]"] and open_gold(["[oops"]) == ["[oops"] and open_gold(["7"]) == ["7"]
    metric = get_metric("mmmu_accuracy")
    res = metric.compute([MetricInput("The answer is 3.429", ["['24/7', '3.429']"], [], id="validation_Math_15"),
                          MetricInput("Tampa", ["Florida", "Tampa"], None, id="validation_Geography_4")])
    assert res.per_sample == [1.0, 1.0] and res.details["n_random_picks"] == 0


def test_task_discipline_table_is_the_authors():
    spec = load_file(ROOT / "tasks" / "instruction" / "mmmu_val.yaml")[0]
    for discipline, subjects in ref.DOMAIN_CAT2SUB_CAT.items():
        for subject in subjects:
            assert render(spec.doc.category, {"id": f"validation_{subject}_12"}) == discipline
    assert render(spec.doc.category, {"id": "validation_Alchemy_1"}) == "Alchemy"  # unknown: shown as itself
    assert len(_subjects()) == 30
