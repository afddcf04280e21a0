"""The regression gate on real run directories: verdicts, exit codes, tests chosen, output formats."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from m3eval.cli import main as cli_main
from m3eval.report.compare import compare_runs, render, run_compare
from m3eval.report.runs import load_run
from tests.dashboard_fixtures import write_run

N = 40


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(root, "base", accuracy=0.75, seed=0, n=N)
    write_run(root, "same", accuracy=0.75, seed=0, n=N)
    # same seed, lower accuracy: NEW is wrong on a superset of BASE's wrong answers
    write_run(root, "worse", accuracy=0.35, seed=0, n=N)
    write_run(root, "slightly", accuracy=0.72, seed=0, n=N)
    return root


def _row(cmp, task, metric):
    return next(r for r in cmp.rows if r.task == task and r.metric == metric)


def test_identical_runs_pass(runs):
    cmp = compare_runs(load_run(runs / "base"), load_run(runs / "same"))
    assert cmp.exit_code == 0 and not cmp.problems and not cmp.notes
    assert len(cmp.rows) == 6
    assert all(r.diff == 0 and r.p_value == 1.0 and r.status == "ok" for r in cmp.rows)
    tests = {(r.task, r.metric): r.test for r in cmp.rows}
    assert tests[("msrvtt_qa", "exact_match")] == "mcnemar"  # 0/1 scores on both sides
    assert tests[("okvqa", "vqa_accuracy")] == "permutation"  # partial credit 0.6 exists
    assert tests[("flickr8k_cn", "bleu")] == "bootstrap"  # corpus metric: re-scored resamples


def test_clear_regression_fails_with_exit_1(runs):
    base, new = load_run(runs / "base"), load_run(runs / "worse")
    cmp = compare_runs(base, new, tolerance=1.0, alpha=0.05)
    assert cmp.exit_code == 1
    row = _row(cmp, "msrvtt_qa", "exact_match")
    assert row.regression and row.status == "regression" and row.p_value < 0.05
    # McNemar is exact binomial on the discordant pairs; recount them from the samples
    b_recs, n_recs = base.load_samples("msrvtt_qa")[0], new.load_samples("msrvtt_qa")[0]
    nb = {r.id: r.scores["exact_match"] for r in n_recs}
    b = sum(1 for r in b_recs if r.scores["exact_match"] == 1 and nb[r.id] == 0)
    c = sum(1 for r in b_recs if r.scores["exact_match"] == 0 and nb[r.id] == 1)
    assert c == 0 and b > 0  # nested fixture: NEW only loses answers
    if b < 25:
        assert row.p_value == pytest.approx(min(1.0, 2 * 0.5 ** b))
    assert row.diff == pytest.approx(-100.0 * b / N)
    assert row.ci[0] <= row.diff <= row.ci[1] < 0


def test_tolerance_is_in_display_points(runs):
    base, new = load_run(runs / "base"), load_run(runs / "worse")
    drops = [-r.diff for r in compare_runs(base, new).rows]
    cmp = compare_runs(base, new, tolerance=max(drops) + 0.01)
    assert cmp.exit_code == 0
    assert all(not r.regression and r.significant is not None for r in cmp.rows)
    bleu = _row(cmp, "flickr8k_cn", "bleu")  # scale 100: points are BLEU points
    assert bleu.base == pytest.approx(load_run(runs / "base").tasks["flickr8k_cn"].metrics["bleu"].value)


def test_small_insignificant_drop_passes(runs):
    cmp = compare_runs(load_run(runs / "base"), load_run(runs / "slightly"))
    assert any(r.diff < 0 for r in cmp.rows)
    assert cmp.exit_code == 0 and not cmp.regressions


def test_improvement_is_not_a_regression(runs):
    cmp = compare_runs(load_run(runs / "worse"), load_run(runs / "base"))
    assert cmp.exit_code == 0
    assert _row(cmp, "msrvtt_qa", "exact_match").status == "improvement"


def test_lower_is_better_flips_the_direction(runs, tmp_path):
    for name in ("base", "worse"):
        write_run(tmp_path, name, accuracy={"base": 0.75, "worse": 0.35}[name], seed=0, n=N, tasks=["msrvtt_qa"])
        file = tmp_path / name / "results.json"
        data = json.loads(file.read_text())
        data["tasks"]["msrvtt_qa"]["metrics"]["exact_match"]["higher_is_better"] = False  # as if an error rate
        file.write_text(json.dumps(data))
    assert compare_runs(load_run(tmp_path / "base"), load_run(tmp_path / "worse")).exit_code == 0
    assert compare_runs(load_run(tmp_path / "worse"), load_run(tmp_path / "base")).exit_code == 1


def test_corpus_metric_is_rescored_and_checked(runs, tmp_path):
    cmp = compare_runs(load_run(runs / "base"), load_run(runs / "worse"))
    bleu = _row(cmp, "flickr8k_cn", "bleu")
    assert bleu.kind == "corpus" and bleu.ci[0] <= bleu.diff <= bleu.ci[1]
    # a stored corpus score that the samples do not reproduce is reported
    write_run(tmp_path, "tampered", accuracy=0.75, seed=0, n=N, tasks=["flickr8k_cn"])
    write_run(tmp_path, "ok", accuracy=0.75, seed=0, n=N, tasks=["flickr8k_cn"])
    file = tmp_path / "tampered" / "results.json"
    data = json.loads(file.read_text())
    data["tasks"]["flickr8k_cn"]["metrics"]["bleu"]["value"] += 3.0
    file.write_text(json.dumps(data))
    cmp = compare_runs(load_run(tmp_path / "ok"), load_run(tmp_path / "tampered"))
    assert any("bleu re-scored from NEW samples" in n for n in cmp.notes)


@pytest.mark.parametrize("kwargs, message", [
    (dict(versions={"okvqa": 2}), "task okvqa: version differs (BASE 1, NEW 2)"),
    (dict(drop={"msrvtt_qa": 3}), "task msrvtt_qa: different sample sets: 3 ids only in BASE, 0 only in NEW"),
    (dict(tasks=["okvqa", "msrvtt_qa"]), "NEW lacks 3 task(s) that BASE has: flickr8k_cn, m3it80_vqa, m3it_okvqa"),
])
def test_incomparable_runs_exit_2(runs, tmp_path, capsys, kwargs, message):
    write_run(tmp_path, "other", accuracy=0.75, seed=0, n=N, **kwargs)
    cmp = compare_runs(load_run(runs / "base"), load_run(tmp_path / "other"))
    assert cmp.exit_code == 2
    assert any(message in p for p in cmp.problems), cmp.problems
    assert run_compare(str(runs / "base"), str(tmp_path / "other"), fmt="markdown") == 2
    out = capsys.readouterr().out
    assert out.startswith("### ⚠️ m3eval compare: cannot compare") and message in out


def test_hash_difference_exit_2(runs, tmp_path):
    run_dir = write_run(tmp_path, "other", accuracy=0.75, seed=0, n=N)
    file = run_dir / "results.json"
    data = json.loads(file.read_text())
    data["tasks"]["okvqa"]["hash"] = "sha256:edited-prompt"
    file.write_text(json.dumps(data))
    cmp = compare_runs(load_run(runs / "base"), load_run(run_dir))
    assert cmp.exit_code == 2 and any("task okvqa: task definition hash differs" in p for p in cmp.problems)


def test_missing_path_and_bad_file_exit_2(runs, tmp_path, capsys):
    assert run_compare(str(runs / "base"), str(tmp_path / "nope")) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text('{"format": "m3eval.results/0"}')
    assert cli_main(["compare", str(tmp_path / "old"), str(runs / "base")]) == 2
    assert "m3eval.results/0" in capsys.readouterr().err


def test_missing_per_sample_scores_are_noted_not_gated(runs, tmp_path):
    run_dir = write_run(tmp_path, "noscore", accuracy=0.1, seed=0, n=N, tasks=list(load_run(runs / "base").tasks))
    file = run_dir / "samples" / "okvqa.jsonl"
    recs = [json.loads(x) for x in file.read_text().splitlines()]
    del recs[0]["scores"]["vqa_accuracy"]
    file.write_text("".join(json.dumps(r) + "\n" for r in recs))
    cmp = compare_runs(load_run(runs / "base"), load_run(run_dir))
    row = _row(cmp, "okvqa", "vqa_accuracy")
    assert row.p_value is None and "lack a per-sample score" in row.note and not row.regression


def test_formats(runs, capsys):
    base, new = load_run(runs / "base"), load_run(runs / "worse")
    cmp = compare_runs(base, new)
    md = render(cmp, "markdown")
    assert md.startswith("### ❌ m3eval compare:") and "| ❌ | msrvtt_qa | exact_match |" in md
    assert md.count("\n| ") == len(cmp.rows) + 1  # header + one line per row
    text = render(cmp, "text")
    assert "significant regression(s)" in text and "msrvtt_qa" in text and "mcnemar" in text
    data = json.loads(render(cmp, "json"))
    assert data["exit_code"] == 1 and len(data["rows"]) == len(cmp.rows)
    assert {r["status"] for r in data["rows"]} >= {"regression"}
    assert all(r["p_value"] is None or 0 < r["p_value"] <= 1 for r in data["rows"])
    with pytest.raises(ValueError, match="unknown format"):
        render(cmp, "html")
    assert cli_main(["compare", str(runs / "base"), str(runs / "worse"), "--format", "json", "--tolerance", "0.5"]) == 1
    assert json.loads(capsys.readouterr().out)["tolerance"] == 0.5


@pytest.mark.parametrize("flag, value", [("--tolerance", "nan"), ("--tolerance", "inf"), ("--tolerance", "-1"),
                                         ("--alpha", "nan"), ("--alpha", "0"), ("--alpha", "2")])
def test_a_non_finite_or_out_of_range_gate_is_a_usage_error(runs, capsys, flag, value):
    """Issue 20, case 8: NaN compares false with everything, so `--tolerance nan` passed a
    significant regression with exit 0."""
    with pytest.raises(SystemExit) as e:
        cli_main(["compare", str(runs / "base"), str(runs / "worse"), flag, value])
    assert e.value.code == 2 and f"{flag}: expected" in capsys.readouterr().err


def test_same_verdict_every_time(runs):
    a = render(compare_runs(load_run(runs / "base"), load_run(runs / "slightly")), "json")
    b = render(compare_runs(load_run(runs / "base"), load_run(runs / "slightly")), "json")
    assert a == b and not math.isnan(json.loads(a)["rows"][0]["diff"])
