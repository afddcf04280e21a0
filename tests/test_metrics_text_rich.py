"""ANLS and ChartQA relaxed accuracy against ports of their official scripts:
ANLS = the RRC's infographicsvqa_eval.py (QwenLM/Qwen-VL eval_mm/ @ e6bbb9d), port in
tests/reference/anls_official.py; relaxed accuracy = pix2struct metrics.py relaxed_correctness
(@ 945f27e) and Qwen-VL evaluate_vqa.py evaluate_relaxed_accuracy (@ cfe66a7), ports in
tests/reference/pix2struct_official.py. Differential cases are random and adversarial, seeded."""
import random

import pytest

from m3eval.errors import SampleScoreError
from m3eval.metrics import anls, get_metric, relaxed_accuracy
from m3eval.metrics.base import MetricInput
from m3eval.metrics.text_rich import levenshtein, relaxed_accuracy_sample
from m3eval.scoring.task import check_scoring
from reference.anls_official import evaluate_method, levenshtein_distance, question_result
from reference.pix2struct_official import (evaluate_relaxed_accuracy, pix2struct_relaxed_accuracy, pix2struct_sample,
                                           qwen_vl_sample, relaxed_correctness)

N_CASES = 800

# ---- generators ------------------------------------------------------------------------------

WORDS = ["total", "Revenue", "2019", "the", "New York", "Dr. Smith", "$1,234.50", "N/A", "yes", "No", "12%",
         "straße", "İstanbul", "ﬁnance", "café", "cafe\u0301", "東京", "数据", "🙂", "Ελλάδα", "ǅ", "ΣΑΣ"]
SPACES = [" ", "  ", "\t", "\n", "\xa0", "\u2003", "\u3000", "\x1c", ""]


def _noise(r: random.Random, s: str) -> str:
    """Case flips, whitespace inside and around, a few character edits."""
    out = []
    for ch in s:
        x = r.random()
        if x < 0.05:
            continue  # deletion
        if x < 0.10:
            out.append(r.choice("abcxyz0 .,-ßİ"))  # substitution
            continue
        out.append(ch.swapcase() if r.random() < 0.15 else ch)
        if r.random() < 0.03:
            out.append(r.choice("qwe1 "))  # insertion
    return r.choice(SPACES) + "".join(out) + r.choice(SPACES)


def _phrase(r: random.Random) -> str:
    k = r.random()
    if k < 0.08:
        return ""
    if k < 0.12:
        return r.choice(SPACES) * r.randint(1, 3)
    if k < 0.17:  # very long
        return " ".join(r.choice(WORDS) for _ in range(r.randint(40, 90)))
    if k < 0.25:
        return "".join(r.choice("ab ßİ") for _ in range(r.randint(1, 12)))
    return r.choice(SPACES).join(r.choice(WORDS) for _ in range(r.randint(1, 4)))


def anls_cases(seed: int = 0, n: int = N_CASES) -> list[tuple[str, list[str], float]]:
    r = random.Random(seed)
    cases = []
    for _ in range(n):
        answers = [_phrase(r) for _ in range(r.randint(1, 4))]
        k = r.random()
        if k < 0.45:
            pred = _noise(r, r.choice(answers))  # near miss of a gold answer
        elif k < 0.55:
            pred = r.choice(answers)
        else:
            pred = _phrase(r)
        threshold = r.choice([0.5, 0.5, 0.5, 0.0, 0.3, 0.75, 1.0, round(r.random(), 3)])
        cases.append((pred, answers, threshold))
    return cases


NUMBER_FORMS = ["{}", "{}%", "{} %", "{}%%", " {}", "{} ", "\t{}\n", "{}.0", "+{}", "-{}", "{},000", "{}_000",
                "{}e1", "{}E-2", "${}", "{}m", "{} million"]
