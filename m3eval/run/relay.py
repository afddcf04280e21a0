"""Where a rank's finished predictions go: the run folder, which only rank 0 needs to see.

One process appends each finished batch to its log (`Logs`). Under torchrun the ranks need no
shared filesystem (nodes with local disks only, a Slurm allocation without NFS): a rank other
than 0 sends each finished batch, its records and its thumbnails, through the launch's c10d
store (the TCPStore that torchrun's agent serves, which the heartbeats and the batch claims use
too), under a key of its own and then counted (`Outbox`). A thread of rank 0 polls the counts,
writes what came to predictions/<task>.rank<r>.jsonl (thumbnails first, media/<task>/) and
deletes the keys, so the store holds only the batches in flight (`Inbox`). A task's batches are
all sent before its end barrier, after which rank 0 takes the rest (`drain`) and merges them:
the output folder exists only where rank 0 runs, and a batch is durable once rank 0 has it.
"""
from __future__ import annotations

import base64
import json
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import RunError
from ..results import append_jsonl, atomic_write_bytes, media_filename
from .claims import open_store, store_lost

if TYPE_CHECKING:
    from .generate import TaskPlan

POLL_S = 0.2  # how often rank 0 looks for sent batches while it generates
Write = Callable[["TaskPlan", list[dict[str, Any]]], None]  # a finished batch's rows to where they go


def append_log(plan: TaskPlan, rows: list[dict[str, Any]]) -> None:
    append_jsonl(plan.log, rows)


class Logs:
    """One process, or ranks whose group has no store to reach (they must share the folder):
    each rank appends to its own log."""

    def __init__(self, run_dir: Path) -> None:
        self.media_root = run_dir / "media"  # thumbnails go to media_root/<task>/ as they are decoded

    def write(self, plan: TaskPlan, rows: list[dict[str, Any]]) -> None:
        append_log(plan, rows)

    def drain(self) -> None:
        """Every batch sent so far is in the run folder (rank 0, at a task's end)."""

    def close(self) -> None:
        pass


class Outbox(Logs):
    """A rank other than 0: thumbnails are made in a scratch folder of its own, and each batch
    is sent to rank 0 with them."""

    def __init__(self, rank: int, store_at: tuple[str, int, str], timeout_s: float) -> None:
        self.rank, self.store_at, self.timeout_s = rank, store_at, timeout_s
        self.scratch = tempfile.TemporaryDirectory(prefix=f"m3eval-rank{rank}-")
        self.media_root = Path(self.scratch.name) / "media"
        self.store: Any = None  # opened by the first write, in the writer thread that makes them all
        self.sent = 0

    def write(self, plan: TaskPlan, rows: list[dict[str, Any]]) -> None:
        media = {}
        if plan.media_dir is not None:
            for row in rows:
                path = plan.media_dir / media_filename(str(row["id"]))
                if path.is_file():
                    media[path.name] = base64.b64encode(path.read_bytes()).decode()
                    path.unlink()
        batch = json.dumps({"task": plan.spec.task, "rows": rows, "media": media}, ensure_ascii=False)
        try:
            if self.store is None:
                self.store = open_store(self.store_at, self.timeout_s)
            self.store.set(f"relay/{self.rank}/{self.sent}", batch.encode())
            self.store.add(f"relay/{self.rank}/sent", 1)  # counted once its key is there
        except RuntimeError as e:  # torch's DistError: the store's host (torchrun's agent) stopped or died
            raise store_lost(self.rank, self.store_at, f"sending a batch of {plan.spec.task} to rank 0", e) from None
        self.sent += 1

    def close(self) -> None:
        self.scratch.cleanup()


class Inbox(Logs):
    """Rank 0: its own batches go to its log; the other ranks' are taken from the store."""

    def __init__(self, run_dir: Path, world: int, store_at: tuple[str, int, str], timeout_s: float,
                 tasks: set[str]) -> None:
        super().__init__(run_dir)
        self.run_dir, self.world, self.store_at, self.tasks = run_dir, world, store_at, tasks
        self.store = open_store(store_at, timeout_s)
        self.taken = [0] * world  # per rank: batches written here
        self.lock = threading.Lock()  # one taker at a time: the thread or `drain`
        self.failed: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="m3eval-inbox", daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(POLL_S):
            try:
                with self.lock:
                    self._take()
            except BaseException as e:  # noqa: BLE001 - raised by the next drain, on the main thread
                self.failed = e
                return

    def _take(self) -> None:
        for rank in range(1, self.world):
            try:
                sent = int(self.store.add(f"relay/{rank}/sent", 0))
                while self.taken[rank] < sent:
                    key = f"relay/{rank}/{self.taken[rank]}"
                    self._write(rank, key, self.store.get(key))
                    self.store.delete_key(key)
                    self.taken[rank] += 1
            except RuntimeError as e:  # torch's DistError: the store's host stopped or died
                raise store_lost(0, self.store_at, f"taking rank {rank}'s batches", e) from None

    def _write(self, rank: int, key: str, data: bytes) -> None:
        """A batch's thumbnails, then its records: a record in the folder has its thumbnail."""
        try:
            batch = json.loads(data)
            task, rows, media = batch["task"], batch["rows"], batch["media"]
            if task not in self.tasks:
                raise ValueError(f"task {task!r} is not one this run generates")
            names = {media_filename(str(row["id"])) for row in rows}  # only the batch's own samples' names
        except (ValueError, KeyError, TypeError) as e:
            raise RunError(f"rank {rank} sent a malformed batch ({key}): {e}") from None
        for name, text in media.items():
            if name in names:
                atomic_write_bytes(self.run_dir / "media" / task / name, base64.b64decode(text), durable=False)
        append_jsonl(self.run_dir / "predictions" / f"{task}.rank{rank}.jsonl", rows)

    def drain(self) -> None:
        with self.lock:
            if self.failed is not None:
                raise self.failed
            self._take()

    def close(self) -> None:
        self.stop.set()  # not joined: a take blocked on a stopped store host must not hold the exit
