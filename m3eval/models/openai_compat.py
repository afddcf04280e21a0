"""Backend `openai`: any OpenAI-compatible chat-completions server.

Works with vLLM serve, SGLang, hosted APIs. Images go as base64 data URLs in
`image_url` parts, a video as its frames (several images). Requests run
concurrently on a thread pool and are retried with bounded exponential backoff
on 429 / 5xx / timeouts. The API key is read from the environment variable
named by `api_key_env` and is never stored in info() or results.
Only the standard library is used (urllib), so no extra dependency.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from m3eval.models.base import (
    BadMessageError, GenerationConfig, ModelLoadError, check_message, truncate_at_stop,
)
from m3eval.types import Message

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
REQUEST_STATUS = {400, 413, 422}  # the server rejects this one request: a per-sample error


class RequestError(RuntimeError):
    """A request failed for good (after retries, or a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _public_url(url: str) -> str:
    """The URL without user:password@ (never written to results)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _data_url(image: Any, fmt: str) -> str:
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.save(buf, format="JPEG", quality=95)
    else:
        image.save(buf, format="PNG")  # lossless: the server sees our exact pixels
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAICompatAdapter:
    """`load_model("openai", {"base_url": "http://host:8000/v1", "model": NAME, ...})`."""

    backend = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        image_format: str = "png",
        check_model: bool = True,
    ):
        if not base_url or not model:
            raise ModelLoadError("openai backend: model args 'base_url' and 'model' are required "
                                 "(e.g. base_url=http://localhost:8000/v1,model=Qwen/Qwen2-VL-2B-Instruct)")
        if image_format not in ("png", "jpeg"):
            raise ModelLoadError(f"openai backend: image_format={image_format!r}: expected png or jpeg")
        if int(concurrency) < 1 or int(max_retries) < 0:
            raise ModelLoadError("openai backend: concurrency must be >= 1 and max_retries >= 0")
        self.base_url = str(base_url).rstrip("/")
        self.model = str(model)
        self.name = self.model
        self.api_key_env = api_key_env
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.image_format = image_format
        self._pool = ThreadPoolExecutor(max_workers=int(concurrency), thread_name_prefix="m3eval-openai")
        # Answers of the last call that raised, so a caller retrying the rest
        # of a batch (after dropping a bad sample) does not pay for them twice.
        self._recent: dict[str, str] = {}
        self.retries = 0  # total retried attempts, for reporting
        self._lock = threading.Lock()
        if check_model:
            self._check_model()

    # ---- HTTP ------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One HTTP call with retries. Raises RequestError when it gives up."""
        url = self.base_url + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        last = ""
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            wait = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:500]
                last = f"HTTP {e.code} from {_public_url(url)}: {detail}"
                if e.code not in RETRY_STATUS:
                    if e.code in (401, 403):
                        last += f" (is the API key in ${self.api_key_env} right?)"
                    raise RequestError(last, e.code) from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.strip().replace(".", "", 1).isdigit():
                    wait = float(retry_after)
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                last = f"cannot reach {_public_url(url)}: {reason}"
            except json.JSONDecodeError as e:
                raise RequestError(f"{_public_url(url)} answered with invalid JSON: {e}") from None
            if attempt == self.max_retries:
                break
            with self._lock:
                self.retries += 1
            delay = self.backoff * (2 ** attempt) if wait is None else wait
            time.sleep(min(delay, self.max_backoff))
        raise RequestError(f"gave up after {self.max_retries + 1} attempts: {last}")

    def _check_model(self) -> None:
        try:
            listing = self._request("GET", "/models")
        except RequestError as e:
            if e.status in (404, 405):  # some servers do not list models
                return
            raise ModelLoadError(f"openai backend: {e}") from None
        served = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if served and self.model not in served:
            raise ModelLoadError(f"openai backend: model {self.model!r} is not served at "
                                 f"{_public_url(self.base_url)}; served: {', '.join(map(str, served))}")

    # ---- protocol --------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"backend": "openai", "id": self.model, "revision": None,
                "base_url": _public_url(self.base_url)}

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _content(self, index: int, message: Message) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for part in check_message(index, message):
            if part["type"] == "text":
                content.append({"type": "text", "text": part["text"]})
            else:
                images = [part["image"]] if part["type"] == "image" else part["frames"]
                content.extend({"type": "image_url", "image_url": {"url": _data_url(im, self.image_format)}}
                               for im in images)
        return content

    def _body(self, content: list[dict[str, Any]], gen: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": gen.max_new_tokens,
            "temperature": gen.temperature if gen.do_sample else 0.0,
            "top_p": gen.top_p if gen.do_sample else 1.0,
            "seed": gen.seed,
        }
        if gen.stop:
            body["stop"] = [s for s in gen.stop if s][:4]  # the API takes at most 4
        return body

    def _one(self, index: int, body: dict[str, Any], gen: GenerationConfig) -> str:
        try:
            reply = self._request("POST", "/chat/completions", body)
        except RequestError as e:
            if e.status in REQUEST_STATUS:
                raise BadMessageError(index, f"server rejected the request: {e}") from None
            raise
        try:
            text = reply["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise RequestError(f"unexpected reply shape from {_public_url(self.base_url)}: "
                               f"{json.dumps(reply)[:300]}") from None
        return truncate_at_stop(text, gen.stop).strip()

    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        bodies = [self._body(self._content(i, m), gen) for i, m in enumerate(batch)]
        keys = [hashlib.sha256(json.dumps(b, sort_keys=True).encode()).hexdigest() for b in bodies]
        futures = {i: self._pool.submit(self._one, i, b, gen)
                   for i, (b, k) in enumerate(zip(bodies, keys)) if k not in self._recent}
        first_error: BaseException | None = None
        for i, fut in futures.items():  # wait for all, so finished answers are kept
            try:
                self._recent[keys[i]] = fut.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                first_error = first_error or e
        if first_error is not None:
            raise first_error
        out = [self._recent[k] for k in keys]
        self._recent.clear()
        return out
