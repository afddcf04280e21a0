"""The unit of work: a chunk, a fixed run of a task's samples.

A task's samples are put in one order that depends on nothing but the samples (longest prompt
first, then id) and cut into chunks of whole batches. A batch never crosses a chunk, so which
samples share a batch is the same for one process, any number of torchrun ranks (they deal the
batches out) and any number of Ray workers (they take whole chunks): greedy predictions do not
depend on how the work was spread. A chunk's id is derived from the task and its samples' ids;
under the Ray engine it names the file the chunk's records go to
(`predictions/<task>.chunk-<id>.jsonl`, written once, atomically).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ..types import Sample

CHUNK = 64  # samples per chunk (rounded up to whole batches)


@dataclass(frozen=True)
class Chunk:
    """A run of one task's samples: those of them still to predict."""

    task: str
    id: str  # "<index>-<digest of the task and every sample id of the chunk>"
    samples: list[Sample]  # the pending ones, in the chunk's order


def chunk_size(batch_size: int) -> int:
    """Whole batches, at least CHUNK samples: a batch never spans two chunks."""
    return batch_size * math.ceil(CHUNK / batch_size)


def work_order(samples: list[Sample]) -> list[Sample]:
    """Longest prompt first (out of memory shows early, batches pad little), then id."""
    return sorted(samples, key=lambda s: (-len(s.prompt) - 256 * len(s.media), s.id))


def cut_chunks(task: str, samples: list[Sample], batch_size: int, done: set[str] | frozenset[str] = frozenset()
               ) -> list[Chunk]:
    """Every chunk of the task that still has a sample not in `done`, in work order."""
    ordered, size, out = work_order(samples), chunk_size(batch_size), []
    for index, start in enumerate(range(0, len(ordered), size)):
        part = ordered[start:start + size]
        pending = [s for s in part if s.id not in done]
        if pending:
            digest = hashlib.sha256("\n".join([task, *(s.id for s in part)]).encode()).hexdigest()[:12]
            out.append(Chunk(task, f"{index:05d}-{digest}", pending))
    return out


def batches_of(samples: list[Sample], batch_size: int) -> list[list[Sample]]:
    """A chunk's (pending) samples in batches: consecutive runs, in the chunk's order."""
    return [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]
