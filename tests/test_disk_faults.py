"""Faults of the disk around a real run (issue 10.7; issue 20, case 28): a full or read-only disk
and an output that is a file give one line naming the path, before the model loads where they can,
and a failed write stops generation at once, losing nothing written before it. The tmpfs fixture
(tests/test_reliability.py) mounts a real small filesystem; it needs root."""
from __future__ import annotations

import errno
import json
import threading
import time

import pytest
from test_reliability import ENV, ROOT, _Handler, _Server, error_line, m3eval, remount, small_run, tmpfs  # noqa: F401

from m3eval.results import read_jsonl

# --- 10.7: OS errors, one line with the path, before the model loads -------------------------------

def test_full_disk_mid_log_is_one_line_and_loses_nothing(tiny_model, tmpfs):
    disk = tmpfs("16k")  # room for the lock, run.json and a few predictions
    args = ["run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_m3it_caption", "--instructions",
            "all", "--batch-size", "4", "--max-new-tokens", "8", "--threads", "1", "--no-media",
            "--output", str(disk), "--run-name", "r"]
    r = m3eval(*args)
    log = disk / "r" / "predictions" / "demo_m3it_caption.rank0.jsonl"
    assert r.returncode == 1
    assert error_line(r) == (f"m3eval: error: {log}: No space left on device; free some space and re-run the "
                             "same command (finished predictions are kept)")
    kept = len(read_jsonl(log))  # a torn last line is dropped, never mixed in
    assert 0 < kept < 128
    remount(disk, "size=8m")
    r = m3eval(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((disk / "r" / "results.json").read_text())
    assert results["timings"]["samples"] == 128 - kept  # what was written survived; only the rest ran
    preds = read_jsonl(disk / "r" / "predictions" / "demo_m3it_caption.jsonl")
    assert len(preds) == 128 and len({p["id"] for p in preds}) == 128


class _FirstFailure:
    """The time of the run's first failed log append (the real append, on a full tmpfs)."""

    def __init__(self, monkeypatch):
        from m3eval.run import relay  # a log append of one process (run/relay.py: Logs)
        self.at: float | None = None
        real = relay.append_jsonl

        def append(path, rows):
            try:
                real(path, rows)
            except OSError:
                self.at = self.at or time.perf_counter()
                raise
        monkeypatch.setattr(relay, "append_jsonl", append)


def test_a_full_disk_stops_the_model_at_the_next_batch(tiny_model, tmpfs, monkeypatch):
    """Issue 20.28: the first failed write ends generation; it does not run to the end of the task
    and throw the rest away. At most the batch under way when the write failed reaches the model."""
    from m3eval.run import generate
    from m3eval.run.pipeline import RunConfig, evaluate
    disk = tmpfs("16k")
    failure, sent = _FirstFailure(monkeypatch), []
    real_batch = generate._run_batch

    def run_batch(model, batch, gen):
        sent.append((time.perf_counter(), len(batch.prepared)))
        return real_batch(model, batch, gen)
    monkeypatch.setattr(generate, "_run_batch", run_batch)
    cfg = RunConfig(tasks=["demo_m3it_caption"], output=disk, model_args={"pretrained": str(tiny_model)},
                    run_name="r", batch_size=4, instructions="all", max_new_tokens=8, save_media=False,
                    progress=False)
    log = disk / "r" / "predictions" / "demo_m3it_caption.rank0.jsonl"
    with pytest.raises(OSError) as e:
        evaluate(cfg)
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(log)) and failure.at is not None
    after = sum(n for t, n in sent if t > failure.at)
    assert after <= 4, f"{after} samples sent to the model after the first failed write"
    assert 0 < len(read_jsonl(log)) < 128


def test_a_full_disk_stops_api_requests_and_the_rerun_asks_only_for_the_rest(tmpfs, monkeypatch):
    """Issue 20.28, streaming: no request is sent once a write failed (beyond the `concurrency`
    already in flight), and the re-run requests only what is not on disk."""
    from m3eval.run.pipeline import RunConfig, evaluate
    posts: list[float] = []

    class Slow(_Handler):  # 20 ms an answer: the run is still sending when the disk fills
        def do_POST(self):
            posts.append(time.perf_counter())
            time.sleep(0.02)
            super().do_POST()
    server = _Server(("127.0.0.1", 0), Slow)
    server.auth = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    disk = tmpfs("16k")
    failure = _FirstFailure(monkeypatch)
    cfg = RunConfig(tasks=["demo_m3it_caption"], output=disk, model="openai", run_name="r", instructions="all",
                    model_args={"base_url": f"http://127.0.0.1:{server.server_address[1]}/v1", "model": "tiny-vlm",
                                "concurrency": 4}, save_media=False, progress=False)
    log = disk / "r" / "predictions" / "demo_m3it_caption.rank0.jsonl"
    try:
        with pytest.raises(OSError) as e:
            evaluate(cfg)
        assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(log)) and failure.at is not None
        after = sum(t > failure.at for t in posts)
        assert after <= 4, f"{after} requests sent after the first failed write"
        kept = len(read_jsonl(log))
        assert 0 < kept < 128
        remount(disk, "size=8m")
        posts.clear()
        results, _ = evaluate(cfg)
        assert len(posts) == 128 - kept and results.timings.samples == 128 - kept
    finally:
        server.shutdown()
        server.server_close()


def test_read_only_output_is_refused_before_the_model_loads(tmpfs, tmp_path):
    disk = tmpfs("1m")
    remount(disk, "ro")
    r = m3eval("run", "--model-args", f"pretrained={tmp_path}/no-such-model", "--tasks", "demo_mc",
               "--output", str(disk))
    assert r.returncode == 1
    assert error_line(r) == f"m3eval: error: {disk}/no-such-model: Read-only file system; choose a writable --output"


def test_output_that_is_a_file_is_one_line(tmp_path):
    f = tmp_path / "out.txt"
    f.write_text("not a folder")
    r = m3eval("run", "--model-args", f"pretrained={tmp_path}/no-such-model", "--tasks", "demo_mc", "--output", str(f))
    assert r.returncode == 1
    assert error_line(r) == (f"m3eval: error: {f}/no-such-model: Not a directory; "
                             "a path on the way is a file, not a folder")
