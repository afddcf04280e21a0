"""The `openai` backend against a real HTTP server on 127.0.0.1 (stdlib http.server).

The server speaks the OpenAI chat-completions format and answers with text
derived from the request, so every assertion checks what really went over HTTP.
"""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from m3eval.models import BadMessageError, GenerationConfig, ModelLoadError, load_model
from m3eval.models.openai_compat import RequestError


class FakeOpenAIServer(ThreadingHTTPServer):
    """Serves /v1/models and /v1/chat/completions. Prompt text triggers failures:
    RATE -> one 429, FLAKY -> two 500s, DOWN -> always 503, BAD -> 400, SLOW -> 0.3 s delay."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

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
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            if "SLOW" in text:
                time.sleep(0.3)
            if "RATE" in text and n == 1:
                return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
            if "FLAKY" in text and n <= 2:
                return self._send(500, {"error": {"message": "oops"}})
            if "DOWN" in text:
                return self._send(503, {"error": {"message": "overloaded"}})
            if "BAD" in text:
                return self._send(400, {"error": {"message": "image too large"}})
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


@pytest.fixture
def server():
    srv = FakeOpenAIServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def adapter(server, **extra):
    args = {"base_url": server.url, "model": "tiny-vlm", "backoff": 0.01, "max_retries": 3, **extra}
    return load_model("openai", args)


def text(t: str) -> list:
    return [{"type": "text", "text": t}]


def test_answers_in_order_with_concurrency(server):
    m = adapter(server, concurrency=4)
    prompts = [f"q{i} SLOW" for i in range(8)]
    start = time.perf_counter()
    out = m.generate([text(p) for p in prompts], GenerationConfig(max_new_tokens=7))
    elapsed = time.perf_counter() - start
    assert out == [f"0 images  | {p} | t=0.0 n=7" for p in prompts]
    assert server.max_in_flight > 1 and elapsed < 8 * 0.3  # really concurrent
    m.close()


def test_images_and_video_frames_go_as_data_urls(server):
    m = adapter(server)
    red, blue = Image.new("RGB", (5, 4), (255, 0, 0)), Image.new("L", (3, 2), 7)
    frames = [Image.new("RGB", (2, 2), (0, i, 0)) for i in range(3)]
    out = m.generate([[{"type": "image", "image": red}, {"type": "image", "image": blue}, *text("two")],
                      [{"type": "video", "frames": frames, "fps": 2.0}, *text("vid")]], GenerationConfig())
    assert out[0].startswith("2 images 5x4:(255, 0, 0) 3x2:(7, 7, 7) | two")
    assert out[1].startswith("3 images 2x2:(0, 0, 0) 2x2:(0, 1, 0) 2x2:(0, 2, 0) | vid")
    sent = {r["messages"][0]["content"][-1]["text"]: [p["type"] for p in r["messages"][0]["content"]]
            for r in server.requests}
    assert sent == {"two": ["image_url"] * 2 + ["text"], "vid": ["image_url"] * 3 + ["text"]}  # order kept


def test_retries_429_and_5xx_then_succeeds(server):
    m = adapter(server)
    out = m.generate([text("RATE me"), text("FLAKY me"), text("fine")], GenerationConfig())
    assert [o.split(" | ")[1] for o in out] == ["RATE me", "FLAKY me", "fine"]
    assert server.attempts == {"RATE me": 2, "FLAKY me": 3, "fine": 1}
    assert m.retries == 3


def test_gives_up_after_bounded_retries(server):
    m = adapter(server, max_retries=2)
    with pytest.raises(RequestError, match=r"gave up after 3 attempts: HTTP 503 .*overloaded"):
        m.generate([text("DOWN")], GenerationConfig())
    assert server.attempts["DOWN"] == 3


def test_rejected_request_is_a_bad_message_and_others_are_not_resent(server):
    m = adapter(server)
    batch = [text("ok one"), text("BAD one"), text("ok two")]
    with pytest.raises(BadMessageError, match=r"message 1: server rejected the request: HTTP 400.*image too large"):
        m.generate(batch, GenerationConfig())
    # The caller drops the bad sample and asks again: finished answers are reused, not re-requested.
    out = m.generate([batch[0], batch[2]], GenerationConfig())
    assert [o.split(" | ")[1] for o in out] == ["ok one", "ok two"]
    assert server.attempts["ok one"] == 1 and server.attempts["ok two"] == 1


def test_api_key_from_env_is_sent_but_never_shown(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    m = adapter(server, api_key_env="MY_KEY")
    m.generate([text("hi")], GenerationConfig())
    assert server.auth[-1] == "Bearer sk-secret-123"
    assert "sk-secret" not in json.dumps(m.info())
    assert m.info() == {"backend": "openai", "id": "tiny-vlm", "revision": None, "base_url": server.url}


def test_credentials_in_url_are_not_shown(server):
    m = adapter(server, base_url=server.url.replace("http://", "http://user:pw@"), check_model=False)
    assert "pw" not in json.dumps(m.info())


def test_generation_settings_and_stop(server):
    m = adapter(server)
    out = m.generate([text("alpha | beta")], GenerationConfig(max_new_tokens=5, stop=[" | beta"]))
    body = server.requests[-1]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 5 and body["stop"] == [" | beta"]
    assert out == ["0 images  | alpha"]  # cut client-side too


def test_unknown_model_and_unreachable_server(server):
    with pytest.raises(ModelLoadError, match=r"model 'gpt-x' is not served at .*; served: tiny-vlm"):
        adapter(server, model="gpt-x")
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(ModelLoadError, match=rf"cannot reach http://127.0.0.1:{port}/v1/models"):
        load_model("openai", {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m",
                              "max_retries": 1, "backoff": 0.01})
    with pytest.raises(ModelLoadError, match="'base_url' and 'model' are required"):
        load_model("openai", {"model": "m"})


def test_malformed_message_is_refused_before_any_request(server):
    m = adapter(server)
    with pytest.raises(BadMessageError, match=r"message 1: part 0 \(image\): expected a PIL.Image"):
        m.generate([text("ok"), [{"type": "image", "image": "/not/decoded.jpg"}]], GenerationConfig())
    assert server.requests == []
