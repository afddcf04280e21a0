"""A first read of a data file is converted into datasets' cache in a child process (its memory is
given back when the child ends); the run's process reads the cache, and gets what
datasets.load_dataset gives."""
from __future__ import annotations

import json
import os

import datasets
import pytest
from datasets.packaged_modules.json.json import Json

from m3eval.data import convert


@pytest.fixture
def converting_pids(monkeypatch, tmp_path):
    """The pid of each process that converts a json file (written to a file: a child's memory is its own)."""
    log = tmp_path / "pids"
    real = Json._generate_tables

    def generate(self, *args, **kwargs):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        yield from real(self, *args, **kwargs)

    monkeypatch.setattr(Json, "_generate_tables", generate)
    return lambda: [int(x) for x in log.read_text().split()] if log.exists() else []


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_first_read_converts_in_a_child_and_gives_what_datasets_gives(tmp_path, converting_pids):
    data = _write(tmp_path / "a.jsonl", [{"q": f"question {i}", "a": [str(i)]} for i in range(50)])
    cache = str(tmp_path / "cache")
    ds = convert.load_dataset("json", data_files=data, split="train", cache_dir=cache)
    pids = converting_pids()
    assert pids and os.getpid() not in pids and len(set(pids)) == 1  # converted in one other process
    again = convert.load_dataset("json", data_files=data, split="train", cache_dir=cache)
    assert converting_pids() == pids  # the second read only reads the cache
    theirs = datasets.load_dataset("json", data_files=data, split="train", cache_dir=cache)
    assert ds.to_list() == again.to_list() == theirs.to_list() and ds.features == theirs.features
    assert [c["filename"] for c in ds.cache_files] == [c["filename"] for c in theirs.cache_files]


def test_a_conversion_that_fails_in_the_child_fails_with_datasets_own_error(tmp_path, converting_pids):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"q": "fine"}\n{"q": \n')
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as ours:
        convert.load_dataset("json", data_files=str(data), split="train", cache_dir=str(tmp_path / "c1"))
    pids = converting_pids()
    assert len(set(pids)) == 2 and pids[-1] == os.getpid()  # the child, then this process
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as theirs:
        datasets.load_dataset("json", data_files=str(data), split="train", cache_dir=str(tmp_path / "c2"))
    assert str(ours.value) == str(theirs.value)


def test_no_fork_where_forks_are_refused(tmp_path, converting_pids, monkeypatch):
    """M3EVAL_PREFETCH=thread (a Ray worker sets it: its threads hold locks a fork would copy)."""
    monkeypatch.setenv("M3EVAL_PREFETCH", "thread")
    data = _write(tmp_path / "a.jsonl", [{"q": "one"}])
    assert convert.load_dataset("json", data_files=data, split="train", cache_dir=str(tmp_path / "c")).num_rows == 1
    assert set(converting_pids()) == {os.getpid()}
