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

from ..data.sample_set import SampleSet

CHUNK = 64  # samples per chunk (rounded up to whole batches)


@dataclass(frozen=True)
class Chunk:
    """A run of one task's samples: those of them still to predict."""

    task: str
    id: str  # "<index>-<digest of the task and every sample id of the chunk>"
    samples: SampleSet  # the pending ones, in the chunk's order


def chunk_size(batch_size: int) -> int:
    """Whole batches, at least CHUNK samples: a batch never spans two chunks."""
    return batch_size * math.ceil(CHUNK / batch_size)


def cut_chunks(task: str, samples: SampleSet, batch_size: int, done: set[str] | frozenset[str] = frozenset()
               ) -> list[Chunk]:
    """Every chunk of the task that still has a sample not in `done`, in work order (SampleSet.ordered)."""
    ordered, size, out = samples.ordered(), chunk_size(batch_size), []
    for index, start in enumerate(range(0, len(ordered), size)):
        part = ordered[start:start + size]
        pending = part.pending(done)
        if len(pending):
            digest = hashlib.sha256("\n".join([task, *part.ids]).encode()).hexdigest()[:12]
            out.append(Chunk(task, f"{index:05d}-{digest}", pending))
    return out


def batches_of(samples: SampleSet, batch_size: int) -> list[SampleSet]:
    """A chunk's (pending) samples in batches: consecutive runs, in the chunk's order."""
    return [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]
