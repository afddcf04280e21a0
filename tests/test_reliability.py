"""Faults around a real run (issue 10: 3, 7, 15, 16 and the kept behaviours: kill -9, disk full,
secrets): the run folder is held by one run, OS errors are one line naming the path and come
before the model loads where they can, run files are readable by others as the umask says,
and an interrupted write leaves nothing that a later run trips over."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from m3eval.results import public_args, read_jsonl
from m3eval.run.distributed import Dist
from m3eval.run.lock import LOCK_NAME, clean_stale_tmp, run_folder_lock

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}


def m3eval(*args: str, timeout: int = 300, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m3eval", *args], cwd=ROOT, env=env or ENV, capture_output=True,
                          text=True, timeout=timeout, **kw)


def small_run(model: Path, output: Path, *extra: str) -> list[str]:
    return ["run", "--model-args", f"pretrained={model}", "--tasks", "demo_mc", "--limit", "4", "--batch-size", "4",
            "--max-new-tokens", "4", "--threads", "1", "--output", str(output), "--run-name", "r", *extra]


def error_line(r: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("m3eval: error")]
    assert len(lines) == 1, r.stderr[-3000:]
    return lines[0]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a real tmpfs of a given size (root only): a disk that fills up or is read-only."""
    mounted: list[Path] = []

    def mount(size: str, name: str = "disk") -> Path:
        point = tmp_path / name
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {r.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)


# --- 10.3: one run at a time in a run folder ---------------------------------------------------

def _alive(pid: int) -> bool:
    try:  # a zombie (dead, not yet reaped by a container's pid 1) counts as gone
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_the_decoding_worker_dies_with_its_run(tiny_model, tmp_path):
    """A run that ends abruptly (kill -9, the CLI's os._exit) while its decoding worker is blocked
    handing over a prefetched batch no one will read: the worker used to stay alive for good,
    holding its memory (it is now killed with its parent, PR_SET_PDEATHSIG)."""
    stamp = tmp_path / "worker"
    code = ("import os, sys\n"
            "from m3eval.cli import main\n"
            "from m3eval.models.hf import HFAdapter\n"
            "def first(self, inputs, gen):\n"
            "    import pathlib, time\n"
            "    time.sleep(2)  # the worker fills the pipe with prefetched batches meanwhile\n"
            f"    pathlib.Path({str(stamp)!r}).write_text(' '.join(pathlib.Path(f'/proc/{{os.getpid()}}/task/{{t}}/children').read_text() for t in os.listdir(f'/proc/{{os.getpid()}}/task')))\n"
            "    os._exit(3)\n"
            "HFAdapter.generate_prepared = first\n"
            "sys.argv = sys.argv[:1] + sys.argv[1:]\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code, "run", "--model-args", f"pretrained={tiny_model}", "--tasks",
                        "demo_m3it_caption", "--instructions", "all", "--batch-size", "8", "--output",
                        str(tmp_path / "out"), "--threads", "1"], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                       stderr=(tmp_path / "stderr").open("w"), timeout=300)  # a pipe would wait for the orphan too
    assert r.returncode == 3, (tmp_path / "stderr").read_text()[-2000:]
    workers = [int(w) for w in stamp.read_text().split()]
    assert workers, "the run should have forked its decoding worker"
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    try:
        assert not any(_alive(w) for w in workers), f"decoding worker {workers} outlived its run"
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_is_untouched(tiny_model, tmp_path):
    # A's tasks take it ~8 s to generate (alone): B, started once A writes its first prediction, meets
    # A's lock after its own start-up (libraries imported), also on a loaded machine
    a_tasks = ["demo_m3it_caption", "demo_vqa", "demo_mc", "demo_captions"]
    first = ["run", "--model-args", f"pretrained={tiny_model}", "--tasks", ",".join(a_tasks), "--instructions",
             "all", "--batch-size", "1", "--max-new-tokens", "24", "--output", str(tmp_path), "--run-name", "r",
             "--threads", "1"]
    second = [*first[:4], "demo_m3it_zh", *first[5:], "--limit", "2"]  # same settings, another task
    a = subprocess.Popen([sys.executable, "-m", "m3eval", *first], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        log = tmp_path / "r" / "predictions" / "demo_m3it_caption.rank0.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and a.poll() is None and not log.exists():
            time.sleep(0.05)
        assert a.poll() is None and log.exists(), "the first run should be generating"
        run_json = (tmp_path / "r" / "run.json").read_text()
        b = m3eval(*second)
        assert b.returncode == 1
        line = error_line(b)
        assert f"{tmp_path / 'r'} is in use by another m3eval run (pid {a.pid}" in line
        assert (tmp_path / "r" / "run.json").read_text() == run_json  # B changed nothing
        assert a.poll() is None, "the first run goes on"
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    # kill -9 drops the lock with the process: the folder can be used (and resumed) at once
    b = m3eval(*second)
    assert b.returncode == 0, b.stderr[-2000:]
    tasks = json.loads((tmp_path / "r" / "run.json").read_text())["tasks"]
    assert set(tasks) == {*a_tasks, "demo_m3it_zh"}


def test_ranks_of_another_launch_cannot_enter(tiny_model, tmp_path):
    """torchrun with 2 ranks into a folder this process holds: the launch fails with the
    one-line reason, and no rank hangs in a barrier."""
    run_dir = tmp_path / "r"
    with run_folder_lock(run_dir, Dist()):
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            "-m", "m3eval", *small_run(tiny_model, tmp_path)], cwd=ROOT,
                           env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240)
    assert r.returncode != 0
    assert f"{run_dir} is in use by another m3eval run (pid {os.getpid()}" in r.stderr
    assert not (run_dir / "run.json").exists()


