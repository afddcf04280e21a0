"""The tasks' data, read in a forked data process while the run's process loads the model.

Reading data takes `datasets`, pyarrow and pandas (half a second of imports) and then the reading,
all before the model's first batch; the model takes seconds to load. So as soon as a run knows its
tasks, before torch is imported, `TaskReading` forks a data process. It reads every task's data as
`load_data` would in the run's process, then serves, over a local socket (an abstract address, so no
file; a key only the run's processes hold), the samples that the run's process and its decoding
worker ask for by position, and each sample's media fields when they are decoded. The run's process
gets each task's ids, work-order keys and provenance, and never imports datasets
(benchmarks/bench_harness.py: start-up). Where m3eval forks nothing (forks.may_fork), the data is
read in the run's process when the run asks for it, as before.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, fields, replace
from functools import partial
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Callable, Sequence

from ..data.sample_set import TaskData
from ..errors import RunError
from ..forks import die_with_parent, may_fork
from ..tasks.schema import TaskSpec
from ..types import LazySource, Media, Sample

Loaded = tuple[dict[str, TaskData], list[str]]  # the tasks that loaded; why each other one did not


def load_data(specs: list[TaskSpec], limit: int | float | None, instructions: str, overrides: dict[str, str],
              bars: bool = True) -> Loaded:
    """Every task's data and scoring set-up, before the model generates (a mistake shows first).
    `bars`: datasets' own progress bars (off in the CLI: ours shows per task)."""
    import datasets  # here, not at the top: the run's process imports this module and not datasets

    from ..data.task_samples import load_task_data
    from ..scoring.submission import check_submission
    from ..scoring.task import check_scoring
    if not bars:
        datasets.disable_progress_bars()
    data, failures = {}, []
    for spec in specs:
        try:
            check_scoring(spec.metrics, spec.filters)
            check_submission(spec)
            data[spec.task] = load_task_data(spec, limit, instructions, overrides.get(spec.task))
        except (ValueError, KeyError) as e:  # DataError, SampleError, an unknown metric or filter
            failures.append(f"{spec.task} ({spec.source}): {e}")
    return data, failures


class TaskReading:
    """The run's tasks' data: read by a data process forked at once, or in this process when asked."""

    def __init__(self, specs: list[TaskSpec], limit: int | float | None, instructions: str,
                 overrides: dict[str, str], bars: bool = True):
        self._load = partial(load_data, specs, limit, instructions, overrides, bars)
        self._process = _DataProcess.start(self._load) if may_fork() else None  # None: read here when asked
        self._held: set[str] = set()  # the tasks whose samples the data process still serves

    def result(self) -> Loaded:
        """Every task's data (waits for the data process's reading)."""
        if self._process is None:
            return self._load()
        loaded = self._process.loaded()
        self._held = set(loaded[0])
        return loaded

    def release(self, task: str) -> None:
        """The task's samples are not read again: the data process lets them go (their memory is not held
        while the run scores), and ends with the last."""
        if self._process is not None and task in self._held:
            self._held.discard(task)
            if self._held:
                _call(self._process.address, ("release", task))
            else:
                self.close()

    def close(self) -> None:
        """The data process ends: the run has read what it needed (its samples are not read again)."""
        if self._process is not None:
            self._process.stop()
            self._process = None


# ---- the run's side -------------------------------------------------------------------------

_KEYS: dict[str, bytes] = {}  # each data process's key: the run's process and its forks hold it
_OPEN = threading.local()  # this thread's connections, {address: (pid, Connection)}: a fork opens its own


def _call(address: str, request: tuple[Any, ...]) -> Any:
    """The data process's answer to one request; its exception (a bad media path, say) is raised here."""
    held: dict[str, tuple[int, Connection]] = _OPEN.__dict__.setdefault("held", {})
    key = _KEYS.get(address)
    if key is None:
        raise RunError("the run's data process has ended: its samples are no longer read")
    try:
        pid, conn = held.get(address, (0, None))
        if conn is None or pid != os.getpid():
            conn = Client(address, "AF_UNIX", authkey=key)
            held[address] = (os.getpid(), conn)
        conn.send(request)
        status, value = conn.recv()
    except (EOFError, OSError) as e:
        held.pop(address, None)
        raise RunError(f"the data process stopped answering ({type(e).__name__}: {e}); "
                       "its own error, if any, is printed above") from None
    if status == "error":
        raise value
    return value


@dataclass(frozen=True)
class RemoteFetch:
    """A SampleSet's fetch in the run's processes: the data process builds the samples."""

    address: str
    task: str

    def __call__(self, positions: Sequence[int]) -> list[Sample]:
        samples: list[Sample] = _call(self.address, ("fetch", self.task, positions))
        return samples


