"""Two CPU processes under torchrun (gloo) give the same predictions and scores
as one process: ranks take batches as they finish and send them to rank 0, which merges and
scores. So do two torchrun 'nodes' (--nnodes=2, c10d rendezvous) of one process each, sharing
no folder.
A rank that stalls (SIGSTOP) stops the launch within --stall-timeout, naming it."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from m3eval.errors import UsageError
from m3eval.results import read_jsonl
from m3eval.run.distributed import JOIN_FLOOR_S, init_distributed, stall_timeout

TASKS = "demo_vqa,demo_mc,demo_video_qa"
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def m3eval_run(args: list[str], launcher: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*launcher, "-m", "m3eval", "run", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


def common(tiny_model: Path) -> list[str]:
    return ["--model-args", f"pretrained={tiny_model}", "--tasks", TASKS, "--limit", "10", "--threads", "1",
            "--run-name", "r"]


def predictions(run_dir: Path) -> dict[str, list[tuple[str, str]]]:
    return {task: [(r["id"], r["prediction"]) for r in read_jsonl(run_dir / "predictions" / f"{task}.jsonl")]
            for task in TASKS.split(",")}


@pytest.fixture(scope="module")
def one_process(tiny_model, tmp_path_factory) -> Path:
    """The reference: the tasks run by one process."""
    out = tmp_path_factory.mktemp("one")
    one = m3eval_run([*common(tiny_model), "--output", str(out), "--batch-size", "8"], [sys.executable], ROOT)
    assert one.returncode == 0, one.stderr[-2000:]
    return out / "r"


def test_two_ranks_equal_one_process(tiny_model, one_process, tmp_path):
    two = m3eval_run([*common(tiny_model), "--output", str(tmp_path / "two"), "--batch-size", "3"], TORCHRUN, ROOT)
    assert two.returncode == 0, two.stderr[-3000:]
    assert predictions(one_process) == predictions(tmp_path / "two" / "r")
    assert not list((tmp_path / "two" / "r" / "predictions").glob("*.rank*.jsonl"))
    ra = json.loads((one_process / "results.json").read_text())
    rb = json.loads((tmp_path / "two" / "r" / "results.json").read_text())
    assert rb["run"]["config"]["world_size"] == 2
    assert {t: e["metrics"] for t, e in ra["tasks"].items()} == {t: e["metrics"] for t, e in rb["tasks"].items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(run_dir: Path) -> dict[str, list[dict]]:
    """Each task's prediction lines, every field but the timing."""
    return {task: [{k: v for k, v in r.items() if k != "seconds"}
                   for r in read_jsonl(run_dir / "predictions" / f"{task}.jsonl")] for task in TASKS.split(",")}


def _media(run_dir: Path) -> dict[str, bytes]:
    return {str(f.relative_to(run_dir)): f.read_bytes() for f in (run_dir / "media").rglob("*.jpg")}


def _two_nodes(nodes: list[Path], args: list[str], run_id: str) -> list[str]:
    """Two torchrun launches of one process each, --nnodes=2, meeting at a c10d rendezvous (node
    0's agent hosts the store), each in its own working directory. The rendezvous gives rank 0
    to the node whose address sorts first (then the lower pid): node 0's --local-addr sorts first,
    so it is rank 0's node in every launch. Returns each node's stderr."""
    endpoint = f"127.0.0.1:{_free_port()}"
    launches = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
         "--node_rank", str(node), "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", run_id,
         "--rdzv_conf", f"is_host={int(node == 0)}", "--local-addr", f"127.0.0.{node + 1}", "--max_restarts", "0",
         "-m", "m3eval", "run", *args],
        cwd=nodes[node], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    errs = []
    try:
        for launch in launches:
            errs.append(launch.communicate(timeout=240)[1])
    finally:  # a hung launch fails the test, never hangs it
        for launch in launches:
            launch.kill()
            launch.wait()
    assert [launch.returncode for launch in launches] == [0, 0], "\n".join(e[-3000:] for e in errs)
    return errs


