"""The demo's second part: grounding with the tiny VLM, then the encoder tasks with the tiny
contrastive encoder (`m3eval demo` runs this after the VLM demo)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..record import Results
from ..report.tables import only_tasks
from ..run.pipeline import RunConfig, evaluate
from .tiny_clip import DEMO_CLIP_TRAIN_STEPS, ensure_tiny_clip


def run_encoder_demo(vlm: RunConfig, report: Callable[[Results | None, list[str]], int]) -> tuple[int, Path | None]:
    """Grounding (demo_grounding) into the VLM's run, then demo_encoders as run `tiny-clip`.
    Returns (exit code, the encoder run's folder)."""
    grounding = RunConfig(**{**vars(vlm), "tasks": ["demo_grounding"]})
    results, failures = evaluate(grounding)  # the VLM's run folder: its results hold the first step's tasks too
    code = report(only_tasks(results, grounding.tasks) if results else None, failures)
    clip_dir = ensure_tiny_clip(train_steps=DEMO_CLIP_TRAIN_STEPS)  # built once (~10 s of training), then cached
    enc = RunConfig(tasks=["demo_encoders"], output=vlm.output, model="clip",
                    model_args={"pretrained": str(clip_dir), "device": "cpu"}, run_name="tiny-clip",
                    batch_size=vlm.batch_size)
    results, failures = evaluate(enc)
    code = max(code, report(results, failures))
    return code, (enc.output / results.run.name) if results else None
