"""Deterministic synthetic images and videos for tests and benchmarks.

Images are drawn with Pillow; videos are encoded with PyAV. Every video frame
carries its own index as a binary code (two rows of 8 black/white blocks in
the top band), big flat blocks that survive lossy codecs, so a test can tell
exactly which frame a sampler returned with `frame_index_of`. Below the band,
the background colour depends on the frame number and a square moves, so
frames are also visibly different to a human.
"""
from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageStat

_BITS = 16  # two rows of 8 blocks: frame indices up to 65535


def draw_image(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A deterministic RGB image of a few coloured shapes; different seeds differ."""
    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3 + seed % 3):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(4, max(5, w // 2)), y0 + rng.randrange(4, max(5, h // 2))
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
    return img


def _block(size: tuple[int, int]) -> int:
    return size[0] // 8


def draw_frame(index: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """Frame `index` of a synthetic video: index code on top, colour + moving square below."""
    if not 0 <= index < 2**_BITS:
        raise ValueError(f"frame index {index} out of range 0..{2**_BITS - 1}")
    w, h = size
    b = _block(size)
    if b < 4 or h < 3 * b:
        raise ValueError(f"frame size {size} too small for the index code (need width >= 32)")
    hue = (index * 37) % 256
    img = Image.new("RGB", size, (hue, 255 - hue, (index * 11) % 256))
    draw = ImageDraw.Draw(img)
    for bit in range(_BITS):
        row, col = divmod(bit, 8)
        on = (index >> bit) & 1
        draw.rectangle([col * b, row * b, col * b + b - 1, row * b + b - 1], fill=(255, 255, 255) if on else (0, 0, 0))
    side = max(4, w // 4)
    span = max(1, w - side)
    x = (index * 3) % span
    y = 2 * b + (index * 2) % max(1, h - 2 * b - side)
    draw.rectangle([x, y, x + side - 1, y + side - 1], fill=(255, 255, 0))
    return img


def frame_index_of(img: Image.Image) -> int:
    """Read back the index drawn by `draw_frame` (robust to codec noise)."""
    img = img.convert("L")
    b = _block(img.size)
    m = max(1, b // 4)  # sample each block's centre, away from blurred edges
    index = 0
    for bit in range(_BITS):
        row, col = divmod(bit, 8)
        cx, cy = col * b + b // 2, row * b + b // 2
        if ImageStat.Stat(img.crop((cx - m, cy - m, cx + m, cy + m))).mean[0] > 128:
            index |= 1 << bit
    return index


def encode_video(
    path: str | Path,
    n_frames: int,
    size: tuple[int, int] = (64, 64),
    fps: int = 24,
    codec: str = "mpeg4",
    *,
    gop: int | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    images: list[Image.Image] | None = None,
) -> Path:
    """Encode `n_frames` frames of `draw_frame` (or the given `images`) to `path` (container
    from the suffix).

    `gop` sets the keyframe interval (None: the codec's default). `pts` with
    `time_base` gives explicit timestamps, for variable-frame-rate videos.
    """
    path = Path(path)
    if pts is not None and len(pts) != n_frames:
        raise ValueError(f"pts has {len(pts)} entries for {n_frames} frames")
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "mpeg4":
            stream.codec_context.options = {"qscale": "3"}  # near-lossless, keeps colours identifiable
            stream.codec_context.qscale = 3
        if gop is not None:
            stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        for i in range(n_frames):
            frame = av.VideoFrame.from_image(draw_frame(i, size) if images is None else images[i])
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
