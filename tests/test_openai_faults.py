"""The `openai` backend against a server that misbehaves as a whole (issue 20, cases 30 and 31):
a reply far longer than asked for, and a server that dies or hangs mid-run. Real sockets on
127.0.0.1 throughout: the FakeOpenAIServer of test_models_openai.py, a closed port, and a
listener that accepts and never answers."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from m3eval.errors import ReplyTooLarge, ServerDown
from m3eval.models import GenerationConfig
from tests import test_models_openai as base
from tests.fake_openai import FakeOpenAIServer
from tests.test_models_openai import _run_tasks, adapter, text

server = base.server  # its fixture: a FakeOpenAIServer on a free port

ROOT = Path(__file__).resolve().parents[1]


# ---- case 30: what one reply may bring -----------------------------------------------

def test_a_huge_reply_is_not_read_past_the_bound_and_its_sample_fails_counted(server, tmp_path):
    """A 64 MB answer to a 3-token question (HUGE: no Content-Length, HUGELEN: with one) was read
    whole (each 10 MB answer cost ~58 MB of RSS and 30 MB in the log). Now reading stops at
    max_reply_bytes (default 64 KiB + 64 bytes a token) and the sample fails as ReplyTooLarge."""
    server.huge_bytes = 64 * 2 ** 20
    rows = _run_tasks(server, tmp_path, ["HUGE a", "HUGELEN b", "fine c"], max_retries=2)  # max_new_tokens=3
    for prompt in ("HUGE a", "HUGELEN b"):
        err = rows[prompt]["error"]
        assert err is not None and (err["stage"], err["type"]) == ("generate", "ReplyTooLarge"), rows[prompt]
        assert f"passed max_reply_bytes={64 * 1024 + 3 * 64} (max_new_tokens=3)" in err["message"]
        assert rows[prompt]["prediction"] == "" and server.attempts[prompt] == 1  # not asked again
    assert rows["fine c"]["error"] is None and rows["fine c"]["prediction"].startswith("0 images  | fine c")
    assert (tmp_path / "predictions" / "t.rank0.jsonl").stat().st_size < 10_000
    _wait_for(lambda: len(server.huge_sent) == 2)
    assert max(server.huge_sent) < 32 * 2 ** 20, server.huge_sent  # the client hung up: the rest never left


def test_max_reply_bytes_lets_a_long_reply_through_and_is_checked(server):
    server.huge_bytes = 300_000
    m = adapter(server, max_reply_bytes=400_000)
    assert m.generate([text("HUGE")], GenerationConfig(max_new_tokens=3)) == ["a" * 300_000]
    server.huge_bytes = 2 ** 20 + 1  # within 4 MB, but over what a prediction may hold (record.py): not logged
    out = list(adapter(server, max_reply_bytes=4_000_000).generate_stream([("k", text("HUGE"), GenerationConfig())]))
    assert isinstance(out[0][1], ReplyTooLarge) and "is 1,048,577 characters, over the 1,048,576" in str(out[0][1])
    from m3eval.models import ModelLoadError, check_backend
    with pytest.raises(ModelLoadError, match=r"max_reply_bytes=0: expected a whole number >= 1"):
        check_backend("openai", {"base_url": server.url, "max_reply_bytes": 0})


# ---- case 31: a server that is down or hung ------------------------------------------

def test_a_dead_server_stops_the_run_in_seconds_and_the_same_command_resumes(server, tmp_path):
    """The server goes away after 5 answers. It cost 6 attempts with backoff per remaining sample
    (~14 s a wave of `concurrency`, 2.4 h for 10k samples). Now the run stops within a second or
    two with one line naming the server (no credentials), exit 1; the 5 answers are kept and the
    same command against a working server asks only for the other 7."""
    server.answers_left = 5
    url = server.url.replace("http://", "http://alice:pw-9f8e7d@")

    def run(base_url: str) -> tuple[subprocess.CompletedProcess, float]:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "m3eval", "run", "--model", "openai", "--model-args",
                            f"base_url={base_url},model=tiny-vlm,concurrency=1,connect_timeout=0.3", "--tasks",
                            "demo_vqa", "--limit", "12", "--no-media", "--output", str(tmp_path), "--run-name", "r"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        return r, time.perf_counter() - t0

    r, took = run(url)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("m3eval: error")]
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith(f"m3eval: error: the server at {server.url} is not answering: ") and \
        "the same command resumes" in lines[0] and "pw-9f8e7d" not in r.stderr + r.stdout
    assert took < 30  # start-up included; the request part is ~0.5 s (6 attempts x 7 samples before)
    log = tmp_path / "r" / "predictions" / "demo_vqa.rank0.jsonl"
    kept = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(kept) == 5 and all(p["error"] is None and p["prediction"] for p in kept)

    again = FakeOpenAIServer()
    threading.Thread(target=again.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        r, _ = run(again.url)
    finally:
        again.shutdown()
        again.server_close()
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(again.requests) == 7 and "resuming: 5 of 12 samples already done" in r.stderr


@pytest.fixture
def hung_server():
    """Accepts connections and never answers; `accepted` counts them (one per attempt)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], held
    listener.close()
    for s in held:
        s.close()