def test_two_nodes_equal_one_process(tiny_model, one_process, tmp_path):
    """Multi-node as torchrun does it, on one machine, the nodes sharing no folder: each runs in
    its own working directory with a relative --output, as on machines with local disks only.
    Rank 1 sends its batches to rank 0 (run/relay.py), so its node writes nothing and rank 0's run
    folder holds every prediction and thumbnail. A second launch with a larger --limit resumes:
    both ranks plan from the finished set rank 0 read (node 1 sees none), and generate the rest
    only. Each node's only process has LOCAL_RANK 0; the ranks come from the rendezvous."""
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for node in nodes:
        node.mkdir()
    args = [*common(tiny_model), "--output", "runs", "--batch-size", "3"]
    limit = args.index("--limit") + 1
    _two_nodes(nodes, [*args[:limit], "4", *args[limit + 1:]], "first")
    errs = _two_nodes(nodes, args, "again")
    sizes = [len(rows) for rows in _rows(one_process).values()]
    assert f"resuming: {sum(min(n, 4) for n in sizes)} of {sum(sizes)} samples already done" in errs[0]
    assert list(nodes[1].iterdir()) == []  # the output folder lives only where rank 0 runs
    run_dir = nodes[0] / "runs" / "r"
    assert _rows(one_process) == _rows(run_dir)
    assert all(r["scored"] for r in _rows(run_dir)["demo_vqa"])  # each rank scores its batches (prescore.py)
    assert not list((run_dir / "predictions").glob("*.rank*.jsonl"))
    assert _media(run_dir) == _media(one_process) and _media(run_dir)
    ra = json.loads((one_process / "results.json").read_text())
    rb = json.loads((run_dir / "results.json").read_text())
    assert rb["run"]["config"]["world_size"] == 2 and rb["timings"]["samples"] == sum(max(n - 4, 0) for n in sizes)
    assert {t: e["metrics"] for t, e in ra["tasks"].items()} == {t: e["metrics"] for t, e in rb["tasks"].items()}