def test_lock_is_exclusive_between_processes_and_released_on_exit(tmp_path):
    run_dir = tmp_path / "r"
    code = ("import sys; from pathlib import Path; from m3eval.run.distributed import Dist; "
            "from m3eval.run.lock import run_folder_lock\n"
            "with run_folder_lock(Path(sys.argv[1]), Dist()):\n    print('entered')")
    with run_folder_lock(run_dir, Dist()):
        r = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 1 and "RunError" in r.stderr and "in use by another m3eval run" in r.stderr
        assert (run_dir / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} on ")
    r = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.strip() == "entered", r.stderr


def test_a_forked_child_does_not_keep_the_folder_after_a_kill(tmp_path):
    """The decoding worker is a forked child: when its run is killed (-9), the folder is free at
    once, not when the orphaned worker notices (DataLoader checks every few seconds)."""
    run_dir = tmp_path / "r"
    code = ("import os, sys, time, multiprocessing; from pathlib import Path; from m3eval.run.distributed import Dist; "
            "from m3eval.run.lock import run_folder_lock\n"
            "def nap():\n    os.close(1); os.close(2); time.sleep(60)\n"  # the test reads stdout to its end
            "with run_folder_lock(Path(sys.argv[1]), Dist()):\n"
            "    child = multiprocessing.get_context('fork').Process(target=nap)\n"
            "    child.start()\n"
            "    print(child.pid, flush=True)\n"
            "    os.kill(os.getpid(), 9)")
    r = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, capture_output=True, text=True)
    orphan = int(r.stdout.split()[0])
    try:
        os.kill(orphan, 0)  # still alive
        with run_folder_lock(run_dir, Dist()):
            pass
    finally:
        os.kill(orphan, signal.SIGKILL)


# --- 10.15 and 10.16: file modes and stale temp files ------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_run_files_follow_the_umask(tiny_model, tmp_path, umask, mode):
    r = m3eval(*small_run(tiny_model, tmp_path), preexec_fn=lambda: os.umask(umask))
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "r"
    files = [run / "results.json", run / "run.json", run / "predictions" / "demo_mc.jsonl",
             run / "samples" / "demo_mc.jsonl", *(run / "media").rglob("*.jpg")]
    assert len(files) > 4
    assert {str(f.relative_to(run)): oct(f.stat().st_mode & 0o777) for f in files} == \
           {str(f.relative_to(run)): oct(mode) for f in files}


