"""--engine ray on CPU: a Ray head and a second node (`ray start --address`) on this machine, one
CPU each, the tiny model. Predictions and scores equal one process's at 1, 2 and 3 workers; a
worker killed midway and a driver killed midway lose nothing and change nothing. Bad input
(no Ray installed, an unreachable --address) is one line, quickly."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m3eval.results import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["demo_vqa", "demo_mc"]
ROWS = 320  # demo_vqa's rows: five chunks of 64
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command, also where it is not on PATH
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
       "PYTHONPATH": str(ROOT)}
BROKEN = 7  # the row whose image is not an image: a failed sample, recorded, under either engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vqa_rows(tmp_path_factory) -> Path:
    """demo_vqa's schema, ROWS rows, one with an undecodable image."""
    import datasets

    from m3eval.data.synthetic import draw_image
    from m3eval.demo.data import png
    folder = tmp_path_factory.mktemp("ray-data")
    answers = ["yes", "no", "red", "two", "3"]
    ds = datasets.Dataset.from_list([
        {"question_id": i, "question": f"Question {i}: what is in the picture?" + " Look closely." * (i % 5),
         "image": {"bytes": b"not an image" if i == BROKEN else png(draw_image(i, (32, 32))), "path": None},
         "answers": [answers[(i + k) % len(answers)] for k in range(10)]} for i in range(ROWS)])
    ds.cast_column("image", datasets.Image(decode=False)).to_parquet(str(folder / "vqa.parquet"))
    return folder / "vqa.parquet"


def _args(tiny_model: Path, data: Path, out: Path, name: str) -> list[str]:
    return ["--model-args", f"pretrained={tiny_model}", "--tasks", ",".join(TASKS), "--threads", "1",
            "--dataset-override", f"demo_vqa={data}", "--batch-size", "4", "--output", str(out), "--run-name", name]


