"""Reference rows on the board (issue 23): the shipped results/ show every reported row with its
capability scores; partial rows are marked and unranked; a reference number the board cannot
place is listed with its file; two files for the same model and task are two rows, never averaged."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dashboard.board import build_rows, level_frame, paper_vs_measured, run_keys
from dashboard.export import export
from dashboard.hierarchy import hierarchy_for, load_hierarchy
from dashboard.references import reference_labels, unmatched_frame
from m3eval.report.runs import find_runs, load_references
from tests.dashboard_fixtures import HIERARCHY, write_leaderboard, write_run

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "results"


def _ref(root: Path, file: str, model: str, tasks: dict[str, dict[str, float]], source: str = "fixture") -> Path:
    path = root / "reference" / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "m3eval.reference/1", "model": model, "source": source, "reported": True,
                                "tasks": {t: {"metrics": {m: {"value": v, "scale": 1} for m, v in ms.items()}}
                                          for t, ms in tasks.items()}}), encoding="utf-8")
    return path


def _frame(root: Path, level: str = "capabilities", hierarchy=None, **kw):
    runs, _ = find_runs(root)
    refs, _ = load_references(root)
    h = hierarchy or hierarchy_for(root)
    rows = build_rows(h, run_keys(runs), refs, {}, None)
    df, cols, hidden = level_frame(h, rows, level, **kw)
    return df.set_index("model"), cols, hidden, refs


class _Cells(HTMLParser):
    """The text of every table cell of an HTML file, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


# ---- the shipped results/ ------------------------------------------------------------------

def test_the_shipped_results_show_every_reported_row_with_its_capability_scores(tmp_path):
    df, cols, hidden, refs = _frame(SHIPPED, hierarchy=load_hierarchy())
    labels = reference_labels(refs)
    assert len(refs) == len(list((SHIPPED / "reference").glob("*.json"))) >= 11
    assert hidden == 0 and set(labels) <= set(df.index)  # every reported row, none hidden
    for label in labels:  # each with a score in some real capability, its coverage said
        row = df.loc[label]
        assert any(row[c] == row[c] for c in cols if c != "Demo data (not in overall)"), label
        assert row["coverage"].endswith("datasets · partial") and row["rank"] == "" and row["reported"]
    for model in ("Ying-VLM", "BLIP-2 (Flan-T5-XXL)", "InstructBLIP", "MiniGPT-4", "M2-Encoder-10B", "Qwen-VL"):
        assert f"{model} (reported)" in df.index
    # Ying-VLM's Knowledge VQA: the mean of its OK-VQA, A-OKVQA and ViQuAE ROUGE-L, all three datasets there
    ying = json.loads((SHIPPED / "reference" / "m3it_paper_ying_vlm.json").read_text(encoding="utf-8"))["tasks"]
    want = 100 * sum(ying[t]["metrics"]["rouge_l"]["value"] for t in ("m3it_okvqa", "m3it_aokvqa", "m3it_viquae")) / 3
    assert df.loc["Ying-VLM (reported)", "Knowledge VQA"] == pytest.approx(want)
    kvqa, _, _, _ = _frame(SHIPPED, "knowledge_vqa", hierarchy=load_hierarchy())
    assert kvqa.loc["Ying-VLM (reported)", "coverage"] == "3 of 3 datasets"
    assert kvqa.loc["Ying-VLM (reported)", "score"] == pytest.approx(want)
    assert kvqa.loc["Qwen-VL (reported)", "coverage"] == "1 of 3 datasets · partial"  # OK-VQA only
    # the demo run keeps its own column, outside the overall score
    assert df.loc["tiny-llava", "Demo data (not in overall)"] > 0 and df.loc["tiny-llava", "overall"] != \
        df.loc["tiny-llava", "overall"]

    out = tmp_path / "board.html"
    assert export(SHIPPED, out) == 0
    parser = _Cells()
    parser.feed(out.read_text(encoding="utf-8"))
    first_cells = {r[1] for r in parser.rows if len(r) > 1}  # rank, then model
    assert set(labels) <= first_cells
    assert "row(s) hidden" not in out.read_text(encoding="utf-8").split("<h2>", 2)[1]  # the overview hides none


def test_the_same_model_in_two_shipped_files_is_two_rows():
    _, _, _, refs = _frame(SHIPPED, hierarchy=load_hierarchy())
    chat = [(ref.path.name, label) for ref, label in zip(refs, reference_labels(refs)) if ref.model == "Qwen-VL-Chat"]
    assert chat == [("qwen_vl_paper_qwen_vl_chat.json", "Qwen-VL-Chat (reported, qwen_vl_paper_qwen_vl_chat)"),
                    ("qwen_vl_repo_qwen_vl_chat_instruction.json",
                     "Qwen-VL-Chat (reported, qwen_vl_repo_qwen_vl_chat_instruction)")]


# ---- partial rows ----------------------------------------------------------------------------

def test_partial_rows_show_their_score_marked_and_unranked(tmp_path):
    root = write_leaderboard(tmp_path / "results", n=12)  # tiny-llava, tiny-qwen: every fixture task
    write_run(root, "okvqa-only", accuracy=0.9, n=12, tasks=["okvqa", "m3it_okvqa"])
    _ref(root, "zh_only.json", "Chinese-Only", {"flickr8k_cn": {"rouge_l": 0.5}})
    df, _, _, _ = _frame(root)
    # a full run without the other datasets: its overall is over what it has, marked partial, not ranked
    only = df.loc["okvqa-only"]
    assert only["coverage"] == "1 of 4 datasets · partial" and only["rank"] == ""
    assert only["overall"] == pytest.approx(only["Knowledge VQA"])
    assert df.loc["tiny-llava", "coverage"] == "4 of 4 datasets" and df.loc["tiny-llava", "rank"] != ""
    zh = df.loc["Chinese-Only (reported)"]
    assert zh["coverage"] == "1 of 4 datasets · partial" and zh["overall"] == pytest.approx(50.0)
    assert zh["Chinese"] == pytest.approx(50.0) and zh["rank"] == ""
    # not even on request (that is for --limit and overridden runs); complete where it has every dataset
    ranked, _, _, _ = _frame(root, rank_all=True)
    assert ranked.loc["okvqa-only", "rank"] == "" and ranked.loc["Chinese-Only (reported)", "rank"] == ""
    kvqa, _, _, _ = _frame(root, "knowledge_vqa")
    assert kvqa.loc["okvqa-only", "coverage"] == "1 of 1 datasets" and kvqa.loc["okvqa-only", "rank"] == "1"


