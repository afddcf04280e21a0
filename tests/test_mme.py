"""MME's scoring against the port of the authors' eval_tool/calculation.py (tests/reference/mme_calculation.py):
`mme_scores` and the registered metrics on seeded random and adversarial corpora, the answer parsing on adversarial
answers, the cases where calculation.py cannot run (m3eval scores them, and says so), and the bootstrap's rescore.
The port was itself checked against the original script (run with scikit-learn) on 600 random files: equal totals
and subtask scores on 570, both raising on the 30 with a subtask of unparsed answers only."""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pytest
from reference import mme_calculation as ref

from m3eval.errors import SampleScoreError
from m3eval.metrics import get_metric, mme_scores
from m3eval.metrics.base import MetricInput
from m3eval.metrics.mme import COGNITION, PERCEPTION, SUBTASKS, mme_parse

N_CORPORA = 500
METRICS = ["mme_score", "mme_perception", "mme_cognition", "mme_acc", "mme_acc_plus"]
ADVERSARIAL = [
    "Yes", "No", "yes", "no", "Yes.", "No.", "yes, it is", "No, it is not.", "YES", "NO", "", " ", "maybe", "Maybe.",
    "Yes and no", "no yes", "No. Yes.", "yesno", "noyes", "nyes", "not sure", "none", "nope", "know", "I know",
    "Snow", "nothing", "cannot", "unknown", "Unknown.", " yes", "  yes", "   yes", "  no", "   no", "Y", "N", "y",
    "n", "Yeah", "yep", "Nah", "The answer is yes", "The answer is no.", "It is yes", "Is no", "NO!", "yes!", "Yes\n",
    "\nyes", "ye\ns", "n\no", "\r\nno", "yes\r", "\tyes", "no\tyes", "\t\tno", "İyes", "İno", "ΝΟ", "ＹＥＳ", "ｙｅｓ",
    "sí", "Oui", "是", "\u00a0yes", "\u2028yes", "..no", "(yes)", "'no'", "\"Yes\"", "*no*", "yes" * 40,
]


def lmms_eval_parse(text: str) -> str:
    """lmms-eval's parse_pred_ans (tasks/mme/utils.py): stripped, dots removed, "y"/"n" accepted; NOT the
    authors'. The tests show the oracle tells them apart, so a scorer that drifted to it would fail."""
    text = text.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text, "other")
    return "yes" if "yes" in text[:4] else "no" if "no" in text[:4] else "other"


def _oracle_label(text: str) -> str:
    return ref.calculate_metrics().parse_pred_ans(text.replace("\t", "").replace("\r", "").replace("\n", "").lower())


def _prediction(r: random.Random, gold: str) -> str:
    k = r.random()
    if k < 0.35:
        return r.choice(ADVERSARIAL)
    if k < 0.75:
        word = gold if r.random() < 0.6 else ("No" if gold == "Yes" else "Yes")
        return r.choice(["{}", "{}.", "{}, it is.", " {}", "{} ", "The answer is {}.", "{}!"]).format(
            r.choice([word, word.lower(), word.upper()]))
    return "".join(r.choice(["y", "e", "s", "n", "o", " ", ",", ".", "Y", "N", "t", "yes", "no", "\n"])
                   for _ in range(r.randint(0, 7)))


def make_corpus(r: random.Random, subtasks=SUBTASKS, all_other: float = 0.02) -> list[dict]:
    """Rows in MME's pair order: per subtask 1-6 images, each with a "Yes" and a "No" question (as in MME's
    files; sometimes two of one answer, in any case)."""
    rows = []
    for s in subtasks:
        dead = r.random() < all_other  # every answer of the subtask unparsed: calculation.py raises
        for k in range(r.randint(1, 6)):
            golds = ["Yes", "No"] if r.random() < 0.85 else [r.choice(["Yes", "No", "yes", "NO"]) for _ in "ab"]
            for q, gold in enumerate(golds):
                pred = r.choice(["maybe", "", "unknown"]) if dead else _prediction(r, gold)
                rows.append({"subtask": s, "image": f"{s}/{k:04d}.png", "question": f"Q{q}? Please answer yes or no.",
                             "answer": gold, "prediction": pred})
    return rows


