"""POPE (tasks/instruction/pope_*.yaml, m3eval/metrics/pope.py) against the port of its official scorer
(tests/reference/pope_evaluate.py: RUCAIBox/POPE evaluate.py), on random and adversarial answers, seeded;
the registered metrics (corpus re-scoring for the bootstrap, unanswered samples), the three task files and
the group, and the group end to end on the tiny model over a fixture in lmms-lab/POPE's schema."""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fixtures_instruction as fx  # noqa: E402
from reference import pope_evaluate as official  # noqa: E402

from m3eval.data.task_samples import load_task_data  # noqa: E402
from m3eval.errors import SampleScoreError  # noqa: E402
from m3eval.metrics import get_metric, pope_scores  # noqa: E402
from m3eval.metrics.base import MetricInput  # noqa: E402
from m3eval.metrics.pope import pope_answer  # noqa: E402
from m3eval.record import SampleFailure  # noqa: E402
from m3eval.scoring.task import score_task  # noqa: E402
from m3eval.tasks.registry import Registry  # noqa: E402
from m3eval.types import Prediction  # noqa: E402

KEYS = ["accuracy", "precision", "recall", "f1", "yes_ratio"]
METRICS = {"accuracy": "pope_accuracy", "precision": "pope_precision", "recall": "pope_recall", "f1": "pope_f1",
           "yes_ratio": "pope_yes_ratio"}
N_CASES = 700

# ---- generators ------------------------------------------------------------------------------

WORDS = ["Yes", "No", "yes", "no", "not", "Not", "NO", "YES", "Nope", "nothing", "There", "is", "a", "dog", "in",
         "the", "image", "cannot", "isn't", "none", "No.", "no,", "not.", "Yes,", "I", "see", "one", "there's"]
SEPS = [" ", " ", " ", "  ", ", ", ". ", ",", ".", "\n", "\t", "\xa0", "...", " ,"]
# answers that sit on the script's edges: the first '.', commas, single-space splitting, case, empty text
ADVERSARIAL = ["", " ", ".", "..", "No", "no", "NO", "No.", "no.", "No\n", "\nNo", " No", "No ", "No,", ",no", "no,yes",
               "not", "not.", "Not", "Nope", "nope", "Yes. No.", "Yes.No", "Yes, not.", "Yes,no", "Yes , no", "No!",
               "no!", "Yes\nNo", "Yes no", "Yes. no", "...No", ".No", "No.Yes", "I do not see one.",
               "There is no dog.", "Yes, there is a dog in the image.", "Answer: No", "No\tthere", "no\xa0dog",
               "Yes, no doubt.", "It is not.", "It's not", "isn't", "Not sure. Yes.", "No, there is not.",
               "No; none", "no-one", "No:", "(no)", "\"no\"", "'no'", "Yes.", "yes", "Y", "N", "Non", "No\r",
               "Certainly not", "NOT", "nO", "no\n\nThere is no dog.", "yes, not", "1. No", "e.g. no"]


def random_answer(r: random.Random) -> str:
    if r.random() < 0.35:
        return r.choice(ADVERSARIAL)
    words = [r.choice(WORDS) for _ in range(r.randint(1, 6))]
    text = words[0] + "".join(r.choice(SEPS) + w for w in words[1:])
    return text + r.choice(["", "", ".", ",", " .", "!", "\n"])


def random_case(r: random.Random) -> tuple[list[str], list[str]]:
    n = r.choice([1, 2, 3, 5, 8, 13, 20, 40])
    p_yes = r.choice([0.0, 0.5, 0.5, 0.5, 1.0, r.random()])  # some sets with no positive or no negative label
    return [random_answer(r) for _ in range(n)], ["yes" if r.random() < p_yes else "no" for _ in range(n)]


def _official_or_undefined(answers: list[str], labels: list[str]) -> dict[str, float | None]:
    """The port's numbers; a number the script cannot compute (ZeroDivisionError) is None."""
    try:
        return {k: v for k, v in official.evaluate(answers, labels).items() if k in KEYS}
    except ZeroDivisionError:
        read = [official.read_answer(a) for a in answers]
        tp = sum(a == "yes" and g == "yes" for a, g in zip(read, labels))
        fp = sum(a == "yes" and g == "no" for a, g in zip(read, labels))
        fn = sum(a == "no" and g == "yes" for a, g in zip(read, labels))
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = None if precision is None or recall is None or precision + recall == 0 else \
            2 * precision * recall / (precision + recall)
        acc = sum(a == g for a, g in zip(read, labels)) / len(labels)
        return {"accuracy": acc, "precision": precision, "recall": recall, "f1": f1,
                "yes_ratio": read.count("yes") / len(read)}


# ---- the reading of one answer and the five numbers, against the port ------------------------------