SPECIAL = ["0", "0.0", "-0", "0%", "00", "nan", "NaN", "inf", "-Infinity", "1e400", "1e-320", "", " ", "Yes", "yes",
           "YES", " yes", "No", "none", "١٢", "１２", "12", "1_2", "0x1A", "1,000", "1000", "5%", "0.05", "٠",
           "straße", "STRASSE", "İ", "i̇", "a" * 500, "9" * 400, "1" + "0" * 30, "%", "%%", ".5", "5.", "-.5"]


def _number(r: random.Random) -> str:
    k = r.random()
    if k < 0.25:
        return str(r.randint(0, 200))
    if k < 0.45:
        return str(round(r.uniform(-1000, 1000), r.randint(0, 4)))
    if k < 0.55:
        return repr(r.uniform(-1, 1) * 10 ** r.randint(-6, 9))
    return str(r.choice([1, 2, 5, 10, 20, 50, 95, 100, 105, 1000, 0.5, 0.05]))


def relaxed_pair(r: random.Random) -> tuple[str, str]:
    """(target, prediction)."""
    k = r.random()
    if k < 0.15:
        return r.choice(SPECIAL), r.choice(SPECIAL)
    base = _number(r)
    target = r.choice(NUMBER_FORMS).format(base) if r.random() < 0.35 else base
    try:
        value = float(base)
    except ValueError:
        value = 1.0
    k = r.random()
    if k < 0.5:  # close: within a few percent of either side, boundaries near 5% included
        delta = r.choice([0.05, -0.05, 0.0476, -0.0476, 0.0526, -0.0526, r.uniform(-0.08, 0.08)])
        near = value * (1 + delta)
        pred = r.choice([repr(near), f"{near:.2f}", f"{near:.0f}", f"{near * 100:.1f}%"])
    elif k < 0.7:
        pred = r.choice(NUMBER_FORMS).format(base)
    elif k < 0.85:
        pred = _number(r)
    else:
        pred = r.choice(SPECIAL + [target.upper(), target.lower(), " " + target, target + "\n"])
    return target, pred


def relaxed_cases(seed: int = 1, n: int = N_CASES) -> list[tuple[list[str], str, float]]:
    r = random.Random(seed)
    cases = []
    for _ in range(n):
        target, pred = relaxed_pair(r)
        targets = [target] + [relaxed_pair(r)[0] for _ in range(r.choice([0, 0, 0, 1, 2]))]
        cases.append((targets, pred, r.choice([0.05, 0.05, 0.05, 0.0, 0.1, 0.5])))
    return cases


# ---- hand-checked values (the scripts' semantics) ----------------------------------------------

