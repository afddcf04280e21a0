"""What keeps an API server's faults from costing a run (the `openai` backend uses it): the
bound on what one reply may bring, the retry delays, the breaker that stops a run whose
server is down or hung, and worker threads that never hold the process on an abandoned request.

Why m3eval retries (not the client): the breaker must see every attempt, so a dead server is
caught in its first wave, not after each sample's own retries (issue 20, case 31), and a
sample waiting to retry must stop the moment the breaker trips. The delays follow the
official client's policy (0.5 s doubling to 8 s, less up to 25 % jitter; Retry-After honoured).
"""
from __future__ import annotations

import email.utils
import math
import queue
import random
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Mapping

REPLY_BASE_BYTES = 64 * 1024  # a reply's JSON around its text: ids, usage, finish reason
REPLY_BYTES_PER_TOKEN = 64  # generous: a long token JSON-escaped (\uXXXX), text and reasoning both
REPLY_MAX_BYTES = 16 * 1024 * 1024  # the default's ceiling, whatever max_new_tokens says
RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx: the client's own set
DOWN_STATUS = frozenset({502, 503, 504})  # a gateway's word for a server it cannot reach
MAX_RETRY_AFTER_S = 60.0


def reply_cap(max_reply_bytes: int | None, max_new_tokens: int) -> int:
    """Bytes one reply may bring: the named bound, else one derived from max_new_tokens."""
    if max_reply_bytes is not None:
        return max_reply_bytes
    return min(REPLY_BASE_BYTES + REPLY_BYTES_PER_TOKEN * max(max_new_tokens, 0), REPLY_MAX_BYTES)


def read_capped(chunks: Iterable[bytes], cap: int) -> bytes | None:
    """The body, or None as soon as it passes `cap` bytes: what follows is never read (the caller
    closes the response, and with it the connection)."""
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > cap:
            return None
    return bytes(data)


def retryable(status: int, headers: Mapping[str, str]) -> bool:
    should = headers.get("x-should-retry")  # the server says, as the client obeys it
    if should in ("true", "false"):
        return should == "true"
    after = retry_after(headers)
    return (status in RETRY_STATUS or status >= 500) and (after is None or after <= MAX_RETRY_AFTER_S)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asks us to wait (Retry-After-Ms, Retry-After in seconds or as a date)."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name) or "")
        except ValueError:
            continue
        if math.isfinite(value):
            return value / scale
    date = email.utils.parsedate_tz(headers.get("retry-after") or "")
    return float(email.utils.mktime_tz(date) - time.time()) if date else None


def retry_delay(retry: int, headers: Mapping[str, str] | None = None) -> float:
    """Seconds before retry number `retry` (1, 2, ...)."""
    after = retry_after(headers)
    if after is not None and 0 < after <= MAX_RETRY_AFTER_S:
        return after
    return min(0.5 * 2.0 ** (retry - 1), 8.0) * (1 - 0.25 * random.random())


class Breaker:
    """One stream's view of the server. Attempts that cannot reach it (refused, reset, timed out,
    a gateway's 502/503/504) are counted across samples; any other reply, even a 400 or a reply
    without an answer, means the server is there and resets the count. It trips after `after`
    such attempts in a row that span at least `span_s` seconds (a server back within that, a
    restart, costs nothing) or end a sample's retries (with max_retries=0 every sample would
    fail in those seconds). `stop` is set when it trips or the stream ends: no sample starts
    another attempt, and one waiting to retry wakes at once."""

    def __init__(self, after: int, span_s: float):
        self.after, self.span_s = after, span_s
        self.stop = threading.Event()
        self.tripped = ""  # why, once tripped
        self._lock = threading.Lock()
        self._count, self._since = 0, math.inf

    def reached(self) -> None:
        with self._lock:
            self._count, self._since = 0, math.inf

    def lost(self, started: float, why: str, last: bool) -> None:
        """An attempt begun at `started` (time.monotonic) could not reach the server; `last`: it was
        its sample's last attempt."""
        with self._lock:
            self._count += 1
            self._since = min(self._since, started)
            span = time.monotonic() - self._since
            if self._count >= self.after and (span >= self.span_s or last) and not self.tripped:
                self.tripped = f"{self._count} requests in a row failed over {span:.1f} s (the last: {why})"
                self.stop.set()

    def wait(self, seconds: float) -> bool:
        """Sleep before a retry; True when the stream stopped meanwhile (do not retry)."""
        return self.stop.wait(seconds)


class Workers:
    """`n` daemon threads running submitted calls. Daemon, unlike ThreadPoolExecutor's workers:
    a request abandoned on a hung server (the breaker tripped, Ctrl-C) is never waited for at exit."""

    def __init__(self, n: int, name: str):
        self._n, self._name, self._started = n, name, 0
        self._jobs: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple] | None] = queue.SimpleQueue()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._jobs.put((future, fn, args))
        if self._started < self._n:  # started on demand: a short stream starts few
            self._started += 1
            threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True).start()
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if future.set_running_or_notify_cancel():  # False: cancelled before it started
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # noqa: BLE001 - handed to whoever waits on it
                    future.set_exception(e)

    def shutdown(self) -> None:
        """Each thread ends after its current call; nothing waits for it."""
        for _ in range(self._started):
            self._jobs.put(None)
