"""Rank/world-size under torchrun or accelerate launch (both set RANK and WORLD_SIZE).

Ranks take batches as they go (claims.py) and send what they finish to rank 0 (relay.py), which
merges and scores: the ranks share no folder.
CPU processes talk over gloo, GPUs over nccl.

A stalled rank (stopped with SIGSTOP, hung in a driver) must not hang the launch, but a slow one
is normal: a rank can finish its share of a task minutes before another and wait at the task's
end. A short collective timeout cannot tell them apart; a heartbeat can. Each rank of a launch
runs a daemon thread that bumps its counter in the launch's c10d store every few seconds. Torch
ops release the GIL, so a generating rank keeps beating; a stopped process stops all its threads
(and one C call that held the GIL for the whole limit would look stopped too). A barrier or
gather first waits in the store (each rank adds one to the collective's arrival count) and
meanwhile watches the other ranks' counters: one that has not moved for `stall_timeout` seconds
(--stall-timeout, M3EVAL_STALL_TIMEOUT, default 300) ends the wait with one line naming the
rank. Only when every rank has arrived does the real collective run, under a bounded
process-group timeout (torch's default is 30 minutes). A single process starts no thread and
touches no store.
"""
from __future__ import annotations

import itertools
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import RunError, UsageError
from .claims import Claims
from .relay import Inbox, Logs, Outbox

STALL_ENV = "M3EVAL_STALL_TIMEOUT"
DEFAULT_STALL_S = 300.0
STALL_RANGE_S = (1.0, 7 * 86400.0)
JOIN_FLOOR_S = 60.0  # the process group's timeout is never shorter: ranks start seconds apart
_launches = itertools.count()  # process groups this process joined: each one's keys apart


def stall_timeout(given: float | None = None) -> float:
    """The --stall-timeout given, else M3EVAL_STALL_TIMEOUT, else the default (seconds)."""
    if given is not None:
        return given
    text = os.environ.get(STALL_ENV, "").strip()
    if not text:
        return DEFAULT_STALL_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and STALL_RANGE_S[0] <= value <= STALL_RANGE_S[1]):
        raise UsageError(f"{STALL_ENV}={text!r}: expected a number of seconds from 1 to 604800")
    return value


