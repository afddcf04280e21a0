"""Each source paper's table (dashboard/papers.py) and the static export as the whole board:
the papers' tables with our reproduction beside each number, the language heatmap, the
sorting script (dashboard/export.py)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dashboard.board import run_keys
from dashboard.export import SORT_JS, _heat_color, export
from dashboard.hierarchy import HierarchyError, load_hierarchy
from dashboard.papers import load_papers, notes, paper_table, paper_tables, papers_for
from m3eval.report.runs import display_ci, display_value, find_runs, load_references, load_run
from tests.dashboard_fixtures import HIERARCHY, write_leaderboard, write_run
from tests.test_dashboard_apptest import page, plain  # the Papers page, run in-process (AppTest)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "results" / "reference"


def _reference(root: Path, name: str, model: str, tasks: dict[str, dict[str, tuple[float, float]]]) -> Path:
    path = root / "reference" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "m3eval.reference/1", "model": model, "source": f"{name} (test)",
                                "reported": True, "tasks": {t: {"metrics": {m: {"value": v, "scale": s}
                                                                            for m, (v, s) in ms.items()}}
                                                            for t, ms in tasks.items()}}))
    return path


def _spec(tmp_path: Path, body: str):
    (tmp_path / "lb.yaml").write_text("capabilities: {}\npapers:\n" + body, encoding="utf-8")
    return load_papers(tmp_path / "lb.yaml")


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    """The dashboard fixture (a --limit run named ying-vlm among others) with the shipped reference files."""
    root = write_leaderboard(tmp_path_factory.mktemp("papers") / "results", n=24, partial_run=True)
    for f in SHIPPED.glob("*.json"):
        shutil.copy(f, root / "reference" / f.name)
    return root


def _loaded(root: Path):
    runs, _ = find_runs(root)
    refs, _ = load_references(root)
    return refs, run_keys(runs)


def test_the_shipped_tables_match_the_shipped_reference_files():
    """Every table's files exist, every file it lists has numbers in its columns, and each number is
    the reference file's (never written in the YAML), in the column's unit."""
    specs = load_papers()
    refs, _ = load_references(ROOT / "results")
    tables = paper_tables(specs, refs, {})
    assert [t.spec.key for t in tables] == [s.key for s in specs] and len(specs) >= 6
    for t in tables:
        assert not t.missing and not t.unused, (t.spec.key, notes(t))
        by_file = {r.path.name: r for r in refs}
        for _, row in t.frame.iterrows():
            ref = by_file[row["file"]]
            for c in t.spec.columns:
                m = ref.tasks.get(c.task, None)
                entry = None if m is None else m.metrics.get(c.metric)
                if entry is None:
                    assert c.title not in t.frame.columns or row[c.title] != row[c.title]  # NaN: no number
                    continue
                want = entry.value if c.unit == "points" else entry.value / entry.scale * 100
                assert row[c.title] == pytest.approx(want, abs=0.005)
    m3it = next(t for t in tables if t.spec.key == "m3it_heldout")
    assert list(m3it.frame["model"]) == ["BLIP-2 (Flan-T5-XXL)", "InstructBLIP", "MiniGPT-4", "Ying-VLM"]
    assert list(m3it.frame.columns) == ["model", "OK-VQA", "A-OKVQA", "ViQuAE", "Flickr-8k-CN", "FM-IQA",
                                        "Chinese-FoodNet", "file"]
    assert m3it.frame.set_index("model").loc["Ying-VLM", "OK-VQA"] == pytest.approx(27.5)
    general = next(t for t in tables if t.spec.key == "qwen_vl_general")
    assert general.frame.set_index("model").loc["Qwen-VL", "NoCaps"] == pytest.approx(121.4)  # CIDEr ×100
    assert general.units["×100"] == ["NoCaps", "Flickr30K"] and "VQAv2" in general.empty  # test-dev: left out
    inst = next(t for t in tables if t.spec.key == "instruction")
    row = inst.frame.set_index("file").loc["qwen_vl_repo_qwen_vl_chat_instruction.json"]
    assert row["MME total"] == pytest.approx(1848.29) and row["MME perception"] == pytest.approx(1487.58)
    assert row["SEED-Bench image"] == pytest.approx(65.4)
    # the same model in two files: two rows, each with its own file and source, never averaged
    assert list(inst.frame["model"]).count("Qwen-VL-Chat") == 1 and len(inst.frame) == 4
    assert set(inst.sources["file"]) == set(inst.frame["file"])


def test_a_run_of_the_same_model_is_put_beside_the_papers_number(board):
    refs, runs = _loaded(board)
    m3it = next(t for t in paper_tables(load_papers(), refs, runs) if t.spec.key == "m3it_heldout")
    df = m3it.frame.set_index("model")
    ours = runs["ying-vlm"].tasks["m3it_okvqa"].metrics["rouge_l"]
    lo, hi = display_ci(ours)
    assert df.loc["Ying-VLM", "run"] == "ying-vlm"
    assert df.loc["Ying-VLM", "OK-VQA reproduced"] == pytest.approx(display_value(ours))
    assert df.loc["Ying-VLM", "OK-VQA reproduced 95% CI"] == f"{lo:.1f}–{hi:.1f}"
    assert df.loc["Ying-VLM", "OK-VQA inside CI"] == (lo <= 27.5 <= hi)
    assert df.loc["MiniGPT-4", "run"] == "" and df.loc["MiniGPT-4", "OK-VQA inside CI"] is None
    assert "A-OKVQA reproduced" not in df.columns  # no run has it: no empty column
    assert m3it.inside_columns == ["OK-VQA inside CI"] and "OK-VQA reproduced" in m3it.number_columns
    # columns in the table's order: each number, then ours beside it
    cols = list(m3it.frame.columns)
    assert cols[:7] == ["model", "run", "OK-VQA", "OK-VQA reproduced", "OK-VQA reproduced 95% CI",
                        "OK-VQA inside CI", "A-OKVQA"]


def test_inside_and_outside_the_interval_two_runs_and_a_group(tmp_path):
    root = tmp_path / "results"
    write_run(root, "model-x", accuracy=0.6, n=24, tasks=["okvqa", "msrvtt_qa"])
    write_run(root, "model-x-again", accuracy=0.3, seed=2, n=24, tasks=["okvqa"])
    runs = run_keys(find_runs(root)[0])
    ours = runs["model-x"].tasks["okvqa"].metrics["vqa_accuracy"]
    inside = (ours.ci[0] + ours.ci[1]) / 2
    _reference(root, "a.json", "Model-X", {"okvqa": {"vqa_accuracy": (inside, 1)}, "video": {"primary": (0.5, 1)}})
    _reference(root, "b.json", "Model X", {"okvqa": {"vqa_accuracy": (0.999, 1)}})
    _reference(root, "c.json", "model-x-again", {"okvqa": {"vqa_accuracy": (0.2, 1)}})
    specs = _spec(tmp_path, """  t:
    title: A table
    source: A paper
    references: [a.json, b.json, "c*.json"]
    columns:
      - {task: okvqa, metric: vqa_accuracy, title: OK-VQA}
      - {task: video, metric: primary, title: Video group}
