"""Every page of the leaderboard run in-process (streamlit.testing.v1.AppTest) on fixture runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from m3eval.report.compare import compare_runs
from m3eval.report.runs import display_value, load_run
from tests.dashboard_fixtures import HIERARCHY, XSS, write_leaderboard, write_run

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "dashboard" / "pages"


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    return write_leaderboard(tmp_path_factory.mktemp("results"), n=24, partial_run=True)


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


def test_overview_levels_ranks_and_provenance(board, monkeypatch):
    at = page("0_Overview.py", board, monkeypatch)
    df = at.dataframe[0].value
    assert list(df["model"]) == ["tiny-llava", "tiny-qwen", "ying-vlm", "Ying-VLM (reported)"]
    assert list(df["rank"]) == ["1", "2", "", ""]
    assert list(df["status"]) == ["full", "full", "partial (--limit)", "reported in a paper"]
    for col in ("n", "limit", "overrides", "protocol", "instructions", "date", "backend", "coverage"):
        assert col in df.columns
    assert any("1 measured row(s) without a rank" in c.value for c in at.caption)
    pvm = at.dataframe[1].value
    assert list(pvm["task"]) == ["flickr8k_cn", "m3it_okvqa"] and "reported inside CI" in pvm.columns
    assert len(at.get("download_button")) == 2

    at.selectbox(key="level").set_value("knowledge_vqa/okvqa")
    df = rerun(at).dataframe[0].value
    assert [c for c in df.columns if c in ("okvqa", "m3it_okvqa", "score")] == ["score", "okvqa", "m3it_okvqa"]
    llava = load_run(board / "tiny-llava").tasks
    okvqa, m3 = (display_value(llava[t].primary) for t in ("okvqa", "m3it_okvqa"))
    row = df[df.model == "tiny-llava"].iloc[0]
    assert row["okvqa"] == pytest.approx(okvqa) and row["score"] == pytest.approx((okvqa + m3) / 2)
    lo, hi = (100 * x for x in llava["okvqa"].metrics["vqa_accuracy"].ci)
    assert row["okvqa 95% CI"] == f"{lo:.1f}–{hi:.1f}"
    assert at.query_params["level"] == "knowledge_vqa/okvqa"

    at.button_group(key="protocol").set_value(["official"])
    df = rerun(at).dataframe[0].value
    assert list(df["model"]) == ["tiny-llava", "tiny-qwen"]  # no official score: hidden, and counted
    assert any("2 row(s) hidden: no score in these columns" in c.value for c in at.caption)

    at.button_group(key="protocol").set_value([])
    at.selectbox(key="level").set_value("capabilities")
    at.toggle(key="show_reported").set_value(False)
    at.toggle(key="show_ci").set_value(False)
    at.number_input(key="w_video").set_value(0.0)
    df = rerun(at).dataframe[0].value
    assert "Ying-VLM (reported)" not in set(df["model"]) and not any("95% CI" in c for c in df.columns)
    caps = df.set_index("model")
    expected = (caps.loc["tiny-llava", "Knowledge VQA"] + caps.loc["tiny-llava", "Chinese"]
                + caps.loc["tiny-llava", "Multilingual (M3IT-80)"]) / 3
    assert caps.loc["tiny-llava", "overall"] == pytest.approx(expected)  # video weighs 0
    assert at.query_params["w_video"] == "0" and at.query_params["reported"] == "0"


def test_overview_view_comes_from_the_url(board, monkeypatch):
    monkeypatch.setenv("M3EVAL_RESULTS", str(board))
    at = AppTest.from_file(str(PAGES / "0_Overview.py"), default_timeout=60)
    at.query_params["level"] = "chinese"
    at.query_params["w_chinese"] = "3"
    at.query_params["rank_all"] = "1"
    rerun(at)
    assert at.selectbox(key="level").value == "chinese"
    assert at.number_input(key="w_chinese").value == 3.0 and at.toggle(key="rank_all").value
    df = at.dataframe[0].value
    assert "Flickr8k-CN 中文" in df.columns
    assert df.set_index("model").loc["ying-vlm", "rank"] != ""  # partial runs ranked on request


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
    df = at.dataframe[0].value
    assert len(df) == 24 and {"prediction A", "reference"} <= set(df.columns)
    assert df.loc[df.id == "okvqa-0", "prediction A"].item() == XSS
    assert at.selectbox(key="sample_id").value == "okvqa-0"  # the first row is open
    texts = [t.value for t in at.text]
    assert f"Prediction: {XSS}" in texts  # literal text, not HTML
    assert "References: dog | DOG" in texts
    assert not any("<b>" in m.value or "<script>" in m.value for m in at.markdown)
    assert len(at.get("image")) == 1
    recs = [json.loads(x) for x in (board / "tiny-llava" / "samples" / "okvqa.jsonl").read_text().splitlines()]
    assert recs[0]["media"] == ["media/okvqa/okvqa-0.jpg"]

    at.checkbox(key="only_failures").check()
    df = rerun(at).dataframe[0].value
    failures = [r["id"] for r in recs if r["scores"]["vqa_accuracy"] < 0.5]
    assert sorted(df["id"]) == sorted(failures) and all(df["failed A"])
    at.selectbox(key="sample_id").set_value(failures[-1])
    rerun(at)
    assert any(t.value == f"References: {recs[int(failures[-1].split('-')[1])]['references'][0]} | "
               f"{recs[int(failures[-1].split('-')[1])]['references'][1]}" for t in at.text)


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
    assert [plain(c.value) for c in at.caption if "Run " in c.value] == ["Run A: tiny-llava", "Run B: tiny-qwen"]
    assert len(at.get("image")) == 2  # run A and run B, each a list of 4 frames
    assert not at.info  # same samples in both runs


def test_task_page_explains_ids_missing_from_run_b(board, monkeypatch):
    at = page("1_Task.py", board, monkeypatch)
    at.selectbox(key="task").set_value("m3it_okvqa")
    at.selectbox(key="run_b").set_value("ying-vlm")
    rerun(at)
    note = plain(at.info[0].value)
    assert "Run B lacks 16 of run A's 24 samples" in note and "--limit differs (A: none, B: 8)" in note
    assert len(at.dataframe[0].value) == 8


def test_run_labels_are_never_rendered_as_markdown(tmp_path, monkeypatch):
    evil = "![p](http://127.0.0.1:9/x.png) [x](javascript:alert(1)) <b>b</b>"
    write_run(tmp_path, evil, n=4, tasks=["okvqa"])
    at = page("1_Task.py", tmp_path, monkeypatch)
    for el in list(at.caption) + list(at.markdown):
        assert "](" not in el.value  # an escaped link reads \]\( and renders as text
    labels = [c.value for c in at.caption if "Run A" in c.value]
    assert labels and plain(labels[0]) == f"Run A: {evil}"
    assert "\\!\\[p\\]\\(http" in labels[0]  # every Markdown character escaped

    run_file = next(tmp_path.rglob("results.json"))
    data = json.loads(run_file.read_text())
    data["tasks"]["okvqa"]["protocol"] = "[x](javascript:alert(1))"
    run_file.write_text(json.dumps(data))
    at = page("0_Overview.py", tmp_path, monkeypatch)
    pills = at.button_group(key="protocol")
    assert [plain(o) for o in pills.options] == ["[x](javascript:alert(1))"]
    assert all("](" not in o for o in pills.options)


def test_capability_titles_from_leaderboard_yaml_are_plain_text(tmp_path, monkeypatch):
    """<results>/leaderboard.yaml is data (issue 20, case 3): a title with Markdown (an image that
    would load an external URL, a link) is shown as its literal text, in every widget label."""
    evil = "![p](http://127.0.0.1:9/x.png) [x](javascript:alert(1))"
    write_run(tmp_path, "a", n=4, tasks=["okvqa"])
    (tmp_path / "leaderboard.yaml").write_text(HIERARCHY.replace("title: Knowledge VQA", f"title: '{evil}'"))
    at = page("0_Overview.py", tmp_path, monkeypatch)
    labels = [w.label for w in at.number_input]
    assert len(labels) == 4 and all("](" not in label for label in labels)
    assert plain(labels[0]) == evil  # the literal title, every Markdown character escaped


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
    assert len(at.get("vega_lite_chart")) == 3
    per_task, per_cap, inst = (d.value for d in at.dataframe)
    assert len(per_task) == 2 * 5 + 2 and set(per_cap["capability"]) == {
        "Knowledge VQA", "Video understanding", "Chinese", "Multilingual (M3IT-80)"}
    ying = per_cap[(per_cap.model == "ying-vlm") & (per_cap.capability == "Knowledge VQA")].iloc[0]
    assert (ying["tasks"], ying["of"]) == (1, 2)
    warnings = [plain(w.value) for w in at.warning if "different numbers of tasks" in w.value]
    assert len(warnings) == 1 and warnings[0].startswith("Knowledge VQA:") and "ying-vlm: 1" in warnings[0]
    assert len(inst) == 2 * 3
    run = load_run(board / "tiny-qwen")
    expected = [100 * v for v in run.tasks["m3it80_vqa"].instructions.per_instruction]
    assert list(inst[inst.model == "tiny-qwen"]["score"]) == pytest.approx(expected)
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["facet"]["row"]["header"]["labelLimit"] == 0  # full task labels
    at.multiselect(key="runs").set_value(["tiny-qwen"])
    assert len(rerun(at).dataframe[0].value) == 5
    assert not [w for w in at.warning if "different numbers of tasks" in w.value]


def test_multilingual_page(board, monkeypatch):
    at = page("5_Multilingual.py", board, monkeypatch)
    langs = at.dataframe[0].value
    assert sorted(langs["lang"].unique()) == ["en", "fr", "sw", "zh"] and len(langs) == 8
    row = langs[(langs.model == "tiny-qwen") & (langs.lang == "zh")].iloc[0]
    assert row["family"] == "Sino-Tibetan" and row["script"] == "Han"
    assert row["vs_en"] == pytest.approx(row["score"] - row["en_score"])
    assert set(langs[langs.lang == "en"]["family"]) == {"English (reference)"}
    at.toggle(key="relative").set_value(True)
    spec = json.loads(rerun(at).get("vega_lite_chart")[0].proto.spec)
    assert spec["spec"]["encoding"]["color"]["field"] == "vs_en"
    assert "No run has consistency figures" in at.caption[-1].value


def test_run_details_page(board, monkeypatch):
    at = page("4_Run_details.py", board, monkeypatch)
    at.selectbox(key="run").set_value("tiny-qwen")
    rerun(at)
    model = json.loads(at.json[0].value)
    assert model["id"] == "fixture/tiny-qwen"
    frames = [t.value for t in at.dataframe]
    metrics = next(f for f in frames if "95% CI" in f.columns)
    okvqa = load_run(board / "tiny-qwen").tasks["okvqa"].metrics["vqa_accuracy"]
    row = metrics[(metrics.task == "okvqa") & (metrics.metric == "vqa_accuracy")].iloc[0]
    assert row["value"] == pytest.approx(100 * okvqa.value)
    assert row["95% CI"] == f"{100 * okvqa.ci[0]:.1f}–{100 * okvqa.ci[1]:.1f}"
    tasks = next(f for f in frames if "hash" in f.columns)
    assert set(tasks["task"]) == {"okvqa", "m3it_okvqa", "msrvtt_qa", "flickr8k_cn", "m3it80_vqa"}
    assert (tasks["hash"].str.startswith("sha256:")).all()
    timings = next(f for f in frames if "timing" in f.columns)
    assert dict(zip(timings["timing"], timings["value"]))["total_s"] == pytest.approx(11.6)
    assert len(at.get("download_button")) == len(at.dataframe)  # every table can be downloaded
    files = next(f for f in frames if "file" in f.columns and "bytes" in f.columns)
    assert "results.json" in set(files["file"])


def test_language_heatmap_from_per_language_tasks_and_consistency(tmp_path, monkeypatch):
    tasks = ["m3it80_msrvtt_fr", "m3it80_msrvtt_zh", "m3it80_msrvtt_sw"]
    write_run(tmp_path, "a", n=8, tasks=tasks, accuracy=0.8)
    write_run(tmp_path, "b", n=8, tasks=tasks, accuracy=0.2)
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    results["consistency"] = {"m3it80_msrvtt_zh|m3it80_msrvtt_fr": {
        "tasks": ["m3it80_msrvtt_zh", "m3it80_msrvtt_fr"], "n": 8, "correctness_agreement": 0.75,
        "langs": ["zh", "fr"]}}
    (tmp_path / "a" / "results.json").write_text(json.dumps(results))
    at = page("5_Multilingual.py", tmp_path, monkeypatch)
    langs = at.dataframe[0].value
    assert set(langs["task"]) == {"m3it80_msrvtt"} and sorted(langs["lang"]) == sorted(["fr", "zh", "sw"] * 2)
    a = load_run(tmp_path / "a").tasks["m3it80_msrvtt_zh"].metrics["rouge_l"]
    got = langs[(langs.model == "a") & (langs.lang == "zh")]["score"].item()
    assert got == pytest.approx(display_value(a))
    cons = at.dataframe[1].value
    assert cons.iloc[0].to_dict() | {"answer agreement": None} == {
        "model": "a", "task": "m3it80_msrvtt_zh", "paired with": "m3it80_msrvtt_fr", "languages": "zh / fr",
        "n": 8, "correctness agreement": 0.75, "answer agreement": None}
    ov = page("0_Overview.py", tmp_path, monkeypatch)  # the project hierarchy places the per-language tasks
    assert list(ov.dataframe[0].value["model"]) == ["a", "b"]


def test_task_page_survives_a_damaged_samples_file(tmp_path, monkeypatch):
    run_dir = write_run(tmp_path, "r", n=6, tasks=["okvqa"])
    with open(run_dir / "samples" / "okvqa.jsonl", "a") as f:
        f.write('{"id": "odd", "prompt": "", "prediction": "x", "extracted": null, "references": ["dog"], '
                '"cluster": "odd", "media": ["../../../etc/passwd"], "scores": {"vqa_accuracy": null}}\n'
                '{"id": "bad", "prediction": "x", "extracted": null, "references": "dog", "scores": {}}\n'
                '{"id": "torn", "sco')
    at = page("1_Task.py", tmp_path, monkeypatch)
    warnings = [plain(w.value) for w in at.warning]
    assert any("okvqa.jsonl:9: malformed JSON line skipped" in w for w in warnings)
    assert any("okvqa.jsonl:8: sample 'bad' skipped: missing field 'prompt'" in w for w in warnings)
    assert "bad" not in set(at.dataframe[0].value["id"])
    df = at.dataframe[0].value
    odd = df[df["id"] == "odd"].iloc[0]
    assert bool(odd["failed A"]) and odd["score A"] != odd["score A"]  # no score (NaN), counted as a failure
    at.selectbox(key="sample_id").set_value("odd")
    rerun(at)
    assert "References: dog" in [t.value for t in at.text]
    assert len(at.get("image")) == 0  # a path outside the run directory is never read


def test_the_page_rereads_a_changed_results_file(tmp_path, monkeypatch):
    write_run(tmp_path, "r", n=6, tasks=["okvqa"])
    at = page("0_Overview.py", tmp_path, monkeypatch)
    before = at.dataframe[0].value["overall"].item()
    file = tmp_path / "r" / "results.json"
    data = json.loads(file.read_text())
    data["tasks"]["okvqa"]["metrics"]["vqa_accuracy"]["value"] = 0.123
    file.write_text(json.dumps(data))
    after = rerun(at).dataframe[0].value["overall"].item()
    assert before != pytest.approx(12.3) and after == pytest.approx(12.3)  # not served from a stale cache


def test_the_shipped_results_show_every_reported_row_and_list_unmatched_numbers(tmp_path, monkeypatch):
    """Issue 23: `m3eval leaderboard --results results/` shows the paper rows on its default view,
    each with a capability score and its coverage; the demo's capability has no weight (not in overall)."""
    from dashboard.references import reference_labels
    from m3eval.report.runs import load_references
    at = page("0_Overview.py", ROOT / "results", monkeypatch)
    df = at.dataframe[0].value.set_index("model")
    refs, _ = load_references(ROOT / "results")
    assert set(reference_labels(refs)) <= set(df.index)
    assert not any("hidden" in c.value for c in at.caption)
    assert df.loc["Ying-VLM (reported)", "coverage"].startswith("6 of ")  # its six M3IT datasets
    assert any("marked partial" in c.value for c in at.caption)
    assert "w_demo" not in {w.key for w in at.number_input} and "w_knowledge_vqa" in {w.key for w in at.number_input}
    at.selectbox(key="level").set_value("knowledge_vqa")
    kvqa = rerun(at).dataframe[0].value.set_index("model")
    assert kvqa.loc["Ying-VLM (reported)", "coverage"] == "3 of 3 datasets"

    root = write_leaderboard(tmp_path / "results", n=8)  # a reference number the suite does not have
    (root / "reference" / "odd.json").write_text(json.dumps(
        {"format": "m3eval.reference/1", "model": "Odd", "source": "x", "reported": True,
         "tasks": {"no_such_task": {"metrics": {"accuracy": {"value": 0.4, "scale": 1}}}}}))
    at = page("0_Overview.py", root, monkeypatch)
    unmatched = next(d.value for d in at.dataframe if "why" in d.value.columns)
    assert list(unmatched["file"]) == ["odd.json"] and list(unmatched["task"]) == ["no_such_task"]
    assert "Odd (reported)" not in set(at.dataframe[0].value["model"])  # no score: listed below instead


def test_the_committed_golden_run_opens_on_the_page(tmp_path, monkeypatch):
    """A run written before the typed record (results/demo/tiny-llava) opens on the page."""
    import shutil
    golden = ROOT / "results" / "demo" / "tiny-llava"
    shutil.copytree(golden, tmp_path / "tiny-llava")
    at = page("4_Run_details.py", tmp_path, monkeypatch)
    frames = [t.value for t in at.dataframe]
    metrics = next(f for f in frames if "95% CI" in f.columns)
    vqa = load_run(golden).tasks["demo_vqa"].metrics["vqa_accuracy"]
    row = metrics[(metrics.task == "demo_vqa") & (metrics.metric == "vqa_accuracy")].iloc[0]
    assert row["value"] == pytest.approx(100 * vqa.value)
    at = page("1_Task.py", tmp_path, monkeypatch)
    assert not at.exception