@pytest.mark.parametrize("pred,answers,threshold,expected", [
    ("yes", ["yes"], 0.5, 1.0),
    ("  YES\n", ["yes"], 0.5, 1.0),                  # stripped and lowercased on both sides
    ("New   York", ["new york"], 0.5, 1.0),         # whitespace runs collapsed
    ("helo", ["hello"], 0.5, 1 - 1 / 5),
    ("abc", ["abd"], 0.5, 1 - 1 / 3),
    ("abcd", ["abxy"], 0.5, 0.5),                    # 1 - 0.5 is not below the threshold: kept
    ("abcd", ["axyz"], 0.5, 0.0),                    # 0.25 < 0.5: zeroed
    ("cat   ", ["cab"], 0.5, 1 - 1 / 6),             # divided by the RAW prediction's length (6), not 3
    ("großx", ["grosx"], 0.5, 1 - 1 / 6),            # len("großx".upper()) == 6 ("SS")
    ("", [""], 0.5, 1.0),                            # length 0: value 0.0
    ("  ", [""], 0.5, 1.0),                          # both normalize to "": distance 0
    ("", ["a"], 0.5, 0.0),
    ("hello", ["help", "hello"], 0.5, 1.0),          # the closest answer counts
    ("abcde", ["zzzzz", "abxde"], 0.5, 1 - 1 / 5),
    ("abcd", ["axyz"], 0.0, 0.25),                   # threshold 0: nothing zeroed
    ("abd", ["abc"], 1.0, 0.0),                      # threshold 1: exact matches only
])
def test_anls_known_values(pred, answers, threshold, expected):
    assert anls(pred, answers, threshold) == pytest.approx(expected, abs=1e-15)
    assert question_result(answers, pred, threshold) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("pred,target,official,qwen_vl", [
    ("105", "100", 1.0, 1.0),           # 5/100 = 0.05 <= 0.05; swapped: 5/105
    ("95", "100", 1.0, 0.0),            # official 5/100; Qwen-VL order 5/95 = 0.0526 > 0.05
    ("104.9", "100", 1.0, 1.0),
    ("106", "100", 0.0, 0.0),
    ("12%", "0.12", 1.0, 1.0),          # percentages parsed: 12% = 0.12
    ("12", "12%", 0.0, 0.0),            # 12 vs 0.12
    ("0.0", "0", 0.0, 0.0),             # target 0: string comparison
    ("0", "0", 1.0, 1.0),
    ("0", "5", 0.0, 0.0),
    ("Yes", "yes", 1.0, 1.0),           # case-insensitive
    (" yes", "yes", 0.0, 1.0),          # Qwen-VL strips the model's answer; pix2struct strips nothing
    ("1,000", "1000", 0.0, 0.0),        # float() rejects the comma
    ("-5.2", "-5", 1.0, 1.0),
    ("nan", "nan", 0.0, 0.0),           # NaN is truthy and never within tolerance
    ("5 %", "0.05", 1.0, 1.0),          # float("5 ") parses
])
def test_relaxed_known_values(pred, target, official, qwen_vl):
    assert relaxed_accuracy(pred, target) == official
    assert float(relaxed_correctness(target, pred)) == official
    assert relaxed_accuracy_sample(pred, [target], argument_order="qwen_vl") == qwen_vl
    assert float(qwen_vl_sample(target, pred)) == qwen_vl


# ---- differential ----------------------------------------------------------------------------

def test_levenshtein_matches_script_dp():
    r = random.Random(7)
    for _ in range(1500):
        alphabet = r.choice(["ab", "abc ", "aéß ", "0123456789abcdefghij"])
        a = "".join(r.choice(alphabet) for _ in range(r.randint(0, r.choice([4, 30, 150]))))
        b = "".join(r.choice(alphabet) for _ in range(r.randint(0, r.choice([4, 30, 150]))))
        assert levenshtein(a, b) == levenshtein_distance(a, b) == levenshtein(b, a), (a, b)


def test_anls_differential():
    cases = anls_cases()
    kinds = {"zeroed": 0, "partial": 0, "exact": 0, "raw_len": 0}
    for pred, answers, threshold in cases:
        expected = question_result(answers, pred, threshold)
        got = anls(pred, answers, threshold)
        assert got == expected and isinstance(got, float), (pred, answers, threshold, got, expected)
        kinds["zeroed" if expected == 0 else "exact" if expected == 1 else "partial"] += 1
        # cases where the raw lengths the script divides by differ from the normalized ones
        kinds["raw_len"] += any(len(a.upper()) != len(" ".join(a.strip().lower().split())) for a in answers + [pred])
    assert len(cases) >= 500 and min(kinds.values()) >= 50, kinds
    # the registered metric over the same cases at the default threshold, as the script's dataset score
    default = [(p, a) for p, a, _ in cases]
    result = get_metric("anls").compute([MetricInput(p, a) for p, a in default])
    score, per_sample = evaluate_method([a for _, a in default], [p for p, _ in default])
    assert result.per_sample == per_sample
    assert result.value == pytest.approx(score, abs=1e-12)


