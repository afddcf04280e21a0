"""The typed run record (m3eval/record.py): runs written before it still load to the byte, the
models refuse what a reader could not use, failures written as text read as typed failures, and
docs/FORMATS.md's field reference is the models'."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from m3eval.errors import ResultsError
from m3eval.record import RESULTS_FORMAT, MetricEntry, Results, RunBlock, SampleFailure, TaskResult
from m3eval.results import finalize, parse_results, read_jsonl
from m3eval.types import Prediction

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "results" / "demo" / "tiny-llava"


def test_the_committed_golden_run_round_trips_to_the_byte():
    """results.json written before the typed record: parsed and written again, it is the same file."""
    text = (GOLDEN / "results.json").read_text(encoding="utf-8")
    results = parse_results(json.loads(text), GOLDEN / "results.json")
    assert results.tasks["demo_vqa"].primary.value == json.loads(text)["tasks"]["demo_vqa"]["metrics"]["vqa_accuracy"]["value"]
    assert json.dumps(results.dump(), indent=2, ensure_ascii=False) + "\n" == text


def test_finalize_writes_what_it_returns(tmp_path):
    task = TaskResult(hash="h", version=1, primary_metric="acc", metrics={"acc": MetricEntry(value=0.5, ci=(0.4, 0.6))})
    out = finalize(tmp_path / "results.json", RunBlock(name="r"), {"t": task}, {}, {})
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == out.dump() and on_disk["format"] == RESULTS_FORMAT
    assert on_disk["tasks"]["t"] == {"hash": "h", "version": 1, "primary_metric": "acc",
                                     "metrics": {"acc": {"value": 0.5, "ci": [0.4, 0.6]}}}  # only what was set
    assert Results.model_validate(on_disk) == out


@pytest.mark.parametrize("change, message", [
    (lambda d: d["tasks"]["demo_vqa"].update(acuracy=1), "unknown field 'tasks.demo_vqa.acuracy'"),
    (lambda d: d["tasks"]["demo_vqa"]["metrics"]["vqa_accuracy"].update(value="0.45"),
     "field 'tasks.demo_vqa.metrics.vqa_accuracy.value': input should be a valid number"),
    (lambda d: d["tasks"]["demo_vqa"]["metrics"]["vqa_accuracy"].update(value=True), "valid number"),
    (lambda d: d["tasks"]["demo_vqa"]["metrics"]["vqa_accuracy"].update(ci=[float("nan"), 0.5]),
     "field 'tasks.demo_vqa.metrics.vqa_accuracy.ci': is \\[nan, 0.5\\], not two finite numbers"),
    (lambda d: d["groups"]["demo"].update(value="high"), "field 'groups.demo.value'"),
    (lambda d: d["run"].pop("name"), "missing field 'run.name'"),
])
def test_what_a_reader_could_not_use_is_refused_naming_the_field(change, message):
    data = json.loads((GOLDEN / "results.json").read_text())
    change(data)
    with pytest.raises(ResultsError, match=message) as e:
        parse_results(data, Path("runs/r/results.json"))
    assert str(e.value).startswith("runs/r/results.json: ")


def test_failures_written_as_text_read_as_typed_failures(tmp_path):
    """predictions files from before failures were typed: the same failure, the same text on the page."""
    old = [{"id": "a", "prediction": "", "prompt": "p", "references": ["x"],
            "error": "generate: RequestError: HTTP 503: busy"},
           {"id": "b", "prediction": "", "prompt": "p", "references": ["x"], "error": "MediaError: image: truncated"},
           {"id": "c", "prediction": "", "prompt": "p", "references": ["x"], "error": "missing prediction"},
           {"id": "d", "prediction": "ok", "prompt": "p", "references": ["x"], "error": None}]
    preds = [Prediction.from_json(r) for r in old]
    assert [p.error.stage if p.error else None for p in preds] == ["generate", "data", "external", None]
    assert preds[0].error == SampleFailure(stage="generate", type="RequestError", message="HTTP 503: busy")
    assert [str(p.error) for p in preds[:3]] == [r["error"] for r in old[:3]]
    assert preds[0].to_json()["error"] == {"stage": "generate", "type": "RequestError", "message": "HTTP 503: busy"}
    assert Prediction.from_json(preds[0].to_json()) == preds[0]


def test_golden_predictions_still_load():
    preds = [Prediction.from_json(r) for r in read_jsonl(GOLDEN / "predictions" / "demo_vqa.jsonl")]
    assert len(preds) == 64 and all(p.error is None for p in preds)


def test_formats_doc_field_reference_is_generated_from_the_models():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "formats_reference.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = (ROOT / "docs" / "FORMATS.md").read_text()
    for model in (TaskResult, MetricEntry, SampleFailure):
        for name in model.model_fields:
            assert f"| `{name}` |" in doc, (model.__name__, name)


def test_a_prediction_line_carries_every_field():
    """Prediction.to_json is written field by field (a hot path): a new field must not be left out."""
    import dataclasses
    p = Prediction(id="a", prediction="b", prompt="p", references=["x"], media_info={"frames": 8})
    assert list(p.to_json()) == [f.name for f in dataclasses.fields(Prediction)]
    assert Prediction.from_json(p.to_json()) == p
