"""Frame sampling speed: 8 frames of a 960-frame 224x224 video, seek vs decode-all.

    python benchmarks/bench_video.py [--runs 20] [--codec mpeg4] [--gop 12]

Target (issue 4): median <= 70 ms for the seek sampler. Prints median / p90.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from m3eval.data.synthetic import encode_video
from m3eval.data.media import thumbnail_jpeg
from m3eval.data.video import plan_indices, sample_video


def decode_all(path: Path, n: int) -> list:
    """The naive baseline: decode and convert every frame, then pick."""
    with av.open(str(path)) as c:
        frames = [f.to_image() for f in c.decode(video=0)]
    return [frames[i] for i in plan_indices(len(frames), n)]


def decode_in_order(path: Path, n: int) -> list:
    """Decode every frame but convert only the picked ones (no seeking)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        wanted = set(plan_indices(s.frames, n))
        return [f.to_image() for i, f in enumerate(c.decode(s)) if i in wanted]


def timeit(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--codec", default="mpeg4")
    ap.add_argument("--gop", type=int, default=None, help="keyframe interval (default: the codec's)")
    ap.add_argument("--baseline-runs", type=int, default=3, help="runs of the slow decode-all baseline")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench_{args.codec}.mp4"
        t = time.perf_counter()
        encode_video(path, 960, size=(224, 224), fps=24, codec=args.codec, gop=args.gop)
        print(f"encoded 960 frames 224x224 {args.codec} gop={args.gop or 'default'} in "
              f"{time.perf_counter() - t:.2f} s ({path.stat().st_size / 1e6:.1f} MB)")
        frames, info = sample_video(path, frames=args.frames)  # warm-up, and a correctness check
        assert len(frames) == args.frames and "fallback" not in info, info
        print(f"rule: {info}")
        med, p90 = timeit(lambda: sample_video(path, frames=args.frames), args.runs)
        print(f"seek sampler      {args.frames} frames: median {med:7.1f} ms  p90 {p90:7.1f} ms  ({args.runs} runs)"
              f"  target median <= 70 ms: {'OK' if med <= 70 else 'MISSED'}")
        med, p90 = timeit(lambda: sample_video(path, frames=None, fps=1.0, max_frames=32), args.runs)
        print(f"seek sampler  fps=1 cap 32 frames: median {med:7.1f} ms  p90 {p90:7.1f} ms  ({args.runs} runs)")
        med, p90 = timeit(lambda: thumbnail_jpeg(frames), args.runs)
        print(f"thumbnail strip of 4 of {args.frames}:  median {med:7.1f} ms  p90 {p90:7.1f} ms  "
              f"({len(thumbnail_jpeg(frames))} bytes)")
        med, p90 = timeit(lambda: decode_in_order(path, args.frames), args.baseline_runs)
        print(f"decode in order   {args.frames} frames: median {med:7.1f} ms  p90 {p90:7.1f} ms  "
              f"({args.baseline_runs} runs)")
        med, p90 = timeit(lambda: decode_all(path, args.frames), args.baseline_runs)
        print(f"decode all        {args.frames} frames: median {med:7.1f} ms  p90 {p90:7.1f} ms  "
              f"({args.baseline_runs} runs)")


if __name__ == "__main__":
    main()
