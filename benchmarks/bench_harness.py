"""Harness overhead on the tiny model: how much of a run's wall time (model load
excluded) is spent outside `generate`. Target: overhead <= 10%.

    python benchmarks/bench_harness.py [--tasks demo] [--batch-size 8] [--max-new-tokens N] [--repeat 3]

Prints, per repeat: samples, wall time without model load, time inside generate,
scoring time, and overhead = 1 - generate / (total - load).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from m3eval.demo.tiny_model import ensure_tiny_model  # noqa: E402
from m3eval.pipeline import RunConfig, evaluate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="demo")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-media", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = ensure_tiny_model()
    overheads = []
    print(f"tasks={a.tasks} batch_size={a.batch_size} max_new_tokens={a.max_new_tokens or 'per task'} "
          f"torch threads=1")
    for i in range(a.repeat):
        with tempfile.TemporaryDirectory() as out:
            cfg = RunConfig(tasks=a.tasks.split(","), output=Path(out), model_args={"pretrained": str(model)},
                            batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, progress=False,
                            save_media=not a.no_media)
            results, _ = evaluate(cfg)
        t = results["timings"]
        wall = t["total_s"] - t["load_s"]
        overhead = 1 - t["generate_s"] / wall
        overheads.append(overhead)
        print(f"run {i + 1}: samples={t['samples']} wall(excl. load)={wall:.2f}s generate={t['generate_s']:.2f}s "
              f"score={t['score_s']:.2f}s load={t['load_s']:.2f}s samples/s={t['samples_per_s']:.1f} "
              f"overhead={overhead:.1%}")
    print(f"median overhead: {statistics.median(overheads):.1%} (target <= 10%)")
    floor = generate_alone(model, a)
    print(f"floor: the same batches through model.generate alone (media decoded beforehand, nothing else "
          f"running): {floor:.2f}s")


def generate_alone(model_dir: Path, a: argparse.Namespace) -> float:
    """The model's own time for the run's batches with no harness around it; background
    work (decoding, scoring) in a real run competes with it for the GIL on a model this
    small, so `generate` inside a run is somewhat above this floor."""
    import time

    from m3eval.data.media import VideoRule
    from m3eval.models.base import GenerationConfig, load_model
    from m3eval.pipeline import load_task_samples
    from m3eval.runner import prepare
    from m3eval.tasks.registry import Registry

    adapter = load_model("hf", {"pretrained": str(model_dir)})
    total = 0.0
    for spec in Registry.discover().resolve(a.tasks.split(",")):
        rule = VideoRule(frames=spec.video.frames, fps=spec.video.fps, max_frames=spec.video.max_frames)
        samples = sorted(load_task_samples(spec, None, "default"), key=lambda s: (-len(s.prompt) - 256 * len(s.media), s.id))
        messages = [prepare(s, rule, None).message for s in samples]
        gen = GenerationConfig(max_new_tokens=a.max_new_tokens or spec.generation.max_new_tokens)
        for i in range(0, len(messages), a.batch_size):
            t0 = time.perf_counter()
            adapter.generate(messages[i:i + a.batch_size], gen)
            total += time.perf_counter() - t0
    return total


if __name__ == "__main__":
    main()