def test_an_answer_is_read_as_the_official_script_reads_it():
    r = random.Random(0)
    answers = ADVERSARIAL + [random_answer(r) for _ in range(5000)]
    assert [pope_answer(a) for a in answers] == [official.read_answer(a) for a in answers]
    # the script's quirks, kept: single-space split, case, only the first sentence, empty = yes
    assert [pope_answer(a) for a in ["No\n", "NO", "Nope", "Yes. No.", "", "no,", " No"]] == \
        ["yes", "yes", "yes", "yes", "yes", "no", "no"]
    # a plausible simpler reader (lmms-eval's: the stripped, lowercased answer equals "yes") disagrees
    assert any((a.strip().lower() == "yes") != (official.read_answer(a) == "yes") for a in answers)


def test_pope_scores_equal_the_official_script_on_random_and_adversarial_sets():
    r = random.Random(1)
    n_defined = n_undefined = 0
    for case in range(N_CASES):
        answers, labels = random_case(r)
        got, want = pope_scores(answers, labels), _official_or_undefined(answers, labels)
        assert list(got) == KEYS, case
        for k in KEYS:
            if want[k] is None:  # the script divides by zero: m3eval's value is 0
                assert got[k] == 0.0, (case, k, answers, labels)
                n_undefined += 1
            else:
                assert got[k] == want[k], (case, k, answers, labels)  # the same float, not approximately
                n_defined += 1
    assert n_defined > 5 * 500 and n_undefined > 20  # both kinds of case were drawn


def test_pope_scores_checks_its_input():
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        pope_scores(["yes", "no", "no"], ["yes", "no"])
    with pytest.raises(ValueError, match="'yes' or 'no'"):
        pope_scores(["yes"], ["maybe"])  # the script would count it as a positive
    with pytest.raises(ValueError, match="empty"):
        pope_scores([], [])
    with pytest.raises(TypeError):
        pope_scores("yes", ["yes"])
    assert pope_scores(["Yes"], [" YES "])["accuracy"] == 1.0  # labels: case and spaces ignored


# ---- the registered metrics --------------------------------------------------------------------

def _preds(answers: list[str | None], labels: list[str]) -> list[Prediction]:
    fail = SampleFailure(stage="generate", type="RequestError", message="no answer")
    return [Prediction(id=str(i), prediction="" if a is None else a, prompt="", references=[g],
                       error=fail if a is None else None) for i, (a, g) in enumerate(zip(answers, labels))]


def test_the_registered_metrics_score_a_task_as_pope_scores_does():
    r = random.Random(2)
    for case in range(150):
        answers, labels = random_case(r)
        summary, records = score_task(_preds(answers, labels), list(METRICS.values()), with_ci=False)
        want = pope_scores(answers, labels)
        for key, name in METRICS.items():
            assert summary["metrics"][name]["value"] == want[key], (case, key)
        details = summary["metrics"]["pope_f1"]["details"]
        assert sum(details[k] for k in ("tp", "fp", "tn", "fn")) == len(answers) and details["n_unanswered"] == 0
        assert [rec["details"]["pope_accuracy"]["read_as"] for rec in records] == [pope_answer(a) for a in answers]


def test_the_corpus_metrics_rescore_a_resampled_set_exactly():
    r = random.Random(3)
    rng = np.random.default_rng(3)
    for case in range(60):
        answers, labels = random_case(r)
        items = [MetricInput(a, [g]) for a, g in zip(answers, labels)]
        counts = rng.integers(0, 4, size=len(items))
        if counts.sum() == 0:
            continue
        expanded = [(a, g) for a, g, c in zip(answers, labels, counts) for _ in range(c)]
        want = pope_scores([a for a, _ in expanded], [g for _, g in expanded])
        for key in ("precision", "recall", "f1"):
            result = get_metric(METRICS[key]).compute(items)
            assert result.per_sample is None and result.rescore is not None
            assert result.rescore(np.ones(len(items), dtype=np.int64)) == result.value
            assert result.rescore(counts) == want[key], (case, key)


def test_an_unanswered_sample_counts_as_a_wrong_answer_never_as_yes():
    answers, labels = [None, None, "Yes", "No"], ["yes", "no", "yes", "no"]
    summary, records = score_task(_preds(answers, labels), list(METRICS.values()), with_ci=False)
    m = summary["metrics"]
    assert summary["n_errors"] == 2
    assert m["pope_f1"]["details"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 1, "n_unanswered": 2}
    assert m["pope_accuracy"]["value"] == 0.5 and m["pope_precision"]["value"] == 0.5
    assert m["pope_recall"]["value"] == 0.5 and m["pope_yes_ratio"]["value"] == 0.25  # only "Yes" said yes
    assert "details" not in records[0] and records[2]["details"]["pope_accuracy"] == {"read_as": "yes"}


