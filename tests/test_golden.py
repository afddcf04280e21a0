"""Golden regression: the demo tasks on the tiny model reproduce the committed
predictions and scores (results/demo/tiny-llava) exactly. After an intended
change, re-record with `make golden` and commit the diff."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from m3eval.run.pipeline import evaluate
from m3eval.results import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from update_golden import GOLDEN, golden_config  # noqa: E402

KEEP = ("id", "prediction", "prompt", "references", "error", "media_info")


def _versions(golden: dict) -> str:
    import torch
    import transformers
    was = golden["run"]["versions"]
    return (f"recorded with torch {was.get('torch')} / transformers {was.get('transformers')}, "
            f"here {torch.__version__} / {transformers.__version__} (scripts/golden-constraints.txt)")


def test_demo_reproduces_the_committed_golden_run(demo_model, tmp_path):
    record, failures = evaluate(golden_config(tmp_path, demo_model))
    assert failures == [] and record is not None
    results = record.dump()
    assert results == json.loads((tmp_path / "tiny-llava" / "results.json").read_text())  # the record is the file
    golden = json.loads((GOLDEN / "tiny-llava" / "results.json").read_text())
    assert list(results["tasks"]) == list(golden["tasks"])
    for task, entry in golden["tasks"].items():
        new_preds = read_jsonl(tmp_path / "tiny-llava" / "predictions" / f"{task}.jsonl")
        old_preds = read_jsonl(GOLDEN / "tiny-llava" / "predictions" / f"{task}.jsonl")
        assert [{k: p[k] for k in KEEP} for p in new_preds] == [{k: p[k] for k in KEEP} for p in old_preds], \
            f"{task}: predictions differ from the golden run (intended? `make golden`); {_versions(golden)}"
        # the invocation record holds this run's time, git sha and model folder: provenance, not scores
        same = {k: v for k, v in results["tasks"][task].items() if k != "invocation"}
        assert same == {k: v for k, v in entry.items() if k != "invocation"}, f"{task}: scores differ from the golden run"
        # ... but its data (by file name and digest) and settings are the same on any machine
        new_inv, old_inv = results["tasks"][task]["invocation"], entry["invocation"]
        assert (new_inv["data"], new_inv["config"]) == (old_inv["data"], old_inv["config"])
        new_scores = [r["scores"] for r in read_jsonl(tmp_path / "tiny-llava" / "samples" / f"{task}.jsonl")]
        old_scores = [r["scores"] for r in read_jsonl(GOLDEN / "tiny-llava" / "samples" / f"{task}.jsonl")]
        assert new_scores == old_scores
    assert results["groups"] == golden["groups"]


def test_the_golden_run_is_not_all_zeros():
    """A metric bug that zeroed every score would reproduce a zero golden run: keep some signal in it."""
    golden = json.loads((GOLDEN / "tiny-llava" / "results.json").read_text())
    primary = {t: e["metrics"][e["primary_metric"]]["value"] for t, e in golden["tasks"].items()}
    assert primary["demo_vqa"] > 0.05 and sum(v > 0 for v in primary.values()) >= 4, primary
