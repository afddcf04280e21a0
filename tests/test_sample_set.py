"""A task's samples held as ids and keys, each built from its row when read (data/sample_set.py):
the same samples however they are read, and views that build nothing."""
from __future__ import annotations

import random
import tracemalloc

import datasets

from m3eval.data.sample_set import BLOCK, SampleSet
from m3eval.data.samples import build_samples
from m3eval.run.chunks import batches_of, cut_chunks
from m3eval.tasks.schema import TaskSpec
from m3eval.types import Sample

# doc.explode with lists of unequal length in one row, a literal field, an excluded item, three instruction
# variants and a row whose references are missing: every path of a row's samples
ROWS = [{"cover": f"c{i}", "questions": ["Title?", "Author?", "Year?"][: 1 + i % 3],
         "answers": ["Emma", "Austen", "1815"][: 1 + i % 3] if i != 4 else ["x"],
         "extra": "{'k': %d}" % i, "image": f"c{i}.png"} for i in range(9)]
ROWS[7]["answers"] = [None, None]


def _spec() -> TaskSpec:
    doc = {"explode": ["questions", "answers"], "id": "{{ cover }}-{{ explode_index }}",
           "prompt": "{{ instruction }} {{ questions }} {{ extra.k }}", "references": "answers", "images": "image",
           "literal_fields": ["extra"], "exclude_if": "{{ questions == 'Year?' and cover == 'c2' }}"}
    return TaskSpec.model_validate({"task": "t", "dataset": {"path": "x.parquet"}, "doc": doc,
                                    "instructions": ["Say:", "Tell:", "Answer:"], "metrics": [{"name": "exact_match"}]})


def test_a_sample_is_the_same_however_it_is_read():
    samples, n_excluded = build_samples(_spec(), datasets.Dataset.from_list(ROWS), instructions="all")
    every = list(samples)
    assert n_excluded == 1 and len(every) == len(samples) == 3 * (1 + 2 + 2 + 1 + 1 + 3 + 1 + 2 + 3)
    assert samples.ids == [s.id for s in every] and len(set(samples.ids)) == len(every)
    assert [samples[i] for i in range(len(samples))] == every
    assert every[0].prompt == "Say: Title? 0" and every[4].id == "c1-0#i1" and every[4].prompt == "Tell: Title? 1"
    assert {s.failure.type for s in every if s.failure} == {"ExplodeLengths", "MissingReferences"}
    by_id = {s.id: s for s in every}
    shuffled = random.Random(0).sample(samples.ids, len(samples))
    assert list(samples.with_ids(shuffled)) == [by_id[i] for i in shuffled]
    ordered = samples.ordered()
    assert list(ordered) == sorted(every, key=lambda s: (-len(s.prompt) - 256 * len(s.media), s.id))
    assert list(ordered[5:17]) == list(ordered)[5:17] and ordered[3] == list(ordered)[3]
    done = set(shuffled[:20])
    assert list(ordered.pending(done)) == [s for s in ordered if s.id not in done]
    chunks = cut_chunks("t", samples, 4, done)
    batches = [list(b) for c in chunks for b in batches_of(c.samples, 4)]
    assert [s for b in batches for s in b] == [s for s in ordered if s.id not in done]


def test_views_build_nothing_and_reading_builds_a_block_at_a_time():
    made: list[int] = []
    held = [Sample(id=f"s{i:04d}", task="t", prompt="q" * (i % 5), references=["a"]) for i in range(600)]

    def fetch(positions):
        made.append(len(positions))
        return [held[p] for p in positions]

    base = SampleSet.of(held)
    samples = SampleSet(base.ids, base._keys, fetch)
    view = samples.ordered().pending({"s0001"})[10:400].with_ids(["s0003", "s0002"])
    chunks = cut_chunks("t", samples, 8)
    assert view.ids == ["s0003", "s0002"] and len(chunks) == 10 and made == []
    assert [s.id for s in view] == ["s0003", "s0002"] and made == [2]
    samples.with_ids(["s0599"])
    index = samples._index  # a whole set indexes its ids once, not once a chunk (a Ray worker asks per chunk)
    assert index is not None and samples.with_ids(["s0007", "s0005"]).ids == ["s0007", "s0005"]
    assert samples._index is index and made == [2]
    assert len(list(samples)) == 600 and made[1:] == [BLOCK, BLOCK, 600 - 2 * BLOCK]


def test_a_built_task_holds_bytes_a_sample_not_samples():
    rows = [{"qid": f"question-{i:06d}", "question": f"What is shown in picture {i}?", "answers": ["a", "b", "c"]}
            for i in range(20_000)]
    ds = datasets.Dataset.from_list(rows)
    spec = TaskSpec.model_validate({"task": "t", "dataset": {"path": "x.parquet"},
                                    "doc": {"id": "qid", "prompt": "{{ question }}", "references": "answers"},
                                    "metrics": [{"name": "exact_match"}]})
    tracemalloc.start()
    samples, _ = build_samples(spec, ds)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(samples) == 20_000 and samples[123].prompt == "What is shown in picture 123?"
    # an id string (~70 bytes) and its list slot, 16 bytes of key and place; built Samples took ~950
    assert held / len(samples) < 200, f"{held / len(samples):.0f} bytes a sample"
