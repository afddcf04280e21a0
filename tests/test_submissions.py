"""Submission-only splits (VQAv2 test-dev, VizWiz-VQA test, DocVQA test): answers withheld, so a run
writes the file each evaluation server takes and never shows a score (m3eval/scoring/submission.py).

One `m3eval run` of the three tasks on the tiny model, each on a local dataset in its hub schema
without answers (Pillow images), through --dataset-override; one DocVQA image is not an image, so
one sample fails and must still appear in the file, with an empty answer, counted.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import datasets
import pytest

import fixtures_suite as fx
from m3eval.cli import main
from m3eval.data.synthetic import draw_image
from m3eval.errors import TaskError
from m3eval.record import SampleFailure
from m3eval.results import read_jsonl
from m3eval.scoring.submission import write_submission
from m3eval.tasks.loader import load_file
from m3eval.tasks.registry import Registry
from m3eval.types import Prediction

SIZE = (64, 64)
_STR, _INT, _STRS = datasets.Value("string"), datasets.Value("int64"), datasets.Sequence(datasets.Value("string"))
TASKS = ("vqav2_testdev", "vizwiz_vqa_test", "docvqa_test")
VQAV2_IDS = [262148000, 262148001, 393225000]
VIZWIZ_IDS = ["VizWiz_test_00000002", "VizWiz_test_00000000", "VizWiz_test_00000001"]
DOCVQA_IDS = [57344, 57345, 57346]
BROKEN_DOCVQA = 57345  # its image bytes are not an image: a failed sample


def _write(path: Path, rows: list[dict[str, Any]], feats: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(path))
    return path


def write_vqav2_testdev(root: Path) -> Path:
    """lmms-lab/VQAv2 testdev: the validation features, answer fields empty."""
    answer = {"answer": _STR, "answer_confidence": _STR, "answer_id": _INT}
    rows = [{"question_type": None, "multiple_choice_answer": None, "answers": None, "image_id": qid // 1000,
             "answer_type": None, "question_id": qid, "question": q, "image": draw_image(400 + k, SIZE)}
            for k, (qid, q) in enumerate(zip(VQAV2_IDS, ["What color is the car?", "Is it sunny?", "How many?"]))]
    return _write(root / "vqav2" / "testdev.parquet", rows, {
        "question_type": _STR, "multiple_choice_answer": _STR, "answers": [answer], "image_id": _INT,
        "answer_type": _STR, "question_id": _INT, "question": _STR, "image": datasets.Image()})


def write_vizwiz_test(root: Path) -> Path:
    """lmms-lab/VizWiz-VQA test: question_id (string), image, question, answers (none), category."""
    rows = [{"question_id": qid, "image": draw_image(500 + k, SIZE), "question": q, "answers": None, "category": None}
            for k, (qid, q) in enumerate(zip(VIZWIZ_IDS, ["what is this?", "what color is it?", "is it on?"]))]
    return _write(root / "vizwiz" / "test.parquet", rows, {
        "question_id": _STR, "image": datasets.Image(), "question": _STR, "answers": _STRS, "category": _STR})


def write_docvqa_test(root: Path) -> Path:
    """lmms-lab/DocVQA (config DocVQA) test: questionId is a string there; answers are null."""
    rows = [{"questionId": str(qid), "question": q, "question_types": None,
             "image": {"bytes": b"not an image", "path": None} if qid == BROKEN_DOCVQA else draw_image(600 + k, SIZE),
             "docId": 20000 + k, "ucsf_document_id": f"ffbf00{k}", "ucsf_document_page_no": "1", "answers": None,
             "data_split": "test"}
            for k, (qid, q) in enumerate(zip(DOCVQA_IDS, ["What is the date?", "Who signed it?", "What is the total?"]))]
    return _write(root / "docvqa" / "test.parquet", rows, {
        "questionId": _STR, "question": _STR, "question_types": _STRS, "image": datasets.Image(), "docId": _INT,
        "ucsf_document_id": _STR, "ucsf_document_page_no": _STR, "answers": _STRS, "data_split": _STR})


def _run(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def sub_run(tiny_model, tmp_path_factory) -> tuple[Path, int, str, Path]:
    """The three submission tasks in one invocation (a copy of the folder then: `only`), then a scored
    task (docvqa_val) added to the same folder by a second invocation."""
    root = tmp_path_factory.mktemp("submissions")
    data = {"vqav2_testdev": write_vqav2_testdev(root), "vizwiz_vqa_test": write_vizwiz_test(root),
            "docvqa_test": write_docvqa_test(root), "docvqa_val": fx.write_docvqa(root)}
    common = ["run", "--model", "hf", "--model-args", f"pretrained={tiny_model}", "--output", str(root / "runs"),
              "--run-name", "sub", "--no-media", "--batch-size", "2"]
    overrides = [a for t, p in data.items() for a in ("--dataset-override", f"{t}={p}") if t != "docvqa_val"]
    rc, err = _run([*common, "--tasks", ",".join(TASKS), *overrides])
    run = root / "runs" / "sub"
    only = shutil.copytree(run, root / "only" / "sub")
    rc2, err2 = _run([*common, "--tasks", "docvqa_val", "--dataset-override", f"docvqa_val={data['docvqa_val']}"])
    assert rc2 == 0, err2
    return run, rc, err, only


def _file(run: Path, task: str) -> list[dict[str, Any]]:
    return json.loads((run / "submissions" / f"{task}.json").read_text())


def _predictions(run: Path, task: str) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in read_jsonl(run / "predictions" / f"{task}.jsonl")}


def test_each_file_has_the_servers_shape_and_every_question_once(sub_run):
    run, rc, err, _ = sub_run
    assert rc == 0, err
    vqa = _file(run, "vqav2_testdev")
    assert [sorted(e) for e in vqa] == [["answer", "question_id"]] * 3
    assert [e["question_id"] for e in vqa] == sorted(VQAV2_IDS)  # ints, each once, sorted
    assert all(type(e["question_id"]) is int and type(e["answer"]) is str for e in vqa)
    preds = _predictions(run, "vqav2_testdev")
    assert {e["question_id"]: e["answer"] for e in vqa} == {int(i): p["prediction"] for i, p in preds.items()}

    viz = _file(run, "vizwiz_vqa_test")
    assert [sorted(e) for e in viz] == [["answer", "image"]] * 3
    assert [e["image"] for e in viz] == [f"{i}.jpg" for i in sorted(VIZWIZ_IDS)]

    doc = _file(run, "docvqa_test")
    assert [sorted(e) for e in doc] == [["answer", "questionId"]] * 3
    assert [e["questionId"] for e in doc] == DOCVQA_IDS and all(type(e["questionId"]) is int for e in doc)
    preds = _predictions(run, "docvqa_test")
    assert preds[str(BROKEN_DOCVQA)]["error"] is not None
    # the failed sample is still there (a server refuses a file that misses a question), its answer empty
    assert [e["answer"] for e in doc if e["questionId"] == BROKEN_DOCVQA] == [""]


def test_results_name_the_file_and_hold_no_score(sub_run):
    run, _, err, _ = sub_run
    results = json.loads((run / "results.json").read_text())
    assert not set(TASKS) & set(results["tasks"])  # no scored entry, so no number anywhere that reads tasks
    subs = results["submissions"]
    assert sorted(subs) == sorted(TASKS)
    for task, fmt in zip(TASKS, ("vqav2", "vizwiz", "docvqa")):
        entry = subs[task]
        assert entry["file"] == f"submissions/{task}.json" and entry["format"] == fmt
        assert "metrics" not in entry and "primary_metric" not in entry
        assert entry["n_samples"] == 3
        # the CLI says where the file is, one line per task
        lines = [ln for ln in err.splitlines() if f"task {task}: submission only" in ln]
        assert len(lines) == 1 and str(run / "submissions" / f"{task}.json") in lines[0], err
    assert subs["docvqa_test"]["n_errors"] == 1 and subs["vqav2_testdev"]["n_errors"] == 0
    assert "1 of 3 answers are empty" in err
    # the second invocation's scored task did not drop them; each invocation lists its own tasks
    assert list(results["tasks"]) == ["docvqa_val"]
    assert sorted(sorted(i["tasks"]) for i in results["run"]["invocations"]) == sorted([["docvqa_val"], sorted(TASKS)])


def test_compare_and_export_show_no_number(sub_run, tmp_path, capsys):
    run, _, _, only = sub_run
    rc = main(["compare", str(run), str(run)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "submission only (no score; not compared): docvqa_test, vizwiz_vqa_test, vqav2_testdev" in out
    assert "docvqa_val" in out  # the scored task is compared
    rows = [ln for ln in out.splitlines() if any(t in ln for t in TASKS) and "submission only" not in ln]
    assert rows == [], out
    # --tasks naming one: said, not an error
    assert main(["compare", str(run), str(run), "--tasks", "docvqa_test,docvqa_val"]) == 0
    assert "submission only" in capsys.readouterr().out
    # a folder with submission tasks only: nothing to compare, and the message says why
    assert main(["compare", str(only), str(only)]) == 2
    assert "only submission-only tasks (docvqa_test, vizwiz_vqa_test, vqav2_testdev): no score" in \
        capsys.readouterr().err
    assert main(["export", str(run), "--format", "lm-eval", "--output", str(tmp_path / "lm")]) == 0
    capsys.readouterr()
    exported = json.loads(next((tmp_path / "lm").rglob("results_*.json")).read_text())
    assert list(exported["results"]) == ["docvqa_val"]
    assert [f.name.split("_2")[0] for f in (tmp_path / "lm").rglob("samples_*")] == ["samples_docvqa_val"]


def test_the_board_loads_the_run_and_shows_no_number_for_it(sub_run, tmp_path):
    from dashboard.board import build_rows, run_keys
    from dashboard.export import export
    from dashboard.hierarchy import hierarchy_for
    from m3eval.report.runs import find_runs
    run, _, _, _ = sub_run
    results = tmp_path / "results"
    shutil.copytree(run, results / "sub")
    runs, problems = find_runs(results)
    assert [r.name for r in runs] == ["sub"] and problems == []
    h = hierarchy_for(results)
    rows = build_rows(h, run_keys(runs), [], {}, None)
    leaves = {leaf for r in rows if r.board is not None for leaf in r.board.leaves}
    assert "docvqa_val" in leaves and not set(TASKS) & leaves
    assert export(results, tmp_path / "index.html") == 0
    html = (tmp_path / "index.html").read_text()
    assert not any(t in html for t in TASKS)


def test_score_rewrites_the_same_files(sub_run, tmp_path, capsys):
    run, _, _, _ = sub_run
    copy = tmp_path / "sub"
    shutil.copytree(run, copy)
    before = {t: (copy / "submissions" / f"{t}.json").read_bytes() for t in TASKS}
    shutil.rmtree(copy / "submissions")
    assert main(["score", str(copy)]) == 0
    err = capsys.readouterr().err
    assert {t: (copy / "submissions" / f"{t}.json").read_bytes() for t in TASKS} == before
    assert f"task docvqa_test: submission only (answers withheld, no score): {copy / 'submissions'}" in err
    results = json.loads((copy / "results.json").read_text())
    assert sorted(results["submissions"]) == sorted(TASKS) and not set(TASKS) & set(results["tasks"])
    # the invocation that generated each task is kept
    original = json.loads((run / "results.json").read_text())["submissions"]
    assert all(results["submissions"][t]["invocation"] == original[t]["invocation"] for t in TASKS)


# ---- the mechanism, without a model -------------------------------------------------------

def _spec(name: str):
    return Registry.discover([]).tasks[name]


def test_answers_go_through_the_tasks_filters_and_failures_stay_in_the_file(tmp_path):
    spec = _spec("vqav2_testdev")
    spec = type(spec).model_validate(spec.model_dump() | {"filters": [{"name": "lowercase"}]})
    fail = SampleFailure(stage="generate", type="RequestError", message="timeout")
    preds = [Prediction(id="7", prediction="Two Dogs", prompt="p", references=[]),
             Prediction(id="3", prediction="", prompt="p", references=[], error=fail)]
    entry = write_submission(spec, preds, tmp_path)
    assert json.loads((tmp_path / "submissions" / "vqav2_testdev.json").read_text()) == \
        [{"question_id": 3, "answer": ""}, {"question_id": 7, "answer": "two dogs"}]
    assert (entry.n_samples, entry.n_errors, entry.n_generate_errors) == (2, 1, 1)


def test_a_question_id_the_format_cannot_take_is_an_error_naming_it():
    preds = [Prediction(id="q-1", prediction="x", prompt="p", references=[])]
    with pytest.raises(ValueError, match="question id 'q-1' is not an integer"):
        write_submission(_spec("docvqa_test"), preds, None)


TASK = "task: t\ndataset: {{path: d.jsonl}}\ndoc: {{prompt: q, id: qid{refs}}}\n{rest}"


@pytest.mark.parametrize("refs,rest,message", [
    ("", "metrics: [{name: exact_match}]\nsubmission: {format: vqav2}\n", "a submission task has no metrics"),
    (", references: a", "submission: {format: vqav2}\n", "a submission task has no references"),
    ("", "", "metrics: name at least one metric"),
    (", references: a", "", "metrics: name at least one metric"),
])
def test_the_schema_refuses_scores_on_a_submission_task_and_requires_them_elsewhere(tmp_path, refs, rest, message):
    path = tmp_path / "t.yaml"
    path.write_text(TASK.format(refs=refs, rest=rest))
    with pytest.raises(TaskError, match=message):
        load_file(path)


def test_validate_names_an_unknown_format(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(TASK.format(refs="", rest="submission: {format: evalai}\n"))
    assert main(["validate", str(path)]) == 1
    assert "submission.format 'evalai' is not a submission format (known: vqav2, vizwiz, docvqa)" in \
        capsys.readouterr().err


def test_a_scored_tasks_hash_does_not_change_with_the_new_field():
    spec = _spec("vqav2_val")
    assert "submission" not in spec.stable_dump()
    assert _spec("vqav2_testdev").generation_key() != spec.generation_key()  # another split
