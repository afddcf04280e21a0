"""A task's samples, held as ids and work-order keys; each Sample is built from its row when asked.

A million samples held as objects took about a gigabyte before the model saw one (issue 24).
A SampleSet is a Sequence[Sample]: indexing or iterating builds samples (iterating, a block of
rows at a time), while slicing, `ordered`, `pending` and `with_ids` give views that hold
positions only. Chunks and batches are such views, so a planned run holds a few bytes a sample,
and a batch's Sample objects live while it is decoded, generated and written.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Iterator, Sequence, overload

from ..types import Sample

BLOCK = 256  # samples built per read of their rows when a set is iterated

Fetch = Callable[[Sequence[int]], list[Sample]]  # positions in the task -> their samples, in that order


def work_key(sample: Sample) -> int:
    """The first part of the work order: longest prompt first (out of memory shows early, batches pad little)."""
    return -len(sample.prompt) - 256 * len(sample.media)


class SampleSet(Sequence[Sample]):
    """The samples at `positions` (None: all, in dataset order) of a task whose ids and keys are given."""

    __slots__ = ("_ids", "_keys", "_fetch", "_positions", "_index")

    def __init__(self, ids: list[str], keys: array, fetch: Fetch, positions: Sequence[int] | None = None):
        self._ids, self._keys, self._fetch, self._positions = ids, keys, fetch, positions
        self._index: dict[str, int] | None = None  # id -> position, made by the first with_ids on a whole set

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> SampleSet:
        """Samples already built (tests, a backend's own list), held as they are."""
        held = list(samples)
        return cls([s.id for s in held], array("q", map(work_key, held)), lambda ps: [held[p] for p in ps])

    def _at(self) -> Sequence[int]:
        return range(len(self._ids)) if self._positions is None else self._positions

    def __len__(self) -> int:
        return len(self._at())

    @overload
    def __getitem__(self, i: int) -> Sample: ...

    @overload
    def __getitem__(self, i: slice) -> SampleSet: ...

    def __getitem__(self, i: int | slice) -> Sample | SampleSet:
        if isinstance(i, slice):
            return self._view(self._at()[i])
        return self._fetch([self._at()[i]])[0]

    def __iter__(self) -> Iterator[Sample]:
        at = self._at()
        for start in range(0, len(at), BLOCK):
            yield from self._fetch(at[start:start + BLOCK])

    def __repr__(self) -> str:
        return f"SampleSet({len(self)} samples)"

    def read(self, positions: Sequence[int]) -> list[Sample]:
        """The samples at these positions of the whole task (not of this view), read in one go: how
        another process reads through this set (run/data_process.py)."""
        return self._fetch(positions)

    def reading_through(self, fetch: Fetch) -> SampleSet:
        """The same samples, read through `fetch`."""
        return SampleSet(self._ids, self._keys, fetch, self._positions)

    @property
    def ids(self) -> list[str]:
        """The samples' ids, in the set's order, without building the samples."""
        return self._ids if self._positions is None else [self._ids[p] for p in self._positions]

    def _view(self, positions: Iterable[int]) -> SampleSet:
        return SampleSet(self._ids, self._keys, self._fetch, array("q", positions))

    def ordered(self) -> SampleSet:
        """The work order: longest prompt first (work_key), then id; it depends on the samples alone."""
        return self._view(sorted(self._at(), key=lambda p: (self._keys[p], self._ids[p])))

    def pending(self, done: Collection[str]) -> SampleSet:
        """Those whose id is not in `done`, in the set's order."""
        return self._view(p for p in self._at() if self._ids[p] not in done)

    def with_ids(self, ids: Iterable[str]) -> SampleSet:
        """The samples with these ids, in that order (a KeyError names one the set lacks). A whole
        set keeps its index of ids: a Ray worker asks it once a chunk."""
        if self._positions is not None:
            where = {self._ids[p]: p for p in self._positions}
        else:
            where = self._index = self._index or {i: p for p, i in enumerate(self._ids)}
        return self._view(where[i] for i in ids)


EMPTY = SampleSet.of([])


@dataclass(frozen=True)
class TaskData:
    """What reading a task's data produces (data/task_samples.py)."""

    samples: SampleSet  # the task's samples, in dataset order (built as they are read)
    fingerprint: dict[str, Any]  # what they were read from (data/fingerprint.py), to tell a changed dataset;
    # a task with dataset.join has the joined table's under "join"
    n_excluded: int  # rows doc.exclude_if dropped (0 for a task without one)
    class_names: dict[str, list[str]]  # each ClassLabel column's names (an encoder task's feature:<column>)
