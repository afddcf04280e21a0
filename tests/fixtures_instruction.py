"""Tiny fixture datasets in the hub schemas of POPE and SEED-Bench (tasks/instruction/), written as parquet with
`datasets.Image` columns (Pillow images from m3eval.data.synthetic):

- lmms-lab/POPE, default config, test: id, question_id, question, answer ("yes"/"no"), image_source, image,
  category (random | popular | adversarial). Each set: images with questions about objects in them ("yes")
  and not ("no"); question_id restarts in each set, as in POPE's three files.
- lmms-lab/SEED-Bench, test: answer, choice_a..choice_d, data_id, data_type (image | video), question,
  question_id, question_type_id, image (a LIST of images; a video row holds several frames).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from m3eval.data.synthetic import draw_image

SIZE = (32, 32)  # the tiny model's image size
POPE_SETS = ["random", "popular", "adversarial"]
_STR = datasets.Value("string")

# (image file, objects in it, objects asked about that are not)
_POPE_IMAGES = [("COCO_val2014_000000310196.jpg", ["snowboard", "person"], ["car", "dog"]),
                ("COCO_val2014_000000210789.jpg", ["dining table", "cup"], ["fork", "oven"])]


def _write(path: Path, rows: list[dict[str, Any]], feats: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(path))
    return path


def pope_rows() -> list[dict[str, Any]]:
    """Eight questions per set (two images, two "yes" and two "no" each), the sets one after another."""
    rows: list[dict[str, Any]] = []
    for s, category in enumerate(POPE_SETS):
        qid = 0
        for k, (source, present, absent) in enumerate(_POPE_IMAGES):
            for obj, label in [(o, "yes") for o in present] + [(o, "no") for o in absent]:
                qid += 1
                rows.append({"id": str(len(rows)), "question_id": str(qid),
                             "question": f"Is there a {obj} in the image?", "answer": label,
                             "image_source": source.removesuffix(".jpg"), "image": draw_image(700 + k, SIZE),
                             "category": category})
    return rows


def write_pope(root: Path) -> Path:
    return _write(root / "POPE" / "test.parquet", pope_rows(), {
        "id": _STR, "question_id": _STR, "question": _STR, "answer": _STR, "image_source": _STR,
        "image": datasets.Image(), "category": _STR})


# question_type_id -> (question, options, answer): one or two per image dimension (5 and 9 twice)
_SEED_QA = [
    (1, "What is the main setting of the image?", ["A beach", "A kitchen", "A forest", "A street"], "C"),
    (2, "What kind of animal is in the image?", ["Cat", "Dog", "Horse", "Bird"], "A"),
    (3, "What color is the car?", ["Red", "Blue", "White", "Black"], "B"),
    (4, "Where is the lamp located?", ["On the left", "On the right", "In the middle", "At the top"], "D"),
    (5, "How many towels are in the image?", ["One", "Two", "Three", "Four"], "B"),
    (5, "How many people are in the image?", ["Two", "Three", "Four", "Five"], "A"),
    (6, "Where is the cup relative to the plate?", ["Left", "Right", "Above", "Below"], "A"),
    (7, "What is the man doing with the ball?", ["Kicking it", "Throwing it", "Holding it", "Ignoring it"], "C"),
    (8, "Why might the road be wet?", ["It rained", "A flood", "A street cleaner", "Snow melted"], "A"),
    (9, "What is written on the sign?", ["STOP", "YIELD", "EXIT", "OPEN"], "D"),
    (9, "What word is on the shirt?", ["LOVE", "HOPE", "PEACE", "JOY"], "B"),
]
_SEED_VIDEO = [(10, "What is the action being carried out in the video?",
                ["throwing something", "catching something", "lifting something", "poking something"], "B"),
               (11, "Please anticipate what action will occur following the end of this video.",
                ["fill saucepan", "move saucepan", "lift saucepan", "pour saucepan"], "B")]


def seed_rows() -> list[dict[str, Any]]:
    """The image questions, then two video rows (dimensions 10-11: excluded by the task)."""
    rows: list[dict[str, Any]] = []
    for k, (dim, q, opts, ans) in enumerate(_SEED_QA):
        rows.append({"answer": ans, **dict(zip(["choice_a", "choice_b", "choice_c", "choice_d"], opts)),
                     "data_id": f"{1454426 + k}_2591111986", "data_type": "image", "question": q,
                     "question_id": str(101669 + k), "question_type_id": dim,
                     "image": [draw_image(800 + k, SIZE)]})
    for k, (dim, q, opts, ans) in enumerate(_SEED_VIDEO):
        rows.append({"answer": ans, **dict(zip(["choice_a", "choice_b", "choice_c", "choice_d"], opts)),
                     "data_id": f"{94328 + k}.webm", "data_type": "video", "question": q,
                     "question_id": f"v{1738 + k}", "question_type_id": dim,
                     "image": [draw_image(900 + 10 * k + f, SIZE) for f in range(4)]})
    return rows


def write_seed(root: Path) -> Path:
    return _write(root / "SEED-Bench" / "test.parquet", seed_rows(), {
        "answer": _STR, "choice_a": _STR, "choice_b": _STR, "choice_c": _STR, "choice_d": _STR, "data_id": _STR,
        "data_type": _STR, "question": _STR, "question_id": _STR, "question_type_id": datasets.Value("int64"),
        "image": datasets.Sequence(datasets.Image())})
