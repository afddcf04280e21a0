"""A real OpenAI-compatible server: `transformers serve` (transformers[serving]) runs the
demo's tiny LLaVA on CPU from a local folder; the same tasks through `--model hf` and
`--model openai` give identical predictions (greedy decoding; images as PNG data URLs,
so the server sees our exact pixels)."""
from __future__ import annotations

from pathlib import Path

import pytest
from serving import transformers_serve

from m3eval.results import read_jsonl
from m3eval.run.pipeline import RunConfig, evaluate

TASKS = ["demo_vqa", "demo_video_frames"]


@pytest.fixture(scope="module")
def served(tiny_model):
    with transformers_serve(tiny_model) as (url, _):
        yield url


def _predictions(run_dir: Path) -> dict[str, tuple[str, dict | None]]:
    return {f"{t}/{row['id']}": (row["prediction"], row["error"])
            for t in TASKS for row in read_jsonl(run_dir / "predictions" / f"{t}.jsonl")}


def test_hf_and_openai_through_transformers_serve_agree(served, tiny_model, tmp_path):
    common = dict(tasks=TASKS, output=tmp_path, limit=8, progress=False, save_media=False)
    evaluate(RunConfig(model="hf", model_args={"pretrained": str(tiny_model)}, run_name="hf", **common))
    results, failures = evaluate(RunConfig(model="openai", model_args={"base_url": served, "concurrency": 4},
                                           run_name="openai", batch_size=4, **common))
    assert failures == []
    hf, api = _predictions(tmp_path / "hf"), _predictions(tmp_path / "openai")
    assert len(hf) == 16 and all(err is None for _, err in api.values())
    assert all(text for text, _ in hf.values())
    assert api == hf
    assert results.run.model["id"] == tiny_model.name  # the one model served (by its path), found by the probe