def oracle(rows: list[dict], delete_tabs: bool = True) -> dict:
    """The port on rows (tabs deleted: the script's line format has no room for them)."""
    if delete_tabs:
        rows = [{**x, "prediction": x["prediction"].replace("\t", "")} for x in rows]
    return ref.calculate_metrics().process_result(ref.to_lines(rows))


def filled(rows: list[dict], subtasks=SUBTASKS) -> list[dict]:
    """rows, plus one right pair in each of `subtasks` that has none (the script reads all 14 files)."""
    have = {x["subtask"] for x in rows}
    return rows + [{"subtask": s, "image": "filler", "question": "q", "answer": a, "prediction": a}
                   for s in subtasks if s not in have for a in ("Yes", "No")]


def items_of(rows: list[dict]) -> list[MetricInput]:
    return [MetricInput(x["prediction"], [x["answer"]], id=str(i), cluster=x["image"], category=x["subtask"])
            for i, x in enumerate(rows)]


def metric(name: str, rows: list[dict]):
    return get_metric(name).compute(items_of(rows))


def _subtask_oracle(port: dict, s: str) -> dict:
    return port["Perception" if s in PERCEPTION else "Cognition"]["tasks"][s]


# ---- the answer parsing ---------------------------------------------------------------------------

def test_parse_matches_calculation_py_on_adversarial_answers():
    for text in ADVERSARIAL:
        assert mme_parse(text) == _oracle_label(text), repr(text)
    assert mme_parse(None) == "other"
    # lowercasing happens before the 4-character window: "İ" lowercases to two characters
    assert mme_parse("İyes") == "other" and mme_parse("Iyes") == "yes"
    assert [mme_parse(t) for t in ("   yes", "Y", "No.", "yesno", "no yes")] == ["other", "other", "no", "yes", "no"]


def test_lmms_eval_parsing_is_told_apart():
    differ = [t for t in ADVERSARIAL if "\t" not in t and lmms_eval_parse(t) != _oracle_label(t)]
    assert {"   yes", "Y", "n"} <= set(differ)


# ---- the differential test ---------------------------------------------------------------------------

def _check_corpus(rows: list[dict], r: random.Random) -> None:
    shuffled = rows[:]
    r.shuffle(shuffled)  # m3eval pairs by (subtask, image), not by line order
    ours = mme_scores(shuffled)
    try:
        port = oracle(rows)
    except ValueError:  # a subtask with unparsed answers only: sklearn's confusion_matrix on empty input
        dead = {s for s in SUBTASKS if all(mme_parse(x["prediction"]) == "other" for x in rows if x["subtask"] == s)}
        assert dead
        for s in dead:
            assert ours["subtasks"][s] == {"acc": 0.0, "acc_plus": 0.0, "score": 0.0}
        rows = filled([x for x in rows if x["subtask"] not in dead])
        ours, port = mme_scores(rows), oracle(rows)  # the others still equal
    assert ours["perception"] == port["Perception"]["total"]
    assert ours["cognition"] == port["Cognition"]["total"]
    assert ours["n_unparsed"] == sum(t["other_num"] for e in port.values() for t in e["tasks"].values())
    assert ours["n_images_not_pairs"] == 0
    for s in SUBTASKS:
        want = _subtask_oracle(port, s)
        assert ours["subtasks"][s] == {"acc": want["acc"] * 100, "acc_plus": want["acc_plus"] * 100,
                                       "score": want["score"]}, s
    values = {name: metric(name, rows) for name in METRICS}
    assert values["mme_score"].value == port["Perception"]["total"] + port["Cognition"]["total"]
    assert values["mme_perception"].value == port["Perception"]["total"]
    assert values["mme_cognition"].value == port["Cognition"]["total"]
    for name, res in values.items():
        assert res.rescore is not None and res.rescore(np.ones(len(rows))) == pytest.approx(res.value, abs=1e-9), name
        assert res.details["n_unparsed"] == ours["n_unparsed"], name
    for s in r.sample(SUBTASKS, 2):  # one subtask's samples, as results score each category
        sub = [x for x in rows if x["subtask"] == s]
        want = _subtask_oracle(port, s)
        assert metric("mme_score", sub).value == want["score"]
        assert metric("mme_acc", sub).value == want["acc"] * 100
        assert metric("mme_acc_plus", sub).value == want["acc_plus"] * 100
        other = "mme_cognition" if s in PERCEPTION else "mme_perception"
        assert metric(other, sub).value == 0.0