def test_relaxed_differential_both_orders():
    cases = relaxed_cases()
    differ = pure_order = 0
    for targets, pred, mrc in cases:
        official = float(max(relaxed_correctness(t, pred, mrc) for t in targets))
        qwen = float(max(relaxed_correctness(pred.strip(), t, mrc) for t in targets))
        assert relaxed_accuracy_sample(pred, targets, mrc, "official") == official, (targets, pred, mrc)
        assert relaxed_accuracy_sample(pred, targets, mrc, "qwen_vl") == qwen, (targets, pred, mrc)
        assert relaxed_accuracy(pred, targets[0], mrc) == float(relaxed_correctness(targets[0], pred, mrc))
        differ += official != qwen
        # the argument order alone (the answer needs no strip) changes the score
        pure_order += official != qwen and pred == pred.strip()
    # the generated set must be able to catch a swapped order, both ways
    assert len(cases) >= 500 and differ >= 20 and pure_order >= 10, (differ, pure_order)
    outcomes = [relaxed_accuracy_sample(p, t, m) for t, p, m in cases]
    assert 0.1 < sum(outcomes) / len(outcomes) < 0.9  # both outcomes well represented


def test_relaxed_registered_metric_matches_script_aggregates():
    cases = relaxed_cases(seed=2)
    items = [MetricInput(p, t) for t, p, _ in cases]
    metric = get_metric("relaxed_accuracy")
    official = metric.compute(items)
    qwen = metric.compute(items, argument_order="qwen_vl")
    assert official.per_sample == [float(pix2struct_sample(t, p)) for t, p, _ in cases]
    assert official.value == pytest.approx(pix2struct_relaxed_accuracy([t for t, _, _ in cases],
                                                                       [p for _, p, _ in cases]) / 100, abs=1e-12)
    entries = [{"answer": p, "annotation": t[0] if len(t) == 1 else list(t)} for t, p, _ in cases]
    assert qwen.value == pytest.approx(evaluate_relaxed_accuracy(entries), abs=1e-12)
    assert official.value != qwen.value
    assert metric.compute(items, max_relative_change=0.5).value >= official.value


# ---- registry and bad input ------------------------------------------------------------------

def test_registered_metrics_none_prediction_and_args():
    items = [MetricInput(None, ["a"]), MetricInput("abd", ["abc"]), MetricInput("95", ["100"])]
    a = get_metric("anls").compute(items)
    assert a.per_sample == [0.0, pytest.approx(2 / 3), 0.0]
    assert get_metric("anls").compute(items, threshold=0.7).per_sample[1] == 0.0
    assert get_metric("relaxed_accuracy").compute(items).per_sample == [0.0, 0.0, 1.0]
    assert get_metric("relaxed_accuracy").compute(items, argument_order="qwen_vl").per_sample == [0.0, 0.0, 0.0]
    check_scoring([{"name": "relaxed_accuracy", "args": {"argument_order": "qwen_vl"}},
                   {"name": "anls", "args": {"threshold": 0.5}}], None)
    with pytest.raises(ValueError, match="argument_order"):
        check_scoring([{"name": "relaxed_accuracy", "args": {"argument_order": "swapped"}}], None)
    with pytest.raises(ValueError, match="threshold"):
        check_scoring([{"name": "anls", "args": {"threshold": "0.5"}}], None)
    with pytest.raises(ValueError, match="threshold"):
        get_metric("anls").compute(items, threshold=1.5)


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        anls("a", [])
    with pytest.raises(TypeError):
        anls("a", "a")
    with pytest.raises(TypeError):
        relaxed_accuracy(5, "5")
    with pytest.raises(ValueError, match="max_relative_change"):
        relaxed_accuracy("5", "5", -0.1)
    with pytest.raises(SampleScoreError, match="sample 1"):
        get_metric("anls").compute([MetricInput("a", ["a"]), MetricInput("a", [])])
    with pytest.raises(SampleScoreError, match="sample 0"):
        get_metric("relaxed_accuracy").compute([MetricInput("a", [])])
