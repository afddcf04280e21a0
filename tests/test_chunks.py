"""Chunks (m3eval/run/chunks.py): a task cut the same way whoever runs it, batches that hold the
same samples at any world size, and chunk files the run folder's readers know."""
from __future__ import annotations

from pathlib import Path

from m3eval.data.task_samples import load_task_data
from m3eval.models.base import GenerationConfig
from m3eval.results import predicted_tasks, prediction_files
from m3eval.data.sample_set import SampleSet
from m3eval.run.chunks import CHUNK, batches_of, chunk_size, cut_chunks
from m3eval.run.claims import Claims
from m3eval.run.generate import plan_task
from m3eval.run.ray_engine import ChunkDone, chunk_file, write_chunk
from m3eval.tasks.registry import Registry
from m3eval.types import Sample


def _list(n: int) -> list[Sample]:
    return [Sample(id=f"s{i:03d}", task="t", prompt="q" * (i % 7), references=["a"]) for i in range(n)]


def _samples(n: int) -> SampleSet:
    return SampleSet.of(_list(n))


def test_chunks_are_whole_batches_in_work_order_with_stable_ids():
    samples = _samples(150)
    chunks = cut_chunks("t", samples, 8)
    assert chunk_size(8) == CHUNK == 64 and chunk_size(48) == 96 and chunk_size(100) == 100
    assert [len(c.samples) for c in chunks] == [64, 64, 22]
    assert [s for c in chunks for s in c.samples] == sorted(samples, key=lambda s: (-len(s.prompt), s.id))
    assert [len(s.prompt) for s in chunks[0].samples[:3]] == [6, 6, 6]  # longest first
    again = cut_chunks("t", SampleSet.of(reversed(_list(150))), 8)  # the order given does not matter
    assert [c.id for c in again] == [c.id for c in chunks]
    assert all(a.id != b.id for a, b in zip(chunks, cut_chunks("u", samples, 8)))  # the task is in the id
    assert len({c.id for c in chunks}) == 3 and chunks[1].id.startswith("00001-")


def test_done_samples_leave_their_chunk_and_finished_chunks_go():
    samples = _samples(150)
    chunks = cut_chunks("t", samples, 8)
    done = {s.id for s in chunks[0].samples} | {chunks[1].samples[0].id}
    left = cut_chunks("t", samples, 8, done)
    assert [c.id for c in left] == [chunks[1].id, chunks[2].id]  # ids are of the whole chunk, done or not
    assert list(left[0].samples) == list(chunks[1].samples)[1:]


def test_a_plan_is_the_chunks_batches_less_what_is_done():
    """A plan depends on the samples and rank 0's finished set only (no rank, no world size), so
    every rank plans the same batches and takes them from one list (claims.py)."""
    spec = Registry.discover([]).tasks["demo_vqa"]
    samples = load_task_data(spec, None, "default").samples
    gen = GenerationConfig(max_new_tokens=8)

    def batches(done: frozenset[str]) -> list[list[str]]:
        plan = plan_task(spec, samples, gen, Path("/nonexistent-run/demo_vqa.rank0.jsonl"), 3, done)
        assert [b.ids for c in plan.chunks for b in batches_of(c.samples, 3)] == [b.ids for b in plan.batches]
        return [[s.id for s in b] for b in plan.batches]

    whole = batches(frozenset())
    assert len(whole) == 22 and sum(map(len, whole)) == len(samples) == 64
    done = frozenset(whole[0] + whole[5][:1])
    left = batches(done)
    assert [i for b in left for i in b] == [i for b in whole for i in b if i not in done]
    assert left[0] == whole[1] and all(len(b) == 3 for b in left[:-1])  # the pending ones, batched again


def _drain(claims: Claims, task: str, n: int) -> list[int]:
    out = []
    while (k := claims.next(task)) < n:
        out.append(k)
    return out


def test_without_a_store_ranks_deal_the_batches_out():
    dealt = [_drain(Claims(r, 3), "t", 10) for r in range(3)]
    assert dealt == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert _drain(Claims(), "t", 4) == [0, 1, 2, 3]


def test_ranks_sharing_a_store_take_each_batch_once_as_they_ask():
    """Two ranks' counters in one c10d TCPStore (what torchrun's agent serves): a rank that asks
    more often gets more batches, and no batch goes to both."""
    import torch.distributed as td
    server = td.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    fast, slow = (Claims(r, 2, ("127.0.0.1", server.port, "launch/")) for r in (0, 1))
    taken: dict[int, list[int]] = {0: [], 1: []}
    for _ in range(9):  # the fast rank asks three times for each time the slow one does
        for rank, claims, times in ((0, fast, 3), (1, slow, 1)):
            for _ in range(times):
                if (k := claims.next("t")) < 20:
                    taken[rank].append(k)
    assert sorted(taken[0] + taken[1]) == list(range(20))
    assert len(taken[0]) == 15 and len(taken[1]) == 5
    assert _drain(Claims(0, 2, ("127.0.0.1", server.port, "another-launch/")), "t", 3) == [0, 1, 2]


def test_chunk_files_are_read_as_predictions_and_written_once(tmp_path):
    chunk = cut_chunks("t", _samples(10), 8)[0]
    path = chunk_file(tmp_path, chunk)
    assert path.name == f"t.chunk-{chunk.id}.jsonl"
    write_chunk(tmp_path, chunk, ChunkDone([{"id": "s000", "prediction": "first"}], {}))
    write_chunk(tmp_path, chunk, ChunkDone([{"id": "s000", "prediction": "again"}], {}))
    assert path.read_text().count("first") == 1 and "again" not in path.read_text()
    assert prediction_files(tmp_path, "t") == [tmp_path / "predictions" / "t.jsonl", path]
    assert predicted_tasks(tmp_path) == ["t"]


def test_a_chunk_writes_only_its_own_samples_thumbnails(tmp_path):
    from m3eval.results import media_filename
    chunk = cut_chunks("t", _samples(3), 8)[0]
    own = media_filename("s001")
    write_chunk(tmp_path, chunk, ChunkDone([], {own: b"jpeg", "../../escape.jpg": b"x", "other.jpg": b"x"}))
    assert [p.name for p in (tmp_path / "media" / "t").iterdir()] == [own]
    assert not (tmp_path.parent / "escape.jpg").exists()
