"""A task's prediction files read a line at a time, so that nothing holds a whole task (issue 24):
which samples are finished, the per-rank logs and chunk files merged into predictions/<task>.jsonl,
and that file as the source scoring reads, in order and then by position."""
from __future__ import annotations

import json
from array import array
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Protocol, Sequence

from pydantic import ValidationError

from .errors import ResultsError
from .line_record import PredictionLine
from .record import SampleFailure
from .results import atomic_write_jsonl, field_path, iter_jsonl_at
from .types import Prediction

_FILE_BITS = 40  # a merge index packs (file number, byte offset) into one int: files under 1 TiB


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, row) of each prediction line; a damaged line (`5`, null, "references": "red") is an
    error naming the file and line, never a wrong score."""
    for n, (offset, row) in enumerate(iter_jsonl_at(path), 1):
        try:
            PredictionLine.model_validate(row)
        except ValidationError as e:
            raise ResultsError(f"{path}: prediction {n}: {field_path(e)}; restore the file, or delete it "
                               "to generate the task again") from None
        yield offset, row


def read_predictions(files: Iterable[Path]) -> dict[str, Prediction]:
    """Every prediction of the files, by id; an id's later line wins (a retried sample)."""
    out: dict[str, Prediction] = {}
    for f in files:
        if f.exists():
            for _, row in _lines(f):
                out[str(row["id"])] = Prediction.from_json(row)
    return out


def finished_ids(files: Iterable[Path]) -> set[str]:
    """The samples whose latest line is not a model failure (OOM, a timeout: those are generated again)."""
    done: set[str] = set()
    for f in files:
        if f.exists():
            for _, row in _lines(f):
                failure = SampleFailure.parse(row.get("error"))
                if failure is not None and failure.stage == "generate":
                    done.discard(str(row["id"]))
                else:
                    done.add(str(row["id"]))
    return done


def merge_predictions(files: list[Path], ids: Sequence[str]) -> list[str]:
    """files[0] rewritten from every file: the latest line of each of `ids`, in that order, then of any
    other id (an earlier run's, with a larger --limit), in the order first met; files[1:] removed.
    Only an index of where each line is stays in memory, never the predictions. Returns the ids
    with no line, writing nothing then."""
    index: dict[str, int] = {}  # id -> file number << _FILE_BITS | offset of its latest line
    for k, f in enumerate(files):
        if f.exists():
            for offset, row in _lines(f):
                index[str(row["id"])] = k << _FILE_BITS | offset
    missing = [i for i in ids if i not in index]
    if missing:
        return missing
    with ExitStack() as stack:
        handles: list[IO[bytes] | None] = [stack.enter_context(f.open("rb")) if f.exists() else None for f in files]

        def line(packed: int) -> dict[str, Any]:
            f = handles[packed >> _FILE_BITS]
            assert f is not None, "an indexed line of a file that is gone"
            f.seek(packed & ((1 << _FILE_BITS) - 1))
            return Prediction.from_json(json.loads(f.readline())).to_json()

        def rows() -> Iterator[dict[str, Any]]:
            yield from (line(index.pop(i)) for i in ids)
            yield from (line(v) for v in index.values())  # what is left once this run's are taken

        # the handles read the files as they were: the new files[0] replaces the old one by a rename
        atomic_write_jsonl(files[0], rows())
    for f in files[1:]:
        f.unlink(missing_ok=True)
    return []


class PredictionSource(Protocol):
    """A task's predictions as scoring reads them: their number, once or more in order, and some
    again by position (the references' fingerprint reads them in id order)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Prediction]: ...

    def take(self, positions: Iterable[int]) -> Iterator[Prediction]: ...


class PredictionList(list[Prediction]):
    """Predictions already in memory (re-scoring, external files, tests) as a source."""

    def take(self, positions: Iterable[int]) -> Iterator[Prediction]:
        return (self[i] for i in positions)


class PredictionFile:
    """The first n lines of a predictions file (after `merge_predictions`: this run's samples, in their
    order), read a line at a time as often as asked."""

    def __init__(self, path: Path, n: int):
        self.path, self.n = path, n
        self._offsets = array("q")  # where each line starts, noted by the first full read

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Prediction]:
        offsets = array("q")
        for k, (offset, row) in enumerate(_lines(self.path)):
            if k == self.n:
                break
            offsets.append(offset)
            yield Prediction.from_json(row)
        if len(offsets) < self.n:
            raise ResultsError(f"{self.path}: {len(offsets)} predictions, {self.n} expected; run the task again")
        self._offsets = offsets

    def take(self, positions: Iterable[int]) -> Iterator[Prediction]:
        if len(self._offsets) != self.n:
            for _ in self:  # notes the offsets
                pass
        with self.path.open("rb") as f:
            for i in positions:
                f.seek(self._offsets[i])
                yield Prediction.from_json(json.loads(f.readline()))
