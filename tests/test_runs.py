"""Reading run directories and reference rows: good files load, bad ones fail naming file and field."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from m3eval.line_record import SampleRecord
from m3eval.record import MetricEntry
from m3eval.report.runs import (ResultsError, display_ci, display_value, find_runs, load_references, load_run,
                                load_samples)
from tests.dashboard_fixtures import DEFAULT_TASKS, write_broken, write_leaderboard, write_reference, write_run

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "results" / "demo" / "tiny-llava"


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
    assert all(isinstance(r, SampleRecord) and isinstance(r.id, str) for r in records)


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
     "field 'tasks.okvqa.metrics.vqa_accuracy.value': input should be a valid number \\(got str\\)"),
    (lambda d: d["tasks"]["okvqa"]["metrics"]["vqa_accuracy"].update(ci=[0.1]),
     "field 'tasks.okvqa.metrics.vqa_accuracy.ci.1'"),  # [low, high] lacks its high end
    (lambda d: d["tasks"]["okvqa"].update(primary_metric="bleu"),
     "field 'tasks.okvqa': primary_metric is 'bleu', not one of its metrics \\(vqa_accuracy\\)"),
    (lambda d: d["run"].pop("name"), "missing field 'run.name'"),
    (lambda d: d.update(tasks={}), "field 'tasks' is empty \\(a partial run\\?\\)"),
    (lambda d: d["tasks"]["okvqa"].update(languages=["en"]),
     "field 'tasks.okvqa.languages': input should be a valid dictionary"),
    (lambda d: d["tasks"]["okvqa"].update(instructions={"n": 1, "per_instruction": "0.3"}),
     "field 'tasks.okvqa.instructions.per_instruction': input should be a valid list"),
    (lambda d: d["groups"]["knowledge_vqa"].pop("value"), "missing field 'groups.knowledge_vqa.value'"),
    (lambda d: d.update(timings=[1]), "field 'timings': input should be a valid dictionary"),
])
def test_partial_results_name_the_field(tmp_path, change, field):
    run_dir = write_run(tmp_path, "r", n=4, tasks=["okvqa"])
    file = _edit(run_dir, change)
    with pytest.raises(ResultsError, match=field) as e:
        load_run(run_dir)
    assert str(e.value).startswith(f"{file}: ")  # the file, then the field


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
    assert refs[0].tasks["m3it_okvqa"].metrics["rouge_l"].value == 0.44 and refs[0].source.startswith("M3IT")
    assert len(warnings) == 1 and "bad.json" in warnings[0]
    assert "missing field 'tasks.okvqa.metrics.acc.value'" in warnings[0]
    assert load_references(tmp_path / "nothing") == ([], [])


def _sample(sid, **fields) -> str:
    rec = {"id": sid, "prompt": "q?", "prediction": "a", "extracted": "a", "references": ["a"], "cluster": str(sid),
           "scores": {"m": 1.0}}
    return json.dumps({**rec, **fields}) + "\n"


def test_bad_sample_lines_are_skipped_and_counted(tmp_path):
    file = tmp_path / "t.jsonl"
    file.write_text(_sample("a") + '{"id": "b", "scor\n{"scores": {}}\n' + _sample(7, cluster="7", scores={"m": 0})
                    + '{"id": "c"}\n' + _sample("d", references="dog"))
    records, warnings = load_samples(file)
    assert [r.id for r in records] == ["a", "7"] and records[1].scores == {"m": 0.0}
    assert len(warnings) == 4
    assert f"{file}:2: malformed JSON" in warnings[0]
    assert "without an 'id'" in warnings[1] and "'c' has no 'scores'" in warnings[2]
    assert f"{file}:6: sample 'd' skipped: field 'references': input should be a valid list" in warnings[3]
    records, warnings = load_samples(tmp_path / "missing.jsonl")
    assert records == [] and "no such file" in warnings[0]


def test_samples_written_before_clusters_get_the_key_the_bootstrap_used(tmp_path):
    file = tmp_path / "t.jsonl"
    old = [json.loads(_sample(i)) for i in ("q1#i0", "q1#i1", "q2")]
    file.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "cluster"}) + "\n" for r in old))
    records, warnings = load_samples(file)
    assert not warnings and [r.cluster for r in records] == ["q1", "q1", "q2"]


def test_display_scale():
    assert display_value(MetricEntry(value=0.512, scale=1)) == pytest.approx(51.2)
    assert display_value(MetricEntry(value=23.1, scale=100)) == pytest.approx(23.1)
    assert display_ci(MetricEntry(value=0.5, ci=(0.4, 0.6))) == pytest.approx((40.0, 60.0))
    assert display_ci(MetricEntry(value=0.5)) is None


def test_write_broken_alone_is_no_runs(tmp_path):
    write_broken(tmp_path)
    runs, warnings = find_runs(tmp_path)
    assert runs == [] and len(warnings) == 3 and warnings[-1].startswith("no runs found")


# ---- the committed golden run: a run written before the typed record still opens ------------

def test_golden_run_loads_and_dumps_exactly_as_written():
    run = load_run(GOLDEN)
    assert run.results.dump() == json.loads((GOLDEN / "results.json").read_text(encoding="utf-8"))
    for task in run.tasks:
        records, warnings = run.load_samples(task)
        assert records and not warnings, (task, warnings)


def _m3eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m3eval", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_golden_run_compares_with_itself_and_exports(tmp_path):
    r = _m3eval("compare", str(GOLDEN), str(GOLDEN), "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert not report["problems"] and report["rows"] and all(row["diff"] == 0 for row in report["rows"])
    r = _m3eval("export", str(GOLDEN), "--format", "lm-eval", "--output", str(tmp_path))
    assert r.returncode == 0, r.stderr
    (results_file,) = tmp_path.glob("*/results_*.json")
    assert set(json.loads(results_file.read_text())["results"]) == set(load_run(GOLDEN).tasks)


def test_golden_run_rescores_to_the_same_numbers(tmp_path):
    """`m3eval score` on a copy of the run written before the typed record: the same scores."""
    import shutil
    shutil.copytree(GOLDEN, tmp_path / "r")
    r = _m3eval("score", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    before, after = load_run(GOLDEN).results, load_run(tmp_path / "r").results
    assert {t: e.dump() for t, e in after.tasks.items()} == {t: e.dump() for t, e in before.tasks.items()}
    assert after.groups == before.groups and after.run.rescored
