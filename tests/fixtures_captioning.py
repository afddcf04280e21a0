"""Tiny fixture datasets in the schema of the captioning sources of the Qwen-VL table (tasks/captioning/).

- lmms-lab/NoCaps, split validation: every column of its card's dataset_info (image, image_coco_url,
  image_date_captured, image_file_name, image_height, image_width, image_id int32, image_license int8,
  image_open_images_id, annotations_ids int32 list, annotations_captions string list), 10 captions a row.
- umaru97/flickr30k_train_val_test, split test (Karpathy test): image, caption (5 strings), sentids,
  split, img_id (string), filename.

Captions differ between images, with capitals, punctuation and a hyphenated word (one PTB token), so
that PTB tokenization and CIDEr's document frequencies (over the whole corpus) both matter. Images are
drawn with Pillow.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from m3eval.data.synthetic import draw_image

SIZE = (32, 32)  # the tiny model's image size

_SCENES = [
    ("dog", "grass", "runs across"), ("man", "bicycle", "rides"), ("woman", "piano", "plays"),
    ("child", "kite", "flies"),
]
_FORMS = [
    "A {s} {v} the well-kept {o}.", "The {s} {v} a {o}.", "a {s} {v} the {o} in the park", "A small {s} {v} the {o}!",
    "Someone's {s} {v} the {o}, happily.", "There is a {s} that {v} a {o}.", "A {s} {v} the {o} at noon.",
    "{S} {v} the big {o}", "An old {s} {v} the {o} outside.", "A {s} near a {o}.",
]


def _captions(k: int, n: int) -> list[str]:
    s, o, v = _SCENES[k % len(_SCENES)]
    return [f.format(s=s, S=s.capitalize(), o=o, v=v) for f in _FORMS[:n]]


def _write_parquet(path: Path, rows: list[dict[str, Any]], feats: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(path))
    return path


_STR, _STRS = datasets.Value("string"), datasets.Sequence(datasets.Value("string"))
N_ROWS = 4


def nocaps_rows() -> list[dict[str, Any]]:
    rows = []
    for k in range(N_ROWS):
        oid = f"{k:04x}ea2087020901"
        rows.append({"image": draw_image(200 + k, SIZE),
                     "image_coco_url": f"https://s3.amazonaws.com/nocaps/val/{oid}.jpg",
                     "image_date_captured": "2018-11-06 11:04:33", "image_file_name": f"{oid}.jpg",
                     "image_height": SIZE[1], "image_width": SIZE[0], "image_id": k, "image_license": 0,
                     "image_open_images_id": oid, "annotations_ids": [10 * k + j for j in range(10)],
                     "annotations_captions": _captions(k, 10)})
    return rows


def write_nocaps(root: Path) -> Path:
    return _write_parquet(root / "NoCaps" / "validation.parquet", nocaps_rows(), {
        "image": datasets.Image(), "image_coco_url": _STR, "image_date_captured": _STR, "image_file_name": _STR,
        "image_height": datasets.Value("int32"), "image_width": datasets.Value("int32"),
        "image_id": datasets.Value("int32"), "image_license": datasets.Value("int8"), "image_open_images_id": _STR,
        "annotations_ids": datasets.Sequence(datasets.Value("int32")), "annotations_captions": _STRS})


def flickr30k_rows() -> list[dict[str, Any]]:
    return [{"image": draw_image(300 + k, SIZE), "caption": _captions(k + 1, 5),
             "sentids": [str(5 * (30000 + k) + j) for j in range(5)], "split": "test", "img_id": str(30000 + k),
             "filename": f"{1007129816 + k}.jpg"} for k in range(N_ROWS)]


def write_flickr30k(root: Path) -> Path:
    return _write_parquet(root / "flickr30k" / "test.parquet", flickr30k_rows(), {
        "image": datasets.Image(), "caption": _STRS, "sentids": _STRS, "split": _STR, "img_id": _STR,
        "filename": _STR})


# task -> (fixture builder, the rows it writes, the row's id field, the row's references field)
TASKS = {
    "nocaps_val": (write_nocaps, nocaps_rows, "image_id", "annotations_captions"),
    "flickr30k_test": (write_flickr30k, flickr30k_rows, "img_id", "caption"),
}
TASKS.update({f"{t}_qwen_vl": v for t, v in list(TASKS.items())})


def build_all(root: Path) -> dict[str, Path]:
    """Every captioning task's fixture under root (one file per source); task -> path for --dataset-override."""
    built: dict[Any, Path] = {}
    out: dict[str, Path] = {}
    for task, (builder, *_rest) in TASKS.items():
        if builder not in built:
            built[builder] = builder(root)
        out[task] = built[builder]
    return out
