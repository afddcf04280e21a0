"""A hand-written OpenAI-compatible HTTP server on 127.0.0.1 for the `openai` backend's tests of
behaviour that is not the server's (tests/test_models_openai.py, tests/test_openai_faults.py): it
answers with text derived from the request, so every assertion checks what really went over HTTP."""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


class FakeOpenAIServer(ThreadingHTTPServer):
    """Serves /v1/models and /v1/chat/completions. Prompt text triggers failures:
    RATE -> one 429 (Retry-After: 1), FLAKY -> two 500s, DOWN -> always 503, BAD -> 400,
    NOCHOICES / ERRBODY / NULLCONTENT -> a 200 with no answer (always), EMPTYONCE -> once,
    SLOW -> 0.3 s delay, ECHO401 -> a 401 whose body echoes the Authorization header,
    HUGE -> a 200 whose answer is `huge_bytes` long (HUGELEN: with its Content-Length; the bytes
    written before the client hung up go to `huge_sent`), DROP -> the connection closed with no
    reply, HANG -> no reply until `release` is set. `delay` slows every request (for in-flight
    counting); `answers_left`: after that many answers the server goes away (port closed)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.delay = 0.0
        self.times: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.huge_bytes, self.huge_sent = 10 * 2 ** 20, []
        self.release = threading.Event()
        self.answers_left: int | None = None

    def go_away(self):  # from a handler thread: serve_forever runs in another
        self.shutdown()
        self.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAIServer

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict, headers: dict | None = None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_huge(self, model: str, with_length: bool):
        reply = {"id": "x", "object": "chat.completion", "model": model,
                 "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "@"}}]}
        head, tail = json.dumps(reply).encode().split(b"@")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if with_length:  # else the body ends when the connection closes (HTTP/1.0)
            self.send_header("Content-Length", str(len(head) + self.server.huge_bytes + len(tail)))
        self.end_headers()
        sent, chunk = 0, b"a" * 2 ** 16
        try:
            self.wfile.write(head)
            while sent < self.server.huge_bytes:
                sent += self.wfile.write(chunk[:self.server.huge_bytes - sent]) or 0
            self.wfile.write(tail)
        except OSError:  # the client hung up
            pass
        self.server.huge_sent.append(sent)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": "tiny-vlm", "object": "model"}]})
        self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        parts = body["messages"][0]["content"]
        text = " ".join(p["text"] for p in parts if p["type"] == "text")
        with srv.lock:
            srv.requests.append(body)
            srv.auth.append(self.headers.get("Authorization"))
            n = srv.attempts[text] = srv.attempts.get(text, 0) + 1
            srv.times.setdefault(text, []).append(time.monotonic())
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            time.sleep(0.3 if "SLOW" in text else srv.delay)
            with srv.lock:
                dying = srv.answers_left == 0
                srv.answers_left = None if srv.answers_left is None else max(srv.answers_left - 1, 0)
            if dying:
                threading.Thread(target=srv.go_away, daemon=True).start()
            if dying or "DROP" in text or "HANG" in text and not srv.release.wait(30):
                self.close_connection = True  # no reply at all
                return
            if "HUGE" in text:
                return self._send_huge(body["model"], with_length="HUGELEN" in text)
            if "RATE" in text and n == 1:
                return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"})
            if "ECHO401" in text:
                return self._send(401, {"error": {"message": f"invalid key; you sent Authorization: "
                                                             f"{self.headers.get('Authorization')}"}})
            if "FLAKY" in text and n <= 2:
                return self._send(500, {"error": {"message": "oops"}})
            if "DOWN" in text:
                return self._send(503, {"error": {"message": "overloaded"}})
            if "BAD" in text:
                return self._send(400, {"error": {"message": "image too large"}})
            if "NOCHOICES" in text or "EMPTYONCE" in text and n == 1:
                return self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"], "choices": []})
            if "ERRBODY" in text:
                return self._send(200, {"error": {"message": "engine overloaded"}})
            if "NULLCONTENT" in text:
                return self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                                        "choices": [{"index": 0, "finish_reason": "stop",
                                                     "message": {"role": "assistant", "content": None}}]})
            sizes = []
            for p in parts:
                if p["type"] == "image_url":
                    head, b64 = p["image_url"]["url"].split(",", 1)
                    assert head == "data:image/png;base64"
                    im = Image.open(io.BytesIO(base64.b64decode(b64)))
                    sizes.append(f"{im.width}x{im.height}:{im.getpixel((0, 0))}")
            answer = f"{len(sizes)} images {' '.join(sizes)} | {text} | t={body['temperature']} n={body['max_tokens']}"
            self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": answer}}]})
        finally:
            with srv.lock:
                srv.in_flight -= 1
