"""Backend `openai`: any OpenAI-compatible chat-completions server, on the official client.

Works with vLLM serve, SGLang, `transformers serve` and hosted APIs. Images go as
base64 data URLs in `image_url` parts (PNG by default: lossless), a video as its
frames (several images). The `openai` client keeps connections alive; m3eval retries
408/409/429/5xx, connection errors and replies without an answer with the client's
backoff and jitter, honouring `Retry-After` (api_guard.py says why here); a request that
still fails is one sample's error. A reply is read up to `max_reply_bytes` and no further.
When the server stops answering, request after request across samples, the run stops
(ServerDown) instead of spending every sample's retries on it. `generate_stream` keeps
`concurrency` requests in flight over the whole run (the runner feeds it every task's
samples as one stream).
The API key is read from the environment variable `api_key_env`; it, and anything
that looks like a bearer token, is removed from every error text before it is stored.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Iterable, Iterator

from m3eval.errors import BadMessageError, ModelLoadError, ReplyTooLarge, RequestError, ServerDown
from m3eval.models.api_guard import DOWN_STATUS, Breaker, Workers, read_capped, reply_cap, retry_delay, retryable
from m3eval.models.base import GenerationConfig, ModelAdapter, truncate_at_stop
from m3eval.models.chat import check_message
from m3eval.models.weights import image_limit
from m3eval.record import MAX_PREDICTION_CHARS
from m3eval.results import public_url, url_secrets
from m3eval.types import Message

REQUEST_STATUS = {400, 413, 422}  # the server rejects this one request: its sample is bad
MODEL_ARGS = ("base_url (required, e.g. http://localhost:8000/v1), model (the served name; default: the only "
              "one served), api_key_env (default OPENAI_API_KEY), concurrency (16), timeout (120 s per "
              "request), connect_timeout (5 s), max_retries (5), image_format (png|jpeg), check_model (true), "
              "max_reply_bytes (64 KiB + 64 per max_new_tokens, at most 16 MiB), "
              "server_down_after (failed requests in a row: min(16, concurrency)), max_images (the most "
              "images the served model takes in one request; a sample with more fails alone; default: no limit)")


_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;}]+")
_AUTH_HEADER = re.compile(r"(?i)(\"?(?:proxy-)?authorization\"?\s*[:=]\s*)"
                          r"(\"[^\"]*\"|'[^']*'|(?:(?:bearer|basic)\s+)?[^\s,;}\"]+)")
_KEY_LIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{6,}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the given secrets, Authorization header values, bearer tokens or
    sk-... keys: a server that echoes our request in its error body must not leak them."""
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + "***", text)
    text = _BEARER.sub(lambda m: m.group(1) + " ***", text)
    text = _KEY_LIKE.sub(lambda m: m.group(1) + "-***", text)
    for s in secrets:  # last: a key of any shape, anywhere (e.g. quoted in a message)
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def _answer(body: bytes) -> tuple[str | None, str]:
    """The reply's answer, or None and why there is none: not a JSON object, no choices (a 200
    carrying an `error` body has none), or `content: null`. An empty string is an answer."""
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        return None, f"the reply is not a JSON object: {body[:200]!r}"
    choices = reply.get("choices")
    if not choices or not isinstance(choices, list):
        error = reply.get("error")
        return None, f"the reply has no choices{f' but an error: {str(error)[:300]}' if error else ''}"
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content, ""
    return None, "the reply's message content is null" if content is None else \
        f"the reply's message content is not text: {str(content)[:200]}"


def data_url(image: Any, fmt: str) -> str:
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.save(buf, format="JPEG", quality=95)
    else:
        image.save(buf, format="PNG")  # lossless: the server sees our exact pixels
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_content(index: int, message: Message, image_format: str = "png") -> list[dict[str, Any]]:
    """One Message -> OpenAI chat `content` parts, in order (a video as its frames)."""
    content: list[dict[str, Any]] = []
    for part in check_message(index, message):
        if part["type"] == "text":
            content.append({"type": "text", "text": part["text"]})
        else:
            images = [part["image"]] if part["type"] == "image" else part["frames"]
            content.extend({"type": "image_url", "image_url": {"url": data_url(im, image_format)}}
                           for im in images)
    return content


