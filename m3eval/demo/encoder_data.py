"""Data of the encoder and grounding demo tasks: drawn shapes in the schemas of the real ones.

- zero_shot.parquet  (image, label): ImageNet/CIFAR-style, 24 classes = 8 colours x 3 shapes,
  class names in English and Chinese (the task YAML lists them).
- retrieval.parquet  (image_id, image, caption: 3 captions): Flickr30k / COCO-style.
- grounding.parquet  (question_id, image, answer: expressions, bbox: COCO xywh): RefCOCO-style.

Deterministic: `python -m m3eval.demo.encoder_data` rewrites tasks/demo/data/encoders/ identically.
"""
from __future__ import annotations

import io
import random
import sys
from pathlib import Path

from m3eval.demo.shapes import SHAPE_COLORS, TRAINED_SHAPES, color_zh, draw_shape, shape_zh
from m3eval.resources import TASKS_DIR

DATA_DIR = TASKS_DIR / "demo" / "data" / "encoders"
COLORS = list(SHAPE_COLORS)
CLASSES = [(c, s) for c in COLORS for s in TRAINED_SHAPES]


def zh(color: str, shape: str) -> str:
    return f"{color_zh(color)}的{shape_zh(shape)}"


def captions(color: str, shape: str) -> list[str]:
    return [f"a {color} {shape}", f"a drawing of a {color} {shape}", f"there is one {color} {shape} in the image"]


def caption_corpus() -> list[str]:
    """Text the tiny encoder's tokenizer is trained on (with the tiny VLM's corpus)."""
    out = []
    for c, s in CLASSES:
        out += captions(c, s) + [f"a photo of a {c} {s}.", f"一张{zh(c, s)}的照片。", zh(c, s)]
    return out


def training_pair(rnd: random.Random):
    """(image, caption) for the tiny encoder's short contrastive training."""
    color, shape = rnd.choice(CLASSES)
    text = rnd.choice(captions(color, shape) + [f"a photo of a {color} {shape}.", zh(color, shape)])
    return draw_shape(rnd, color, shape), text


def _png(img) -> dict:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def zero_shot_rows(seed: int = 1) -> list[dict]:
    rnd = random.Random(seed)
    return [{"image": _png(draw_shape(rnd, c, s)), "label": i} for _ in range(2) for i, (c, s) in enumerate(CLASSES)]


def retrieval_rows(seed: int = 2) -> list[dict]:
    rnd = random.Random(seed)
    return [{"image_id": f"img{i}", "image": _png(draw_shape(rnd, c, s)), "caption": captions(c, s)}
            for i, (c, s) in enumerate(CLASSES)]


GROUNDING_PROMPT = "Where is {}? Answer with a bounding box [x1, y1, x2, y2] in pixels."


def grounding_scene(rnd: random.Random, size: int = 64):
    """(image, colour, COCO box x, y, w, h): one filled rectangle, large enough that a model
    that roughly finds it reaches IoU >= 0.5 (the demo model learns this in training)."""
    from PIL import Image, ImageDraw

    color = rnd.choice(COLORS)
    img = Image.new("RGB", (size, size), (128, 128, 128) if color != "black" else (250, 250, 250))
    w, h = rnd.randint(size * 3 // 8, size * 3 // 4), rnd.randint(size * 3 // 8, size * 3 // 4)
    x, y = rnd.randint(0, size - w), rnd.randint(0, size - h)
    ImageDraw.Draw(img).rectangle([x, y, x + w, y + h], fill=SHAPE_COLORS[color])
    return img, color, (x, y, w, h)


def grounding_rows(seed: int = 3, n: int = 12, size: int = 64) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        img, color, (x, y, w, h) = grounding_scene(rnd, size)
        rows.append({"question_id": f"g{i}", "image": _png(img), "answer": [f"the {color} square"],
                     "bbox": [float(x), float(y), float(w), float(h)], "width": size, "height": size})
    return rows


def write_all(out: Path = DATA_DIR) -> list[Path]:
    import datasets

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in [("zero_shot", zero_shot_rows()), ("retrieval", retrieval_rows()),
                       ("grounding", grounding_rows())]:
        ds = datasets.Dataset.from_list(rows)
        ds = ds.cast_column("image", datasets.Image())
        path = out / f"{name}.parquet"
        ds.to_parquet(str(path))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR):
        print(p)