def test_the_next_run_removes_stale_temp_files(tiny_model, tmp_path):
    run = tmp_path / "r"
    assert m3eval(*small_run(tiny_model, tmp_path)).returncode == 0
    old = time.time() - 3600
    stale = [run / ".results.json.k3j_9xq2.tmp", run / "samples" / ".demo_mc.jsonl.abcdefgh.tmp",
             run / "media" / "demo_mc" / ".x.jpg.a1b2c3d4.tmp"]
    mine = [run / "notes.tmp", run / ".draft.tmp"]  # not our pattern: a user's files stay
    for f in stale + mine:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("half")
        os.utime(f, (old, old))
    r = m3eval(*small_run(tiny_model, tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert [f for f in stale if f.exists()] == [] and all(f.exists() for f in mine)


def test_stale_temp_clean_up_spares_files_newer_than_the_run(tmp_path):
    new = tmp_path / ".results.json.abcdefgh.tmp"
    new.write_text("being written")
    assert clean_stale_tmp(tmp_path, before=time.time() - 60) == [] and new.exists()


# --- kept behaviours: kill -9 during the results write ----------------------------------------------

def test_kill_9_during_the_results_write_leaves_whole_files(tmp_path):
    """SIGKILL `m3eval score` the moment a temp file of an atomic write appears (samples or
    results): every file is still whole JSON, and the next command removes the orphan."""
    run = tmp_path / "r"
    shutil.copytree(ROOT / "results" / "demo" / "tiny-llava", run)
    names = sorted(f.name for f in [run / "results.json", *(run / "samples").glob("*.jsonl")])
    caught = 0
    for _ in range(10):
        if caught >= 3:
            break
        p = subprocess.Popen([sys.executable, "-m", "m3eval", "score", str(run)], cwd=ROOT, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while p.poll() is None:
            if list(run.glob(".*.tmp")) or list((run / "samples").glob(".*.tmp")):
                p.send_signal(signal.SIGKILL)
                caught += 1
                break
        p.wait()
        for f in [run / "results.json", *(run / "samples").glob("*.jsonl")]:
            text = f.read_text()
            if f.suffix == ".json":
                json.loads(text)
            else:
                [json.loads(line) for line in text.splitlines()]
        assert sorted(f.name for f in [run / "results.json", *(run / "samples").glob("*.jsonl")]) == names
    assert caught, "no kill landed during a write (the writes were too quick to catch)"
    time.sleep(0.05)  # the orphans are older than the next command's start
    r = m3eval("score", str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    assert list(run.rglob("*.tmp")) == []


# --- kept behaviours: secrets never stored -----------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    auth: list[str | None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args):
        pass

    def _send(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # /v1/models, or /v1/models/tiny-vlm (the official client's retrieve)
        model = {"id": "tiny-vlm", "object": "model", "created": 0, "owned_by": "test"}
        self._send(model if self.path.rstrip("/").endswith("tiny-vlm") else {"object": "list", "data": [model]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.auth.append(self.headers.get("Authorization"))
        self._send({"id": "x", "object": "chat.completion", "created": 0, "model": "tiny-vlm",
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "A"}}]})


def test_an_api_key_is_sent_but_never_stored(tmp_path):
    server = _Server(("127.0.0.1", 0), _Handler)
    server.auth = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        r = m3eval("run", "--model", "openai", "--model-args", f"base_url={url},model=tiny-vlm", "--tasks", "demo_mc",
                   "--limit", "4", "--output", str(tmp_path), "--run-name", "api",
                   env={**ENV, "OPENAI_API_KEY": "sk-test-SECRET-4242"})
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, r.stderr[-2000:]
    assert server.auth and set(server.auth) == {"Bearer sk-test-SECRET-4242"}
    files = [f for f in (tmp_path / "api").rglob("*") if f.is_file()]
    assert len(files) >= 4
    assert [f for f in files if b"SECRET-4242" in f.read_bytes()] == []
    assert "SECRET-4242" not in r.stdout + r.stderr


def test_secret_model_args_are_redacted_where_stored():
    args = {"pretrained": "x", "api_key": "sk-1", "hf_token": "hf_2", "password": "p", "api_key_env": "MY_KEY"}
    assert public_args(args) == {"pretrained": "x", "api_key": "<redacted>", "hf_token": "<redacted>",
                                 "password": "<redacted>", "api_key_env": "MY_KEY"}



# --- kept behaviours: Ctrl-C --------------------------------------------------------------------------

def test_ctrl_c_exits_130_keeps_what_finished_and_the_rerun_completes(tiny_model, tmp_path):
    args = ["run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_m3it_caption", "--instructions",
            "all", "--batch-size", "1", "--max-new-tokens", "24", "--output", str(tmp_path), "--run-name", "r",
            "--threads", "1"]
    p = subprocess.Popen([sys.executable, "-m", "m3eval", *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    log = tmp_path / "r" / "predictions" / "demo_m3it_caption.rank0.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not (log.exists() and log.read_text().count("\n") >= 10):
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted; finished predictions are saved" in err and "Traceback" not in err
    kept = len(read_jsonl(log))
    assert 10 <= kept < 128
    r = m3eval(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "results.json").read_text())["timings"]["samples"] == 128 - kept


def test_ctrl_c_at_a_terminal_reaches_the_worker_too_and_all_leave_quietly(tiny_model, tmp_path):
    """A terminal's Ctrl-C signals the whole process group: the run and its decoding worker.
    Exit 130 with the one line, no traceback from either, and no process left behind."""
    args = ["run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_m3it_caption", "--instructions",
            "all", "--batch-size", "1", "--max-new-tokens", "24", "--output", str(tmp_path), "--run-name", "r",
            "--threads", "1"]
    p = subprocess.Popen([sys.executable, "-m", "m3eval", *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = tmp_path / "r" / "predictions" / "demo_m3it_caption.rank0.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not (log.exists() and log.read_text().count("\n") >= 10):
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted; finished predictions are saved" in err and "Traceback" not in err
    deadline = time.time() + 10  # the worker leaves within its own check interval at the latest
    while time.time() < deadline:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.killpg(p.pid, 0)
