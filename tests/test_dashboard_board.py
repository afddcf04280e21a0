"""The leaderboard's pure logic: hierarchy, normalization, combined intervals, rank bands,
provenance, reported vs reproduced, CSV safety, and the static HTML export."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest

from dashboard.board import build_rows, csv_safe, level_frame, paper_vs_measured, provenance, run_keys, to_csv
from dashboard.export import SORT_JS, export, render, svg_bars
from dashboard.hierarchy import (DEFAULT_YAML, HierarchyError, Score, combine, hierarchy_for, load_hierarchy,
                                 metric_score, rank_bands)
from m3eval.record import MetricEntry
from m3eval.report.runs import find_runs, load_references, load_run
from tests.dashboard_fixtures import XSS, write_leaderboard, write_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    return write_leaderboard(tmp_path_factory.mktemp("results"), n=24, partial_run=True)


def _rows(root: Path, weights=None, protocols=None):
    runs, _ = find_runs(root)
    refs, _ = load_references(root)
    h = hierarchy_for(root)
    return h, build_rows(h, run_keys(runs), refs, weights or {}, protocols), refs, run_keys(runs)


# ---- rank bands ---------------------------------------------------------------------------

def test_rank_bands_share_ranks_when_intervals_overlap():
    bands = rank_bands({"a": (80, 75, 85), "b": (70, 66, 76), "c": (68, 60, 74), "d": (50, 45, 55)})
    # a overlaps b (75 < 76); b and c overlap; d is below everyone
    assert bands == {"a": (1, 2), "b": (1, 3), "c": (2, 3), "d": (4, 4)}


def test_rank_bands_separate_intervals_and_points():
    assert rank_bands({"x": (9, 8, 10), "y": (5, 4, 6), "z": (1, None, None)}) == \
        {"x": (1, 1), "y": (2, 2), "z": (3, 3)}
    assert rank_bands({"p": (5, None, None), "q": (5, None, None)}) == {"p": (1, 2), "q": (1, 2)}  # a tie
    assert rank_bands({}) == {}


# ---- normalization and combination ----------------------------------------------------------

def test_normalization_rules():
    assert metric_score(MetricEntry(value=0.5, ci=(0.4, 0.6), scale=1), {"rule": "linear"}).value == 50.0
    bleu = metric_score(MetricEntry(value=23.0, scale=100), {"rule": "linear"})
    assert bleu.value == pytest.approx(23.0) and bleu.lo is None
    cider = metric_score(MetricEntry(value=3.0, ci=(1.0, 3.5), scale=1), {"rule": "clip", "max": 2.0})
    assert (cider.value, cider.lo, cider.hi) == (100.0, 50.0, 100.0)


def test_combine_weights_and_interval():
    a, b = Score(80, 70, 90), Score(40, 35, 45)
    s = combine([(a, 1.0), (b, 3.0)], 2)
    assert s.value == pytest.approx((80 + 3 * 40) / 4)
    se = math.sqrt((10 / 1.959964) ** 2 + (3 * 5 / 1.959964) ** 2) / 4
    assert s.hi - s.value == pytest.approx(1.959964 * se) and s.complete
    assert not combine([(a, 1.0)], 2).complete  # one of two children
    assert combine([(a, 1.0), (Score(10), 1.0)], 2).lo is None  # a child without an interval
    assert combine([(a, 0.0)], 1) is None
    assert combine([(Score(1, 0, 5), 1), (Score(2, 0, 6), 1)], 2).lo == 0.0  # clamped to the 0..100 range


def test_the_project_hierarchy_loads_and_places_the_suite():
    h = load_hierarchy(DEFAULT_YAML)
    keys = [c.key for c in h.capabilities]
    assert keys == ["knowledge_vqa", "video", "chinese", "multilingual", "captioning", "general_vqa", "text_rich_vqa",
                    "perception", "reasoning", "hallucination", "encoder", "grounding", "demo"]
    # real capabilities hold real benchmarks; the demo's tasks sit in a capability outside the overall score
    assert [c.key for c in h.capabilities if not c.overall] == ["demo"]
    assert all(leaf.task.startswith("demo_") for n in h.capabilities[-1].tasks for leaf in n.leaves)
    assert not any(leaf.task.startswith("demo_") for c in h.capabilities[:-1] for n in c.tasks for leaf in n.leaves)
    tasks = ["m3it_okvqa", "okvqa", "m3it80_okvqa_fr", "m3it80_okvqa_en", "m3it80_msrvtt_qa_zh",
             "m3it80_msrvtt_zh", "demo_captions", "unknown_task"]
    placed = h.placed(tasks)
    assert "unknown_task" not in placed and "m3it80_okvqa_en" not in placed  # English is the reference
    assert {"m3it80_okvqa_fr", "m3it80_msrvtt_qa_zh", "m3it80_msrvtt_zh"} <= placed
    okvqa80 = h.capabilities[3].tasks[0].leaves[0]
    assert h.leaf_tasks(okvqa80, tasks) == ["m3it80_okvqa_fr"]  # not m3it80_msrvtt_qa_* nor en
    assert h.normalization["coco_cider"] == {"rule": "clip", "max": 2.0}
    assert all(m in h.normalization for m in ("top1_accuracy", "mean_recall", "grounding_acc"))
    # the Qwen-VL table (issue 21): every benchmark and protocol placed, every primary metric combinable
    from m3eval.tasks.registry import Registry
    registry = Registry.discover([])
    table = [t for g in ("qwen_vl_table", "qwen_vl_table_qwen_vl") for t in registry.expand(g)]
    assert len(table) == 42 and h.placed(table) == set(table)
    assert {registry.tasks[t].primary for t in table} <= set(h.normalization)
    assert len(h.languages) == 81


def test_a_bad_hierarchy_names_file_and_key(tmp_path):
    bad = tmp_path / "leaderboard.yaml"
    bad.write_text("capabilities:\n  x: {tasks: {t: {leaves: []}}}\n")
    with pytest.raises(HierarchyError, match=r"leaderboard.yaml: 'capabilities.x.tasks.t.leaves'"):
        load_hierarchy(bad)
    bad.write_text("normalization: {cider: log}\ncapabilities: {}\n")
    with pytest.raises(HierarchyError, match="normalization.cider"):
        load_hierarchy(bad)


# ---- rows, provenance ----------------------------------------------------------------------

def test_scores_at_every_level_match_the_results(board):
    h, rows, _, runs = _rows(board)
    llava = next(r for r in rows if r.label == "tiny-llava")
    okvqa = load_run(board / "tiny-llava").tasks["okvqa"].metrics["vqa_accuracy"]
    m3 = load_run(board / "tiny-llava").tasks["m3it_okvqa"].metrics["rouge_l"]
    assert llava.board.leaves["okvqa"].value == pytest.approx(100 * okvqa.value)
    assert (llava.board.leaves["okvqa"].lo, llava.board.leaves["okvqa"].hi) == \
        pytest.approx((100 * okvqa.ci[0], 100 * okvqa.ci[1]))
    task = llava.board.tasks["knowledge_vqa/okvqa"]
    assert task.value == pytest.approx(50 * (okvqa.value + m3.value)) and task.lo < task.value < task.hi
    caps = llava.board.capabilities
    assert llava.board.overall.value == pytest.approx(sum(s.value for s in caps.values()) / 4)
    # weights move the overall score toward the heavier capability
    _, heavy, _, _ = _rows(board, weights={"video": 10.0})
    heavy_llava = next(r for r in heavy if r.label == "tiny-llava")
    assert abs(heavy_llava.board.overall.value - caps["video"].value) < \
        abs(llava.board.overall.value - caps["video"].value)


def test_partial_and_reported_rows_are_marked_and_not_ranked(board):
    h, rows, _, _ = _rows(board)
    df, cols, hidden = level_frame(h, rows, "capabilities")
    assert cols == ["overall", "Knowledge VQA", "Video understanding", "Chinese", "Multilingual (M3IT-80)"]
    by = df.set_index("model")
    assert by.loc["tiny-llava", "rank"] == "1" and by.loc["tiny-qwen", "rank"] == "2"
    assert by.loc["ying-vlm", "rank"] == "" and by.loc["ying-vlm", "status"] == "partial (--limit)"
    assert by.loc["ying-vlm", "limit"] == "8" and by.loc["ying-vlm", "n"] == 16
    assert by.loc["ying-vlm", "coverage"] == "2 of 4 datasets · partial"  # OK-VQA and Flickr8k-CN of four
    assert by.loc["tiny-llava", "coverage"] == "4 of 4 datasets"
    assert by.loc["Ying-VLM (reported)", "rank"] == "" and by.loc["Ying-VLM (reported)", "reported"]
    assert by.loc["tiny-llava", "n"] == 5 * 24 and by.loc["tiny-llava", "backend"] == "hf"
    assert by.loc["tiny-llava", "date"] == "2026-11-21" and by.loc["tiny-llava", "protocol"] == "official, paper"
    ranked_all, _, _ = level_frame(h, rows, "knowledge_vqa/okvqa", rank_all=True)
    # the partial run lacks `okvqa` at this level: still not ranked even with rank_all
    assert ranked_all.set_index("model").loc["ying-vlm", "rank"] == ""
    assert ranked_all.set_index("model").loc["tiny-llava", "n"] == 2 * 24  # the samples behind this level
    df, _, hidden = level_frame(h, rows, "multilingual/msrvtt_80")
    assert df.empty and hidden == 4  # nobody ran the per-language tasks: every row hidden, counted


def test_invocation_records_and_overrides(tmp_path):
    write_run(tmp_path, "a", n=6, tasks=["okvqa", "msrvtt_qa"],
              invocation={"okvqa": {"config": {"limit": 6, "dataset_overrides": {"okvqa": "/tmp/x.jsonl"},
                                               "instructions": "all"},
                                    "model": {"backend": "openai"}, "created": "2026-12-01T01:00:00Z"}})
    run = load_run(tmp_path / "a")
    p = provenance(run, ["okvqa", "msrvtt_qa"])
    assert p["limit"] == "6" and p["overrides"] == "okvqa"
    assert (p["backend"], p["date"], p["instructions"]) == ("hf, openai", "2026-11-21, 2026-12-01", "all, default")
    assert p["status"] == "partial (--limit), overridden data"
    assert provenance(run, ["msrvtt_qa"])["status"] == "full"  # the run's config has neither


def test_reported_vs_reproduced(board):
    _, rows, refs, runs = _rows(board)
    df = paper_vs_measured(rows, refs, runs)
    assert list(df["task"]) == ["flickr8k_cn", "m3it_okvqa"] and set(df["run"]) == {"ying-vlm"}
    m = load_run(board / "ying-vlm").tasks["m3it_okvqa"].metrics["rouge_l"]
    row = df[df.task == "m3it_okvqa"].iloc[0]
    assert row["reported"] == pytest.approx(44.0) and row["measured"] == pytest.approx(100 * m.value)
    assert row["Δ (measured − reported)"] == pytest.approx(100 * m.value - 44.0)
    assert row["reported inside CI"] == (100 * m.ci[0] <= 44.0 <= 100 * m.ci[1])


def test_csv_cells_cannot_start_a_formula():
    import pandas as pd
    df = pd.DataFrame({"model": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "ok", "\t=1"],
                       "Δ": [-1.5, 2.0, 0, 1, 2, 3]})
    rows = list(csv.reader(io.StringIO(to_csv(df).decode())))
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "ok", "'\t=1"]
    assert [r[1] for r in rows[1:]][:1] == ["-1.5"]  # numbers stay numbers
    assert list(csv_safe(pd.DataFrame({"=x": [1]})).columns) == ["'=x"]


# ---- static export ---------------------------------------------------------------------------

def test_svg_bars_centre_the_interval_on_the_bar():
    svg = svg_bars([("a", 50.0, 40.0, 60.0)], "t")
    rect = re.search(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg)
    line = re.search(r'<line class="ci" x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)"', svg)
    x, y, w, hgt = map(float, rect.groups())
    x1, y1, x2, y2 = map(float, line.groups())
    assert y1 == y2 == pytest.approx(y + hgt / 2)  # centred on its bar
    assert (x1 - x) / (w / 50 * 100) == pytest.approx(0.40) and (x2 - x) / (w / 50 * 100) == pytest.approx(0.60)


def test_export_is_self_contained_and_escaped(tmp_path):
    root = write_leaderboard(tmp_path / "results", n=8, partial_run=True)
    write_run(root, "<script>alert(1)</script>", n=6, tasks=["okvqa"], overrides={"okvqa-0": XSS})
    out = tmp_path / "site" / "index.html"
    assert export(root, out) == 0
    text = out.read_text(encoding="utf-8")
    # one script, ours (column sorting), with no data in it; the data's <script> only escaped
    assert text.lower().replace("&lt;script", "").count("<script") == 1 and f"<script>{SORT_JS}</script>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)  # nothing fetched from elsewhere
    assert "<link" not in text and "@import" not in text and "url(" not in text
    for title in ("All capabilities", "Knowledge VQA", "Chinese", "Reported vs reproduced", "Hierarchy"):
        assert f">{title}<" in text
    assert "partial (--limit)" in text and "Flickr8k-CN 中文" in text and text.count("<svg") >= 4
    assert "<summary>OK-VQA: datasets and protocols</summary>" in text and "<th>m3it_okvqa</th>" in text


def test_export_cli_and_errors(tmp_path, capsys):
    from m3eval.cli import main
    root = write_leaderboard(tmp_path / "results", n=6, partial_run=True)
    out = tmp_path / "board.html"
    assert main(["leaderboard", "--results", str(root), "--export", str(out)]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert "wrote" in capsys.readouterr().err
    assert main(["leaderboard", "--results", str(tmp_path / "missing"), "--export", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (root / "leaderboard.yaml").write_text("capabilities: [1]\n")
    assert export(root, out) == 2 and "leaderboard.yaml" in capsys.readouterr().err


def test_export_of_the_published_results_uses_the_project_hierarchy(tmp_path):
    runs, _ = find_runs(ROOT / "results")
    refs, _ = load_references(ROOT / "results")
    text = render(load_hierarchy(), run_keys(runs), refs, "results")
    assert "VQA (demo data)" in text and "Captioning" in text and ">Demo data (not in overall)<" in text
    assert ">Video understanding<" not in text  # no row has a video task: no column, no section
    assert json.dumps("tiny-llava")[1:-1] in text