def test_a_dataset_only_a_reported_row_has_makes_a_run_partial_until_reported_rows_are_hidden(tmp_path):
    root = tmp_path / "results"
    write_run(root, "a", accuracy=0.8, n=8, tasks=["okvqa", "m3it_okvqa"])
    write_run(root, "b", accuracy=0.3, n=8, tasks=["okvqa", "m3it_okvqa"])
    _ref(root, "video.json", "Video-Only", {"msrvtt_qa": {"open_qa_accuracy": 0.5}})  # the suite's primary
    (root / "leaderboard.yaml").write_text(HIERARCHY.replace("exact_match: linear", "open_qa_accuracy: linear"),
                                           encoding="utf-8")
    df, _, _, _ = _frame(root)
    assert list(df["rank"][["a", "b"]]) == ["", ""] and df.loc["a", "coverage"] == "1 of 2 datasets · partial"
    assert df.loc["Video-Only (reported)", "Video understanding"] == pytest.approx(50.0)
    runs, _ = find_runs(root)
    h = hierarchy_for(root)
    alone, _, _ = level_frame(h, build_rows(h, run_keys(runs), [], {}, None), "capabilities")
    assert list(alone.set_index("model")["rank"][["a", "b"]]) == ["1", "2"]


def test_a_protocol_a_row_lacks_is_not_a_missing_dataset(tmp_path):
    """A paper's row under its own protocol (M3IT's ROUGE-L) has OK-VQA even though a run also has
    the official protocol; a row lacking a split of its own protocol does not."""
    root = write_leaderboard(tmp_path / "results", n=8)
    df, _, _, _ = _frame(root, "knowledge_vqa")
    assert df.loc["Ying-VLM (reported)", "coverage"] == "1 of 1 datasets"
    leaf, _, _, _ = _frame(root, "knowledge_vqa/okvqa")
    assert leaf.loc["Ying-VLM (reported)", "coverage"] == "1 of 1 datasets"  # m3it_okvqa, its protocol's leaf
    assert leaf.loc["tiny-llava", "coverage"] == "2 of 2 datasets"


# ---- bad input -------------------------------------------------------------------------------

def test_an_unmatched_reference_number_is_listed_with_its_file(tmp_path):
    root = write_leaderboard(tmp_path / "results", n=8)
    _ref(root, "odd.json", "Odd-VLM", {"no_such_task": {"accuracy": 0.4}, "m3it_okvqa": {"bogus_metric": 0.3},
                                       "flickr8k_cn": {"rouge_l": 0.2}, "mme": {"mme_score": 1500.0}})
    runs, _ = find_runs(root)
    refs, _ = load_references(root)
    h = hierarchy_for(root)
    un = unmatched_frame(h, refs, run_keys(runs))
    odd = un[un.file == "odd.json"].set_index("task")
    assert set(odd.index) == {"no_such_task", "m3it_okvqa", "mme"}
    assert odd.loc["no_such_task", "why"] == "no such task in the suite"
    assert odd.loc["m3it_okvqa", "metric"] == "bogus_metric" and "no such metric" in odd.loc["m3it_okvqa", "why"]
    assert odd.loc["mme", "why"].startswith("task not in the hierarchy")  # a suite task this hierarchy lacks
    assert (un.model == "Odd-VLM").all() and "ying_vlm.json" not in set(un.file)  # the fixture's row matches
    df, _, _, _ = _frame(root)
    assert df.loc["Odd-VLM (reported)", "Chinese"] == pytest.approx(20.0)  # what matches is still scored

    out = tmp_path / "board.html"
    assert export(root, out) == 0
    text = out.read_text(encoding="utf-8")
    assert ">Unmatched reference numbers<" in text and "odd.json" in text and "no_such_task" in text


def test_two_files_for_the_same_model_and_task_are_two_rows_never_averaged(tmp_path):
    root = write_leaderboard(tmp_path / "results", n=8, partial_run=True)
    _ref(root, "ying_vlm_again.json", "Ying-VLM", {"m3it_okvqa": {"rouge_l": 0.20}}, source="a second source")
    df, _, _, refs = _frame(root, "knowledge_vqa/okvqa")
    first, second = "Ying-VLM (reported, ying_vlm)", "Ying-VLM (reported, ying_vlm_again)"
    assert df.loc[first, "m3it_okvqa"] == pytest.approx(44.0) and df.loc[second, "m3it_okvqa"] == pytest.approx(20.0)
    assert df.loc[second, "source"] == "a second source" and df.loc[first, "source"].startswith("M3IT paper")
    runs, _ = find_runs(root)
    h = hierarchy_for(root)
    pvm = paper_vs_measured(build_rows(h, run_keys(runs), refs, {}, None), refs, run_keys(runs))
    okvqa = pvm[pvm.task == "m3it_okvqa"]
    assert sorted(okvqa["reported"]) == pytest.approx([20.0, 44.0]) and okvqa["source"].nunique() == 2