def request_body(model: str, content: list[dict[str, Any]], gen: GenerationConfig) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for one sample (greedy unless sampling)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": gen.max_new_tokens,
        "temperature": gen.temperature if gen.do_sample else 0.0,
        "top_p": gen.top_p if gen.do_sample else 1.0,
        "seed": gen.seed,
    }
    stop = [s for s in gen.stop if s][:4]  # the API takes at most 4
    if stop:
        body["stop"] = stop
    return body


def _require_client() -> Any:
    try:
        import openai
    except ImportError:
        raise ModelLoadError("openai backend: the `openai` package is not installed: pip install openai "
                             "(or pip install 'm3eval[api]')") from None
    return openai


class OpenAICompatAdapter(ModelAdapter):
    """`load_model("openai", {"base_url": "http://host:8000/v1", "model": NAME, ...})`; args: see MODEL_ARGS."""

    backend = "openai"
    streams = True  # the runner sends every task's samples through generate_stream
    # the served `model` (and its revision) is the identity; how it is reached is not
    # (the two bounds too: the natural fix after ReplyTooLarge or ServerDown must resume the folder)
    transport_args = frozenset({"base_url", "api_key_env", "concurrency", "timeout", "connect_timeout",
                                "max_retries", "check_model", "max_reply_bytes", "server_down_after"})

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_retries: int = 5,
        image_format: str = "png",
        check_model: bool = True,
        max_reply_bytes: int | None = None,
        server_down_after: int | None = None,
        max_images: int | None = None,
    ):
        self.preflight({"base_url": base_url, "image_format": image_format, "concurrency": concurrency,
                        "max_retries": max_retries, "max_reply_bytes": max_reply_bytes,
                        "server_down_after": server_down_after, "max_images": max_images})
        self._max_images = image_limit(max_images)
        openai = _require_client()
        self.base_url = str(base_url).rstrip("/")
        self.api_key_env = str(api_key_env)
        self.concurrency = int(concurrency)
        self.image_format = image_format
        self.max_retries = int(max_retries)
        self.max_reply_bytes = None if max_reply_bytes is None else int(max_reply_bytes)
        # A dead server refuses every request of a wave at once, a hung one times them out together:
        # a wave's worth (at most 16) in a row, spanning connect_timeout, is not a blip.
        self.server_down_after = int(server_down_after or min(16, self.concurrency))
        self._secret = os.environ.get(self.api_key_env)
        self._secrets = [self._secret, *url_secrets(self.base_url)]  # never in an error text
        # One client for the whole run: its HTTP connection pool is reused by every request.
        # No retries of its own: _attempts retries, where the breaker sees every attempt.
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=self._secret or "EMPTY", max_retries=0,
            timeout=openai.Timeout(float(timeout), connect=float(connect_timeout)))
        self._openai = openai
        self._timeout = float(timeout)
        self._connect_timeout = float(connect_timeout)
        self.model = str(model) if model else ""
        if check_model or not self.model:
            self.model = self._check_model(self.model)
        self.name = self.model

    @staticmethod
    def preflight(model_args: dict[str, Any]) -> None:
        """Checks that need no server, run before any task data loads."""
        if not model_args.get("base_url"):
            raise ModelLoadError(f"openai backend: model arg 'base_url' is required; model args: {MODEL_ARGS}")
        fmt = model_args.get("image_format", "png")
        if fmt not in ("png", "jpeg"):
            raise ModelLoadError(f"openai backend: image_format={fmt!r}: expected png or jpeg")
        if int(model_args.get("concurrency", 1)) < 1 or int(model_args.get("max_retries", 0)) < 0:
            raise ModelLoadError("openai backend: concurrency must be >= 1 and max_retries >= 0")
        for arg in ("max_reply_bytes", "server_down_after"):
            value = model_args.get(arg)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ModelLoadError(f"openai backend: {arg}={value!r}: expected a whole number >= 1")
        image_limit(model_args.get("max_images"))
        _require_client()

    # ---- server ------------------------------------------------------------------

    def _error_text(self, e: Exception, attempts: int = 1) -> str:
        url = public_url(self.base_url)
        if isinstance(e, self._openai.APIStatusError):
            try:
                body = e.response.text
            except Exception:  # noqa: BLE001 - a streamed or closed body
                body = str(e)
            text = f"HTTP {e.status_code} from {url}: {body[:500]}"
            if e.status_code in (401, 403):
                text += f" (is the API key in ${self.api_key_env} right?)"
        elif isinstance(e, self._openai.APITimeoutError):
            text = f"no answer from {url} within the timeout ({self._timeout:g} s) after {attempts} attempts"
        elif isinstance(e, self._openai.APIConnectionError):
            cause = e.__cause__ or e
            text = f"cannot reach {url} after {attempts} attempts: {type(cause).__name__}: {cause}"
        else:
            text = f"{type(e).__name__}: {e}"
        return redact(text, self._secrets)

    def _check_model(self, wanted: str) -> str:
        """Probe /models once, without retries, within the connect timeout: an unreachable
        server is one clear error before any sample, not minutes of retries."""
        probe = self._client.with_options(max_retries=0, timeout=self._openai.Timeout(
            2 * self._connect_timeout, connect=self._connect_timeout))
        try:
            served = [m.id for m in probe.models.list()]
        except self._openai.APIStatusError as e:
            if e.status_code in (404, 405) and wanted:  # some servers do not list models
                return wanted
            raise ModelLoadError(f"openai backend: {self._error_text(e)}") from None
        except self._openai.APIError as e:  # connection refused, DNS, connect timeout
            cause = e.__cause__ or e
            text = redact(f"{type(cause).__name__}: {cause}", self._secrets)
            raise ModelLoadError(f"openai backend: cannot reach {public_url(self.base_url)}/models within "
                                 f"{self._connect_timeout:g} s: {text} (is the server running?)") from None
        if not wanted:
            if len(served) != 1:
                raise ModelLoadError(f"openai backend: model arg 'model' is required when the server does not "
                                     f"serve exactly one model; served: {', '.join(served) or 'none'}")
            return served[0]
        if served and wanted not in served:
            raise ModelLoadError(f"openai backend: model {wanted!r} is not served at "
                                 f"{public_url(self.base_url)}; served: {', '.join(map(str, served))}")
        return wanted

    def _attempt(self, body: dict[str, Any], cap: int) -> bytes | None:
        """One request: the reply's body, or None when it passes `cap` bytes (then not read further:
        leaving the `with` closes the connection). Raises the client's APIError, also for a
        connection lost or timed out mid-body."""
        with self._client.chat.completions.with_streaming_response.create(**body) as response:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > cap:
                return None
            try:
                return read_capped(response.iter_bytes(), cap)
            except Exception as e:  # noqa: BLE001 - the HTTP library's error: as if before the reply
                request = response.http_response.request
                if any(c.__name__ == "TimeoutException" for c in type(e).__mro__):
                    raise self._openai.APITimeoutError(request=request) from e
                raise self._openai.APIConnectionError(request=request) from e

    def _attempts(self, body: dict[str, Any], gen: GenerationConfig, down: Breaker) -> str:
        """The sample's answer, after up to `max_retries` retries (a retryable status, the server
        unreachable, a 200 without an answer). Raises the sample's error, or ServerDown when the
        stream stopped (the breaker tripped): that sample is then not recorded, the re-run asks again."""
        cap = reply_cap(self.max_reply_bytes, gen.max_new_tokens)
        why, headers = "", None
        for attempt in range(self.max_retries + 1):
            if (attempt and down.wait(retry_delay(attempt, headers))) or down.stop.is_set():
                raise ServerDown(down.tripped or "the stream ended")
            started, headers, last = time.monotonic(), None, attempt == self.max_retries
            try:
                data = self._attempt(body, cap)
            except self._openai.APIStatusError as e:
                if e.status_code in DOWN_STATUS:
                    down.lost(started, f"HTTP {e.status_code}", last)
                else:
                    down.reached()
                if not last and retryable(e.status_code, e.response.headers):
                    headers = e.response.headers
                    continue
                raise self._failure(e, attempt + 1) from None
            except self._openai.APIConnectionError as e:  # refused, reset, timed out (APITimeoutError)
                cause = e.__cause__ or e
                down.lost(started, f"no answer within {self._timeout:g} s" if isinstance(
                    e, self._openai.APITimeoutError) else f"{type(cause).__name__}: {cause}", last)
                if not last:
                    continue
                raise self._failure(e, attempt + 1) from None
            down.reached()  # the server answered: whatever the reply, it is there
            if data is None:
                # Not a truncated answer: the JSON is cut, so there is no text to score, and a prefix
                # would score words the model did not finish. The sample fails, counted, and a re-run
                # (with a larger max_reply_bytes, if the replies are really this long) asks again.
                raise ReplyTooLarge(f"the reply from {public_url(self.base_url)} passed max_reply_bytes={cap} "
                                    f"(max_new_tokens={gen.max_new_tokens}) and was not read further")
            text, why = _answer(data)  # a 200 without an answer is retried like a 5xx
            if text is not None:
                answer = truncate_at_stop(text, gen.stop).strip()
                if len(answer) > MAX_PREDICTION_CHARS:  # whatever max_reply_bytes says: it could not be read back
                    raise ReplyTooLarge(f"the answer from {public_url(self.base_url)} is {len(answer):,} characters, "
                                        f"over the {MAX_PREDICTION_CHARS:,} a prediction may hold")
                return answer
        raise RequestError(redact(f"no answer from {public_url(self.base_url)} after {self.max_retries + 1} "
                                  f"attempts: {why}", self._secrets))

    def _failure(self, e: Exception, attempts: int) -> Exception:
        status = getattr(e, "status_code", None)
        text = self._error_text(e, attempts)
        return BadMessageError(0, f"server rejected the request: {text}") if status in REQUEST_STATUS \
            else RequestError(text, status)

    def _one(self, message: Message, gen: GenerationConfig, down: Breaker) -> tuple[str | Exception, float]:
        """One sample, in a worker thread (encoding its images there too). Never raises."""
        t0 = time.perf_counter()
        try:
            body = request_body(self.model, to_content(0, message, self.image_format), gen)
            return self._attempts(body, gen, down), time.perf_counter() - t0
        except BadMessageError as e:
            return BadMessageError(0, e.reason), time.perf_counter() - t0
        except (RequestError, ServerDown) as e:
            return e, time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - e.g. an unexpected reply shape: this sample's error
            return RequestError(redact(f"{type(e).__name__}: {e}", self._secrets)), time.perf_counter() - t0

    def _server_down(self, down: Breaker) -> ServerDown:
        why = " ".join(redact(down.tripped, self._secrets).split())  # one line, whatever a gateway sent
        return ServerDown(f"the server at {public_url(self.base_url)} is not answering: {why}; the run stops here: "
                          f"finished predictions are kept, and the same command resumes once the server is back "
                          f"(model arg server_down_after={down.after} sets how many failures in a row stop it)")

    # ---- interface (m3eval/models/base.py) --------------------------------------

    def info(self) -> dict[str, Any]:
        return {"backend": "openai", "id": self.model, "revision": None,
                "base_url": public_url(self.base_url), "client": f"openai {self._openai.__version__}"}

    def close(self) -> None:
        self._client.close()

    def max_images(self) -> int | None:
        return self._max_images

    def generate_stream(self, items: Iterable[tuple[Any, Message, GenerationConfig]]
                        ) -> Iterator[tuple[Any, str | Exception, float]]:
        """(key, message, gen) in -> (key, text or the sample's error, seconds) out, in
        completion order, with up to `concurrency` requests in flight. Items are pulled
        only when a slot frees, so the caller's stream can be lazy (decoded on demand).
        Raises ServerDown once the server stopped answering (answers already in are yielded
        first); the requests still under way are then abandoned, not waited for."""
        source = iter(items)
        inflight: dict[Future, Any] = {}
        down = Breaker(self.server_down_after, self._connect_timeout)  # this stream's: a new one starts afresh
        workers = Workers(self.concurrency, "m3eval-openai")
        exhausted = False
        try:
            while True:
                while not exhausted and len(inflight) < self.concurrency and not down.tripped:
                    try:
                        key, message, gen = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    inflight[workers.submit(self._one, message, gen, down)] = key
                if down.tripped:
                    raise self._server_down(down)
                if not inflight:
                    return
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    key = inflight.pop(fut)
                    out, seconds = fut.result()
                    if not isinstance(out, ServerDown):  # stopped by the breaker: asked again on resume
                        yield key, out, seconds
        finally:  # tripped, or the caller stopped early (an error, Ctrl-C): nothing more is sent
            down.stop.set()
            for fut in inflight:
                fut.cancel()
            workers.shutdown()

    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        """Without streaming: one text per message; the first failure is raised (with its index)."""
        results = dict((k, out) for k, out, _ in self.generate_stream((i, m, gen) for i, m in enumerate(batch)))
        for i in range(len(batch)):
            out = results[i]
            if isinstance(out, BadMessageError):
                raise BadMessageError(i, out.reason)
            if isinstance(out, Exception):
                raise out
        return [results[i] for i in range(len(batch))]
