"""Streamed JSONL writes and reads (issue 24, bounded memory): the same bytes as writing the joined
file at once, and a row that fails mid-stream leaves the old file and no temp file."""
from __future__ import annotations

import json
import random

import pytest

from m3eval.results import atomic_write_jsonl, iter_jsonl, read_jsonl


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": str(i), "prompt": "é" * rng.randint(0, 3000), "references": ["yes", "∑"], "x": rng.random()}
            for i in range(n)]


def test_chunked_write_gives_the_bytes_of_the_whole_file(tmp_path):
    rows = _rows(2000)  # about 3 MiB: several chunks, and a chunk boundary inside multi-byte text
    path = tmp_path / "a.jsonl"
    atomic_write_jsonl(path, (r for r in rows))
    expected = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    assert len(expected) > 2 << 20
    assert path.read_bytes() == expected
    assert list(iter_jsonl(path)) == read_jsonl(path) == rows
    atomic_write_jsonl(path, [])
    assert path.read_bytes() == b""


def test_a_row_failing_mid_stream_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.jsonl"
    atomic_write_jsonl(path, _rows(3))
    before = path.read_bytes()

    def rows():
        yield from _rows(1500)  # past the first chunk: part of the new file was written
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        atomic_write_jsonl(path, rows())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]  # no temp file left


def test_iter_jsonl_drops_a_torn_last_line(tmp_path, capsys):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n{"a": ')
    assert list(iter_jsonl(path)) == [{"a": 1}, {"a": 2}]
    assert "read 2 rows" in capsys.readouterr().err
