"""Samples/s of video tasks versus an image task of the same size, on the tiny model.

    python benchmarks/bench_video_tasks.py [--n 64] [--frames 8] [--video-frames 240]

Builds three tasks in a temp folder, each with N samples and the same question:
an image task (one 224x224 image a sample), a video-file task (MSRVTT-QA style:
a 224x224 mpeg4 video a sample, N frames sampled with PyAV seeks) and a
stored-frames task (M3IT style: the frames as base64 images in the row). Prints
samples/s of a whole `evaluate` run (model load excluded) for each.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
import textwrap
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from m3eval.data.synthetic import draw_frame, encode_video  # noqa: E402
from m3eval.demo.tiny_model import ensure_tiny_model  # noqa: E402
from m3eval.run.pipeline import RunConfig, evaluate  # noqa: E402

TASK = """
task: bench_{name}
dataset: {{path: {name}.jsonl}}
doc:
  prompt: "What moves across the screen?"
  references: answer
  {media}
video: {{frames: {frames}}}
generation: {{max_new_tokens: 16}}
metrics: [{{name: open_qa_accuracy}}]
"""


def b64(img) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def build(root: Path, n: int, frames: int, video_frames: int) -> None:
    size = (224, 224)
    rows = {"image": [], "video": [], "frames": []}
    for i in range(n):
        video = root / f"v{i}.mp4"
        encode_video(video, video_frames, size=size, fps=24)
        rows["image"].append({"answer": "square", "img": b64(draw_frame(i, size))})
        rows["video"].append({"answer": "square", "path": video.name})
        rows["frames"].append({"answer": "square", "clip": [b64(draw_frame(i * frames + k, size)) for k in range(frames)]})
    media = {"image": "images: img", "video": "video: path", "frames": "frames: clip"}
    for name, items in rows.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
        (root / f"{name}.yaml").write_text(textwrap.dedent(TASK.format(name=name, media=media[name], frames=frames)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--video-frames", type=int, default=240)
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = ensure_tiny_model()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, a.n, a.frames, a.video_frames)
        print(f"{a.n} samples a task, 224x224, {a.frames} frames a video ({a.video_frames}-frame mpeg4 files), "
              f"batch size {a.batch_size}, torch threads 1")
        for name in ("image", "video", "frames"):
            cfg = RunConfig(tasks=[f"bench_{name}"], output=root / "runs", run_name=name, include_paths=[root],
                            model_args={"pretrained": str(model)}, batch_size=a.batch_size, progress=False)
            results, _ = evaluate(cfg)
            assert results is not None
            t = results.timings.model_dump()
            print(f"{name:7s} samples/s={t['samples_per_s']:7.1f}  generate={t['generate_s']:.2f}s  "
                  f"wall(excl. load)={t['total_s'] - t['load_s']:.2f}s")


if __name__ == "__main__":
    main()
