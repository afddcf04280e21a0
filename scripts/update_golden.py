"""Re-record the golden demo run (results/demo/tiny-llava) after an intended change.

tests/test_golden.py re-runs the demo and requires the same predictions and
scores to the digit; this script is how a deliberate change updates them.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from m3eval.demo.tiny_model import DEMO_TRAIN_STEPS, ensure_tiny_model  # noqa: E402
from m3eval.run.pipeline import RunConfig, evaluate  # noqa: E402

GOLDEN = ROOT / "results" / "demo"


def golden_config(output: Path, model_dir: Path) -> RunConfig:
    return RunConfig(tasks=["demo"], output=output, model_args={"pretrained": str(model_dir), "device": "cpu"},
                     run_name="tiny-llava", batch_size=8, seed=0, progress=False)


if __name__ == "__main__":
    torch.set_num_threads(1)
    shutil.rmtree(GOLDEN / "tiny-llava", ignore_errors=True)
    results, failures = evaluate(golden_config(GOLDEN, ensure_tiny_model(train_steps=DEMO_TRAIN_STEPS)))
    if failures:
        sys.exit("\n".join(failures))
    print(f"recorded {GOLDEN / 'tiny-llava'}")
