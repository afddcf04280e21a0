"""SEED-Bench's image dimensions (tasks/instruction/seedbench_img.yaml): m3eval's per-category scoring (doc.category
-> results' `categories`, scoring.task.score_by) against the port of the authors' accuracy loop
(tests/reference/seedbench_eval.py: AILab-CVC/SEED-Bench eval.py) on random and adversarial sets, seeded; the
task's reading of lmms-lab/SEED-Bench rows (dimension names, video rows excluded); and the task end to end on the
trained demo model (it answers with letters and with words) over a fixture in the hub's schema."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import datasets
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fixtures_instruction as fx  # noqa: E402
from reference import seedbench_eval as official  # noqa: E402

from m3eval.data.task_samples import load_task_data  # noqa: E402
from m3eval.metrics.choice import extract_choice_letter  # noqa: E402
from m3eval.scoring.task import score_by, score_task  # noqa: E402
from m3eval.tasks.registry import Registry  # noqa: E402
from m3eval.types import Prediction  # noqa: E402

# AILab-CVC/SEED-Bench DATASET.md @ 5b64ef6c6be12015426c74d5e7cb3e49a5da5b64, "question_type"
DIMENSIONS = {1: "Scene Understanding", 2: "Instance Identity", 3: "Instance Attributes", 4: "Instance Location",
              5: "Instances Counting", 6: "Spatial Relation", 7: "Instance Interaction", 8: "Visual Reasoning",
              9: "Text Understanding"}
N_CASES = 600
LETTERS = "ABCD"
# answers a model gives: a letter in some dress (read by choice_letter), or text that names no single option
CHOICES = ["red", "blue", "green", "dog"]
DRESSED = ["{}", "{}", "{}", "{}.", "({})", " {} ", "The answer is {}.", "Answer: {}", "{}. dog", "**{}**"]
# text naming one option by its words, none, or several ("A. dog" above: label and text disagree unless D)
TEXTS = ["", "I don't know", "A or B", "A, B", "none of them", "E", "the second one", "C and D", "图片中有",
         "dog", "It is blue.", "red or blue", "a dog"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


@pytest.fixture(scope="module")
def spec(registry):
    return registry.tasks["seedbench_img"]


def random_case(r: random.Random) -> list[tuple[int, str, str]]:
    """(dimension, gold letter, the model's answer) per question; some dimensions get no right answer."""
    dims = r.sample(sorted(DIMENSIONS), r.randint(1, 9))
    skill = {d: r.choice([0.0, 0.0, 0.25, 0.5, 0.9, 1.0]) for d in dims}  # 0: a dimension with no right answer
    out = []
    for _ in range(r.choice([1, 2, 5, 10, 30, 60])):
        d, gold = r.choice(dims), r.choice(LETTERS)
        if r.random() < 0.15:
            answer = r.choice(TEXTS)
        else:
            said = gold if r.random() < skill[d] else r.choice(LETTERS.replace(gold, ""))
            answer = r.choice(DRESSED).format(said)
        out.append((d, gold, answer))
    return out


def _m3eval(spec, case: list[tuple[int, str, str]]) -> tuple[dict[str, dict], dict]:
    preds = [Prediction(id=str(i), prediction=a, prompt="", references=[g], choices=CHOICES, category=DIMENSIONS[d])
             for i, (d, g, a) in enumerate(case)]
    per = score_by(preds, lambda p: p.category or "", spec.metrics, spec.filters, primary_metric=spec.primary,
                   with_ci=False)
    overall, _ = score_task(preds, spec.metrics, spec.filters, primary_metric=spec.primary, with_ci=False)
    return per, overall


def test_per_dimension_and_overall_accuracy_equal_the_authors_loop(spec):
    r = random.Random(0)
    n_compared = n_no_right_answer = 0
    for case_no in range(N_CASES):
        case = random_case(r)
        # the authors' loop compares the predicted letter with the answer: give it what choice_letter read
        # (their likelihood ranking always yields a letter; an unread answer is wrong on both sides)
        answers = [{"prediction": extract_choice_letter(a, CHOICES) or a, "gt": g, "q_type_id": d} for d, g, a in case]
        per, overall = _m3eval(spec, case)
        counts = {d: sum(x["q_type_id"] == d for x in answers) for d in {x["q_type_id"] for x in answers}}
        assert {k: v["n_samples"] for k, v in per.items()} == {DIMENSIONS[d]: n for d, n in counts.items()}
        try:
            per_type, total = official.accuracy(answers)
        except KeyError as e:  # the loop crashes on a dimension with no right answer: m3eval scores it 0
            n_no_right_answer += 1
            assert per[DIMENSIONS[e.args[0]]]["metrics"]["choice_accuracy"]["value"] == 0.0, case_no
            right = [x for x in answers if x["prediction"] == x["gt"]]
            kept = [x for x in answers if any(y["q_type_id"] == x["q_type_id"] for y in right)]
            per_type = official.accuracy(kept)[0] if kept else {}
            total = len(right) / len(answers) * 100
        for d, acc in per_type.items():
            assert per[DIMENSIONS[d]]["metrics"]["choice_accuracy"]["value"] * 100 == acc, (case_no, d)
            n_compared += 1
        assert overall["metrics"]["choice_accuracy"]["value"] * 100 == total, case_no  # over questions, not dimensions
    assert n_compared > 500 and n_no_right_answer > 20


def test_overall_is_over_questions_not_the_mean_of_dimensions(spec):
    case = [(1, "A", "A"), (2, "B", "B"), (2, "B", "C"), (2, "B", "C"), (2, "B", "(C)")]  # 1/1 and 1/4
    per, overall = _m3eval(spec, case)
    per_type, total = official.accuracy([{"prediction": a.strip("()"), "gt": g, "q_type_id": d} for d, g, a in case])
    assert per_type == {1: 100.0, 2: 25.0} and total == 40.0  # not (100 + 25) / 2
    assert [per[DIMENSIONS[d]]["metrics"]["choice_accuracy"]["value"] for d in (1, 2)] == [1.0, 0.25]
    assert overall["metrics"]["choice_accuracy"]["value"] == 0.4 and overall["n_extraction_failures"] == 0


# ---- the task file on rows in the hub's schema -----------------------------------------------------

def test_the_task_reads_the_image_rows_with_their_dimension(spec, tmp_path):
    assert (spec.dataset.path, spec.dataset.split) == ("lmms-lab/SEED-Bench", "test")
    assert spec.doc.exclude_if == "{{ data_type != 'image' }}" and spec.doc.id == "question_id"
    assert spec.primary == "choice_accuracy" and [f.name for f in spec.filters] == ["choice_letter"]
    assert spec.doc.choices == ["choice_a", "choice_b", "choice_c", "choice_d"]
    assert spec.category_metrics is None  # the primary metric per dimension
    path = fx.write_seed(tmp_path)
    data = load_task_data(spec, None, "default", str(path))
    rows = [row for row in fx.seed_rows() if row["data_type"] == "image"]
    assert data.n_excluded == 2 and [s.id for s in data.samples] == [row["question_id"] for row in rows]
    assert [s.category for s in data.samples] == [DIMENSIONS[row["question_type_id"]] for row in rows]
    assert [s.references for s in data.samples] == [[row["answer"]] for row in rows]
    first = rows[0]
    assert data.samples[0].prompt == (f"{first['question']}\nA. {first['choice_a']}\nB. {first['choice_b']}\n"
                                      f"C. {first['choice_c']}\nD. {first['choice_d']}\nAnswer with the option's "
                                      "letter from the given choices directly.")


def test_a_dimension_id_stored_as_text_or_unknown_still_reads(spec, tmp_path):
    rows = [{**row, "question_type_id": str(row["question_type_id"])} for row in fx.seed_rows()[:2]]
    rows[1]["question_type_id"] = "13"  # not an image dimension: shown under its number, not dropped
    ds = datasets.Dataset.from_list([{k: v for k, v in row.items() if k != "image"} for row in rows])
    ds.to_parquet(str(tmp_path / "seed.parquet"))
    spec_no_image = spec.model_copy(update={"doc": spec.doc.model_copy(update={"images": None})})
    data = load_task_data(spec_no_image, None, "default", str(tmp_path / "seed.parquet"))
    assert [s.category for s in data.samples] == ["Scene Understanding", "dimension 13"]


# ---- end to end ------------------------------------------------------------------------------------

def test_the_task_runs_end_to_end_with_a_score_per_dimension(demo_model, tmp_path):
    from m3eval.cli import main

    data = fx.write_seed(tmp_path / "data")
    assert main(["run", "--model", "hf", "--model-args", f"pretrained={demo_model}", "--tasks", "seedbench_img",
                 "--output", str(tmp_path / "runs"), "--run-name", "seed", "--batch-size", "8", "--max-new-tokens",
                 "6", "--threads", "1", "--no-media", "--dataset-override", f"seedbench_img={data}"]) == 0
    run = tmp_path / "runs" / "seed"
    res = json.loads((run / "results.json").read_text(encoding="utf-8"))["tasks"]["seedbench_img"]
    rows = [row for row in fx.seed_rows() if row["data_type"] == "image"]
    assert res["n_samples"] == len(rows) and res["n_excluded"] == 2 and res["n_errors"] == 0
    records = [json.loads(line) for line in (run / "samples" / "seedbench_img.jsonl").read_text().splitlines()]
    assert [rec["category"] for rec in records] == [DIMENSIONS[row["question_type_id"]] for row in rows]
    cats = res["categories"]
    assert set(cats) == {DIMENSIONS[row["question_type_id"]] for row in rows}
    assert cats["Instances Counting"]["n_samples"] == cats["Text Understanding"]["n_samples"] == 2
    # the authors' loop over what the model said (the letter read, or its text when no letter was read)
    answers = [{"prediction": rec["extracted"] or rec["prediction"], "gt": rec["references"][0],
                "q_type_id": row["question_type_id"]} for rec, row in zip(records, rows)]
    right = {a["q_type_id"] for a in answers if a["prediction"] == a["gt"]}
    for d in {a["q_type_id"] for a in answers}:
        mine = [a for a in answers if a["q_type_id"] == d]
        want = official.accuracy(mine)[1] if d in right else 0.0
        assert cats[DIMENSIONS[d]]["metrics"]["choice_accuracy"]["value"] * 100 == want, d
    assert res["metrics"]["choice_accuracy"]["value"] == sum(a["prediction"] == a["gt"] for a in answers) / len(rows)
    assert res["n_extraction_failures"] == sum(rec["extracted"] is None for rec in records)
