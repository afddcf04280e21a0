"""Reading run directories and reference rows: good files load, bad ones fail naming file and field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from m3eval.report.runs import (ResultsError, display_ci, display_value, find_runs, load_references, load_run,
                         load_samples)
from tests.dashboard_fixtures import DEFAULT_TASKS, write_broken, write_leaderboard, write_reference, write_run


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    return write_leaderboard(tmp_path_factory.mktemp("results"), n=12)


def _edit(run_dir: Path, change) -> Path:
    file = run_dir / "results.json"
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))
    return file


def test_load_run_from_dir_and_file(board):
    run = load_run(board / "tiny-llava")
    assert run.name == "tiny-llava" and run.model_id == "fixture/tiny-llava"
    assert set(run.tasks) == set(DEFAULT_TASKS)
    assert load_run(board / "tiny-llava" / "results.json").path == run.path
    records, warnings = run.load_samples("okvqa")
    assert len(records) == 12 and not warnings
    assert all(isinstance(r["id"], str) for r in records)


def test_nonexistent_and_non_run_paths(tmp_path):
    with pytest.raises(ResultsError, match="no such run directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(ResultsError, match="not a run directory"):
        load_run(tmp_path)


@pytest.mark.parametrize("text, message", [
    ('{"format": "m3eval.results/1", "run": {"na', "malformed or partial JSON at line 1"),
    ("", "empty file"),
    ("[1, 2]", "top level should be a JSON object"),
    ('{"format": "m3eval.results/0", "run": {}}', "'m3eval.results/0', this m3eval reads 'm3eval.results/1'"),
    ('{"run": {}, "tasks": {}}', "missing field 'format'.*older results format"),
    ('{"format": "lm-eval/2"}', "not an m3eval file"),
])
def test_unusable_results_files_name_the_problem(tmp_path, text, message):
    (tmp_path / "results.json").write_text(text)
    with pytest.raises(ResultsError, match=message) as e:
        load_run(tmp_path)
    assert str(tmp_path / "results.json") in str(e.value)


@pytest.mark.parametrize("change, field", [
    (lambda d: d["tasks"]["okvqa"].pop("hash"), "missing field 'tasks.okvqa.hash'"),
    (lambda d: d["tasks"]["okvqa"]["metrics"]["vqa_accuracy"].update(value="0.5"),
     "field 'tasks.okvqa.metrics.vqa_accuracy.value' should be int or float, got str"),
    (lambda d: d["tasks"]["okvqa"]["metrics"]["vqa_accuracy"].update(ci=[0.1]),
     "field 'tasks.okvqa.metrics.vqa_accuracy.ci' should be \\[low, high\\]"),
    (lambda d: d["tasks"]["okvqa"].update(primary_metric="bleu"),
     "field 'tasks.okvqa.primary_metric' is 'bleu', not one of its metrics"),
    (lambda d: d["run"].pop("name"), "missing field 'run.name'"),
    (lambda d: d.update(tasks={}), "field 'tasks' is empty"),
    (lambda d: d["tasks"]["okvqa"].update(languages=["en"]), "field 'tasks.okvqa.languages' should be dict"),
    (lambda d: d["tasks"]["okvqa"].update(instructions={"per_instruction": "0.3"}),
     "field 'tasks.okvqa.instructions.per_instruction' should be a list of numbers"),
    (lambda d: d["groups"]["knowledge_vqa"].pop("value"), "missing field 'groups.knowledge_vqa.value'"),
    (lambda d: d.update(timings=[1]), "field 'timings' should be dict"),
])
def test_partial_results_name_the_field(tmp_path, change, field):
    run_dir = write_run(tmp_path, "r", n=4, tasks=["okvqa"])
    _edit(run_dir, change)
    with pytest.raises(ResultsError, match=field):
        load_run(run_dir)


def test_find_runs_skips_broken_files_with_a_warning(board):
    runs, warnings = find_runs(board)
    assert sorted(r.name for r in runs) == ["tiny-llava", "tiny-qwen"]
    assert len(warnings) == 2
    assert any("crashed/results.json" in w and "malformed" in w for w in warnings)
    assert any("old/results.json" in w and "m3eval.results/0" in w for w in warnings)


def test_find_runs_on_missing_or_empty_folder(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        find_runs(tmp_path / "missing")
    runs, warnings = find_runs(tmp_path)
    assert runs == [] and warnings == [f"no runs found in {tmp_path} (looked for <run>/results.json)"]


def test_find_runs_nested_and_duplicate_names(tmp_path):
    write_run(tmp_path / "a", "same", n=4, tasks=["okvqa"])
    write_run(tmp_path / "b", "same", n=4, tasks=["okvqa"])
    write_reference(tmp_path)  # reference/*.json is never mistaken for a run
    runs, warnings = find_runs(tmp_path)
    assert len(runs) == 2
    assert any("several runs are named 'same'" in w for w in warnings)


def test_references(tmp_path):
    write_reference(tmp_path)
    (tmp_path / "reference" / "bad.json").write_text(json.dumps(
        {"format": "m3eval.reference/1", "model": "X", "tasks": {"okvqa": {"metrics": {"acc": {}}}}}))
    refs, warnings = load_references(tmp_path)
    assert [r.model for r in refs] == ["Ying-VLM"]
    assert refs[0].tasks["m3it_okvqa"]["metrics"]["rouge_l"]["value"] == 0.44
    assert len(warnings) == 1 and "bad.json" in warnings[0]
    assert "missing field 'tasks.okvqa.metrics.acc.value'" in warnings[0]
    assert load_references(tmp_path / "nothing") == ([], [])


def test_bad_sample_lines_are_skipped_and_counted(tmp_path):
    file = tmp_path / "t.jsonl"
    file.write_text('{"id": "a", "scores": {"m": 1}}\n{"id": "b", "scor\n{"scores": {}}\n'
                    '{"id": 7, "scores": {"m": 0}}\n{"id": "c"}\n')
    records, warnings = load_samples(file)
    assert [r["id"] for r in records] == ["a", "7"]
    assert len(warnings) == 3
    assert f"{file}:2: malformed JSON" in warnings[0]
    assert "without an 'id'" in warnings[1] and "'c' has no 'scores'" in warnings[2]
    records, warnings = load_samples(tmp_path / "missing.jsonl")
    assert records == [] and "no such file" in warnings[0]


def test_display_scale():
    assert display_value({"value": 0.512, "scale": 1}) == pytest.approx(51.2)
    assert display_value({"value": 23.1, "scale": 100}) == pytest.approx(23.1)
    assert display_ci({"value": 0.5, "ci": [0.4, 0.6]}) == pytest.approx((40.0, 60.0))
    assert display_ci({"value": 0.5}) is None


def test_write_broken_alone_is_no_runs(tmp_path):
    write_broken(tmp_path)
    runs, warnings = find_runs(tmp_path)
    assert runs == [] and len(warnings) == 3 and warnings[-1].startswith("no runs found")
