"""Scoring a task from its predictions file without holding its predictions (scoring/stream.py; issue
24), block by block (independent metrics) or whole with only what its metrics read (corpus and
grouping metrics), gives what scoring the list of predictions at once gives, to the byte: the results
entry (counts, values, intervals, clusters, the per-instruction / per-language / per-category
breakdowns, the video block, the references' fingerprint) and the samples/ records. The list path is
kept here as the oracle (`_listed`: scoring/run.py before issue 24). And the merge of a task's logs
(predictions.py) writes what reading every line into memory and writing it back wrote."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import pytest

from m3eval.predictions import PredictionFile, merge_predictions, read_predictions
from m3eval.record import SampleFailure
from m3eval.results import atomic_write_jsonl
from m3eval.metrics import base
from m3eval.scoring import stream
from m3eval.scoring.run import references_sha256, score_one
from m3eval.scoring.stream import Columns
from m3eval.scoring.task import score_task
from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec
from m3eval.types import Prediction

WORDS = ["red", "blue", "two", "yes", "no", "a cat", "Red.", ""]


def _spec(tmp_path, metrics=("vqa_accuracy", "exact_match"), **doc) -> TaskSpec:
    return TaskSpec(task="t", source=str(tmp_path / "t.yaml"), dataset=DatasetSpec(path="qa.jsonl"),
                    metrics=[StepSpec(name=m) for m in metrics],
                    filters=[StepSpec(name="regex", args={"pattern": r"(\w+)"})],  # no word: nothing extracted
                    doc=DocSpec(prompt="{{ q }}", references="a", id="id", **doc))


def _preds(n: int, seed: int = 0, video: bool = False) -> list[Prediction]:
    rng = random.Random(seed)
    out = []
    for i in range(n):  # every third sample has no instruction variant; the others are variants 1 and 2
        k = i % 3
        error = None
        if rng.random() < 0.05:
            error = SampleFailure(stage="generate", type="OutOfMemoryError", message="CUDA out of memory")
        elif rng.random() < 0.05:
            error = SampleFailure(stage="data", type="MediaError", message="cannot decode")
        info = {"frames": rng.choice([4, 8]), "rule": rng.choice(["uniform", "fps"]), "short": rng.random() < 0.2} \
            if video and rng.random() < 0.9 else {}
        out.append(Prediction(
            id=f"q{i // 3}#i{k}" if k else f"q{i}", prediction="" if error else rng.choice(WORDS),
            prompt=f"question {i}?", references=[rng.choice(WORDS[:6]) for _ in range(rng.choice([2, 3, 10]))],
            lang=rng.choice(["en", "zh", "de"]), instruction=k or None,
            cluster=f"img{i % 17}" if rng.random() < 0.5 else None,
            category=rng.choice(["color", "count", None]), error=error, media_info=info))
    assert len({p.id for p in out}) == len(out)
    return out


def _listed(source, resolved, filters, lang, seed, primary, cluster_field, write):
    """The oracle: every prediction in a list, scored at once by score_task, each part again."""
    listed = list(source)
    metrics = [{"name": name, "args": args} for name, _, args in resolved]
    summary, records = score_task(listed, metrics, filters, lang, seed=seed, primary_metric=primary,
                                  cluster_field=cluster_field)
    write(iter(records))
    columns = Columns()
    for p, r in zip(listed, records):
        columns.add(p, r)

    def score_rows(rows, metrics, primary, with_ci):
        return score_task([listed[i] for i in rows], metrics, filters, lang, seed, primary, with_ci, cluster_field)[0]
    return summary, columns, score_rows


def _scored(spec, preds, folder, how, monkeypatch):
    """how: "blocks", "whole" (scoring/stream.py) or "list" (the oracle)."""
    with monkeypatch.context() as m:
        if how == "list":
            m.setattr("m3eval.scoring.run.score_task_whole", _listed)
        entry = score_one(spec, preds, folder, seed=3, stream=how == "blocks")
    return entry.dump(), (folder / "samples" / "t.jsonl").read_bytes()


@pytest.mark.parametrize("block", [7, 1024])
def test_blocks_give_the_whole_lists_entry_and_records(tmp_path, monkeypatch, block):
    monkeypatch.setattr(stream, "BLOCK", block)
    spec = _spec(tmp_path, cluster="img", category="kind", video="clip")
    preds = _preds(300, video=True)
    assert {p.lang for p in preds} == {"en", "zh", "de"} and any(p.error for p in preds)
    whole = _scored(spec, preds, tmp_path / "whole", "list", monkeypatch)
    blocks = _scored(spec, preds, tmp_path / "blocks", "blocks", monkeypatch)
    assert whole == blocks
    entry = whole[0]
    # the parts exist, so their equality above means something
    assert {"instructions", "languages", "categories", "video"} <= set(entry)
    assert entry["n_errors"] > 0 and entry["n_extraction_failures"] > 0 and entry["n_generate_errors"] > 0
    assert entry["clusters"]["key"] == "doc.cluster (img)"


def test_a_predictions_file_is_read_as_the_list_is(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "BLOCK", 10)
    spec = _spec(tmp_path)
    preds = _preds(95, seed=1)
    path = tmp_path / "p.jsonl"
    extra = Prediction(id="zz-earlier", prediction="red", prompt="?", references=["red"])
    atomic_write_jsonl(path, [p.to_json() for p in preds] + [extra.to_json()])  # a line past n is not read
    from_file = _scored(spec, PredictionFile(path, len(preds)), tmp_path / "file", "blocks", monkeypatch)
    assert from_file == _scored(spec, preds, tmp_path / "list", "list", monkeypatch)
    spec = _spec(tmp_path, metrics=("coco_cider", "exact_match"))
    from_file = _scored(spec, PredictionFile(path, len(preds)), tmp_path / "file-whole", "whole", monkeypatch)
    assert from_file == _scored(spec, preds, tmp_path / "list-whole", "list", monkeypatch)


@pytest.mark.parametrize("metrics", [
    ("coco_cider", "coco_bleu_4", "coco_rouge_l"),
    ("bleu", "chrf", "exact_match"),
    ("pope_f1", "pope_accuracy", "pope_yes_ratio"),
])
def test_a_task_scored_whole_gives_the_whole_lists_entry_and_records(tmp_path, monkeypatch, metrics):
    """Corpus and grouping metrics: each sample's input held with only what the metrics read, the
    records written in a second read. POPE reads yes/no labels: its references are made so."""
    spec = _spec(tmp_path, metrics=metrics, cluster="img", category="kind")
    preds = _preds(240, seed=4)
    if metrics[0].startswith("pope"):
        preds = [dataclasses.replace(p, references=["yes" if i % 2 else "no"]) for i, p in enumerate(preds)]
    listed = _scored(spec, preds, tmp_path / "list", "list", monkeypatch)
    whole = _scored(spec, preds, tmp_path / "whole", "whole", monkeypatch)
    assert whole == listed
    entry = whole[0]
    assert {"instructions", "languages", "categories"} <= set(entry) and entry["n_errors"] > 0
    assert any(m["ci"] for m in entry["metrics"].values())


def test_a_task_scored_whole_keeps_the_prompt_only_for_a_metric_that_reads_it(tmp_path, monkeypatch):
    seen: dict[str, set] = {}

    def looker(name):
        def compute(items):
            seen.setdefault(name, set()).update((it.prompt, str(it.media_info)) for it in items)
            return base.MetricResult(0.0, None)
        return compute
    monkeypatch.setitem(base._REGISTRY._items, "answers_only",
                        base.Metric("answers_only", looker("answers_only"), kind="corpus", resamples=0,
                                    reads=base.READS_ANSWERS))
    monkeypatch.setitem(base._REGISTRY._items, "plugin", base.Metric("plugin", looker("plugin"), kind="corpus",
                                                                     resamples=0))
    preds = [dataclasses.replace(p, media_info={"image_size": [4, 4]}) for p in _preds(12)]
    score_one(_spec(tmp_path, metrics=("answers_only",)), preds, None, seed=0)
    assert seen["answers_only"] == {("", "None")}
    seen.clear()
    score_one(_spec(tmp_path, metrics=("answers_only", "plugin")), preds, None, seed=0)  # one reads: all keep
    assert seen["answers_only"] == seen["plugin"] == {(p.prompt, "{'image_size': [4, 4]}") for p in preds}
    with pytest.raises(ValueError, match="reads"):
        base.Metric("typo", looker("typo"), reads=frozenset({"promt"}))


def test_the_default_streams_only_independent_metrics(tmp_path, monkeypatch):
    called = []
    real = stream.score_task_blocks
    monkeypatch.setattr("m3eval.scoring.run.score_task_blocks", lambda *a: called.append(1) or real(*a))
    preds = _preds(30)
    score_one(_spec(tmp_path), preds, None, seed=0)
    assert called == [1]
    score_one(_spec(tmp_path, metrics=("vqa_accuracy", "coco_rouge_l")), preds, None, seed=0)  # np.mean: whole
    assert called == [1]


def test_the_references_fingerprint_is_the_one_recorded_before(tmp_path):
    preds = _preds(200, seed=2)

    def before(ps):  # the definition results.json files carry (scoring/run.py before streaming)
        pairs = sorted((str(p.id), list(p.references)) for p in ps)
        return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()

    assert references_sha256(sorted((str(p.id), list(p.references)) for p in preds)) == before(preds)
    assert references_sha256([]) == before([])
    entry = score_one(_spec(tmp_path), preds, None, seed=0, stream=True)
    assert entry.references_sha256 == before(preds)
    twice = preds + preds[:3]  # a list with an id twice: sorted whole, as before
    assert score_one(_spec(tmp_path), twice, None, seed=0, stream=False).references_sha256 == before(twice)


def test_a_metric_that_breaks_its_contract_is_an_error_not_a_number(tmp_path, monkeypatch):
    def half(items):
        return base.MetricResult(0.5, None)
    monkeypatch.setitem(base._REGISTRY._items, "liar", base.Metric("liar", half, independent=True))
    with pytest.raises(RuntimeError, match="liar.*independent"):
        score_one(_spec(tmp_path, metrics=("liar",)), _preds(5), None, seed=0)


def test_merging_logs_writes_what_reading_them_all_wrote(tmp_path):
    rng = random.Random(5)
    files = [tmp_path / "t.jsonl", tmp_path / "t.rank0.jsonl", tmp_path / "t.rank1.jsonl", tmp_path / "t.chunk-0.jsonl"]
    ids = [f"s{i}" for i in range(60)]
    for f in files:
        lines = []
        for i in rng.sample(range(80), 30):  # some ids in several files (a retried sample), some of an earlier run
            failed = rng.random() < 0.3
            lines.append(Prediction(id=f"s{i}", prediction="" if failed else f"answer {rng.random()}", prompt="p",
                                    references=["r"], error=SampleFailure(stage="generate", type="E", message="m")
                                    if failed else None).to_json())
        atomic_write_jsonl(f, lines)
    missing_before = [i for i in ids if i not in read_predictions(files)]
    for i in missing_before:  # the rest of this run's samples, in a last log
        with files[2].open("a") as out:
            out.write(json.dumps(Prediction(id=i, prediction="late", prompt="p", references=["r"]).to_json()) + "\n")
    done = read_predictions(files)  # the merge as it was: every prediction in memory
    expected = [done.pop(i).to_json() for i in ids] + [p.to_json() for p in done.values()]
    assert merge_predictions(files, ids) == []
    assert files[0].read_text() == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in expected)
    assert not any(f.exists() for f in files[1:])
    assert merge_predictions([files[0]], [*ids, "never-made"]) == ["never-made"]
