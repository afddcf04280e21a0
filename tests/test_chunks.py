"""Chunks (m3eval/run/chunks.py): a task cut the same way whoever runs it, batches that hold the
same samples at any world size, and chunk files the run folder's readers know."""
from __future__ import annotations

from pathlib import Path

from m3eval.data.task_samples import load_task_data
from m3eval.models.base import GenerationConfig
from m3eval.results import predicted_tasks, prediction_files
from m3eval.run.chunks import CHUNK, chunk_size, cut_chunks, work_order
from m3eval.run.distributed import Dist
from m3eval.run.generate import plan_task
from m3eval.run.ray_engine import ChunkDone, chunk_file, write_chunk
from m3eval.tasks.registry import Registry
from m3eval.types import Sample


def _samples(n: int) -> list[Sample]:
    return [Sample(id=f"s{i:03d}", task="t", prompt="q" * (i % 7), references=["a"]) for i in range(n)]


def test_chunks_are_whole_batches_in_work_order_with_stable_ids():
    samples = _samples(150)
    chunks = cut_chunks("t", samples, 8)
    assert chunk_size(8) == CHUNK == 64 and chunk_size(48) == 96 and chunk_size(100) == 100
    assert [len(c.samples) for c in chunks] == [64, 64, 22]
    assert [s for c in chunks for s in c.samples] == work_order(samples)
    assert [len(s.prompt) for s in chunks[0].samples[:3]] == [6, 6, 6]  # longest first
    assert [c.id for c in cut_chunks("t", list(reversed(samples)), 8)] == [c.id for c in chunks]  # input order
    assert all(a.id != b.id for a, b in zip(chunks, cut_chunks("u", samples, 8)))  # the task is in the id
    assert len({c.id for c in chunks}) == 3 and chunks[1].id.startswith("00001-")


def test_done_samples_leave_their_chunk_and_finished_chunks_go():
    samples = _samples(150)
    chunks = cut_chunks("t", samples, 8)
    done = {s.id for s in chunks[0].samples} | {chunks[1].samples[0].id}
    left = cut_chunks("t", samples, 8, done)
    assert [c.id for c in left] == [chunks[1].id, chunks[2].id]  # ids are of the whole chunk, done or not
    assert left[0].samples == chunks[1].samples[1:]


def test_ranks_deal_the_batches_of_one_process():
    """The same batches whatever the world size: rank r of w takes every w-th of one process's."""
    spec = Registry.discover([]).tasks["demo_vqa"]
    samples = load_task_data(spec, None, "default").samples
    gen = GenerationConfig(max_new_tokens=8)

    def batches(rank: int, world: int) -> list[list[str]]:
        plan = plan_task(spec, samples, gen, Path("/nonexistent-run"), Dist(rank=rank, world_size=world), 3)
        return [[s.id for s in b] for b in plan.batches]

    one = batches(0, 1)
    assert len(one) == 22 and sum(map(len, one)) == len(samples) == 64
    for world in (2, 3):
        dealt = [batches(r, world) for r in range(world)]
        assert [b for k in range(len(one)) for b in [dealt[k % world][k // world]]] == one


def test_chunk_files_are_read_as_predictions_and_written_once(tmp_path):
    chunk = cut_chunks("t", _samples(10), 8)[0]
    path = chunk_file(tmp_path, chunk)
    assert path.name == f"t.chunk-{chunk.id}.jsonl"
    write_chunk(tmp_path, chunk, ChunkDone([{"id": "s000", "prediction": "first"}], {}, 0.1))
    write_chunk(tmp_path, chunk, ChunkDone([{"id": "s000", "prediction": "again"}], {}, 0.1))
    assert path.read_text().count("first") == 1 and "again" not in path.read_text()
    assert prediction_files(tmp_path, "t") == [tmp_path / "predictions" / "t.jsonl", path]
    assert predicted_tasks(tmp_path) == ["t"]


def test_a_chunk_writes_only_its_own_samples_thumbnails(tmp_path):
    from m3eval.results import media_filename
    chunk = cut_chunks("t", _samples(3), 8)[0]
    own = media_filename("s001")
    write_chunk(tmp_path, chunk, ChunkDone([], {own: b"jpeg", "../../escape.jpg": b"x", "other.jpg": b"x"}, 0.0))
    assert [p.name for p in (tmp_path / "media" / "t").iterdir()] == [own]
    assert not (tmp_path.parent / "escape.jpg").exists()
