"""A real OpenAI-compatible server: `transformers serve` (transformers[serving]) runs the
demo's tiny LLaVA on CPU from a local folder; the same tasks through `--model hf` and
`--model openai` give identical predictions (greedy decoding; images as PNG data URLs,
so the server sees our exact pixels)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from m3eval.pipeline import RunConfig, evaluate
from m3eval.results import read_jsonl

TASKS = ["demo_vqa", "demo_video_frames"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model):
    exe = shutil.which("transformers")
    if exe is None:
        pytest.skip("the `transformers` command is not on PATH (pip install 'transformers[serving]')")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([exe, "serve", str(tiny_model), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120  # ~15-20 s when the machine is quiet
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if json.loads(r.read())["data"]:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve was not ready within 120 s")
            time.sleep(0.5)
        yield url
    finally:  # stop it by its PID, whatever happened
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _predictions(run_dir: Path) -> dict[str, tuple[str, str | None]]:
    return {f"{t}/{row['id']}": (row["prediction"], row["error"])
            for t in TASKS for row in read_jsonl(run_dir / "predictions" / f"{t}.jsonl")}


def test_hf_and_openai_through_transformers_serve_agree(served, tiny_model, tmp_path):
    common = dict(tasks=TASKS, output=tmp_path, limit=8, progress=False, save_media=False)
    evaluate(RunConfig(model="hf", model_args={"pretrained": str(tiny_model)}, run_name="hf", **common))
    results, failures = evaluate(RunConfig(model="openai", model_args={"base_url": served, "concurrency": 4},
                                           run_name="openai", batch_size=4, **common))
    assert failures == []
    hf, api = _predictions(tmp_path / "hf"), _predictions(tmp_path / "openai")
    assert len(hf) == 16 and all(err is None for _, err in api.values())
    assert all(text for text, _ in hf.values())
    assert api == hf
    assert results["run"]["model"]["id"] == str(tiny_model)  # the one model served, found by the probe