def test_differential_random_corpora():
    r = random.Random(22)
    for _ in range(N_CORPORA):
        _check_corpus(make_corpus(r), r)


def test_differential_adversarial_corpus():
    """Every adversarial answer against both gold answers, in every subtask."""
    r = random.Random(7)
    rows = []
    for s in SUBTASKS:
        for k, text in enumerate(ADVERSARIAL):
            for gold in r.sample(["Yes", "No"], 2):
                rows.append({"subtask": s, "image": f"{k}.jpg", "question": "q", "answer": gold,
                             "prediction": text if r.random() < 0.7 else r.choice(ADVERSARIAL)})
    _check_corpus(rows, r)


def test_all_unparsed_subtask_is_scored_where_calculation_py_fails():
    r = random.Random(3)
    rows = make_corpus(r, all_other=0.0)
    rows = [{**x, "prediction": "maybe"} if x["subtask"] == "OCR" else x for x in rows]
    with pytest.raises(ValueError):
        oracle(rows)
    out = mme_scores(rows)
    assert out["subtasks"]["OCR"]["score"] == 0.0
    assert out["n_unparsed"] >= sum(x["subtask"] == "OCR" for x in rows)


def test_tabs_and_line_breaks_are_deleted():
    rows = [{"subtask": "count", "image": "a", "question": "q", "answer": "Yes", "prediction": "\tYes"},
            {"subtask": "count", "image": "a", "question": "q", "answer": "No", "prediction": "n\no"}]
    with pytest.raises(ValueError, match="unpack"):  # five tab-separated fields: the script cannot unpack the line
        oracle(filled(rows), delete_tabs=False)
    assert mme_scores(rows)["subtasks"]["count"] == {"acc": 100.0, "acc_plus": 100.0, "score": 200.0}


def test_images_that_are_not_pairs_are_counted():
    rows = [{"subtask": "color", "image": im, "question": "q", "answer": a, "prediction": p}
            for im, a, p in [("a", "Yes", "yes"), ("a", "No", "no"), ("a", "No", "no"), ("b", "Yes", "no")]]
    out = mme_scores(rows)
    assert out["n_images_not_pairs"] == 2
    assert out["subtasks"]["color"] == {"acc": 75.0, "acc_plus": 50.0, "score": 125.0}
    assert metric("mme_acc_plus", rows).details["n_images_not_pairs"] == 2
    with pytest.raises(AssertionError):  # consecutive chunks of two: the last has one line
        oracle(filled(rows + [{**rows[0], "image": "c"}]))


def test_rescore_equals_scoring_the_resampled_corpus():
    """rescore(counts), counts drawn per image as the bootstrap draws clusters, equals mme_score of the corpus
    with each image repeated that many times."""
    r = random.Random(5)
    for _ in range(20):
        rows = make_corpus(r, subtasks=r.sample(SUBTASKS, r.randint(1, 14)), all_other=0.0)
        images = sorted({(x["subtask"], x["image"]) for x in rows})
        times = {im: r.choice([0, 1, 1, 2, 3]) for im in images}
        counts = np.array([times[(x["subtask"], x["image"])] for x in rows])
        if counts.sum() == 0:
            continue
        copies = [{**x, "image": f"{x['image']}#{c}"} for x in rows for c in range(times[(x["subtask"], x["image"])])]
        direct = mme_scores(copies)
        for name, want in [("mme_score", direct["perception"] + direct["cognition"]),
                           ("mme_perception", direct["perception"]), ("mme_cognition", direct["cognition"])]:
            assert metric(name, rows).rescore(counts) == pytest.approx(want, abs=1e-9), name


