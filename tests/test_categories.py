"""doc.category: each category of a task scored apart (MME's subtasks, SEED-Bench's dimensions), and what a
metric records beside its value (MetricResult.details, sample_details) reaching results.json and samples/."""
from __future__ import annotations

import json

import pytest

from m3eval.data.task_samples import load_task_data
from m3eval.metrics import base
from m3eval.metrics.base import Metric, MetricInput, MetricResult, mean
from m3eval.line_record import SampleRecord
from m3eval.scoring.run import score_one
from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec
from m3eval.types import Prediction


def _spec(tmp_path, **top) -> TaskSpec:
    rows = [{"qid": f"q{i}", "kind": "color" if i < 4 else "count", "question": "q?", "answer": "a"} for i in range(10)]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return TaskSpec(task="t", source=str(tmp_path / "t.yaml"), dataset=DatasetSpec(path="qa.jsonl"),
                    metrics=[StepSpec(name="exact_match"), StepSpec(name="rouge_l")],
                    doc=DocSpec(prompt="{{ question }}", references="answer", id="qid", category="kind"), **top)


def test_each_category_is_scored_on_its_samples_alone(tmp_path):
    spec = _spec(tmp_path, category_metrics=["exact_match", "rouge_l"])
    samples = load_task_data(spec, None, "default").samples
    assert [s.category for s in samples] == ["color"] * 4 + ["count"] * 6
    # color: 3 of 4 right; count: 1 of 6 right
    answers = ["a", "a", "a", "b", "a", "b", "b", "b", "b", "b"]
    preds = [Prediction.for_sample(s, a) for s, a in zip(samples, answers)]
    assert Prediction.from_json(json.loads(json.dumps(preds[0].to_json()))).category == "color"
    entry = score_one(spec, preds, tmp_path, seed=0)
    assert entry.categories is not None
    assert {k: (c.n_samples, c.metrics["exact_match"].value) for k, c in entry.categories.items()} == \
        {"color": (4, 0.75), "count": (6, pytest.approx(1 / 6))}
    assert set(entry.categories["count"].metrics) == {"exact_match", "rouge_l"}
    assert entry.metrics["exact_match"].value == pytest.approx(0.4)  # the whole task is still scored as one
    records = [json.loads(line) for line in (tmp_path / "samples" / "t.jsonl").read_text().splitlines()]
    assert [r["category"] for r in records] == [s.category for s in samples]


def test_category_metrics_default_to_the_primary_and_must_be_metrics(tmp_path):
    spec = _spec(tmp_path)
    preds = [Prediction.for_sample(s, "a") for s in load_task_data(spec, None, "default").samples]
    entry = score_one(spec, preds, None, seed=0)
    assert entry.categories is not None and set(entry.categories["color"].metrics) == {"exact_match"}
    with pytest.raises(ValueError, match="category_metrics"):
        _spec(tmp_path, category_metrics=["bleu"])
    with pytest.raises(ValueError, match="doc.category"):
        TaskSpec(task="t", dataset=DatasetSpec(path="x.jsonl"), metrics=[StepSpec(name="exact_match")],
                 doc=DocSpec(prompt="p", references="a"), category_metrics=["exact_match"])


def test_unset_category_leaves_hash_and_resume_key_unchanged():
    base = dict(task="t", dataset=DatasetSpec(path="x.jsonl"), metrics=[StepSpec(name="exact_match")])
    a = TaskSpec(**base, doc=DocSpec(prompt="p", references="a"))
    dumped = a.stable_dump()
    assert "category" not in dumped["doc"] and "category_metrics" not in dumped
    b = TaskSpec(**base, doc=DocSpec(prompt="p", references="a", category="kind"))
    assert a.generation_key() != b.generation_key()


def _counting(items: list[MetricInput]) -> MetricResult:
    """A metric that sees each sample's id, cluster and category, and records what it counted."""
    scores = [1.0 if it.prediction == it.references[0] else 0.0 for it in items]
    odd = [{"seen": f"{it.id}|{it.cluster}|{it.category}"} if s == 0 else None for it, s in zip(items, scores)]
    return MetricResult(mean(scores), scores, details={"n_wrong": scores.count(0.0)}, sample_details=odd)


def test_metric_details_reach_results_and_sample_records(tmp_path, monkeypatch):
    # registered for this test only: the catalog tests compare the registry with a fresh process's
    monkeypatch.setitem(base._REGISTRY._items, "test_counting", Metric("test_counting", _counting))  # type: ignore[attr-defined]
    spec = _spec(tmp_path).model_copy(update={"metrics": [StepSpec(name="test_counting")], "category_metrics": None})
    samples = load_task_data(spec, None, "default").samples
    preds = [Prediction.for_sample(s, "a" if i % 2 else "b") for i, s in enumerate(samples)]
    entry = score_one(spec, preds, tmp_path, seed=0)
    assert entry.metrics["test_counting"].details == {"n_wrong": 5}
    assert entry.categories is not None and entry.categories["color"].metrics["test_counting"].details == {"n_wrong": 2}
    records = [SampleRecord(**json.loads(line)) for line in (tmp_path / "samples" / "t.jsonl").read_text().splitlines()]
    assert records[0].details == {"test_counting": {"seen": "q0|q0|color"}}
    assert records[1].details is None
