"""Continuous submission on the `openai` backend: a local latency server on 127.0.0.1
answers every chat completion after a fixed 250 ms; 256 requests go through the run loop
(m3eval.run.generate.generate_tasks, two tasks of 128 samples) at concurrency 32 and batch size 4.
Ideal wall time: 256 / 32 x 0.25 s = 2.0 s; target: within 15%.

    python benchmarks/bench_api.py [--requests 256] [--concurrency 32] [--batch-size 4] [--latency 0.25]

    python benchmarks/bench_api.py --requests 1024 --concurrency 64   # a saturated server at scale
    python benchmarks/bench_api.py ... --client asyncio   # a trivial client: the server-limited baseline
    python benchmarks/bench_api.py --server transformers --requests 128 --concurrency 64   # the real server

The server runs in its own process (so its work does not share our GIL, as a real
server's would not), is bounded (at most 2x --concurrency requests handled at once, so its
own cap is never what limits the client; 4x the requests asked for in all) and stops by itself
after 120 s; we stop it by its PID when done. It counts the chat requests it is handling at once
and the client reads the peak (and the time-weighted mean over the busy span) from GET /stats:
a peak equal to --concurrency shows the client keeps that many requests in flight.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from m3eval.data.media import VideoRule  # noqa: E402
from m3eval.models.base import GenerationConfig  # noqa: E402
from m3eval.models.registry import load_model  # noqa: E402
from m3eval.run.generate import TaskPlan, generate_tasks  # noqa: E402
from m3eval.types import Sample  # noqa: E402

REPLY = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "latency",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "an answer"}}]}).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "latency", "object": "model"}]}).encode()


def serve(port_file: str, latency: float, max_requests: int, cap: int) -> None:
    """The server process: a minimal HTTP/1.1 keep-alive server on asyncio (cheap per request,
    so the figure measures the client side), at most `cap` requests at once and `max_requests`
    in all; it writes its port to `port_file` and stops by itself after 120 s. GET /stats
    returns the in-flight figures (peak, mean over first-arrival..last-reply, request count)."""
    left = max_requests
    slots = asyncio.Semaphore(cap)
    inflight = peak = handled = 0
    busy = first = last = 0.0

    def stats_body() -> bytes:
        span = last - first
        return json.dumps({"peak_inflight": peak, "handled": handled,
                           "mean_inflight": busy / span if span > 0 else 0.0, "span_s": span}).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal left, inflight, peak, handled, busy, first, last
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if head.startswith(b"GET /v1/stats") or head.startswith(b"GET /stats"):
                    status, body = b"200 OK", stats_body()
                elif head.startswith(b"GET"):
                    status, body = b"200 OK", MODELS
                else:
                    left -= 1
                    # in flight = from the request's full arrival to its reply being written
                    t0 = time.perf_counter()
                    first = first or t0
                    inflight += 1
                    peak = max(peak, inflight)
                    async with slots:
                        await asyncio.sleep(latency)
                    status, body = (b"200 OK", REPLY) if left >= 0 else (b"503 Service Unavailable", b"{}")
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                if head.startswith(b"POST"):
                    inflight -= 1
                    handled += 1
                    last = time.perf_counter()
                    busy += last - t0
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await asyncio.sleep(120)

    asyncio.run(run())


def run_m3eval(url: str, a: argparse.Namespace, out: Path, counter: InFlight | None) -> tuple[int, int, float]:
    """The harness path: the openai backend fed by the run loop. Returns (predictions, errors,
    wall seconds of the run loop, model loading excluded). With `counter`, each HTTP attempt is
    counted client-side (a server that does not report its own in-flight figure)."""
    model = load_model("openai", {"base_url": url, "concurrency": a.concurrency, "max_retries": 0})
    if counter is not None:
        model._attempt = counter.wrap(model._attempt)  # type: ignore[attr-defined]
    plans = []
    for t, n in (("bench_a", a.requests // 2), ("bench_b", a.requests - a.requests // 2)):
        samples = [Sample(id=f"{t}-{i}", task=t, prompt=f"question {t} {i}", references=["x"]) for i in range(n)]
        spec = type("Spec", (), {"task": t})()
        plans.append(TaskPlan(spec, samples, GenerationConfig(max_new_tokens=a.max_tokens),
                              [samples[i:i + a.batch_size] for i in range(0, n, a.batch_size)],
                              out / f"{t}.rank0.jsonl", VideoRule(frames=8), None))
    t0 = time.perf_counter()
    generate_tasks(plans, model, lambda plan, stats: None, progress=False)
    wall = time.perf_counter() - t0
    model.close()
    rows = [json.loads(line) for p in plans for line in p.log.read_text().splitlines()]
    return len(rows), sum(r["error"] is not None for r in rows), wall


class InFlight:
    """Client-side count of requests in flight (thread-safe): current, peak, time-weighted mean."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.handled = 0
        self.busy = self.first = self.last = 0.0

    def enter(self) -> float:
        with self.lock:
            t0 = time.perf_counter()
            self.first = self.first or t0
            self.now += 1
            self.peak = max(self.peak, self.now)
            return t0

    def leave(self, t0: float) -> None:
        with self.lock:
            self.now -= 1
            self.handled += 1
            self.last = time.perf_counter()
            self.busy += self.last - t0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            t0 = self.enter()
            try:
                return fn(*args)
            finally:
                self.leave(t0)
        return counted

    def stats(self) -> dict[str, Any]:
        span = self.last - self.first
        return {"peak_inflight": self.peak, "handled": self.handled,
                "mean_inflight": self.busy / span if span > 0 else 0.0, "span_s": span}