class _Watch:
    """This rank's heartbeat thread, the arrival counts, and its view of the other ranks' beats."""

    def __init__(self, rank: int, world: int, stall_s: float) -> None:
        self.rank, self.world, self.stall_s = rank, world, stall_s
        self.interval = min(5.0, stall_s / 5)
        self.prefix = f"m3eval/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{next(_launches)}/"
        self.store_at = (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), self.prefix)  # for claims, relay
        self.store = self._connect()
        self.seq = 0  # collectives so far: every rank meets the same ones in the same order
        self.stop = threading.Event()
        self._op(self.store.set, f"who/{rank}", f"pid {os.getpid()} on {socket.gethostname()}")
        self._op(self.store.add, f"beat/{rank}", 1)
        now = time.monotonic()
        # rank -> (its beat count, when this rank last saw it change): a count only grows, so one
        # that has not moved since then has not beaten for at least that long
        self.seen = {r: (self._op(self.store.add, f"beat/{r}", 0), now) for r in range(world) if r != rank}
        threading.Thread(target=self._beat, args=(self._connect(),), name="m3eval-heartbeat", daemon=True).start()

    def _connect(self) -> Any:
        """A client of the launch's c10d store: the TCPStore that torchrun's agent (or rank 0)
        serves at MASTER_ADDR:MASTER_PORT, where init_process_group's env:// rendezvous met.
        A connection of our own (torch has no public accessor for the process group's store);
        its timeout bounds an operation when that server itself is stopped."""
        import torch.distributed as td
        try:
            store = td.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                                timeout=timedelta(seconds=self.stall_s), wait_for_workers=False)
        except RuntimeError as e:
            raise RunError(f"rank {self.rank}: cannot reach the launch's store at {os.environ['MASTER_ADDR']}:"
                           f"{os.environ['MASTER_PORT']}: {_first_line(e)}") from None
        return td.PrefixStore(self.prefix, store)

    def _op(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except RuntimeError as e:  # torch's DistError: the store's host (torchrun's agent, rank 0) stopped or died
            raise RunError(f"rank {self.rank}: lost the launch's store at {os.environ.get('MASTER_ADDR')}:"
                           f"{os.environ.get('MASTER_PORT')} (its host stopped or died?): {_first_line(e)}; "
                           "finished predictions are kept, re-run the same command to resume") from None

    def _beat(self, store: Any) -> None:
        while not self.stop.wait(self.interval):
            try:
                store.add(f"beat/{self.rank}", 1)
            except Exception:  # noqa: BLE001 - the store is gone: the launch is ending
                return

    def arrive(self) -> None:
        """Return when every rank has arrived at this collective; raise RunError naming any rank
        whose heartbeat stopped meanwhile."""
        key = f"arrive/{self.seq}"
        self.seq += 1
        pause, check_at = 0.001, time.monotonic() + self.interval
        arrived = self._op(self.store.add, key, 1)
        while arrived < self.world:
            time.sleep(pause)
            pause = min(2 * pause, 0.05)  # a few ms when the ranks arrive together
            if time.monotonic() >= check_at:
                self.check()
                check_at = time.monotonic() + self.interval
            arrived = self._op(self.store.add, key, 0)

    def check(self) -> None:
        now, stalled = time.monotonic(), []
        for r, (count, since) in self.seen.items():
            latest = self._op(self.store.add, f"beat/{r}", 0)
            if latest != count:
                self.seen[r] = (latest, now)
            elif now - since >= self.stall_s:
                stalled.append((r, now - since))
        if stalled:
            raise RunError(self._stalled(stalled))

    def after_failed_collective(self) -> None:
        """A collective failed at the process group's timeout, long after the last `check`: a rank
        stopped since then has beaten since, so `check` alone would not see it. Raise naming every
        rank whose count does not move over two beats."""
        before = {r: self._op(self.store.add, f"beat/{r}", 0) for r in self.seen}
        still = 2 * self.interval + 0.1
        time.sleep(still)
        stalled = [(r, still) for r, count in before.items() if self._op(self.store.add, f"beat/{r}", 0) == count]
        if stalled:
            raise RunError(self._stalled(stalled))

    def _stalled(self, stalled: list[tuple[int, float]]) -> str:
        who = ", ".join(f"{r} ({self._who(r)}, no heartbeat for {s:.0f} s)" for r, s in stalled)
        return (f"rank{'s' if len(stalled) > 1 else ''} {who} stalled (stopped or hung) while rank {self.rank} "
                f"waited; the limit is {self.stall_s:g} s (--stall-timeout or {STALL_ENV}): the launch "
                "stops, finished predictions are kept, re-run the same command to resume")

    def _who(self, r: int) -> str:
        key = f"who/{r}"
        return self._op(self.store.get, key).decode() if self._op(self.store.check, [key]) else "pid unknown"

    def close(self) -> None:
        self.stop.set()  # not joined: a beat blocked on a stopped store host must not hold the exit


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    watch: _Watch | None = field(default=None, compare=False, repr=False)  # None: a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size == 1:
            return
        if self.watch is not None:
            self.watch.arrive()  # every rank has arrived: that is the barrier
            return
        import torch.distributed as td
        td.barrier()

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's obj on rank 0 (None elsewhere)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as td
        if self.watch is not None:
            self.watch.arrive()
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        try:
            td.gather_object(obj, out, dst=0)
        except RuntimeError as e:  # a rank stopped between arriving and the gather: the group's timeout
            if self.watch is not None:
                self.watch.after_failed_collective()  # names it when its heartbeat has stopped too
            raise RunError(f"rank {self.rank}: the gather across ranks failed: {_first_line(e)}") from None
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's obj on every rank (what only rank 0 can read: the run folder is its own)."""
        if self.world_size == 1:
            return obj
        import torch.distributed as td
        if self.watch is not None:
            self.watch.arrive()
        box = [obj]
        try:
            td.broadcast_object_list(box, src=0)
        except RuntimeError as e:  # as in gather
            if self.watch is not None:
                self.watch.after_failed_collective()
            raise RunError(f"rank {self.rank}: the broadcast from rank 0 failed: {_first_line(e)}") from None
        return box[0]

    def claims(self) -> Claims:
        """How this rank takes its batches (claims.py): from the launch's store when it has one."""
        if self.watch is None:
            return Claims(self.rank, self.world_size)
        return Claims(self.rank, self.world_size, self.watch.store_at, self.watch.stall_s)

    def relay(self, run_dir: Path, tasks: set[str]) -> Logs:
        """Where this rank's finished batches go (relay.py): sent to rank 0 when the launch has a
        store, so the ranks need not share the run folder."""
        if self.watch is None:
            return Logs(run_dir)
        if self.is_main:
            return Inbox(run_dir, self.world_size, self.watch.store_at, self.watch.stall_s, tasks)
        return Outbox(self.rank, self.watch.store_at, self.watch.stall_s)

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        if self.world_size > 1:
            import torch.distributed as td
            if td.is_initialized():
                td.destroy_process_group()


def init_distributed(stall_s: float | None = None) -> Dist:
    """This process's rank. `stall_s`: seconds without a heartbeat after which a rank counts as
    stalled (None: M3EVAL_STALL_TIMEOUT, else 300)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as td
    stall_s = stall_timeout(stall_s)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not td.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        join_s = max(stall_s, JOIN_FLOOR_S)
        try:
            td.init_process_group(backend=backend, timeout=timedelta(seconds=join_s))
        except RuntimeError as e:  # e.g. a rank that never came: torch's DistStoreError after join_s
            raise RunError(f"rank {rank} could not join the launch's {world} ranks (waited up to {join_s:g} s): "
                           f"{_first_line(e)}") from None
    # a process group made without env:// (MASTER_ADDR/PORT) has no store we can reach: plain collectives
    watched = "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ
    return Dist(rank=rank, world_size=world, local_rank=local, watch=_Watch(rank, world, stall_s) if watched else None)
