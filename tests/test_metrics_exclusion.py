"""doc.exclude_if: rows whose field is truthy are not evaluated and are counted in results and the
CLI table (A-OKVQA's official DA evaluation drops difficult_direct_answer questions)."""
from __future__ import annotations

import json

import datasets
import pytest

from m3eval.data.samples import SampleError, build_samples
from m3eval.record import RESULTS_FORMAT, Results, RunBlock, TaskResult
from m3eval.report.tables import format_results
from m3eval.scoring.run import recorded_exclusion, score_one
from m3eval.tasks.registry import Registry
from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec
from m3eval.types import Prediction

ROWS = [{"question_id": f"q{i}", "question": f"q {i}?", "direct_answers": ["red"] * 3 + ["blue"] * 7,
         "difficult_direct_answer": i % 3 == 0} for i in range(7)]  # q0, q3, q6 are difficult


def _spec(**doc) -> TaskSpec:
    return TaskSpec(task="da", dataset=DatasetSpec(path="x.jsonl"), metrics=[StepSpec(name="aokvqa_da")],
                    doc=DocSpec(prompt="{{ question }}", references="direct_answers", id="question_id", **doc))


def test_exclude_if_drops_and_counts(tmp_path):
    spec = _spec(exclude_if="difficult_direct_answer")
    samples, n_excluded = build_samples(spec, datasets.Dataset.from_list(ROWS))
    assert [s.id for s in samples] == ["q1", "q2", "q4", "q5"] and n_excluded == 3
    preds = [Prediction(id=s.id, prediction="blue", prompt=s.prompt, references=s.references) for s in samples]
    entry = score_one(spec, preds, tmp_path, seed=0, n_excluded=n_excluded)
    assert entry.n_samples == 4 and entry.n_excluded == 3
    assert entry.excluded_by == "difficult_direct_answer is true"
    table = format_results(Results(format=RESULTS_FORMAT, run=RunBlock(name="r"), tasks={"da": entry}))
    assert "da: 3 rows not evaluated (difficult_direct_answer is true)" in table
    # re-scoring reads no data: the count recorded by the run that read the rows is kept
    recorded = TaskResult.model_validate(json.loads(json.dumps(entry.dump())))
    assert score_one(spec, preds, tmp_path, seed=0, n_excluded=recorded_exclusion(spec, recorded)).n_excluded == 3


def test_without_exclude_if_nothing_is_dropped(tmp_path):
    spec = _spec()
    samples, n_excluded = build_samples(spec, datasets.Dataset.from_list(ROWS))
    assert len(samples) == 7 and n_excluded == 0
    preds = [Prediction(id="q1", prediction="blue", prompt="", references=["blue"] * 3)]
    assert "n_excluded" not in score_one(spec, preds, None, seed=0).dump()


def test_exclude_if_unknown_field_is_a_clear_error():
    with pytest.raises(SampleError, match="no field 'hard'.*doc.exclude_if"):
        build_samples(_spec(exclude_if="hard"), datasets.Dataset.from_list(ROWS))


def test_official_aokvqa_da_task_excludes_difficult_questions():
    spec = Registry.discover().tasks["aokvqa_da"]
    assert spec.doc.exclude_if == "difficult_direct_answer" and spec.metrics[0].args == {}
