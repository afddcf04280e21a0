"""The Qwen-VL table end to end (issue 21, "done when"): ONE `m3eval run --tasks qwen_vl_table,qwen_vl_table_qwen_vl`
on the tiny model over every task's local fixture in its hub schema (the session fixture `qwen_vl_table_run` of
conftest.py, built by the family fixture builders and shared with the families' end-to-end tests), then the static
board exported from that run with the Qwen-VL and Qwen-VL-Chat reference rows (results/reference/) beside it."""
from __future__ import annotations

import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from m3eval.metrics import get_metric
from m3eval.tasks.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = {"qwen_vl_table": ["qwen_vl_captioning", "qwen_vl_general_vqa", "qwen_vl_text_vqa", "grounding"],
           "qwen_vl_table_qwen_vl": ["qwen_vl_captioning_qwen_vl", "qwen_vl_general_vqa_qwen_vl",
                                     "qwen_vl_text_vqa_qwen_vl", "grounding_qwen_vl"]}
# QwenLM/Qwen-VL README.md @ aa00ed04091eea5fcdd32985e7915f1c53e7d599, the numbers as it prints them: board task
# title -> (leaf task, Qwen-VL, Qwen-VL-Chat; None where the README has no such cell). Tables 'Zero-shot Captioning
# & General VQA' (NoCaps and Flickr30K are CIDEr x100), 'Text-oriented VQA' (no Qwen-VL-Chat row; ChartQA is one
# number, the group chartqa_qwen_vl: a group leaf on the board, beside the run's group value) and 'Referring
# Expression Comprehension' (GROUNDING).
README = {
    "NoCaps": ("nocaps_val_qwen_vl", "121.4", "120.2"), "Flickr30k": ("flickr30k_test_qwen_vl", "85.8", "81.0"),
    "OK-VQA": ("okvqa_qwen_vl", "58.6", "56.6"), "GQA": ("gqa_testdev_balanced_qwen_vl", "59.3", "57.5"),
    "ScienceQA-IMG": ("scienceqa_img_test_qwen_vl", "67.1", "68.2"),
    "VizWiz-VQA": ("vizwiz_vqa_val_qwen_vl", "35.2", "38.9"),
    "TextVQA": ("textvqa_val_qwen_vl", "63.8", None), "DocVQA": ("docvqa_val_qwen_vl", "65.1", None),
    "AI2D": ("ai2d_test_qwen_vl", "62.3", None), "OCR-VQA": ("ocrvqa_test_qwen_vl", "75.7", None),
    "ChartQA": ("chartqa_qwen_vl", "65.7", None),
}
# the README's grounding table (one board task per dataset, a leaf per split): leaf -> (title, Qwen-VL-7B, -Chat)
GROUNDING = {
    "refcoco_val_qwen_vl": ("RefCOCO", "89.36", "88.55"), "refcoco_testA_qwen_vl": ("RefCOCO", "92.26", "92.27"),
    "refcoco_testB_qwen_vl": ("RefCOCO", "85.34", "84.51"), "refcocoplus_val_qwen_vl": ("RefCOCO+", "83.12", "82.82"),
    "refcocoplus_testA_qwen_vl": ("RefCOCO+", "88.25", "88.59"),
    "refcocoplus_testB_qwen_vl": ("RefCOCO+", "77.21", "76.79"),
    "refcocog_val_qwen_vl": ("RefCOCOg", "85.58", "85.96"), "refcocog_test_qwen_vl": ("RefCOCOg", "85.48", "86.32"),
}
GROUPS = {"ChartQA": "chartqa"}  # board title -> the official group beside the Qwen-VL one (leaves {group: ...})
CIDER_X100 = {"NoCaps", "Flickr30k"}
REFERENCE_ROWS = ["Qwen-VL (reported)", "Qwen-VL-Chat (reported)"]
RUN = "table"  # the run's name, its row on the board


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def _rows(spec, path: Path) -> int:
    """The samples a fixture makes, counted in its files: a row each; one per question of an OCR-VQA cover
    (doc.explode); GQA's fixture is a local copy of the repo, its questions in the task's config folder."""
    if path.is_dir():
        (path,) = (path / spec.dataset.name).glob("*.parquet")
    if spec.doc.explode:
        return sum(map(len, pq.read_table(str(path), columns=[spec.doc.explode[0]]).column(0).to_pylist()))
    return pq.read_metadata(str(path)).num_rows