class RemoteField(LazySource):
    """A sample's media field (data/samples.py LazyField) that the data process reads."""

    __slots__ = ("address", "table", "field", "optional")

    def __init__(self, address: str, table: int, field: dict[str, Any]):
        self.address, self.table, self.field = address, table, field  # field: the LazyField's, but its table
        self.optional = bool(field.get("optional"))

    def get(self) -> Any:
        return _call(self.address, ("media", self.table, self.field))


@dataclass
class _DataProcess:
    address: str
    pid: int

    @classmethod
    def start(cls, load: Callable[[], Loaded]) -> _DataProcess | None:
        """The data process, reading; None where no local socket can be made (the data is read here)."""
        key = os.urandom(32)
        address = f"\0m3eval-data-{os.getpid()}-{os.urandom(8).hex()}"  # abstract (leading NUL): no file
        try:
            listener = Listener(address, "AF_UNIX", authkey=key)
        except OSError:
            return None
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the data process: only this thread; it leaves with os._exit, running no clean-up of the run's
            try:
                die_with_parent(parent)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the run's process stops it
                _serve(listener, address, load)
            finally:
                os._exit(1)
        listener.close()  # an abstract address: closing this copy removes nothing the data process listens on
        _KEYS[address] = key
        return cls(address, pid)

    def loaded(self) -> Loaded:
        loaded: Loaded = _call(self.address, ("loaded",))
        return loaded

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        _KEYS.pop(self.address, None)
        _OPEN.__dict__.get("held", {}).pop(self.address, None)


# ---- the data process's side ----------------------------------------------------------------

def _serve(listener: Listener, address: str, load: Callable[[], Loaded]) -> None:
    """Read the data, then answer every process that connects, each in a thread, one request at a time."""
    try:
        service = _Service(address, load())
    except BaseException as e:  # noqa: BLE001 - raised again in the run's process, which asks first
        if not isinstance(e, (ValueError, KeyError)):
            traceback.print_exc(file=sys.stderr)  # not a data error: what the data process was doing
        service = _Service(address, None, e)
    lock = threading.Lock()
    while True:
        try:
            conn = listener.accept()
        except (AuthenticationError, OSError):  # a process without the key
            continue
        threading.Thread(target=service.answer, args=(conn, lock), daemon=True).start()


class _Service:
    def __init__(self, address: str, loaded: Loaded | None, error: BaseException | None = None):
        self.address, self.error = address, error
        self.data = loaded[0] if loaded else {}
        self.failures = loaded[1] if loaded else []
        self.tables: dict[int, tuple[str, Any]] = {}  # by id: the tables media fields are read from, and whose

    def answer(self, conn: Connection, lock: threading.Lock) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                with lock:  # the tables are read by one request at a time
                    try:
                        reply: tuple[str, Any] = ("ok", self.handle(request))
                    except Exception as e:  # noqa: BLE001 - the asking process raises it
                        reply = ("error", e)
                try:
                    conn.send(reply)
                except (EOFError, OSError):
                    return
                except Exception as e:  # noqa: BLE001 - the reply does not pickle: its text goes instead
                    conn.send(("error", RunError(f"the data process could not send its answer: {e}")))

    def handle(self, request: tuple[Any, ...]) -> Any:
        if self.error is not None:
            raise self.error
        if request[0] == "loaded":  # each task's ids, keys and provenance; its samples are read here
            return {task: replace(d, samples=d.samples.reading_through(RemoteFetch(self.address, task)))
                    for task, d in self.data.items()}, self.failures
        if request[0] == "fetch":
            _, task, positions = request
            return [self.remote(s) for s in self.data[task].samples.read(positions)]
        if request[0] == "media":
            from ..data.samples import LazyField
            _, table, field = request
            return LazyField(ds=self.tables[table][1], **field).get()
        if request[0] == "release":
            self.data.pop(request[1], None)
            self.tables = {k: v for k, v in self.tables.items() if v[0] != request[1]}
            return None
        raise RunError(f"the data process was asked {request[0]!r}")

    def remote(self, sample: Sample) -> Sample:
        """The sample, its media fields read through this process."""
        from ..data.samples import LazyField
        if not any(isinstance(m.source, LazyField) for m in sample.media):
            return sample
        return replace(sample, media=[Media(m.kind, self.field(sample.task, m.source))
                                      if isinstance(m.source, LazyField) else m for m in sample.media])

    def field(self, task: str, lazy: Any) -> RemoteField:
        self.tables.setdefault(id(lazy.ds), (task, lazy.ds))
        return RemoteField(self.address, id(lazy.ds), {f.name: getattr(lazy, f.name) for f in fields(lazy)
                                                        if f.name != "ds"})
