"""Which rank generates which batch: handed out as ranks ask, not split beforehand.

Every rank plans the same batches of a task (the same finished set, the same work order:
chunks.py). A rank takes the next batch by adding 1 to the task's counter in the launch's c10d
store (the TCPStore that torchrun's agent serves, the one the heartbeats use); the number it gets
back is the batch's index. A fast rank takes more batches and a slow one fewer, and a batch goes
to one rank only. The counter is read in the rank's own process, as the batches are handed to the
decoding ahead of the model (prefetch.py), over a connection of its own. One process counts
alone; ranks with no store to reach deal the batches out (rank r takes r, r + world, ...).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..errors import RunError


@dataclass
class Claims:
    rank: int = 0
    world_size: int = 1
    store_at: tuple[str, int, str] | None = None  # (host, port, key prefix) of the launch's store
    timeout_s: float = 300.0
    _taken: dict[str, int] = field(default_factory=dict)  # without a store: claims made so far, per task
    _store: Any = field(default=None, repr=False)
    _pid: int = 0  # the process that opened _store (a forked child opens its own)

    @property
    def shared(self) -> bool:
        """The ranks take batches from one counter (how many a rank will take is not known)."""
        return self.store_at is not None

    def next(self, task: str) -> int:
        """The index of the next batch of `task` this rank is to generate (past the last: none left)."""
        if self.store_at is None:
            n = self._taken.get(task, 0)
            self._taken[task] = n + 1
            return self.rank + n * self.world_size
        try:
            if self._store is None or self._pid != os.getpid():
                self._store, self._pid = open_store(self.store_at, self.timeout_s), os.getpid()
            return int(self._store.add(f"claim/{task}", 1)) - 1
        except RuntimeError as e:  # torch's DistError: the store's host (torchrun's agent) stopped or died
            raise store_lost(self.rank, self.store_at, f"taking the next batch of {task}", e) from None


def open_store(store_at: tuple[str, int, str], timeout_s: float) -> Any:
    """A client connection of this process (and thread) to the launch's store, under its key prefix."""
    import torch.distributed as td
    host, port, prefix = store_at
    return td.PrefixStore(prefix, td.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=timeout_s),
                                              wait_for_workers=False))


def store_lost(rank: int, store_at: tuple[str, int, str], doing: str, e: BaseException) -> RunError:
    host, port, _ = store_at
    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return RunError(f"rank {rank}: lost the launch's store at {host}:{port} while {doing} ({why}); "
                    "finished predictions are kept, re-run the same command to resume")