def test_a_bad_label_names_the_sample():
    with pytest.raises(ValueError, match=r"pope_f1.*sample '1'.*'yes' or 'no'"):
        score_task(_preds(["yes", "no"], ["yes", "unknown"]), ["pope_f1"], with_ci=False)
    with pytest.raises(SampleScoreError):
        get_metric("pope_accuracy").compute([MetricInput("yes", [])])


# ---- the task files and the group ----------------------------------------------------------------

@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def test_the_three_sets_are_one_split_and_one_definition(registry):
    specs = {s: registry.tasks[f"pope_{s}"] for s in fx.POPE_SETS}
    for s, spec in specs.items():
        assert (spec.dataset.path, spec.dataset.name, spec.dataset.split, spec.dataset.revision) == \
            ("lmms-lab/POPE", None, "test", "4db1276663dfa5eb8ad16a52d24c31a09e470896"), s
        assert spec.doc.exclude_if == f"{{{{ category != '{s}' }}}}" and spec.doc.cluster == "image_source", s
        assert spec.doc.prompt == "{{ question | trim }}\nAnswer the question using a single word or phrase."
        assert (spec.doc.references, spec.doc.images, spec.doc.id) == ("answer", "image", None), s
        assert spec.primary == "pope_f1" and [m.name for m in spec.metrics] == \
            ["pope_f1", "pope_accuracy", "pope_precision", "pope_recall", "pope_yes_ratio"], s
        assert spec.filters == [] and spec.generation.max_new_tokens == 128, s  # the raw answer is scored
    assert registry.expand("pope") == ["pope_random", "pope_popular", "pope_adversarial"]


def test_each_set_reads_its_own_rows_of_the_split(registry, tmp_path):
    path = fx.write_pope(tmp_path)
    rows = fx.pope_rows()
    for s in fx.POPE_SETS:
        data = load_task_data(registry.tasks[f"pope_{s}"], None, "default", str(path))
        mine = [(i, row) for i, row in enumerate(rows) if row["category"] == s]
        assert data.n_excluded == len(rows) - len(mine)
        assert [x.id for x in data.samples] == [str(i) for i, _ in mine]  # the row index: question_id restarts
        assert [x.references for x in data.samples] == [[row["answer"]] for _, row in mine]
        assert [x.cluster for x in data.samples] == [row["image_source"] for _, row in mine]
        assert data.samples[0].prompt == f"{mine[0][1]['question']}\nAnswer the question using a single word or " \
                                         "phrase."


# ---- end to end ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pope_run(tiny_model, tmp_path_factory) -> tuple[Path, dict]:
    from m3eval.cli import main

    root = tmp_path_factory.mktemp("pope")
    data = fx.write_pope(root / "data")
    argv = ["run", "--model", "hf", "--model-args", f"pretrained={tiny_model}", "--tasks", "pope",
            "--output", str(root / "runs"), "--run-name", "pope", "--batch-size", "8", "--max-new-tokens", "6",
            "--threads", "1", "--no-media"]
    for s in fx.POPE_SETS:
        argv += ["--dataset-override", f"pope_{s}={data}"]
    assert main(argv) == 0
    run = root / "runs" / "pope"
    return run, json.loads((run / "results.json").read_text(encoding="utf-8"))


def test_the_group_runs_end_to_end_and_scores_what_the_model_said(pope_run):
    run, results = pope_run
    per_set = len(fx.pope_rows()) // 3
    f1s = []
    for s in fx.POPE_SETS:
        task = f"pope_{s}"
        res = results["tasks"][task]
        assert res["n_samples"] == per_set and res["n_excluded"] == 2 * per_set and res["n_errors"] == 0, task
        assert res["primary_metric"] == "pope_f1" and set(res["metrics"]) == set(METRICS.values()), task
        records = [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]
        # the model's raw answers, re-read by the official script's port: the same five numbers
        answers, labels = [rec["prediction"] for rec in records], [rec["references"][0] for rec in records]
        want = _official_or_undefined(answers, labels)
        for key, name in METRICS.items():
            assert res["metrics"][name]["value"] == (0.0 if want[key] is None else want[key]), (task, key)
        assert res["clusters"]["n"] == 2, task  # two images per set, resampled whole
        assert res["metrics"]["pope_f1"]["kind"] == "corpus" and res["metrics"]["pope_f1"]["resamples"] > 0
        f1s.append(res["metrics"]["pope_f1"]["value"])
    group = results["groups"]["pope"]
    assert group["members"] == [f"pope_{s}" for s in fx.POPE_SETS] and group.get("error") is None
    assert math.isclose(group["value"], sum(f1s) / 3)
