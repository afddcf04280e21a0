"""The data process (run/data_process.py): a run reads its tasks' data in a forked process while it
loads the model. Its predictions and sample records are those of reading the data in the run's own
process (M3EVAL_PREFETCH=thread), bad media included; the run's process never imports datasets; the
data process ends with its run, however the run ends, and answers no process without the key."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path

import pytest
from PIL import Image
from test_cli_errors import _alive

from m3eval.errors import RunError
from m3eval.results import read_jsonl
from m3eval.run.data_process import TaskReading
from m3eval.run.pipeline import RunConfig, evaluate
from m3eval.tasks.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24 + i, 20), ((i * 53) % 255, 90, (i * 17) % 255)).save(buf, format="PNG")
    return buf.getvalue()


def _task(tmp_path: Path) -> Path:
    """A task whose rows name image files: good ones, and ones each failing in its own way."""
    folder = tmp_path / "task"
    (folder / "img").mkdir(parents=True)
    for i in range(4):
        (folder / "img" / f"{i}.png").write_bytes(_png(i))
    (folder / "img" / "bad.png").write_bytes(b"not a png at all")
    (tmp_path / "outside.png").write_bytes(_png(9))  # a real image, outside the data's folder
    images = ["img/0.png", "img/bad.png", "../outside.png", "img/gone.png", "img/1.png", None, "img/2.png", "img/3.png"]
    rows = [{"id": f"r{i}", "q": f"What is in picture {i}?", "a": "a square", "image": im} for i, im in enumerate(images)]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "t.yaml").write_text("task: dp_images\ndataset: {path: rows.jsonl}\n"
                                   "doc: {prompt: '{{ q }}', references: a, id: id, images: image}\n"
                                   "metrics: [{name: exact_match}]\n")
    return folder


def _run(tiny_model: Path, folder: Path, out: Path) -> tuple[dict, dict]:
    cfg = RunConfig(tasks=["dp_images"], output=out, model_args={"pretrained": str(tiny_model)}, run_name="r",
                    include_paths=[folder], batch_size=3, max_new_tokens=4, progress=False)
    results, failures = evaluate(cfg)
    assert failures == [] and results is not None
    strip = ("seconds",)
    preds = {p["id"]: {k: v for k, v in p.items() if k not in strip}
             for p in read_jsonl(out / "r" / "predictions" / "dp_images.jsonl")}
    records = {r["id"]: r for r in read_jsonl(out / "r" / "samples" / "dp_images.jsonl")}
    return preds, records


def test_a_data_process_gives_the_records_of_reading_here(tiny_model, tmp_path, monkeypatch):
    folder = _task(tmp_path)
    monkeypatch.setenv("M3EVAL_PREFETCH", "process")
    forked = _run(tiny_model, folder, tmp_path / "forked")
    monkeypatch.setenv("M3EVAL_PREFETCH", "thread")
    here = _run(tiny_model, folder, tmp_path / "here")
    assert forked == here
    errors = {i: r["error"] for i, r in forked[1].items()}
    assert [i for i, e in errors.items() if e is None] == ["r0", "r4", "r6", "r7"]
    assert "cannot identify image file" in errors["r1"]
    assert "leaves the data folder" in errors["r2"] and "gone.png" in errors["r3"]  # media stay in the data folder
    assert len({p["prediction"] for i, p in forked[0].items() if errors[i] is None}) > 1  # real answers


def test_the_run_process_imports_no_datasets(tiny_model, tmp_path):
    args = ["run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_vqa,demo_video_qa", "--limit", "4",
            "--output", str(tmp_path), "--run-name", "r", "--threads", "1", "--max-new-tokens", "4"]
    code = (f"import sys; from m3eval.cli import main; rc = main({args!r}); "
            "print(rc, sorted(m for m in ('datasets', 'pyarrow', 'pandas') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout + r.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "results.json").read_text())["tasks"]["demo_vqa"]["n_samples"] == 4


def _reading() -> TaskReading:
    specs = Registry.discover().resolve_run(["demo_vqa", "demo_mc"], {}, {})
    return TaskReading(specs, 5, "default", {})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the data process is forked on Linux only")
def test_the_data_process_serves_samples_and_media_until_the_run_lets_its_tasks_go(monkeypatch):
    monkeypatch.setenv("M3EVAL_PREFETCH", "process")
    reading = _reading()
    pid = reading._process.pid
    data, failures = reading.result()
    assert failures == [] and sorted(data) == ["demo_mc", "demo_vqa"]
    samples = list(data["demo_vqa"].samples)
    assert [s.id for s in samples] == data["demo_vqa"].samples.ids and len(samples) == 5
    image = samples[0].media[0].source.get()  # read by the data process: the row's own bytes
    assert isinstance(image, dict) and image["bytes"][:4] == b"\x89PNG"
    with pytest.raises(AuthenticationError):  # a process without the key is refused ...
        Client(reading._process.address, "AF_UNIX", authkey=b"not the key")
    assert [s.id for s in data["demo_mc"].samples[:2]] == data["demo_mc"].samples.ids[:2]  # ... and serving goes on
    reading.release("demo_vqa")  # a task the run is done with: let go in the data process
    with pytest.raises(KeyError):
        data["demo_vqa"].samples[0]
    assert data["demo_mc"].samples[4].id == data["demo_mc"].samples.ids[4] and _alive(pid)
    reading.release("demo_mc")  # the last: the data process ends
    assert not _alive(pid)
    reading.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the data process is forked on Linux only")
def test_a_data_process_that_died_is_one_run_error(monkeypatch):
    monkeypatch.setenv("M3EVAL_PREFETCH", "process")
    reading = _reading()
    os.kill(reading._process.pid, signal.SIGKILL)
    with pytest.raises(RunError, match="^the data process stopped answering"):
        reading.result()
    reading.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the data process is forked on Linux only")
def test_the_data_process_goes_when_its_run_is_killed(tmp_path):
    code = ("import os, sys, time; sys.path.insert(0, 'tests'); from test_data_process import _reading\n"
            "r = _reading(); r.result(); print(r._process.pid, flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**ENV, "M3EVAL_PREFETCH": "process"})
    try:
        pid = int(proc.stdout.readline())
        assert _alive(pid)
        proc.kill()  # kill -9: no clean-up runs in the run's process
        proc.wait()
        deadline = time.time() + 10
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        proc.kill()
        proc.wait()
