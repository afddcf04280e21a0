"""compare refuses runs scored on different data; --tasks / --shared; the --limit hint (issue 8.7, 11.8)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from m3eval.cli import main as cli_main
from m3eval.report.compare import compare_runs
from m3eval.report.runs import load_run
from tests.dashboard_fixtures import write_run

N = 30


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("runs"), "base", accuracy=0.75, seed=0, n=N)


def _edit(run_dir: Path, task: str, fn) -> None:
    """Rewrite a task's samples records with fn(record)."""
    path = run_dir / "samples" / f"{task}.jsonl"
    recs = [fn(json.loads(line)) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_same_ids_different_answers_exit_2(base, tmp_path, capsys):
    # the same run, except that a --dataset-override changed one answer and NEW now "fails" it
    other = Path(shutil.copytree(base, tmp_path / "other"))
    rec0 = json.loads((base / "samples" / "msrvtt_qa.jsonl").read_text().splitlines()[0])

    def change(r):
        if r["id"] == rec0["id"]:
            r = {**r, "references": ["something else"], "scores": {k: 0.0 for k in r["scores"]}}
        return r
    _edit(other, "msrvtt_qa", change)
    cmp = compare_runs(load_run(base), load_run(other))
    assert cmp.exit_code == 2
    problem = next(p for p in cmp.problems if p.startswith("task msrvtt_qa"))
    assert f"references differ for 1 of {N} samples (e.g. {rec0['id']!r}" in problem
    assert "different data" in problem
    assert not any(r.task == "msrvtt_qa" for r in cmp.rows)  # no verdict on different data
    assert cli_main(["compare", str(base), str(other)]) == 2


def test_results_files_alone_compare_the_references_fingerprint(base, tmp_path):
    one, two = Path(shutil.copytree(base, tmp_path / "one")), Path(shutil.copytree(base, tmp_path / "two"))
    for run_dir, fp in ((one, "a" * 64), (two, "b" * 64)):
        data = json.loads((run_dir / "results.json").read_text())
        for t in data["tasks"].values():
            t["references_sha256"] = fp
        (run_dir / "results.json").write_text(json.dumps(data))
        shutil.rmtree(run_dir / "samples")
    cmp = compare_runs(load_run(one / "results.json"), load_run(two / "results.json"))
    assert cmp.exit_code == 2
    assert any("the runs scored different data (references_sha256 BASE aaaaaaaaaaaa, NEW bbbbbbbbbbbb" in p
               for p in cmp.problems)


def test_tasks_restricts_and_shared_skips_missing(base, tmp_path):
    part = write_run(tmp_path, "part", accuracy=0.75, seed=0, n=N, tasks=["okvqa", "msrvtt_qa"])
    cmp = compare_runs(load_run(base), load_run(part))
    assert cmp.exit_code == 2 and "use --shared" in cmp.problems[0]
    shared = compare_runs(load_run(base), load_run(part), shared=True)
    assert shared.exit_code == 0 and {r.task for r in shared.rows} == {"okvqa", "msrvtt_qa"}
    assert any("not compared: --shared" in n for n in shared.notes)
    only = compare_runs(load_run(base), load_run(part), tasks=["okvqa"])
    assert only.exit_code == 0 and {r.task for r in only.rows} == {"okvqa"} and not only.notes
    missing = compare_runs(load_run(base), load_run(part), tasks=["okvqa", "flickr8k_cn"])
    assert missing.exit_code == 2 and missing.problems == [
        "--tasks: NEW has no task flickr8k_cn (it has: msrvtt_qa, okvqa)"]
    assert cli_main(["compare", str(base), str(part), "--tasks", "okvqa,msrvtt_qa"]) == 0
    assert cli_main(["compare", str(base), str(part), "--shared"]) == 0
    assert cli_main(["compare", str(base), str(part)]) == 2


def test_limit_hint_only_when_limits_differ(base, tmp_path):
    fewer = write_run(tmp_path, "fewer", accuracy=0.75, seed=0, n=N, drop={"okvqa": 5})
    cmp = compare_runs(load_run(base), load_run(fewer))
    problem = next(p for p in cmp.problems if p.startswith("task okvqa"))
    assert "different sample sets" in problem and "--limit" not in problem  # both ran with limit null
    data = json.loads((fewer / "results.json").read_text())
    data["tasks"]["okvqa"]["invocation"] = {"config": {"limit": N - 5}}
    (fewer / "results.json").write_text(json.dumps(data))
    cmp = compare_runs(load_run(base), load_run(fewer))
    problem = next(p for p in cmp.problems if p.startswith("task okvqa"))
    assert f"rerun both with the same --limit (BASE None, NEW {N - 5})" in problem
