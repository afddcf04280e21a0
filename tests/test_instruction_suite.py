"""Issue 22's "done when": `m3eval run --tasks instruction` on local data in each benchmark's hub schema (the
builders of the benchmarks' own tests), its groups, and the board exported from it with the reference rows of
results/reference/ beside the run and MMMU's random picks shown."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import fixtures_instruction
import pytest
import yaml
from test_mmbench_tasks import write_mmbench
from test_mme_task import write_mme
from test_mmmu_task import write_mmmu_fixture
from test_qwen_vl_table import _Tables, _table

from m3eval.cli import main

ROOT = Path(__file__).resolve().parents[1]
RUN = "Qwen-VL-Chat"  # named as the reference rows' model, so "Reported vs reproduced" pairs them
TASKS = ["mme", "mmbench_en_dev", "mmbench_cn_dev", "seedbench_img", "mmmu_val", "pope_random", "pope_popular",
         "pope_adversarial"]
REFERENCES = ["qwen_vl_repo_qwen_vl_chat_instruction.json", "vlmevalkit_qwen_vl_chat.json",
              "lmms_eval_qwen3_vl_mmmu.json", "vlmevalkit_qwen3_vl_mmmu.json"]


@pytest.fixture(scope="module")
def instruction_run(tiny_model, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("instruction")
    data = root / "data"
    pope = fixtures_instruction.write_pope(data)
    fixtures = {"mme": write_mme(data / "MME" / "test.parquet"),
                "mmbench_en_dev": write_mmbench(data / "MMBench" / "en" / "dev.parquet", cn=False),
                "mmbench_cn_dev": write_mmbench(data / "MMBench" / "cn" / "dev.parquet", cn=True),
                "seedbench_img": fixtures_instruction.write_seed(data),
                "mmmu_val": write_mmmu_fixture(data / "MMMU" / "validation.parquet"),
                **{f"pope_{s}": pope for s in fixtures_instruction.POPE_SETS}}
    argv = ["run", "--model", "hf", "--model-args", f"pretrained={tiny_model}", "--tasks", "instruction",
            "--output", str(root / "runs"), "--run-name", RUN, "--batch-size", "8", "--max-new-tokens", "6",
            "--threads", "1", "--no-media"]
    for task, path in fixtures.items():
        argv += ["--dataset-override", f"{task}={path}"]
    assert main(argv) == 0
    run = root / "runs" / RUN
    return run, json.loads((run / "results.json").read_text(encoding="utf-8"))


def test_tasks_lists_the_five_benchmarks_and_both_groups(cli):
    out = cli("tasks").stdout
    for name in [*TASKS, "pope", "instruction", "standard", "qwen_vl_table"]:
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name


def test_the_instruction_group_runs_every_benchmark_and_averages_them_on_their_scales(instruction_run):
    _, results = instruction_run
    assert set(results["tasks"]) == set(TASKS)
    for task in ("mme", "mmbench_en_dev", "mmbench_cn_dev", "seedbench_img", "mmmu_val"):
        assert results["tasks"][task]["categories"], task  # per subtask / category / dimension / discipline
    group = results["groups"]["instruction"]
    members = ["mme", "mmbench_en_dev", "mmbench_cn_dev", "seedbench_img", "mmmu_val"]

    def scaled(task: str) -> float:
        t = results["tasks"][task]
        m = t["metrics"][t["primary_metric"]]
        return m["value"] / m["scale"]

    pope = results["groups"]["pope"]
    want = (sum(scaled(t) for t in members) + pope["value"] / pope["scale"]) / 6
    assert group["value"] == pytest.approx(want)
    mmmu = results["tasks"]["mmmu_val"]["metrics"]["mmmu_accuracy"]["details"]
    assert mmmu["n_random_picks"] >= 3  # the tiny model names no option: the official parser guesses


def test_the_board_shows_the_run_beside_the_reference_rows_and_the_random_picks(instruction_run, tmp_path):
    run, results = instruction_run
    board_dir = tmp_path / "results"
    shutil.copytree(run, board_dir / run.name)
    (board_dir / "reference").mkdir()
    refs = {}
    for name in REFERENCES:
        shutil.copy(ROOT / "results" / "reference" / name, board_dir / "reference" / name)
        ref = json.loads((ROOT / "results" / "reference" / name).read_text(encoding="utf-8"))
        refs[f"{ref['model']} (reported)"] = ref["tasks"]
    board = tmp_path / "board.html"
    assert main(["leaderboard", "--results", str(board_dir), "--export", str(board)]) == 0
    parser = _Tables()
    parser.feed(board.read_text(encoding="utf-8"))
    tables = parser.tables
    caps = yaml.safe_load((ROOT / "dashboard" / "leaderboard.yaml").read_text(encoding="utf-8"))["capabilities"]

    overview = _table(tables, "All capabilities", None)
    assert set(overview) == {RUN, *refs}
    for cap in ("perception", "reasoning", "hallucination"):
        assert math.isfinite(float(overview[RUN][caps[cap]["title"]])), cap
    # MME under the authors' and VLMEvalKit's rows: perception + cognition on 0..100 (the score's full scale 2800)
    mme = _table(tables, caps["perception"]["title"], None)
    for row, tasks in refs.items():
        if "mme" in tasks:
            score = tasks["mme"]["metrics"]["mme_score"]
            assert mme[row][caps["perception"]["tasks"]["mme"]["title"]] == f"{score['value'] / 2800 * 100:.1f}"
    mmmu = _table(tables, caps["reasoning"]["title"], None)  # the two harnesses' MMMU numbers side by side
    assert mmmu["Qwen3-VL (lmms-eval) (reported)"]["MMMU val"] == "50.7"
    assert mmmu["Qwen3-VL (VLMEvalKit) (reported)"]["MMMU val"] == "54.8"

    (header, rows), = [(h, r) for s, _, h, r in tables if s == "Counted beside the scores"]
    counted = {(r[header.index("task")], r[header.index("counted")]): r for r in rows}
    picks = counted[("mmmu_val", "n_random_picks")]
    want = results["tasks"]["mmmu_val"]["metrics"]["mmmu_accuracy"]["details"]["n_random_picks"]
    assert picks[header.index("n")] == str(want) and picks[header.index("of")] == "12"

    (header, rows), = [(h, r) for s, _, h, r in tables if s == "Reported vs reproduced"]
    paired = {(r[header.index("task")], r[header.index("metric")]) for r in rows}
    assert {("mme", "mme_perception"), ("mme", "mme_cognition"), ("mme", "mme_score"),
            ("seedbench_img", "choice_accuracy")} <= paired
