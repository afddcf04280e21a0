"""The `openai` backend (official `openai` client) against a hand-written HTTP server on
127.0.0.1, for behaviour that is not the server's: retries, Retry-After, concurrency,
a dead server, secrets in error bodies. (tests/test_openai_server.py runs a real
`transformers serve` and compares predictions with the hf backend.)

The server speaks the OpenAI chat-completions format and answers with text derived
from the request, so every assertion checks what really went over HTTP.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image

from m3eval.models import BadMessageError, GenerationConfig, ModelLoadError, check_backend, load_model
from m3eval.models.openai_compat import RequestError
from tests.fake_openai import FakeOpenAIServer


@pytest.fixture
def server():
    srv = FakeOpenAIServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def adapter(server, **extra):
    args = {"base_url": server.url, "model": "tiny-vlm", "max_retries": 3, **extra}
    return load_model("openai", args)


def text(t: str) -> list:
    return [{"type": "text", "text": t}]


def test_answers_in_order_with_concurrency(server):
    m = adapter(server, concurrency=4)
    prompts = [f"q{i} SLOW" for i in range(8)]
    out = m.generate([text(p) for p in prompts], GenerationConfig(max_new_tokens=7))
    assert out == [f"0 images  | {p} | t=0.0 n=7" for p in prompts]
    assert server.max_in_flight == 4  # really concurrent, and bounded (speed: benchmarks/bench_api.py)
    m.close()


def test_images_and_video_frames_go_as_png_data_urls(server):
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


def test_client_retries_5xx_and_honours_retry_after(server):
    m = adapter(server)
    out = m.generate([text("RATE me"), text("FLAKY me"), text("fine")], GenerationConfig())
    assert [o.split(" | ")[1] for o in out] == ["RATE me", "FLAKY me", "fine"]
    assert server.attempts == {"RATE me": 2, "FLAKY me": 3, "fine": 1}
    first, second = server.times["RATE me"]
    assert second - first >= 0.95  # Retry-After: 1 (the client's own backoff starts at 0.5 s with jitter)


def test_a_dead_request_fails_once_after_the_clients_retries(server):
    m = adapter(server, max_retries=2)
    outs = list(m.generate_stream([("k", text("DOWN"), GenerationConfig())]))
    assert len(outs) == 1 and outs[0][0] == "k"
    assert isinstance(outs[0][1], RequestError) and "HTTP 503" in str(outs[0][1]) and "overloaded" in str(outs[0][1])
    assert server.attempts["DOWN"] == 3  # 1 + max_retries, nothing more


def test_rejected_request_is_a_bad_message(server):
    m = adapter(server)
    with pytest.raises(BadMessageError, match=r"message 1: server rejected the request: HTTP 400.*image too large"):
        m.generate([text("ok one"), text("BAD one")], GenerationConfig())
    assert server.attempts["BAD one"] == 1  # a 400 is not retried


def test_api_key_from_env_is_sent_but_never_shown(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    m = adapter(server, api_key_env="MY_KEY")
    m.generate([text("hi")], GenerationConfig())
    assert server.auth[-1] == "Bearer sk-secret-123"
    assert "sk-secret" not in json.dumps(m.info())
    assert m.info()["base_url"] == server.url and m.info()["client"].startswith("openai ")


def test_error_body_echoing_the_key_is_redacted_in_stored_predictions(server, monkeypatch, tmp_path):
    """A 401 whose body echoes `Authorization: Bearer sk-...` must not land in predictions."""
    monkeypatch.setenv("MY_KEY", "sk-live-abcdef123456")
    rows = _run_tasks(server, tmp_path, prompts=["ECHO401 a", "fine b"], api_key_env="MY_KEY")
    stored = (tmp_path / "predictions" / "t.rank0.jsonl").read_text()
    assert server.auth[-1] == "Bearer sk-live-abcdef123456"  # really sent, really echoed
    assert "abcdef123456" not in stored and "sk-live" not in stored
    err = rows["ECHO401 a"]["error"]
    assert err["stage"] == "generate" and err["type"] == "RequestError" and err["message"].startswith("HTTP 401")
    assert "Authorization: ***" in err["message"] and "$MY_KEY" in err["message"]
    assert rows["fine b"]["error"] is None


def test_redact_patterns():
    from m3eval.models.openai_compat import redact
    assert redact('{"headers": {"Authorization": "Bearer abc.def"}} key=K123x', ["K123x"]) == \
        '{"headers": {"Authorization": ***}} key=***'
    assert redact("token sk-proj-AAAAAAAAAA and bearer xyz9") == "token sk-*** and bearer ***"


def test_credentials_in_url_are_not_shown(server):
    m = adapter(server, base_url=server.url.replace("http://", "http://user:pw@"), check_model=False)
    assert "pw" not in json.dumps(m.info())


def test_credentials_in_the_url_are_in_no_file_a_run_writes(server, tmp_path):
    """user:password@ and ?key=... in base_url (issue 20, case 2): sent to the server, never written
    to run.json, results.json (run block and each task's invocation), predictions, samples or the
    lm-eval export; the run still resumes the folder it wrote."""
    from m3eval.run.pipeline import RunConfig, evaluate
    url = server.url.replace("http://", "http://alice:pw-9f8e7d@") + "?key=qk-4c3b2a"
    cfg = RunConfig(tasks=["demo_mc"], output=tmp_path / "out", model="openai", run_name="r", limit=3,
                    model_args={"base_url": url, "model": "tiny-vlm", "max_retries": 0}, progress=False)
    results, _ = evaluate(cfg)
    assert results is not None and server.requests  # the server was reached
    assert results.run.model is not None and results.run.model["args"]["base_url"] == server.url
    export = subprocess.run([sys.executable, "-m", "m3eval", "export", str(tmp_path / "out" / "r"), "--format",
                             "lm-eval", "--output", str(tmp_path / "export")], capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.name == "run.json" for f in files) and any(f.parent.name == "export" or "export" in f.parts
                                                             for f in files)
    for f in files:
        data = f.read_bytes()
        assert b"pw-9f8e7d" not in data and b"qk-4c3b2a" not in data and b"alice" not in data, f
    again, _ = evaluate(cfg)  # the redacted identity still matches: nothing is generated again
    assert again is not None and again.timings.samples == 0


def test_transport_settings_are_not_the_models_identity(server, tmp_path):
    """Issue 20, case 29: a re-run with a longer timeout, fewer retries, another concurrency or
    another address of the same server resumes the folder; another served model does not."""
    from m3eval.errors import RunError
    from m3eval.run.pipeline import RunConfig, evaluate

    def run(**args):
        cfg = RunConfig(tasks=["demo_mc"], output=tmp_path, model="openai", run_name="r", limit=3, progress=False,
                        model_args={"base_url": server.url, "model": "tiny-vlm", **args})
        return evaluate(cfg)[0]

    assert run(timeout=30).timings.samples == 3
    again = run(timeout=120, max_retries=1, concurrency=2, base_url=server.url.replace("127.0.0.1", "localhost"))
    assert again is not None and again.timings.samples == 0  # resumed: nothing generated again
    with pytest.raises(RunError, match="different model"):
        run(model="another-model", check_model=False)


def test_a_reply_without_an_answer_is_retried_then_a_counted_failure(server, tmp_path):
    """Issue 20, case 26: a 200 with `"choices": []`, an `{"error": ...}` body or `"content": null`
    was scored as an empty answer (exit 0; with one reply in four empty, exact match read 25.0, not
    35.0). Now it is retried like a 5xx and, if it stays empty, the sample fails and is counted."""
    m = adapter(server, max_retries=1, check_model=False)
    for prompt, why in (("NOCHOICES a", "has no choices"), ("NULLCONTENT c", "content is null"),
                        ("ERRBODY b", "but an error: {'message': 'engine overloaded'}")):
        with pytest.raises(RequestError, match=r"no answer from .* after 2 attempts: .*" + re.escape(why)):
            m.generate([text(prompt)], GenerationConfig())
    outs = m.generate([text("EMPTYONCE d"), text("fine e")], GenerationConfig())
    assert outs[0].startswith("0 images  | EMPTYONCE d") and outs[1].startswith("0 images  | fine e")
    assert server.attempts["NOCHOICES a"] == 2 and server.attempts["EMPTYONCE d"] == 2  # retried once
    rows = _run_tasks(server, tmp_path, prompts=["NOCHOICES x", "fine y"], max_retries=0)
    assert rows["NOCHOICES x"]["error"]["stage"] == "generate" and rows["fine y"]["error"] is None


def test_generation_settings_and_stop(server):
    m = adapter(server)
    out = m.generate([text("alpha | beta")], GenerationConfig(max_new_tokens=5, stop=[" | beta"]))
    body = server.requests[-1]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 5 and body["stop"] == [" | beta"]
    assert out == ["0 images  | alpha"]  # cut client-side too


def test_unknown_model_and_unreachable_server(server):
    with pytest.raises(ModelLoadError, match=r"model 'gpt-x' is not served at .*; served: tiny-vlm"):
        adapter(server, model="gpt-x")
    assert adapter(server, model=None).model == "tiny-vlm"  # the only model served
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=rf"cannot reach http://127.0.0.1:{port}/v1/models within 5 s: .*Connect"):
        load_model("openai", {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "max_retries": 5})
    assert time.perf_counter() - t0 < 2  # one probe, no retries


def test_missing_base_url_lists_the_model_args():
    with pytest.raises(ModelLoadError, match=r"'base_url' is required; model args: base_url .*concurrency"):
        check_backend("openai", {"model": "m"})


def test_malformed_message_is_refused_before_any_request(server):
    m = adapter(server)
    with pytest.raises(BadMessageError, match=r"message 1: part 0 \(image\): expected a PIL.Image"):
        m.generate([text("ok"), [{"type": "image", "image": "/not/decoded.jpg"}]], GenerationConfig())
    assert [r["messages"][0]["content"][-1]["text"] for r in server.requests] == ["ok"]


# ---- through the runner: continuous submission ------------------------------------

def _plans(tmp_path, tasks: dict[str, list[str]], batch_size: int):
    from m3eval.data.media import VideoRule
    from m3eval.run.generate import TaskPlan
    from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec
    from m3eval.types import Sample

    plans = []
    for task, prompts in tasks.items():
        samples = [Sample(id=p, task=task, prompt=p, references=["x"]) for p in prompts]
        spec = TaskSpec(task=task, source=str(tmp_path / f"{task}.yaml"), dataset=DatasetSpec(path="x.jsonl"),
                        metrics=[StepSpec(name="exact_match")], doc=DocSpec(prompt="{{ q }}", references="a"))
        plans.append(TaskPlan(spec, samples, GenerationConfig(max_new_tokens=3),
                              [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)],
                              tmp_path / "predictions" / f"{task}.rank0.jsonl", VideoRule(frames=2), None))
    (tmp_path / "predictions").mkdir(exist_ok=True)
    return plans


def _run_tasks(server, tmp_path, prompts, batch_size=4, **extra) -> dict[str, dict]:
    from m3eval.run.generate import generate_tasks

    plans = _plans(tmp_path, {"t": prompts}, batch_size)
    generate_tasks(plans, adapter(server, **extra), lambda plan, stats: None, progress=False)
    return {r["id"]: r for r in map(json.loads, plans[0].log.read_text().splitlines())}


def test_concurrency_spans_batches_and_tasks_and_each_answer_is_logged(server, tmp_path):
    from m3eval.run.generate import generate_tasks

    server.delay = 0.2
    plans = _plans(tmp_path, {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(10)]}, batch_size=4)
    seen = []

    def on_done(plan, stats):  # called in plan order, each log complete when it is
        seen.append((plan.spec.task, len(plan.log.read_text().splitlines()), stats.samples))

    generate_tasks(plans, adapter(server, concurrency=16), on_done, progress=False)
    assert seen == [("a", 10, 10), ("b", 10, 10)]
    assert server.max_in_flight > 10  # > batch size 4, and across the task boundary (task a has 10)
    assert sorted(server.attempts) == sorted(f"{t}{i}" for t in "ab" for i in range(10))


def test_dead_server_costs_one_attempt_per_retry_and_each_sample_fails_once(server, tmp_path):
    rows = _run_tasks(server, tmp_path, ["DOWN 1", "DOWN 2", "ok"], batch_size=3, max_retries=1)
    assert server.attempts == {"DOWN 1": 2, "DOWN 2": 2, "ok": 1}  # no second round from the runner
    err = rows["DOWN 1"]["error"]
    assert err["stage"] == "generate" and err["type"] == "RequestError" and err["message"].startswith("HTTP 503")
    assert rows["ok"]["error"] is None and rows["ok"]["prediction"].startswith("0 images  | ok")
    # each answer is scored as it is logged (scoring/prescore.py); a failed request scores 0
    assert [rows[i]["scored"]["scores"]["exact_match"] for i in ("DOWN 1", "DOWN 2", "ok")] == [0.0, 0.0, 0.0]
    assert rows["ok"]["scored"]["extracted"] == rows["ok"]["prediction"]


def _wait_until_quiet(server, quiet_s: float = 0.5, limit_s: float = 10.0) -> None:
    deadline, seen, since = time.monotonic() + limit_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(server.requests) != seen:
            seen, since = len(server.requests), time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)


def test_interrupted_stream_keeps_every_logged_answer_and_resume_sends_only_the_rest(server, tmp_path):
    from m3eval.models.openai_compat import OpenAICompatAdapter
    from m3eval.models.registry import register_backend
    from m3eval.run.pipeline import RunConfig, evaluate

    class Interrupted(OpenAICompatAdapter):
        stop_at: int | None = 5

        def generate_stream(self, items):
            for n, out in enumerate(super().generate_stream(items)):
                if n == Interrupted.stop_at:
                    raise KeyboardInterrupt  # like Ctrl-C with requests in flight
                yield out

    register_backend("openai-interrupted", Interrupted)
    args = {"base_url": server.url, "model": "tiny-vlm", "concurrency": 4}
    common = dict(tasks=["demo_vqa"], output=tmp_path, run_name="r", batch_size=4, limit=12, progress=False,
                  save_media=False)
    with pytest.raises(KeyboardInterrupt):
        evaluate(RunConfig(model="openai-interrupted", model_args=args, **common))
    logged = [json.loads(line) for line in (tmp_path / "r" / "predictions" / "demo_vqa.rank0.jsonl").open()]
    assert len(logged) == 5 and all(r["error"] is None and r["prediction"] for r in logged)
    _wait_until_quiet(server)  # requests still in flight at the interrupt land before we count
    server.requests.clear()
    Interrupted.stop_at = None
    results, failures = evaluate(RunConfig(model="openai-interrupted", model_args=args, **common))
    assert failures == [] and results.timings.samples == 7
    assert len(server.requests) == 7  # the 5 logged answers are not asked again
