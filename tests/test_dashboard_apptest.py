"""Every page of the leaderboard run in-process (streamlit.testing.v1.AppTest) on fixture runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from m3eval.compare import compare_runs
from m3eval.runs import display_value, load_run
from tests.dashboard_fixtures import XSS, write_leaderboard, write_run

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "dashboard" / "pages"


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    return write_leaderboard(tmp_path_factory.mktemp("results"), n=24)


def page(name: str, results: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("M3EVAL_RESULTS", str(results))
    path = ROOT / "dashboard" / "app.py" if name == "app" else PAGES / name
    at = AppTest.from_file(str(path), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(markdown: str) -> str:
    """The text a user sees in an element whose data was escaped for Markdown."""
    return re.sub(r"\\(.)", r"\1", markdown)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_app_opens_on_the_overview_and_reports_broken_files(board, monkeypatch):
    at = page("app", board, monkeypatch)
    assert at.title[0].value == "m3eval leaderboard"
    warnings = [plain(w.value) for w in at.warning]
    assert len(warnings) == 2
    assert any("crashed/results" in w and "malformed or partial JSON" in w for w in warnings)
    assert any("old/results" in w and "m3eval" in w for w in warnings)


def test_overview_table_filters_and_sorting(board, monkeypatch):
    at = page("0_Overview.py", board, monkeypatch)
    df = at.dataframe[0].value
    assert list(df["model"]) == ["tiny-llava", "tiny-qwen", "Ying-VLM (reported)"]
    assert list(df["reported"]) == [False, False, True]
    llava = load_run(board / "tiny-llava")
    okvqa = llava.tasks["okvqa"]["metrics"]["vqa_accuracy"]
    assert df.loc[df.model == "tiny-llava", "okvqa"].item() == pytest.approx(display_value(okvqa))
    lo, hi = (100 * x for x in okvqa["ci"])
    assert df.loc[df.model == "tiny-llava", "okvqa 95% CI"].item() == f"{lo:.1f}–{hi:.1f}"
    ref = df[df.model == "Ying-VLM (reported)"].iloc[0]
    assert ref["m3it_okvqa"] == pytest.approx(44.0) and ref["okvqa"] != ref["okvqa"]  # NaN: not reported
    assert ref["m3it_heldout (avg)"] == pytest.approx((44.0 + 31.0) / 2)
    assert len(at.get("download_button")) == 1

    at.button_group(key="category").set_value(["video"])
    df = rerun(at).dataframe[0].value
    assert "Showing 1 tasks: msrvtt_qa" in plain(at.caption[0].value)
    assert [c for c in df.columns if c not in ("model", "reported", "source")] == \
        ["video (avg)", "msrvtt_qa", "msrvtt_qa 95% CI"]

    at.button_group(key="category").set_value([])
    at.button_group(key="protocol").set_value(["paper"])
    at.multiselect(key="language").set_value(["zh"])
    df = rerun(at).dataframe[0].value
    assert "flickr8k_cn" in df.columns and "okvqa" not in df.columns and "m3it_okvqa" not in df.columns

    at.multiselect(key="language").set_value([])
    at.button_group(key="protocol").set_value([])
    rerun(at)
    at.toggle(key="descending").set_value(False)
    at.selectbox(key="sort_by").set_value("msrvtt_qa")
    at.toggle(key="show_reported").set_value(False)
    at.toggle(key="show_ci").set_value(False)
    df = rerun(at).dataframe[0].value
    assert list(df["model"]) == ["tiny-qwen", "tiny-llava"]  # ascending; no reported row
    assert not any("95% CI" in c for c in df.columns)

    at.toggle(key="groups_only").set_value(True)
    df = rerun(at).dataframe[0].value
    assert list(df.columns) == ["model", "reported", "knowledge_vqa (avg)", "m3it_heldout (avg)", "video (avg)",
                                "source"]


def test_overview_missing_and_empty_results(tmp_path, monkeypatch):
    at = page("0_Overview.py", tmp_path / "missing", monkeypatch)
    assert "results directory does not exist" in plain(at.error[0].value)
    at = page("0_Overview.py", tmp_path, monkeypatch)
    assert "No runs or reference rows" in at.info[0].value
    assert "no runs found" in plain(at.warning[0].value)


def test_task_page_shows_samples_as_text(board, monkeypatch):
    at = page("1_Task.py", board, monkeypatch)
    at.selectbox(key="task").set_value("okvqa")
    rerun(at)
    assert len(at.dataframe[0].value) == 24
    first = at.expander[0]
    assert plain(first.label).startswith("✗ okvqa-0 · vqa_accuracy")
    texts = [t.value for t in first.text]
    assert f"Prediction: {XSS}" in texts  # literal text, not HTML
    assert "References: dog | DOG" in texts
    assert not any("<b>" in m.value or "<script>" in m.value for m in at.markdown)
    assert len(first.get("image")) == 1
    recs = [json.loads(x) for x in (board / "tiny-llava" / "samples" / "okvqa.jsonl").read_text().splitlines()]
    assert recs[0]["media"] == ["media/okvqa/okvqa-0.jpg"]

    at.checkbox(key="only_failures").check()
    df = rerun(at).dataframe[0].value
    failures = [r["id"] for r in recs if r["scores"]["vqa_accuracy"] < 0.5]
    assert sorted(df["id"]) == sorted(failures) and all(df["failed A"])
    assert len(at.expander) == min(10, len(failures))


def test_task_page_disagreement_and_video_frames(board, monkeypatch):
    at = page("1_Task.py", board, monkeypatch)
    at.selectbox(key="task").set_value("msrvtt_qa")
    at.selectbox(key="run_b").set_value("tiny-qwen")
    rerun(at)
    at.checkbox(key="only_disagree").check()
    df = rerun(at).dataframe[0].value
    score = {}
    for run in ("tiny-llava", "tiny-qwen"):
        for line in (board / run / "samples" / "msrvtt_qa.jsonl").read_text().splitlines():
            r = json.loads(line)
            score[run, r["id"]] = r["scores"]["exact_match"]
    expected = sorted(i for (run, i) in score if run == "tiny-llava" and score[run, i] != score["tiny-qwen", i])
    assert expected and sorted(df["id"]) == expected
    first = at.expander[0]
    assert [c.value for c in first.caption[:1]] == ["Run A: tiny-llava"]
    assert len(first.get("image")) == 2  # run A and run B, each a list of 4 frames


def test_compare_page_matches_the_gate(board, monkeypatch):
    at = page("2_Compare.py", board, monkeypatch)
    expected = compare_runs(load_run(board / "tiny-llava"), load_run(board / "tiny-qwen"))
    df = at.dataframe[0].value
    assert list(df["task"]) == [r.task for r in expected.rows]
    assert list(df["p"]) == pytest.approx([r.p_value for r in expected.rows])
    assert list(df["status"]) == [r.status for r in expected.rows]
    assert expected.exit_code == 1 and "significant regression" in at.error[0].value

    at.number_input(key="tolerance").set_value(100.0)
    rerun(at)
    assert "No significant regression" in at.success[0].value
    at.selectbox(key="new").set_value("tiny-llava")
    df = rerun(at).dataframe[0].value
    assert (df["Δ (pts)"] == 0).all()


def test_compare_page_explains_incomparable_runs(tmp_path, monkeypatch):
    write_run(tmp_path, "a", n=8, tasks=["okvqa", "msrvtt_qa"])
    write_run(tmp_path, "b", n=8, tasks=["okvqa", "msrvtt_qa"], versions={"okvqa": 3}, drop={"msrvtt_qa": 2})
    at = page("2_Compare.py", tmp_path, monkeypatch)
    assert "cannot be compared" in at.error[0].value
    problems = " ".join(plain(w.value) for w in at.warning)
    assert "okvqa" in problems and "version differs" in problems
    assert "different sample sets" in problems and "2 ids only in BASE" in problems


def test_charts_page(board, monkeypatch):
    at = page("3_Charts.py", board, monkeypatch)
    assert len(at.get("vega_lite_chart")) == 4
    frames = [d.value for d in at.dataframe]
    per_task, per_cat, langs, inst = frames
    assert len(per_task) == 2 * 5 and set(per_cat["category"]) == {"knowledge_vqa", "video", "chinese",
                                                                    "multilingual"}
    assert sorted(langs["lang"].unique()) == ["en", "fr", "sw", "zh"] and len(langs) == 8
    assert len(inst) == 2 * 3
    run = load_run(board / "tiny-qwen")
    expected = [100 * v for v in run.tasks["m3it80_vqa"]["instructions"]["per_instruction"]]
    assert list(inst[inst.model == "tiny-qwen"]["score"]) == pytest.approx(expected)
    at.multiselect(key="runs").set_value(["tiny-qwen"])
    assert len(rerun(at).dataframe[0].value) == 5


def test_run_details_page(board, monkeypatch):
    at = page("4_Run_details.py", board, monkeypatch)
    at.selectbox(key="run").set_value("tiny-qwen")
    rerun(at)
    model = json.loads(at.json[0].value)
    assert model["id"] == "fixture/tiny-qwen"
    frames = [t.value for t in at.dataframe]
    tasks = next(f for f in frames if "hash" in f.columns)
    assert set(tasks["task"]) == {"okvqa", "m3it_okvqa", "msrvtt_qa", "flickr8k_cn", "m3it80_vqa"}
    assert (tasks["hash"].str.startswith("sha256:")).all()
    timings = next(f for f in frames if "timing" in f.columns)
    assert dict(zip(timings["timing"], timings["value"]))["total_s"] == pytest.approx(11.6)
    assert len(at.get("download_button")) == len(at.dataframe)  # every table can be downloaded
    files = next(f for f in frames if "file" in f.columns and "bytes" in f.columns)
    assert "results.json" in set(files["file"])


def test_language_heatmap_from_per_language_tasks(tmp_path, monkeypatch):
    tasks = ["m3it80_msrvtt_fr", "m3it80_msrvtt_zh", "m3it80_msrvtt_sw"]
    write_run(tmp_path, "a", n=8, tasks=tasks, accuracy=0.8)
    write_run(tmp_path, "b", n=8, tasks=tasks, accuracy=0.2)
    at = page("3_Charts.py", tmp_path, monkeypatch)
    langs = at.dataframe[2].value
    assert set(langs["task"]) == {"m3it80_msrvtt"} and sorted(langs["lang"]) == sorted(["fr", "zh", "sw"] * 2)
    a = load_run(tmp_path / "a").tasks["m3it80_msrvtt_zh"]["metrics"]["rouge_l"]
    got = langs[(langs.model == "a") & (langs.lang == "zh")]["score"].item()
    assert got == pytest.approx(display_value(a))
    assert "No run reports per-instruction scores" in at.caption[-1].value


def test_task_page_survives_a_damaged_samples_file(tmp_path, monkeypatch):
    run_dir = write_run(tmp_path, "r", n=6, tasks=["okvqa"])
    with open(run_dir / "samples" / "okvqa.jsonl", "a") as f:
        f.write('{"id": "odd", "prediction": "x", "extracted": null, "references": "dog", '
                '"media": "../../../etc/passwd", "scores": {"vqa_accuracy": "n/a"}}\n{"id": "torn", "sco')
    at = page("1_Task.py", tmp_path, monkeypatch)
    assert any("okvqa.jsonl:8: malformed JSON line skipped" in plain(w.value) for w in at.warning)
    df = at.dataframe[0].value
    odd = df[df["id"] == "odd"].iloc[0]
    assert bool(odd["failed A"]) and odd["score A"] != odd["score A"]  # no score (NaN), counted as a failure
    at.checkbox(key="only_failures").check()
    rerun(at)
    odd_box = next(e for e in at.expander if "odd" in plain(e.label))
    assert "References: dog" in [t.value for t in odd_box.text]
    assert len(odd_box.get("image")) == 0  # a path outside the run directory is never read