def test_one_run_scores_every_table_task_and_group(registry, qwen_vl_table_run):
    run, results, fixtures = qwen_vl_table_run
    official, qwen = registry.expand("qwen_vl_table"), registry.expand("qwen_vl_table_qwen_vl")
    assert len(official) == len(qwen) == 21  # captioning 2, general VQA 5, text VQA 6 (ChartQA's 2 parts), grounding 8
    assert qwen == [f"{t}_qwen_vl" for t in official]  # every benchmark has its qwen_vl twin, grounding included
    assert set(results["tasks"]) == set(official) | set(qwen) == set(fixtures)
    assert len(results["tasks"]) == 21 + 21
    assert results["run"]["config"]["tasks"] == ["qwen_vl_table", "qwen_vl_table_qwen_vl"]
    for task, res in results["tasks"].items():
        spec = registry.tasks[task]
        assert res["n_errors"] == 0 and res["n_samples"] > 0, task
        assert res["n_samples"] + (res.get("n_excluded") or 0) == _rows(spec, fixtures[task]), task  # every fixture row
        assert res["protocol"] == spec.protocol and res["primary_metric"] == spec.primary, task
        assert math.isfinite(res["metrics"][spec.primary]["value"]), task
        assert (run / "samples" / f"{task}.jsonl").is_file(), task
    for table, members in MEMBERS.items():
        g = results["groups"][table]
        assert g["members"] == members and g["n_tasks"] == 21 and g.get("error") is None, table
        assert g["normalize"] == "scale" and g["aggregate"] == "macro", table
        for member in members:
            m = results["groups"][member]
            assert m.get("error") is None and math.isfinite(m["value"]), member
            assert m["tasks"] == registry.expand(member), member
        # a mean of normalized scores over the four member groups: CIDEr (unbounded) clipped at 2 as the board
        # clips it, task by task; the other members are 0..1 already
        assert g["metric"] == "normalized score" and g["normalization"]["coco_cider"] == "min(value / scale / 2, 1)"

        def normalized(member: str) -> float:
            if "captioning" not in member:
                return results["groups"][member]["value"] / results["groups"][member]["scale"]
            ciders = [results["tasks"][t]["metrics"]["coco_cider"]["value"] for t in registry.expand(member)]
            return sum(min(c / 2, 1.0) for c in ciders) / len(ciders)
        assert g["value"] == pytest.approx(sum(normalized(m) for m in members) / len(members)), table