def _m3eval(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m3eval", "run", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reference(tiny_model, vqa_rows, tmp_path_factory) -> Path:
    """The tasks run by one process, no Ray."""
    out = tmp_path_factory.mktemp("one")
    done = _m3eval(_args(tiny_model, vqa_rows, out, "r"))
    assert done.returncode == 0, done.stderr[-2000:]
    return out / "r"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and a worker node, one CPU each, as `ray start --block` processes of their own
    session (stopping one stops its node's processes). Yields the head's address."""
    port = _free_port()
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    nodes = [subprocess.Popen([*RAY, "start", "--head", "--port", str(port), "--include-dashboard=false", *common],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    address = f"127.0.0.1:{port}"
    try:
        _wait_nodes(address, 1, nodes)
        nodes.append(subprocess.Popen([*RAY, "start", "--address", address, *common], env=ENV,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_nodes(address, 2, nodes)
        yield address
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


def _wait_nodes(address: str, n: int, nodes: list[subprocess.Popen]) -> None:
    script = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
              "sys.exit(0 if sum(x['Alive'] for x in ray.nodes()) >= int(sys.argv[2]) else 1)")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert all(node.poll() is None for node in nodes), "a `ray start` process ended"
        if subprocess.run([sys.executable, "-c", script, address, str(n)], env=ENV, capture_output=True,
                          timeout=60).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"the Ray cluster at {address} did not reach {n} nodes in 90 s")


def _rows(run_dir: Path, keep_seconds: bool = False) -> dict[str, list[dict]]:
    """Each task's prediction records (all fields but the timing, unless asked)."""
    return {task: [{k: v for k, v in r.items() if keep_seconds or k != "seconds"}
                   for r in read_jsonl(run_dir / "predictions" / f"{task}.jsonl")] for task in TASKS}


def _same_as(reference: Path, run_dir: Path) -> dict:
    assert _rows(reference) == _rows(run_dir)
    assert all(r["scored"] for r in _rows(run_dir)["demo_vqa"])  # scored in the workers (scoring/prescore.py)
    assert not list((run_dir / "predictions").glob("*.chunk-*.jsonl")), "chunk files are merged and removed"
    ra = json.loads((reference / "results.json").read_text())
    rb = json.loads((run_dir / "results.json").read_text())
    assert {t: e["metrics"] for t, e in ra["tasks"].items()} == {t: e["metrics"] for t, e in rb["tasks"].items()}
    assert sorted(p.name for p in (run_dir / "media" / "demo_vqa").iterdir()) == \
        sorted(p.name for p in (reference / "media" / "demo_vqa").iterdir())
    return rb


def test_one_process_reference_has_the_broken_sample(reference):
    broken = [r for r in _rows(reference)["demo_vqa"] if r["id"] == str(BROKEN)]
    assert broken and broken[0]["error"]["stage"] == "data"


def test_two_nodes_equal_one_process(tiny_model, vqa_rows, reference, cluster, tmp_path):
    """Two workers, one on each node (each node has one CPU, each worker takes one)."""
    done = _m3eval([*_args(tiny_model, vqa_rows, tmp_path, "r"), "--engine", "ray", "--address", cluster,
                    "--num-workers", "2"])
    assert done.returncode == 0, done.stderr[-3000:]
    results = _same_as(reference, tmp_path / "r")
    assert results["run"]["config"]["engine"] == {"name": "ray", "num_workers": 2, "worker_gpus": 0.0,
                                                  "worker_cpus": 1.0}


@pytest.mark.parametrize("workers", [1, 3])
def test_any_number_of_workers_equals_one_process(tiny_model, vqa_rows, reference, cluster, tmp_path, workers):
    done = _m3eval([*_args(tiny_model, vqa_rows, tmp_path, "r"), "--engine", "ray", "--address", cluster,
                    "--num-workers", str(workers), "--worker-cpus", "0.5"])
    assert done.returncode == 0, done.stderr[-3000:]
    _same_as(reference, tmp_path / "r")


def _chunk_files(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "predictions").glob("*.chunk-*.jsonl"))


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "m3eval", "run", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(what, launch: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        assert launch.poll() is None, "the run ended before the kill: " + (launch.communicate()[1] or "")[-2000:]
        time.sleep(0.02)
    raise AssertionError("timed out")


def _generating_workers() -> list[int]:
    """Ray actors in the middle of a chunk (Ray titles the process by the method it runs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::ChunkWorker.run_chunk"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def test_a_worker_killed_midway_loses_nothing(tiny_model, vqa_rows, reference, cluster, tmp_path):
    launch = _start([*_args(tiny_model, vqa_rows, tmp_path, "r"), "--engine", "ray", "--address", cluster,
                     "--num-workers", "2", "--batch-size", "1"])
    try:
        _wait_for(lambda: _chunk_files(tmp_path / "r"), launch)  # a chunk is written: the run is under way
        victim = _wait_for(_generating_workers, launch)[0]
        os.kill(victim, signal.SIGKILL)
        err = launch.communicate(timeout=240)[1]
    finally:
        launch.kill()
        launch.wait()
    assert launch.returncode == 0, err[-3000:]
    assert "a Ray worker was lost" in err and "is handed out again" in err
    _same_as(reference, tmp_path / "r")


def test_a_killed_driver_resumes_from_its_chunks(tiny_model, vqa_rows, reference, cluster, tmp_path):
    args = [*_args(tiny_model, vqa_rows, tmp_path, "r"), "--engine", "ray", "--address", cluster,
            "--num-workers", "2", "--batch-size", "1"]
    launch = _start(args)
    try:
        _wait_for(lambda: len(_chunk_files(tmp_path / "r")) >= 2, launch)
        launch.send_signal(signal.SIGKILL)
        launch.wait(timeout=30)
    finally:
        launch.kill()
        launch.wait()
    kept = {(f.name.split(".")[0], r["id"]): r for f in _chunk_files(tmp_path / "r") for r in read_jsonl(f)}
    assert len(kept) >= 2 * 64  # every chunk file on disk is complete (written atomically)
    again = _m3eval(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming: {len(kept)} of {ROWS + 32} samples already done" in again.stderr
    _same_as(reference, tmp_path / "r")
    final = {(task, r["id"]): r for task, rows in _rows(tmp_path / "r", keep_seconds=True).items() for r in rows}
    assert all(final[key] == row for key, row in kept.items()), "a finished chunk was generated again"


def test_without_ray_installed_one_line_names_the_extra(tiny_model, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from m3eval.cli import main; "  # what a missing package gives
            "sys.argv = ['m3eval', 'run', '--engine', 'ray', '--tasks', 'demo_vqa', '--model-args', "
            f"'pretrained={tiny_model}', '--output', {str(tmp_path)!r}]; main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["m3eval: error: --engine ray needs Ray: pip install 'm3eval[ray]'"]


def test_an_unreachable_address_fails_quickly_naming_it(tiny_model, tmp_path):
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.monotonic()
    done = _m3eval(["--model-args", f"pretrained={tiny_model}", "--tasks", "demo_vqa", "--output", str(tmp_path),
                    "--engine", "ray", "--address", address], timeout=120)
    assert time.monotonic() - t0 < 30
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_ray_options_need_the_ray_engine(tiny_model, tmp_path):
    done = _m3eval(["--model-args", f"pretrained={tiny_model}", "--tasks", "demo_vqa", "--output", str(tmp_path),
                    "--num-workers", "2"], timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["m3eval: error: --num-workers: only with --engine ray"]


def test_a_model_that_does_not_load_in_a_worker_is_one_line(cluster, tmp_path):
    (tmp_path / "not-a-model").mkdir()
    done = _m3eval(["--model-args", f"pretrained={tmp_path / 'not-a-model'}", "--tasks", "demo_vqa", "--output",
                    str(tmp_path), "--engine", "ray", "--address", cluster], timeout=120)
    assert done.returncode == 1
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("m3eval: error:")]
    assert "the model did not load in a worker: ModelLoadError: model path" in line and "Traceback" not in done.stderr
