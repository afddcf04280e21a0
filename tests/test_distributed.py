"""Two CPU processes under torchrun (gloo) give the same predictions and scores
as one process: each rank takes rank::world_size, rank 0 gathers and scores."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from m3eval.results import read_jsonl

TASKS = "demo_vqa,demo_mc,demo_video_qa"


def m3eval_run(args: list[str], launcher: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "m3eval", "run", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_two_ranks_equal_one_process(tiny_model, tmp_path):
    root = Path(__file__).resolve().parents[1]
    common = ["--model-args", f"pretrained={tiny_model}", "--tasks", TASKS, "--limit", "10", "--threads", "1",
              "--run-name", "r"]
    one = m3eval_run([*common, "--output", str(tmp_path / "one"), "--batch-size", "8"], [sys.executable], root)
    assert one.returncode == 0, one.stderr[-2000:]
    two = m3eval_run([*common, "--output", str(tmp_path / "two"), "--batch-size", "3"],
                     [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], root)
    assert two.returncode == 0, two.stderr[-3000:]
    for task in TASKS.split(","):
        a = read_jsonl(tmp_path / "one" / "r" / "predictions" / f"{task}.jsonl")
        b = read_jsonl(tmp_path / "two" / "r" / "predictions" / f"{task}.jsonl")
        assert [(r["id"], r["prediction"]) for r in a] == [(r["id"], r["prediction"]) for r in b]
        assert not list((tmp_path / "two" / "r" / "predictions").glob(f"{task}.rank*.jsonl"))
    ra = json.loads((tmp_path / "one" / "r" / "results.json").read_text())
    rb = json.loads((tmp_path / "two" / "r" / "results.json").read_text())
    assert rb["run"]["config"]["world_size"] == 2
    assert {t: e["metrics"] for t, e in ra["tasks"].items()} == {t: e["metrics"] for t, e in rb["tasks"].items()}