def test_a_hung_server_stops_the_stream_after_one_timeout_wave(hung_server):
    """Every request times out: each sample made 6 attempts (6 x timeout, 12 min a wave at the
    default 120 s). Now the first wave's timeouts stop the stream, and no attempt follows."""
    from m3eval.models import load_model
    port, held = hung_server
    m = load_model("openai", {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "check_model": False,
                              "concurrency": 4, "timeout": 0.5, "connect_timeout": 0.2})
    t0 = time.perf_counter()
    with pytest.raises(ServerDown, match=rf"the server at http://127.0.0.1:{port}/v1 is not answering: 4 requests "
                                         r"in a row failed over [\d.]+ s \(the last: no answer within 0.5 s\)"):
        list(m.generate_stream((i, text(f"q{i}"), GenerationConfig()) for i in range(8)))
    assert time.perf_counter() - t0 < 3
    time.sleep(0.6)  # a retry would have connected by now
    assert len(held) == 4  # the first wave only: no retry, no second wave
    m.close()


def test_requests_in_flight_are_abandoned_when_the_breaker_trips(server):
    """Three requests lose their connection, again on retry, while one hangs: the stream stops
    within a second and close() returns without waiting for the hung request (its thread is a
    daemon: it holds neither the caller nor the process at exit)."""
    m = adapter(server, concurrency=4, server_down_after=3, connect_timeout=0.2, timeout=20)
    prompts = ["HANG", "DROP a", "DROP b", "DROP c"]
    t0 = time.perf_counter()
    with pytest.raises(ServerDown, match=r"3 requests in a row|[4-9] requests in a row"):
        list(m.generate_stream((p, text(p), GenerationConfig()) for p in prompts))
    m.close()
    assert time.perf_counter() - t0 < 3 and server.in_flight >= 1  # HANG is still waiting for its answer
    assert all(server.attempts[p] <= 3 for p in prompts[1:]) and server.attempts["HANG"] == 1


def test_sample_level_errors_never_trip_the_breaker(server):
    """A 400, a 500, a reply without an answer or one too large is that sample's failure: the
    server is there. Even with server_down_after=1 the stream goes on to the end."""
    server.huge_bytes = 200_000
    m = adapter(server, server_down_after=1, max_retries=1, concurrency=1)
    prompts = ["BAD a", "FLAKY b", "NOCHOICES c", "ERRBODY d", "HUGE e", "BAD f", "fine g"]
    outs = {k: out for k, out, _ in m.generate_stream((p, text(p), GenerationConfig()) for p in prompts)}
    assert sorted(outs) == sorted(prompts)  # every sample answered or failed on its own
    assert {k: type(v).__name__ for k, v in outs.items() if isinstance(v, Exception)} == {
        "BAD a": "BadMessageError", "FLAKY b": "RequestError", "NOCHOICES c": "RequestError",
        "ERRBODY d": "RequestError", "HUGE e": "ReplyTooLarge", "BAD f": "BadMessageError"}
    with pytest.raises(ServerDown, match=r"\(the last: HTTP 503\)"):  # a gateway's 503 is the server gone
        list(m.generate_stream([("k", text("DOWN"), GenerationConfig())]))


def _wait_for(condition, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
