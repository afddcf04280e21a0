"""Continuous submission on the `openai` backend: a local latency server on 127.0.0.1
answers every chat completion after a fixed 250 ms; 256 requests go through the run loop
(m3eval.run.generate.generate_tasks, two tasks of 128 samples) at concurrency 32 and batch size 4.
Ideal wall time: 256 / 32 x 0.25 s = 2.0 s; target: within 15%.

    python benchmarks/bench_api.py [--requests 256] [--concurrency 32] [--batch-size 4] [--latency 0.25]

The server runs in its own process (so its work does not share our GIL, as a real
server's would not), is bounded (at most 64 requests handled at once, 4x the requests asked
for in all) and stops by itself after 120 s; we stop it by its PID when done.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def serve(port_file: str, latency: float, max_requests: int) -> None:
    """The server process: a minimal HTTP/1.1 keep-alive server on asyncio (cheap per request,
    so the figure measures the client side), at most 64 requests at once and `max_requests`
    in all; it writes its port to `port_file` and stops by itself after 120 s."""
    left = max_requests
    slots = asyncio.Semaphore(64)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal left
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if head.startswith(b"GET"):
                    status, body = b"200 OK", MODELS
                else:
                    left -= 1
                    async with slots:
                        await asyncio.sleep(latency)
                    status, body = (b"200 OK", REPLY) if left >= 0 else (b"503 Service Unavailable", b"{}")
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await asyncio.sleep(120)

    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)  # internal: be the server
    a = ap.parse_args()
    if a.serve:
        return serve(a.serve, a.latency, 4 * a.requests)
    with tempfile.TemporaryDirectory() as out:
        port_file = Path(out) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), "--latency", str(a.latency),
                                   "--requests", str(a.requests)])
        try:
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None:
                    raise SystemExit("the latency server did not start")
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text()}/v1"
            model = load_model("openai", {"base_url": url, "concurrency": a.concurrency, "max_retries": 0})
            plans = []
            for t, n in (("bench_a", a.requests // 2), ("bench_b", a.requests - a.requests // 2)):
                samples = [Sample(id=f"{t}-{i}", task=t, prompt=f"question {t} {i}", references=["x"])
                           for i in range(n)]
                spec = type("Spec", (), {"task": t})()
                plans.append(TaskPlan(spec, samples, GenerationConfig(max_new_tokens=8),
                                      [samples[i:i + a.batch_size] for i in range(0, n, a.batch_size)],
                                      Path(out) / f"{t}.rank0.jsonl", VideoRule(frames=8), None))
            t0 = time.perf_counter()
            generate_tasks(plans, model, lambda plan, stats: None, progress=False)
            wall = time.perf_counter() - t0
            rows = [json.loads(line) for p in plans for line in p.log.read_text().splitlines()]
            model.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    ideal = a.requests / a.concurrency * a.latency
    errors = sum(r["error"] is not None for r in rows)
    print(f"requests={a.requests} concurrency={a.concurrency} batch_size={a.batch_size} latency={a.latency * 1000:.0f}ms")
    print(f"predictions logged={len(rows)} errors={errors}")
    print(f"wall={wall:.2f}s ideal={ideal:.2f}s ratio={wall / max(ideal, 1e-9):.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