def test_metric_records_each_parsed_answer_and_the_unparsed():
    rows = [{"subtask": "OCR", "image": "a", "question": "q", "answer": "Yes", "prediction": "maybe"},
            {"subtask": "OCR", "image": "a", "question": "q", "answer": "No", "prediction": "No."}]
    res = metric("mme_score", rows)
    assert res.value == 50.0 and res.per_sample is None
    assert res.details["n_unparsed"] == 1 and res.details["unparsed_ids"] == ["0"]
    assert res.sample_details == [{"parsed": "other"}, {"parsed": "no"}]
    assert metric("mme_acc", rows).per_sample == [0.0, 100.0]
    none = get_metric("mme_acc").compute([MetricInput(None, ["Yes"], id="q", cluster="a", category="OCR")])
    assert none.value == 0.0 and none.details["unparsed_ids"] == ["q"]


@pytest.mark.parametrize("row, message", [
    ({"answer": "Maybe"}, "Yes or No"), ({"answer": " Yes"}, "Yes or No"), ({"subtask": "ocr"}, "not one of"),
    ({"image": ""}, "image key"), ({"prediction": 3}, "not str"),
])
def test_bad_rows_are_named(row, message):
    rows = [{"subtask": "OCR", "image": "a", "prediction": "yes", "answer": "Yes"},
            {"subtask": "OCR", "image": "a", "prediction": "no", "answer": "No", **row}]
    with pytest.raises(SampleScoreError, match=message) as e:
        mme_scores(rows)
    assert e.value.index == 1


def test_metric_needs_subtask_and_image():
    with pytest.raises(SampleScoreError, match="doc.category"):
        get_metric("mme_score").compute([MetricInput("yes", ["Yes"], cluster="a")])
    with pytest.raises(SampleScoreError, match="doc.cluster"):
        get_metric("mme_score").compute([MetricInput("yes", ["Yes"], category="OCR")])
    with pytest.raises(ValueError, match="lacks answer"):
        mme_scores([{"subtask": "OCR", "image": "a", "prediction": "yes"}])


def test_totals_are_sums_over_the_subtasks_present():
    r = random.Random(11)
    rows = make_corpus(r, subtasks=["OCR", "code_reasoning"], all_other=0.0)
    out = mme_scores(rows)
    assert set(out["subtasks"]) == {"OCR", "code_reasoning"}
    assert out["perception"] == out["subtasks"]["OCR"]["score"]
    assert out["cognition"] == out["subtasks"]["code_reasoning"]["score"]
    assert len(PERCEPTION) == 10 and len(COGNITION) == 4


def test_lavin_example_of_the_eval_tool():
    """The authors' example results (LaVIN-13B, eval_tool/LaVIN/*.txt in tools/eval_tool.zip @ dd29509, kept here
    without the question column as tests/reference/data/mme_lavin_answers.tsv.gz): calculation.py prints
    perception 963.6114445778312 and cognition 249.64285714285714; MME's leaderboard lists LaVIN's 963.6."""
    rows = []
    with gzip.open(Path(__file__).parent / "reference" / "data" / "mme_lavin_answers.tsv.gz", "rt",
                   encoding="utf-8") as f:
        for line in f.read().splitlines():
            subtask, image, answer, prediction = line.split("\t")
            rows.append({"subtask": subtask, "image": image, "answer": answer, "prediction": prediction})
    assert len(rows) == 2374
    out = mme_scores(rows)
    assert (out["perception"], out["cognition"]) == (963.6114445778312, 249.64285714285714)
    assert metric("mme_score", rows).value == 963.6114445778312 + 249.64285714285714
