"""Shared test fixtures: one tiny real model per session, one thread for torch
(5-10x faster and steadier for a model this small)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from m3eval.demo.tiny_model import ensure_tiny_model
    return ensure_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llava")


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    """The demo's model: the tiny LLaVA after its short training (scores are not all zero)."""
    from m3eval.demo.tiny_model import DEMO_TRAIN_STEPS, ensure_tiny_model
    return ensure_tiny_model(tmp_path_factory.mktemp("demo-model") / "tiny-llava", train_steps=DEMO_TRAIN_STEPS)


@pytest.fixture(scope="session")
def qwen_vl_table_run(tiny_model, tmp_path_factory) -> tuple[Path, dict, dict[str, Path]]:
    """ONE `m3eval run --tasks qwen_vl_table,qwen_vl_table_qwen_vl` on the tiny model, every task on its
    fixture (the family builders), shared by the table test and the families' end-to-end tests so the
    suite runs the table once. Returns (run folder, results.json, task -> fixture path)."""
    import json

    import fixtures_captioning
    import fixtures_general_vqa
    import fixtures_suite
    from test_grounding_tasks import TASKS as GROUNDING
    from test_grounding_tasks import write_refcoco_fixture

    from m3eval.cli import main

    root = tmp_path_factory.mktemp("qwen_vl_table")
    data = root / "data"
    (data / "refcoco").mkdir(parents=True)
    refcoco = write_refcoco_fixture(data / "refcoco" / "val.parquet")
    fixtures = {**fixtures_captioning.build_all(data), **fixtures_general_vqa.build_all(data),
                **fixtures_suite.build_text_vqa(data),
                **{task: refcoco for task in GROUNDING + [f"{t}_qwen_vl" for t in GROUNDING]}}
    argv = ["run", "--model", "hf", "--model-args", f"pretrained={tiny_model}", "--tasks",
            "qwen_vl_table,qwen_vl_table_qwen_vl", "--output", str(root / "runs"), "--run-name", "table",
            "--batch-size", "8", "--max-new-tokens", "6", "--threads", "1", "--no-media"]
    for task, path in fixtures.items():
        argv += ["--dataset-override", f"{task}={path}"]
    assert main(argv) == 0
    run = root / "runs" / "table"
    return run, json.loads((run / "results.json").read_text(encoding="utf-8")), fixtures


@pytest.fixture
def cli(capsys):
    """`m3eval ARGS` through the CLI's own entry point in this process, as a CompletedProcess: for
    errors raised before any heavy import, where a subprocess would only add interpreter start-up."""
    import subprocess

    from m3eval.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["m3eval", *args], code, out, err)
    return run
