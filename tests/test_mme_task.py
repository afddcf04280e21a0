"""MME end to end over a dozen rows in lmms-lab/MME's schema (test split: question_id (the image's path, shared by
its two questions), image, question, answer ("Yes"/"No"), category (the subtask)), written as parquet with a
`datasets.Image` column: `m3eval run --tasks mme` on the tiny model (results.json: the perception and cognition
metrics, one category per subtask, every number equal to `mme_scores` of the stored answers), and `m3eval score` of
chosen answers, whose numbers are the calculation.py port's."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from reference import mme_calculation as ref

from m3eval.cli import main
from m3eval.data.synthetic import draw_image
from m3eval.metrics import mme_scores

SIZE = (32, 32)  # the tiny model's image size
# (question_id, question without MME's instruction, answer of the first question; the second has the other)
IMAGES = [("existence/000000006040.jpg", "Is there a train in this image?", "Yes"),
          ("existence/000000044279.jpg", "Is there a bed in this image?", "Yes"),
          ("count/000000056127.jpg", "Are there two dogs in this image?", "No"),
          ("OCR/0001.jpg", "Is the word in the logo \"angie's\"?", "Yes"),
          ("code_reasoning/0020.png", "Is a python code shown in the picture?", "Yes"),
          ("text_translation/0001.png", "Is it appropriate to translate the Chinese in the image into English "
                                        "'classic taste'?", "Yes")]


def mme_rows() -> list[dict]:
    rows = []
    for k, (qid, question, first) in enumerate(IMAGES):
        image = draw_image(900 + k, SIZE)
        for answer in (first, "No" if first == "Yes" else "Yes"):
            text = question if answer == first else question.replace("?", " or not?")
            rows.append({"question_id": qid, "image": image, "question": f"{text} Please answer yes or no.",
                         "answer": answer, "category": qid.split("/")[0]})
    return rows


def write_mme(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = datasets.Value("string")
    feats = datasets.Features({"question_id": s, "image": datasets.Image(), "question": s, "answer": s, "category": s})
    datasets.Dataset.from_list(mme_rows(), features=feats).to_parquet(str(path))
    return path


@pytest.fixture(scope="module")
def mme_run(tiny_model, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("mme")
    data = write_mme(root / "MME" / "test.parquet")
    assert main(["run", "--model", "hf", "--model-args", f"pretrained={tiny_model}", "--tasks", "mme",
                 "--output", str(root / "runs"), "--run-name", "mme", "--batch-size", "8", "--max-new-tokens", "4",
                 "--threads", "1", "--no-media", "--dataset-override", f"mme={data}"]) == 0
    run = root / "runs" / "mme"
    return run, json.loads((run / "results.json").read_text(encoding="utf-8"))


def test_mme_run_scores_perception_cognition_and_each_subtask(mme_run):
    run, results = mme_run
    res = results["tasks"]["mme"]
    assert res["n_samples"] == 12 and res["n_errors"] == 0 and res["primary_metric"] == "mme_score"
    samples = [json.loads(line) for line in (run / "samples" / "mme.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 12
    by_id = {r["question"]: r for r in mme_rows()}
    rows = []
    for rec in samples:  # the stored answers, with the subtask and image the task read
        assert rec["category"] == rec["cluster"].split("/")[0]
        row = by_id[rec["prompt"] if isinstance(rec["prompt"], str) else rec["prompt"][-1]["text"]]
        assert rec["cluster"] == row["question_id"] and rec["references"] == [row["answer"]]
        rows.append({"subtask": rec["category"], "image": rec["cluster"], "prediction": rec["extracted"],
                     "answer": rec["references"][0]})
        assert rec["details"]["mme_score"]["parsed"] in ("yes", "no", "other")
    want = mme_scores(rows)
    metrics = res["metrics"]
    assert metrics["mme_perception"]["value"] == want["perception"]
    assert metrics["mme_cognition"]["value"] == want["cognition"]
    assert metrics["mme_score"]["value"] == want["perception"] + want["cognition"]
    assert metrics["mme_score"]["details"]["n_unparsed"] == want["n_unparsed"]
    details = metrics["mme_score"]["details"]
    assert details["n_images"] == 6 and details["n_images_not_pairs"] == 0
    assert (metrics["mme_score"]["scale"], metrics["mme_perception"]["scale"], metrics["mme_cognition"]["scale"]) \
        == (2800, 2000, 800)  # full scales: the board maps each to 0..100
    categories = res["categories"]
    assert set(categories) == {"existence", "count", "OCR", "code_reasoning", "text_translation"}
    for name, cat in categories.items():
        sub = want["subtasks"][name]
        assert cat["n_samples"] == 2 * sum(q.startswith(name + "/") for q, _, _ in IMAGES)
        assert set(cat["metrics"]) == {"mme_score", "mme_acc", "mme_acc_plus"}
        assert cat["metrics"]["mme_score"]["value"] == sub["score"], name
        assert cat["metrics"]["mme_acc"]["value"] == sub["acc"], name
        assert cat["metrics"]["mme_acc_plus"]["value"] == sub["acc_plus"], name


# answers made elsewhere, one per row: right, wrong, unparsed ("maybe", "   yes": the 4-character window)
ANSWERS = ["Yes", "No.", "yes, there is", "maybe", "No", "no", "Yes", "yes", "   yes", "No, it is not.", "NO", "Y"]


def test_score_of_answers_made_elsewhere_equals_calculation_py(tmp_path):
    data = write_mme(tmp_path / "MME" / "test.parquet")
    preds = tmp_path / "answers.jsonl"
    preds.write_text("".join(json.dumps({"id": str(i), "prediction": a}) + "\n" for i, a in enumerate(ANSWERS)),
                     encoding="utf-8")
    assert main(["score", "--task", "mme", "--predictions", str(preds), "--output", str(tmp_path / "run"),
                 "--dataset-override", f"mme={data}"]) == 0
    res = json.loads((tmp_path / "run" / "answers" / "results.json").read_text(encoding="utf-8"))["tasks"]["mme"]
    lines: dict[str, list[str]] = {s: [] for s in ref.eval_type_dict["Perception"] + ref.eval_type_dict["Cognition"]}
    for row, answer in zip(mme_rows(), ANSWERS):  # the script's files; the subtasks absent get one right pair
        lines[row["category"]].append(f"{row['question_id']}\t{row['question']}\t{row['answer']}\t{answer}\n")
    for name, rows in lines.items():
        rows.extend([] if rows else ["x.jpg\tq\tYes\tyes\n", "x.jpg\tq\tNo\tno\n"])
    port = ref.calculate_metrics().process_result(lines)
    present = {r["category"] for r in mme_rows()}
    tasks = {name: t for e in port.values() for name, t in e["tasks"].items() if name in present}
    assert res["metrics"]["mme_perception"]["value"] == pytest.approx(
        sum(t["score"] for name, t in tasks.items() if name in ref.eval_type_dict["Perception"]))
    assert res["metrics"]["mme_cognition"]["value"] == pytest.approx(
        sum(t["score"] for name, t in tasks.items() if name in ref.eval_type_dict["Cognition"]))
    # existence 125 (acc 3/4, acc+ 1/2), count 50, OCR 50; code_reasoning 50 ("   yes" is unparsed), text_translation 0
    assert res["metrics"]["mme_score"]["value"] == 275.0 and res["metrics"]["mme_perception"]["value"] == 225.0
    assert res["metrics"]["mme_score"]["details"]["n_unparsed"] == 3 == sum(t["other_num"] for t in tasks.values())
    for name, t in tasks.items():
        got = res["categories"][name]["metrics"]
        assert got["mme_score"]["value"] == t["score"], name
        assert (got["mme_acc"]["value"], got["mme_acc_plus"]["value"]) == (t["acc"] * 100, t["acc_plus"] * 100), name
