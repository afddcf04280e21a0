"""Retrieval at scale with the tiny contrastive encoder (m3eval/demo/tiny_clip.py), on CPU.

    PYTHONPATH=. python benchmarks/bench_retrieval.py [--images 10000] [--captions 50000]

Encodes N drawn images and 5N captions through the `clip` backend, then ranks every image
against every caption both ways (m3eval/metrics/retrieval.py embedding_ranks: query chunks of
at most CHUNK_BYTES of similarities) and computes R@1/5/10. Prints encoding samples/s, the
similarity + ranking time (both directions in one pass, as encode.py runs it; and image->text
alone), and the peak memory the ranking added (target: 10k x 50k in <= 5 s, never more than
1 GB materialized).
"""
from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--captions", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny encoder: one thread is faster

    from m3eval.demo.encoder_data import CLASSES, captions
    from m3eval.demo.tiny_clip import build_tiny_clip
    from m3eval.demo.shapes import draw_shape
    from m3eval.metrics.retrieval import CHUNK_BYTES, embedding_ranks, retrieval_ranks
    from m3eval.models.registry import load_model

    with tempfile.TemporaryDirectory() as d:
        model = load_model("clip", {"pretrained": str(build_tiny_clip(Path(d) / "clip")), "batch_size": args.batch_size})
    rnd = random.Random(0)
    per = args.captions // args.images
    classes = [rnd.choice(CLASSES) for _ in range(args.images)]
    images = [draw_shape(rnd, c, s, size=32) for c, s in classes]
    # numbered, so captions are distinct (identical captions tie, and ties count against)
    texts = [f"{t} {i}" for i, (c, s) in enumerate(classes)
             for t in (captions(c, s) + [f"a photo of a {c} {s}.", f"{c} {s}"])[:per]]
    owner = [i for i in range(args.images) for _ in range(per)]

    t = time.perf_counter()
    img = model.encode_images(images)
    t_img = time.perf_counter() - t
    t = time.perf_counter()
    txt = model.encode_texts(texts)
    t_txt = time.perf_counter() - t
    print(f"encode images : {len(images):>6} in {t_img:6.2f} s  ({len(images) / t_img:8.1f} images/s)")
    print(f"encode texts  : {len(texts):>6} in {t_txt:6.2f} s  ({len(texts) / t_txt:8.1f} captions/s)")

    torch.set_num_threads(threads)  # the similarity matmuls: every core
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    i2t, t2i = retrieval_ranks(img, txt, owner)  # what encode.py runs: both directions, one pass
    t_both = time.perf_counter() - t
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    t = time.perf_counter()
    one = embedding_ranks(img, txt, [list(range(i * per, (i + 1) * per)) for i in range(args.images)])
    t_i2t = time.perf_counter() - t
    assert np.array_equal(one, i2t)
    print(f"rank both ways: {args.images} x {len(texts)} in {t_both:6.2f} s  (similarity + ranking, one pass)")
    print(f"rank i2t only : {args.images} x {len(texts)} in {t_i2t:6.2f} s")
    print(f"ranking peak memory growth: {grown_mb:.0f} MB (similarity chunks <= {CHUNK_BYTES / 2**20:.0f} MB)")
    for k in (1, 5, 10):
        print(f"R@{k:<2}  i2t {np.mean(i2t < k):.4f}  t2i {np.mean(t2i < k):.4f}")


if __name__ == "__main__":
    main()
