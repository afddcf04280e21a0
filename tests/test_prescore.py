"""Per-sample scores made where a batch is generated (scoring/prescore.py) are the scores the run's
scoring at the end would compute; the end takes them only under the key they were made with, and a
batch that cannot be scored there is scored (or reported) at the end as before."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from m3eval.predictions import PredictionFile
from m3eval.results import atomic_write_jsonl, read_jsonl
from m3eval.run.pipeline import RunConfig, evaluate
from m3eval.scoring import stream
from m3eval.scoring.prescore import BatchScorer, scoring_key
from m3eval.scoring.rescore import rescore
from m3eval.scoring.run import score_one
from m3eval.tasks.schema import StepSpec
from m3eval.types import Prediction
from tests.test_stream_scoring import _preds, _spec


def _prescored(spec, preds: list[Prediction], path: Path, batch: int = 7) -> list[dict]:
    """The predictions as a worker writes them: batch by batch, each scored first."""
    scorer, rows = BatchScorer(), [p.to_json() for p in preds]
    for i in range(0, len(rows), batch):
        scorer(spec, rows[i:i + batch])
    atomic_write_jsonl(path, rows)
    return rows


def _scored(spec, source, folder: Path, prescored: bool) -> tuple[dict, bytes]:
    entry = score_one(spec, source, folder, seed=3, prescored=prescored)
    return entry.dump(), (folder / "samples" / "t.jsonl").read_bytes()


def test_scores_made_batch_by_batch_are_the_scores_of_the_end(tmp_path):
    spec = _spec(tmp_path, cluster="img", category="kind", video="clip")
    preds = _preds(300, video=True)
    rows = _prescored(spec, preds, tmp_path / "t.jsonl")
    assert all(r["scored"]["by"] == scoring_key(spec) for r in rows)  # errors too: they score 0, counted
    made = _scored(spec, PredictionFile(tmp_path / "t.jsonl", len(rows)), tmp_path / "made", prescored=True)
    computed = _scored(spec, preds, tmp_path / "computed", prescored=False)
    assert made == computed
    assert made[0]["n_errors"] > 0 and made[0]["n_extraction_failures"] > 0


def test_the_end_takes_the_made_scores_only_under_their_key(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "BLOCK", 10)
    spec = _spec(tmp_path)
    preds = [p for p in _preds(40) if p.error is None][:20]
    truth = [json.loads(line)["scores"]["vqa_accuracy"]
             for line in _scored(spec, preds, tmp_path / "truth", prescored=False)[1].splitlines()]
    rows = _prescored(spec, preds, tmp_path / "t.jsonl")
    for k, r in enumerate(rows):  # every made score altered; the first block's under another key
        r["scored"]["scores"]["vqa_accuracy"] = 0.25
        if k < 10:
            r["scored"]["by"] = "another task definition"
    atomic_write_jsonl(tmp_path / "t.jsonl", rows)
    source = PredictionFile(tmp_path / "t.jsonl", len(rows))
    taken = _scored(spec, source, tmp_path / "taken", prescored=True)[0]["metrics"]["vqa_accuracy"]["value"]
    assert taken == pytest.approx((sum(truth[:10]) + 10 * 0.25) / 20)  # block 1 computed, block 2 taken
    assert sum(truth) / 20 != pytest.approx(taken)
    # `m3eval score` computes every score again
    assert _scored(spec, source, tmp_path / "again", prescored=False)[0]["metrics"]["vqa_accuracy"]["value"] == \
        pytest.approx(sum(truth) / 20)


def test_the_key_follows_the_metrics_filters_and_language(tmp_path):
    spec = _spec(tmp_path)
    assert scoring_key(spec) == scoring_key(_spec(tmp_path))
    others = [spec.model_copy(update={"filters": []}), spec.model_copy(update={"language": "zh"}),
              spec.model_copy(update={"metrics": [StepSpec(name="vqa_accuracy")]}),
              spec.model_copy(update={"metrics": [*spec.metrics[:1], StepSpec(name="exact_match",
                                                                              args={"ignore_case": False})]})]
    assert len({scoring_key(spec), *map(scoring_key, others)}) == 5


def test_a_task_with_a_corpus_metric_is_scored_at_the_end_only(tmp_path):
    spec = _spec(tmp_path, metrics=("exact_match", "coco_rouge_l"))
    rows = _prescored(spec, _preds(20), tmp_path / "t.jsonl")
    assert not any(r["scored"] for r in rows)


def test_a_batch_that_cannot_be_scored_is_written_unscored_and_the_end_reports_it(tmp_path):
    spec = _spec(tmp_path, metrics=("vqa_accuracy",))
    preds = [p for p in _preds(40) if p.error is None][:14]
    preds[9].references = ["one answer"]  # the VQA metric takes 3 or 10 answers a question
    rows = _prescored(spec, preds, tmp_path / "t.jsonl")
    assert [r["scored"] is not None for r in rows] == [True] * 7 + [False] * 7  # the other batch is scored
    with pytest.raises(ValueError, match="vqa_accuracy.*" + preds[9].id):
        score_one(spec, PredictionFile(tmp_path / "t.jsonl", len(rows)), tmp_path / "s", seed=3, prescored=True)


def test_a_run_scores_as_it_generates_and_equals_scoring_afresh(tiny_model, tmp_path):
    cfg = RunConfig(tasks=["demo_vqa", "demo_mc", "demo_captions"], output=tmp_path, run_name="r", limit=6,
                    model_args={"pretrained": str(tiny_model)}, progress=False)
    results, failures = evaluate(cfg)
    assert results is not None and not failures
    run = tmp_path / "r"
    for task, made in (("demo_vqa", True), ("demo_mc", True), ("demo_captions", False)):
        assert all((r["scored"] is not None) == made for r in read_jsonl(run / "predictions" / f"{task}.jsonl")), task
    shutil.copytree(run / "samples", tmp_path / "samples_of_the_run")
    again = rescore(run)
    assert {t: e.metrics for t, e in again.tasks.items()} == {t: e.metrics for t, e in results.tasks.items()}
    for f in (run / "samples").iterdir():
        assert f.read_bytes() == (tmp_path / "samples_of_the_run" / f.name).read_bytes(), f.name
