"""A rank's batches reach rank 0's run folder through the launch's store (m3eval/run/relay.py),
on a real c10d TCPStore: records and thumbnails arrive, nothing stays in the store or the
sender's scratch folder, and a batch that is not the run's is refused, never written."""
from __future__ import annotations

import base64
import json
import socket
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch.distributed as td

from m3eval.errors import RunError
from m3eval.results import media_filename, read_jsonl
from m3eval.run.relay import Inbox, Outbox


@pytest.fixture
def store_at():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = td.TCPStore("127.0.0.1", port, is_master=True, timeout=timedelta(seconds=10), wait_for_workers=False)
    yield ("127.0.0.1", port, "m3eval/0/0/"), td.PrefixStore("m3eval/0/0/", server)


def plan(task: str, media_dir: Path | None):
    """What a writer reads of a TaskPlan."""
    return SimpleNamespace(spec=SimpleNamespace(task=task), media_dir=media_dir)


def test_a_batch_and_its_thumbnail_reach_rank_0_and_leave_nothing_behind(store_at, tmp_path):
    at, store = store_at
    inbox = Inbox(tmp_path / "run", 3, at, 10.0, {"t"})
    outbox = Outbox(2, at, 10.0)
    try:
        media = outbox.media_root / "t"
        media.mkdir(parents=True)
        (media / media_filename("a/1")).write_bytes(b"\xff\xd8jpeg")
        rows = [{"id": "a/1", "prediction": "一只狗"}, {"id": "b", "prediction": ""}]
        outbox.write(plan("t", media), rows)
        outbox.write(plan("t", media), [{"id": "c", "prediction": "x"}])
        assert not list(media.iterdir())  # sent, so gone from the scratch folder
        log = tmp_path / "run" / "predictions" / "t.rank2.jsonl"
        end = time.monotonic() + 10
        while not (log.exists() and len(read_jsonl(log)) == 3):  # the polling thread, without a drain
            assert time.monotonic() < end, "rank 0's thread did not take the batches"
            time.sleep(0.05)
        inbox.drain()
        assert read_jsonl(log) == [*rows, {"id": "c", "prediction": "x"}]
        assert (tmp_path / "run" / "media" / "t" / media_filename("a/1")).read_bytes() == b"\xff\xd8jpeg"
        assert not store.check(["relay/2/0"]) and not store.check(["relay/2/1"])  # taken, so deleted
        assert not (tmp_path / "run" / "predictions" / "t.rank1.jsonl").exists()
    finally:
        inbox.close()
        outbox.close()
    assert not Path(outbox.scratch.name).exists()


def _send(store, rank: int, batch: dict) -> None:
    store.set(f"relay/{rank}/0", json.dumps(batch))
    store.add(f"relay/{rank}/sent", 1)


def test_a_thumbnail_not_of_the_batch_is_not_written(store_at, tmp_path):
    at, store = store_at
    inbox = Inbox(tmp_path / "run", 2, at, 10.0, {"t"})
    inbox.close()  # drained by hand
    jpeg = base64.b64encode(b"x").decode()
    _send(store, 1, {"task": "t", "rows": [{"id": "a"}], "media": {"../../../escape.jpg": jpeg, "other.jpg": jpeg}})
    inbox.drain()
    assert read_jsonl(tmp_path / "run" / "predictions" / "t.rank1.jsonl") == [{"id": "a"}]
    assert not (tmp_path / "run" / "media").exists() and not (tmp_path / "escape.jpg").exists()


@pytest.mark.parametrize("batch, why", [
    ({"task": "other", "rows": [], "media": {}}, "task 'other' is not one this run generates"),
    ({"task": "t", "rows": [{"prediction": "x"}], "media": {}}, "'id'"),
    ({"rows": [], "media": {}}, "'task'"),
])
def test_a_batch_that_is_not_the_runs_is_refused_naming_its_rank(store_at, tmp_path, batch, why):
    at, store = store_at
    inbox = Inbox(tmp_path / "run", 2, at, 10.0, {"t"})
    inbox.close()
    _send(store, 1, batch)
    with pytest.raises(RunError, match="rank 1 sent a malformed batch") as e:
        inbox.drain()
    assert why in str(e.value)
    assert not (tmp_path / "run" / "predictions").exists()