def _children(parent: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            pass
    return found


def _ranks(launcher: int) -> dict[int, int]:
    """{rank: pid} of the launcher's worker processes (its children with RANK set)."""
    found = {}
    for pid in _children(launcher):
        try:
            env = dict(e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in e)
            found[int(env["RANK"])] = pid
        except (OSError, KeyError, ValueError):
            pass
    return found


def _running(pid: int) -> bool:
    """Not exited (a zombie waiting for its parent to reap it has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(condition, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what} within {seconds:.0f} s")
        time.sleep(0.02)


def _ranks_once_rank_1_has_sent(launch: subprocess.Popen, run_dir: Path) -> dict[int, int]:
    """{rank: pid} of a two-rank launch, once rank 1's first batches are in rank 0's run folder."""
    _wait(lambda: list((run_dir / "predictions").glob("*.rank1.jsonl")) or launch.poll() is not None,
          240, "rank 1's batches did not reach rank 0")
    ranks = _ranks(launch.pid)
    assert sorted(ranks) == [0, 1] and launch.poll() is None
    return ranks


def test_a_stalled_rank_stops_the_launch_naming_it_and_keeps_what_finished(tiny_model, one_process, tmp_path):
    """SIGSTOP rank 1 once it has started generating. Rank 0 waits for it (a slow rank is waited
    for) until its heartbeat has been still for --stall-timeout, then stops with one line naming
    rank 1 and its pid, not after torch's 30-minute collective timeout. (torchrun then sends the
    stopped rank SIGTERM, and SIGKILL 30 s later; the test kills it at once to save the wait.)
    What finished is kept, as one process makes it (resuming a folder a killed launch left is
    tests/test_resume.py's; a second launch here would double this test's time)."""
    # batch size 1: thirty batches, so work is left once rank 1 has written its first (ranks take batches as they go)
    args = [*common(tiny_model), "--output", str(tmp_path), "--batch-size", "1", "--stall-timeout", "3"]
    run_dir, logs = tmp_path / "r", tmp_path / "logs"
    launcher = [*TORCHRUN, "--log-dir", str(logs), "--redirects", "3"]  # each rank's stderr in its own file
    launch = subprocess.Popen([*launcher, "-m", "m3eval", "run", *args], cwd=ROOT, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ranks: dict[int, int] = {}
    workers: list[int] = []
    try:
        ranks = _ranks_once_rank_1_has_sent(launch, run_dir)
        os.kill(ranks[1], signal.SIGSTOP)
        workers = [w for pid in ranks.values() for w in _children(pid)]  # the forked decoding workers
        # Rank 1 may be stopped while it still generates (rank 0 names it within the stall timeout) or
        # just after it arrived at a task's gather (the collective then ends at the process group's
        # bounded timeout, JOIN_FLOOR_S here, not torch's 30 minutes, and rank 0 names it then)
        _wait(lambda: not _running(ranks[0]), JOIN_FLOOR_S + 30, "rank 0 did not stop after rank 1 stalled")
        os.kill(ranks[1], signal.SIGKILL)  # what torchrun does 30 s after its SIGTERM
        assert launch.wait(timeout=60) != 0
    finally:
        for pid in [*ranks.values(), *workers]:  # nothing left behind, stopped or not
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        launch.kill()
        launch.wait()
    (rank0_err,) = logs.glob("*/attempt_0/0/stderr.log")
    err = rank0_err.read_text()
    assert "Traceback" not in err, err[-3000:]
    (line,) = [ln for ln in err.splitlines() if ln.startswith("m3eval: error:")]
    assert f"rank 1 (pid {ranks[1]} on " in line and "stalled" in line and "3 s" in line, line
    kept = {(f.name.split(".")[0], r["id"]): r["prediction"]  # <task>.jsonl and <task>.rank<N>.jsonl
            for f in (run_dir / "predictions").glob("*.jsonl") for r in read_jsonl(f)}
    assert kept
    reference = {(t, i): p for t, rows in predictions(one_process).items() for i, p in rows}
    assert all(reference[key] == p for key, p in kept.items())  # kept as one process makes them


def test_a_lost_rank_stops_the_launch_and_the_same_command_resumes(tiny_model, one_process, tmp_path):
    """kill -9 rank 1 once its first batches have reached rank 0 (each batch paced to 0.2 s, so
    work is left). torchrun stops the launch; what rank 0 received is kept. The same command
    again plans from what rank 0 kept, generates only the rest, and ends with every sample
    once, as one process makes them."""
    script, run_dir = tmp_path / "paced.py", tmp_path / "r"
    script.write_text(PACED)
    command = [*TORCHRUN, str(script), "run", *common(tiny_model), "--model", "paced", "--output", str(tmp_path),
               "--batch-size", "1"]
    env = {**ENV, "PACE_0": "0.2", "PACE_1": "0.2", "PYTHONPATH": str(ROOT)}
    launch = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ranks = _ranks_once_rank_1_has_sent(launch, run_dir)
        os.kill(ranks[1], signal.SIGKILL)
        assert launch.wait(timeout=120) != 0
    finally:
        launch.kill()
        launch.wait()
    kept = [r for f in (run_dir / "predictions").glob("*.rank1.jsonl") for r in read_jsonl(f)]
    assert kept  # rank 1's finished batches, in rank 0's folder
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming:" in again.stderr
    assert _rows(one_process) == _rows(run_dir)
    ra = json.loads((one_process / "results.json").read_text())
    rb = json.loads((run_dir / "results.json").read_text())
    assert {t: e["metrics"] for t, e in ra["tasks"].items()} == {t: e["metrics"] for t, e in rb["tasks"].items()}


SLOW_RANK = """
import sys, threading, time
from m3eval.run.distributed import init_distributed
d = init_distributed(1.0)
assert [t.name for t in threading.enumerate()].count("m3eval-heartbeat") == 1
if d.rank == 1:
    time.sleep(3)  # three times the stall timeout, but alive: its heartbeat goes on
d.barrier()
if d.rank == 0:
    time.sleep(1.5)