def run_asyncio(url: str, a: argparse.Namespace, model: str, counter: InFlight) -> tuple[int, int, float]:
    """A trivial client (one keep-alive connection per slot, no harness): the server-limited
    baseline, to tell whether a gap to the ideal is the harness's or the server's."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    content = [{"type": "text", "text": "question bench_a 0"}]  # shaped as the openai backend sends it
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}],
                       "max_tokens": a.max_tokens, "temperature": 0.0, "top_p": 1.0}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    left, done, errors = a.requests, 0, 0

    async def slot() -> None:
        nonlocal left, done, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        while left > 0:
            left -= 1
            t0 = counter.enter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(h.split(b":", 1)[1]) for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            counter.leave(t0)
            done += 1
            errors += not head.startswith(b"HTTP/1.1 200")
        writer.close()

    async def run() -> None:
        await asyncio.gather(*(slot() for _ in range(a.concurrency)))

    t0 = time.perf_counter()
    asyncio.run(run())
    return done, errors, time.perf_counter() - t0


@contextmanager
def latency_server(a: argparse.Namespace, out: Path) -> Iterator[str]:
    """Our latency server in its own process; yields the base URL."""
    port_file = out / "port"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), "--latency", str(a.latency),
                               "--requests", str(a.requests), "--concurrency", str(a.concurrency)])
    try:
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None:
                raise SystemExit("the latency server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}/v1"
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def transformers_server(ready_s: float = 300) -> Iterator[str]:
    """`transformers serve` (transformers[serving]) on the tiny demo model, on CPU; yields the base URL.
    Stopped by its process group (uvicorn's workers with it)."""
    from m3eval.demo.tiny_model import ensure_tiny_model

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(["transformers", "serve", str(ensure_tiny_model()), "--host", "127.0.0.1",
                             "--port", str(port), "--device", "cpu"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_s
        while not served_models(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("transformers serve did not start (pip install 'transformers[serving]')")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def served_models(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
            return [m["id"] for m in json.loads(r.read())["data"]]
    except OSError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--client", choices=("m3eval", "asyncio"), default="m3eval",
                    help="m3eval: the openai backend through the run loop; asyncio: a trivial client (server alone)")
    ap.add_argument("--server", choices=("latency", "transformers"), default="latency",
                    help="latency: ours, fixed --latency per request; transformers: `transformers serve` on the "
                         "tiny demo model, CPU (no ideal: compare --client m3eval with --client asyncio)")
    ap.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)  # internal: be the server
    a = ap.parse_args()
    if a.serve:
        return serve(a.serve, a.latency, 4 * a.requests, 2 * a.concurrency)
    counter = InFlight()  # client-side; our latency server also counts server-side
    with tempfile.TemporaryDirectory() as out:
        with latency_server(a, Path(out)) if a.server == "latency" else transformers_server() as url:
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            if a.client == "m3eval":
                # our server counts for itself: no client-side wrapper (and its lock) in the way
                n, errors, wall = run_m3eval(url, a, Path(out), counter if a.server == "transformers" else None)
            else:
                n, errors, wall = run_asyncio(url, a, served_models(url)[0], counter)
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
            if a.server == "latency":
                with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as r:
                    served = json.loads(r.read())
    client = counter.stats()
    print(f"server={a.server} client={a.client} requests={a.requests} concurrency={a.concurrency} "
          f"batch_size={a.batch_size}" + (f" latency={a.latency * 1000:.0f}ms" if a.server == "latency" else ""))
    print(f"replies={n} errors={errors}")
    if client["handled"]:
        print(f"in-flight client-side: peak={client['peak_inflight']} (concurrency={a.concurrency}) "
              f"mean={client['mean_inflight']:.1f} over {client['span_s']:.2f}s")
    if a.server == "latency":
        print(f"in-flight server-side: peak={served['peak_inflight']} (server cap={2 * a.concurrency}) "
              f"mean={served['mean_inflight']:.1f} over {served['span_s']:.2f}s, served={served['handled']}")
    print(f"client cpu={cpu:.2f}s ({cpu / max(n, 1) * 1000:.2f} ms per request, {cpu / wall:.0%} of one core); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if a.server == "latency":
        ideal = a.requests / a.concurrency * a.latency
        print(f"wall={wall:.2f}s ideal={ideal:.2f}s ratio={wall / max(ideal, 1e-9):.2f} (target <= 1.15)")
    else:
        print(f"wall={wall:.2f}s throughput={n / wall:.1f} requests/s")


if __name__ == "__main__":
    main()