class _Tables(HTMLParser):
    """Each <table> of the export as (its <h2> section, its <summary> or None, header cells, rows of cells)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, str | None, list[str], list[list[str]]]] = []
        self.section, self.summary, self.text = "", None, None
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.row: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "summary", "th", "td"):
            self.text = ""
        elif tag == "details":
            self.summary = None
        elif tag == "table":
            self.header, self.rows = [], []
        elif tag == "tr":
            self.row = []

    def handle_endtag(self, tag):
        if tag not in ("h2", "summary", "th", "td", "tr", "table"):
            return  # inline markup inside a cell (a badge) keeps collecting the cell's text
        text, self.text = (self.text or "").strip(), None
        if tag == "h2":
            self.section, self.summary = text, None
        elif tag == "summary":
            self.summary = text
        elif tag == "th":
            self.header.append(text)
        elif tag == "td":
            self.row.append(text)
        elif tag == "tr" and self.row:
            self.rows.append(self.row)
        elif tag == "table":
            self.tables.append((self.section, self.summary, self.header, self.rows))

    def handle_data(self, data):
        if self.text is not None:
            self.text += data


def _table(tables, section: str, summary: str | None) -> dict[str, dict[str, str]]:
    """model -> {column: cell} of the one table under `section` (and `summary`)."""
    (header, rows), = [(h, r) for s, d, h, r in tables if s == section and d == summary]
    return {row[header.index("model")]: dict(zip(header, row)) for row in rows}


def test_the_board_shows_the_run_beside_the_qwen_vl_reference_rows(qwen_vl_table_run, tmp_path):
    from m3eval.cli import main

    run, run_results, _ = qwen_vl_table_run
    results = tmp_path / "results"
    shutil.copytree(run, results / run.name)
    (results / "reference").mkdir()
    for ref in sorted((ROOT / "results" / "reference").glob("qwen_vl_paper_*.json")):
        shutil.copy(ref, results / "reference" / ref.name)
    board = tmp_path / "board.html"
    assert main(["leaderboard", "--results", str(results), "--export", str(board)]) == 0
    parser = _Tables()
    parser.feed(board.read_text(encoding="utf-8"))
    tables = parser.tables
    hierarchy = yaml.safe_load((ROOT / "dashboard" / "leaderboard.yaml").read_text(encoding="utf-8"))
    caps = {c: hierarchy["capabilities"][c] for c in ["captioning", "general_vqa", "text_rich_vqa", "grounding"]}

    overview = _table(tables, "All capabilities", None)
    assert set(overview) == {RUN, *REFERENCE_ROWS}
    for cap in caps.values():  # the run scores every capability of the table; the papers' rows where they report
        assert _is_number(overview[RUN][cap["title"]]), cap["title"]
    for row in REFERENCE_ROWS:
        assert overview[row]["reported"] == "yes", row
        for cap in ("Captioning", "General VQA", "Grounding"):  # RefCOCO: the README's grounding table
            assert _is_number(overview[row][cap]), (row, cap)
    assert _is_number(overview["Qwen-VL (reported)"]["Text-rich VQA"])
    assert overview["Qwen-VL-Chat (reported)"]["Text-rich VQA"] == ""  # the README's text table has no Chat row

    for cap in caps.values():  # each capability's own table: the run's row, scored on every benchmark of it
        table = _table(tables, cap["title"], None)
        assert RUN in table, cap["title"]
        for task in cap["tasks"].values():
            if any(leaf.get("task", "").startswith(("demo_", "m3it")) for leaf in task["leaves"]):
                continue  # the demo and M3IT benchmarks of the capability: not in this run
            assert _is_number(table[RUN][task["title"]]), (cap["title"], task["title"])
    rule = hierarchy["normalization"]["coco_cider"]
    for title, (leaf, qwen_vl, chat) in README.items():
        section = next(c["title"] for c in [*caps.values(), hierarchy["capabilities"]["knowledge_vqa"]]
                       if any(t["title"] == title for t in c["tasks"].values()))
        table = _table(tables, section, f"{title}: datasets and protocols")
        official = GROUPS.get(title, leaf.removesuffix("_qwen_vl"))
        for protocol in (official, leaf):  # the run's two protocols side by side
            assert _is_number(table[RUN][protocol]), (title, protocol)
        if title in GROUPS:  # a group leaf: the run's results.json group value
            assert table[RUN][leaf] == f"{100 * run_results['groups'][leaf]['value']:.1f}", title
        for row, printed in zip(REFERENCE_ROWS, (qwen_vl, chat)):
            if printed is None:
                assert row not in table, (title, row)
                continue
            shown = table[row]
            assert shown[official] == "", (title, row)  # reported under the paper's protocol only
            if title in CIDER_X100:  # the board puts CIDEr on 0..100 as min(CIDEr / max, 1) x 100
                assert shown[leaf] == f"{min(float(printed) / 100 / rule['max'], 1) * 100:.1f}", (title, row)
            else:
                assert shown[leaf] == printed, (title, row)
    for leaf, (title, *printed) in GROUNDING.items():  # RefCOCO/+/g: the README's table beside the run's twins
        table = _table(tables, caps["grounding"]["title"], f"{title}: datasets and protocols")
        assert _is_number(table[RUN][leaf]) and _is_number(table[RUN][leaf.removesuffix("_qwen_vl")]), leaf
        for row, value in zip(REFERENCE_ROWS, printed):
            assert table[row][leaf] == f"{100 * (float(value) / 100):.1f}", (leaf, row)  # the board's one decimal
            assert table[row][leaf.removesuffix("_qwen_vl")] == "", (leaf, row)  # under the paper's protocol only


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def test_the_reference_files_are_the_ones_the_board_read():
    """The board test's README numbers are the reference files' values (percent; CIDEr x100)."""
    refs = {json.loads(f.read_text(encoding="utf-8"))["model"]: json.loads(f.read_text(encoding="utf-8"))["tasks"]
            for f in (ROOT / "results" / "reference").glob("qwen_vl_paper_*.json")}
    cells = {title: (leaf, *printed) for title, (leaf, *printed) in README.items()}
    cells |= {leaf: (leaf, *printed) for leaf, (_, *printed) in GROUNDING.items()}
    for title, (leaf, *printed) in cells.items():
        for model, value in zip(["Qwen-VL", "Qwen-VL-Chat"], printed):
            if value is None:
                assert leaf not in refs[model], (title, model)
                continue
            (metric, m), = refs[model][leaf]["metrics"].items()
            assert m["value"] * 100 == pytest.approx(float(value)) and m["scale"] == get_metric(metric).scale == 1