got = d.gather(d.rank)
sys.stdout.write(f"rank {d.rank} gathered {got}\\n")  # one write: print's separate end could interleave
sys.stdout.flush()
d.close()
"""


def test_a_slow_rank_is_waited_for(tmp_path):
    """A rank that takes several stall timeouts to reach a barrier or gather, but is alive, is
    waited for (ranks finish their shares minutes apart): only a silent heartbeat is a stall."""
    script = tmp_path / "slow.py"
    script.write_text(SLOW_RANK)
    r = subprocess.run([*TORCHRUN, str(script)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0 gathered [0, 1]" in r.stdout and "rank 1 gathered None" in r.stdout


def test_one_process_starts_no_heartbeat(monkeypatch):
    """world size 1: no thread, no store, no torch.distributed; the setting is not even read."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("M3EVAL_STALL_TIMEOUT", "not a number")
    before = threading.active_count()
    d = init_distributed()
    d.barrier()
    assert d.watch is None and d.gather("x") == ["x"] and threading.active_count() == before
    d.close()


@pytest.mark.parametrize("text", ["abc", "0", "-5", "nan", "inf", "1e9"])
def test_a_bad_stall_timeout_is_a_usage_error(monkeypatch, text):
    monkeypatch.setenv("M3EVAL_STALL_TIMEOUT", text)
    with pytest.raises(UsageError, match="M3EVAL_STALL_TIMEOUT"):
        stall_timeout()
    assert stall_timeout(7.0) == 7.0  # the flag wins
    r = subprocess.run([sys.executable, "-m", "m3eval", "run", "--tasks", "demo_mc", "--stall-timeout", text],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--stall-timeout: expected a number of seconds" in r.stderr, r.stderr


def test_the_stall_timeout_setting(monkeypatch):
    monkeypatch.delenv("M3EVAL_STALL_TIMEOUT", raising=False)
    assert stall_timeout() == 300
    monkeypatch.setenv("M3EVAL_STALL_TIMEOUT", " 42.5 ")
    assert stall_timeout() == 42.5


PACED = """
import os, sys, time
from m3eval.models.hf import HFAdapter
from m3eval.models.registry import register_backend


class Paced(HFAdapter):
    '''The tiny model; rank N takes $PACE_N seconds more for every batch. Each batch is logged
    with its rank (to $BATCH_LOG, if set).'''

    def generate_prepared(self, inputs, gen):
        rank = os.environ["RANK"]
        time.sleep(float(os.environ.get(f"PACE_{rank}", "0")))
        out = super().generate_prepared(inputs, gen)
        if "BATCH_LOG" in os.environ:
            with open(os.environ["BATCH_LOG"], "a") as f:
                f.write(f"{rank} {len(out)}\\n")
        return out


register_backend("paced", Paced)
from m3eval.cli import main
sys.argv = ["m3eval", *sys.argv[1:]]
main()
"""


def test_a_slow_rank_takes_fewer_batches(tiny_model, tmp_path):
    """Batches are taken as ranks finish (claims.py), in prefetch's forked worker too: rank 1,
    half a second slower a batch, takes fewer of the 16 batches than rank 0, and every batch is
    generated once."""
    script, log = tmp_path / "paced.py", tmp_path / "batches.log"
    script.write_text(PACED)
    launch = subprocess.run([*TORCHRUN, str(script), "run", "--model", "paced", "--model-args",
                             f"pretrained={tiny_model}", "--tasks", "demo_vqa", "--batch-size", "4", "--threads", "1",
                             "--output", str(tmp_path), "--run-name", "r"],
                            cwd=ROOT, env={**ENV, "BATCH_LOG": str(log), "PACE_1": "0.5", "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=300)
    assert launch.returncode == 0, launch.stderr[-3000:]
    taken = [line.split() for line in log.read_text().splitlines()]
    by_rank = {r: sum(1 for rank, _ in taken if rank == r) for r in ("0", "1")}
    assert sum(int(n) for _, n in taken) == 64 and by_rank["0"] + by_rank["1"] == 16
    assert by_rank["0"] >= 11 and by_rank["1"] <= 5, by_rank  # a fixed split gives each 8
    assert len(read_jsonl(tmp_path / "r" / "predictions" / "demo_vqa.jsonl")) == 64