""")
    refs, _ = load_references(root)
    t = paper_table(specs[0], refs, runs)
    assert list(zip(t.frame["file"], t.frame["run"])) == [("a.json", "model-x"), ("b.json", "model-x"),
                                                           ("c.json", "model-x-again")]
    assert list(t.frame["OK-VQA inside CI"]) == [True, False, _inside(runs["model-x-again"], 20.0)]
    # a group's one number stands for a task the paper reports as one (ChartQA's two parts)
    group = runs["model-x"].groups["video"]
    assert t.frame.iloc[0]["Video group reproduced"] == pytest.approx(100 * group.value)


def _inside(run, value: float) -> bool:
    lo, hi = display_ci(run.tasks["okvqa"].metrics["vqa_accuracy"])
    return lo <= value <= hi


def test_bad_tables_name_file_and_key_and_a_renamed_task_shows(tmp_path):
    with pytest.raises(HierarchyError, match=r"lb.yaml: 'papers.t.columns\[0\].unit'"):
        _spec(tmp_path, "  t: {title: T, source: S, references: [a.json], columns: [{task: x, metric: m, "
                        "title: X, unit: furlongs}]}\n")
    with pytest.raises(HierarchyError, match="papers.t.references"):
        _spec(tmp_path, "  t: {title: T, source: S, references: [], columns: [{task: x, metric: m, title: X}]}\n")
    with pytest.raises(HierarchyError, match="repeat a title"):
        _spec(tmp_path, "  t: {title: T, source: S, references: [a.json], columns: [{task: x, metric: m, "
                        "title: X}, {task: y, metric: m, title: X}]}\n")
    specs = _spec(tmp_path, "  t: {title: T, source: S, references: [a.json, gone.json], columns: [{task: "
                            "renamed, metric: m, title: X}]}\n")
    _reference(tmp_path, "a.json", "M", {"old_name": {"m": (0.5, 1)}})
    refs, _ = load_references(tmp_path)
    (t,) = paper_tables(specs, refs, {})  # kept, though empty: the mismatch is shown, never dropped
    assert t.frame.empty and t.unused == ["a.json"] and t.missing == ["gone.json"]
    assert any("renamed m" in n and "a.json" in n for n in notes(t))
    # a results folder's own leaderboard.yaml without papers uses the project's tables
    assert [s.key for s in papers_for(load_hierarchy(tmp_path / "lb.yaml"))] == ["t"]
    (tmp_path / "own.yaml").write_text("capabilities: {}\n")
    assert papers_for(load_hierarchy(tmp_path / "own.yaml")) == load_papers()


# ---- the export is the board ------------------------------------------------------------------

def test_the_export_holds_the_papers_the_heatmap_and_one_script_of_ours(board, tmp_path):
    out = tmp_path / "board.html"
    assert export(board, out) == 0
    text = out.read_text(encoding="utf-8")
    assert text.count("<script") == 1 and f"<script>{SORT_JS}</script>" in text
    assert "src=" not in text and "http" not in SORT_JS
    papers = text[text.index("<section id='papers'>"):]
    papers = papers[:papers.index("</section>")]
    for title in ("M3IT: held-out evaluation (ROUGE-L)", "Qwen-VL: zero-shot captioning &amp; general VQA",
                  "Instruction benchmarks, as each source reports them"):
        assert f"<h3>{title}</h3>" in papers
    assert "<th>OK-VQA reproduced</th>" in papers and "<th>OK-VQA inside CI</th>" in papers
    assert "<td class=\"num\">1848.29</td>" in papers and "<td class=\"num\">121.4</td>" in papers
    assert "Source: Li et al., M3IT, arXiv 2306.04387" in papers and "<summary>Each row's source</summary>" in papers
    row = re.search(r"<tr[^>]*><td>Ying-VLM</td><td>ying-vlm</td>(.*?)</tr>", papers).group(1)
    assert re.search(r"<td>(yes|no)</td>", row)  # the check is shown both ways, never a blank for "no"
    langs = text[text.index("<section id='languages'>"):]
    assert "<h3>m3it80_vqa</h3>" in langs and "<th colspan='1'>Sino-Tibetan</th>" in langs
    assert re.search(r"<td class='heat num' style='background:#[0-9a-f]{6};color:#(fff|111)' title='tiny-llava",
                     langs)
    assert "<h3>Cross-lingual consistency</h3>" not in langs  # the fixture runs have none


def test_heat_colours_run_from_light_to_dark():
    assert _heat_color(0) == ("#f7fbff", "#111") and _heat_color(100) == ("#08306b", "#fff")
    assert _heat_color(-5) == _heat_color(0) and _heat_color(250) == _heat_color(100)


# ---- the Papers page (dashboard/pages/6_Papers.py) --------------------------------------------

def _with_shipped_references(root: Path) -> Path:
    for f in (ROOT / "results" / "reference").glob("*.json"):
        shutil.copy(f, root / "reference" / f.name)
    return root


def test_papers_page_lays_out_each_source_table_with_our_reproduction(tmp_path, monkeypatch):
    root = _with_shipped_references(write_leaderboard(tmp_path / "results", n=24, partial_run=True))
    at = page("6_Papers.py", root, monkeypatch)
    titles = [plain(s.value) for s in at.subheader]
    assert titles[:3] == ["M3IT: held-out evaluation (ROUGE-L)", "M2-Encoder: zero-shot classification and retrieval",
                          "Qwen-VL: zero-shot captioning & general VQA"]
    assert "Instruction benchmarks, as each source reports them" in titles
    m3it = at.dataframe[0].value
    assert list(m3it["model"]) == ["BLIP-2 (Flan-T5-XXL)", "InstructBLIP", "MiniGPT-4", "Ying-VLM"]
    ying = m3it.set_index("model").loc["Ying-VLM"]
    ours = load_run(root / "ying-vlm").tasks["m3it_okvqa"].metrics["rouge_l"]
    assert ying["run"] == "ying-vlm" and ying["OK-VQA"] == pytest.approx(27.5)
    assert ying["OK-VQA reproduced"] == pytest.approx(display_value(ours))
    assert ying["OK-VQA inside CI"] == (100 * ours.ci[0] <= 27.5 <= 100 * ours.ci[1])
    captions = [plain(c.value) for c in at.caption]
    assert any(c.startswith("Source: Li et al., M3IT, arXiv 2306.04387") for c in captions)
    assert any("×100: NoCaps, Flickr30K" in c for c in captions)
    assert any("Columns no reference file has a number for: VQAv2." in c for c in captions)
    sources = next(d.value for d in at.dataframe if list(d.value.columns) == ["model", "file", "source"])
    assert "m3it_paper_blip2_flan_t5_xxl.json" in set(sources["file"])
    assert len(at.get("download_button")) == len([d for d in at.dataframe if "file" in d.value.columns
                                                  and "source" not in d.value.columns])


def test_papers_page_titles_are_text_and_a_folder_without_references_says_so(tmp_path, monkeypatch):
    root = write_leaderboard(tmp_path / "results", n=6)
    at = page("6_Papers.py", root, monkeypatch)  # the fixture's reference file is in no paper's table
    assert "No reference file of a paper's table" in at.info[0].value and not at.dataframe
    own = ("papers:\n  x:\n    title: '**bold** <b>x</b> [l](u)'\n    source: '_src_'\n"
           "    references: [ying_vlm.json]\n    columns: [{task: m3it_okvqa, metric: rouge_l, title: '*OK*'}]\n")
    (root / "leaderboard.yaml").write_text(HIERARCHY + own, encoding="utf-8")
    at = page("6_Papers.py", root, monkeypatch)
    assert plain(at.subheader[0].value) == "**bold** <b>x</b> [l](u)"  # shown as typed, not as Markdown
    assert at.dataframe[0].value.iloc[0]["*OK*"] == pytest.approx(44.0)
    (root / "leaderboard.yaml").write_text(HIERARCHY + "papers: [1]\n", encoding="utf-8")
    at = page("6_Papers.py", root, monkeypatch)
    assert "'papers' should be a mapping" in plain(at.error[0].value)
