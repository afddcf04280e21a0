"""Tiny fixture datasets in the schema of each general-VQA source of the Qwen-VL table (tasks/general_vqa/).

Each builder writes a few rows as parquet with `datasets.Image` columns (Pillow images from
m3eval.data.synthetic), with the field names and types of the hub card the task YAML cites:

- lmms-lab/VQAv2 validation: question_type, multiple_choice_answer, answers (list of {answer,
  answer_confidence, answer_id}), image_id, answer_type, question_id (int64), question, image.
- lmms-lab/GQA: the two configs the GQA tasks join (dataset.join), testdev_balanced_instructions (id, imageId,
  question, answer, fullAnswer, isBalanced: the columns the join reads, and a few more) and
  testdev_balanced_images (id, image), in a local copy of the repo (README configs + one folder per config).
- lmms-lab/ScienceQA, config ScienceQA-IMG, test: image, question, choices, answer (int8), hint, task, grade,
  subject, topic, category, skill, lecture, solution.
- lmms-lab/VizWiz-VQA val: question_id (string), image, question, answers (10 strings), category.
- OK-VQA: fixtures_suite.write_okvqa (lmms-lab/OK-VQA val2014).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import datasets

import fixtures_suite as fx
from m3eval.data.synthetic import draw_image

SIZE = fx.SIZE
N_ROWS = 3
_STR, _INT, _STRS = datasets.Value("string"), datasets.Value("int64"), datasets.Sequence(datasets.Value("string"))


def _write(path: Path, rows: list[dict[str, Any]], feats: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(path))
    return path


# ---- VQAv2 -----------------------------------------------------------------------------------

def vqav2_rows() -> list[dict[str, Any]]:
    qa = [("What color is the bus?", ["red"] * 7 + ["dark red"] * 3, "other"),
          ("How many people are there?", ["2"] * 6 + ["two"] * 2 + ["3"] * 2, "number"),
          ("Is it raining?", ["no"] * 10, "yes/no")]
    return [{"question_type": "what", "multiple_choice_answer": a[0],
             "answers": [{"answer": x, "answer_confidence": "yes", "answer_id": j + 1} for j, x in enumerate(a)],
             "image_id": 262148 + k // 2, "answer_type": t, "question_id": 262148000 + k, "question": q,
             "image": draw_image(200 + k, SIZE)} for k, (q, a, t) in enumerate(qa)]


def write_vqav2(root: Path) -> Path:
    answer = {"answer": _STR, "answer_confidence": _STR, "answer_id": _INT}
    return _write(root / "vqav2" / "validation.parquet", vqav2_rows(), {
        "question_type": _STR, "multiple_choice_answer": _STR, "answers": [answer], "image_id": _INT,
        "answer_type": _STR, "question_id": _INT, "question": _STR, "image": datasets.Image()})


# ---- GQA: the two hub configs, in a local copy of the repo ------------------------------------

GQA_IMAGE_IDS = ["n161313", "n235859"]
GQA_QUESTIONS, GQA_IMAGES = "testdev_balanced_instructions", "testdev_balanced_images"


def gqa_instruction_rows() -> list[dict[str, Any]]:
    """testdev_balanced_instructions: questions of two images, in the hub's order."""
    qa = [("n161313", "Is the sky blue or white?", "blue", "The sky is blue."),
          ("n235859", "What is the man holding?", "racket", "The man is holding a racket."),
          ("n161313", "Which side is the tree on?", "left", "The tree is on the left of the image.")]
    return [{"id": f"20{k:07d}", "imageId": img, "question": q, "answer": a, "fullAnswer": full, "isBalanced": True}
            for k, (img, q, a, full) in enumerate(qa)]


def gqa_image_rows() -> list[dict[str, Any]]:
    """testdev_balanced_images: one row per image."""
    return [{"id": img, "image": draw_image(300 + k, SIZE)} for k, img in enumerate(GQA_IMAGE_IDS)]


def write_gqa_configs(root: Path, images: list[dict[str, Any]] | None = None,
                      questions: list[dict[str, Any]] | None = None) -> Path:
    """A local copy of lmms-lab/GQA as `huggingface-cli download --local-dir` leaves it: the README's
    `configs` naming each config's files, <config>/testdev-00000-of-00001.parquet. Both configs, so
    `--dataset-override gqa_testdev_balanced=<folder>` reads the questions and the images from it."""
    folder = root / "GQA"
    _write(folder / GQA_QUESTIONS / "testdev-00000-of-00001.parquet", gqa_instruction_rows() if questions is None
           else questions, {"id": _STR, "imageId": _STR, "question": _STR, "answer": _STR, "fullAnswer": _STR,
                            "isBalanced": datasets.Value("bool")})
    _write(folder / GQA_IMAGES / "testdev-00000-of-00001.parquet", gqa_image_rows() if images is None else images,
           {"id": _STR, "image": datasets.Image()})
    configs = "".join(f"- config_name: {c}\n  data_files:\n  - split: testdev\n    path: {c}/testdev-*\n"
                      for c in (GQA_IMAGES, GQA_QUESTIONS))
    (folder / "README.md").write_text(f"---\nconfigs:\n{configs}---\n", encoding="utf-8")
    return folder


def write_gqa(root: Path) -> Path:
    return write_gqa_configs(root)


# ---- ScienceQA-IMG ---------------------------------------------------------------------------

def scienceqa_rows() -> list[dict[str, Any]]:
    qa = [("Which of these states is farthest north?", ["Arizona", "Maine", "Florida"], 1,
           "Figure: a map of the United States."),
          ("Which animal's feet are also adapted for digging?", ["meerkat", "giraffe"], 0, ""),
          ("What is the temperature of a warm bowl of soup?", ["60°F", "60°C", "140°F", "140°C"], 2, "  ")]
    return [{"image": draw_image(400 + k, SIZE), "question": q, "choices": c, "answer": a, "hint": h,
             "task": "closed choice", "grade": "grade5", "subject": "natural science", "topic": "geography",
             "category": "Geography", "skill": "Read a map", "lecture": "Maps show places.",
             "solution": "Look at the map."} for k, (q, c, a, h) in enumerate(qa)]


def write_scienceqa(root: Path) -> Path:
    return _write(root / "ScienceQA-IMG" / "test.parquet", scienceqa_rows(), {
        "image": datasets.Image(), "question": _STR, "choices": _STRS, "answer": datasets.Value("int8"),
        "hint": _STR, "task": _STR, "grade": _STR, "subject": _STR, "topic": _STR, "category": _STR, "skill": _STR,
        "lecture": _STR, "solution": _STR})


# ---- VizWiz-VQA ------------------------------------------------------------------------------

def vizwiz_rows() -> list[dict[str, Any]]:
    qa = [("what is this?", ["unanswerable"] * 6 + ["soup"] * 4, "unanswerable"),
          ("what color is this shirt?", ["blue"] * 5 + ["dark blue"] * 4 + ["navy"], "other"),
          ("is this coke or pepsi?", ["coke"] * 8 + ["coca cola"] * 2, "other")]
    return [{"question_id": f"VizWiz_val_{k:08d}", "image": draw_image(500 + k, SIZE), "question": q,
             "answers": a, "category": c} for k, (q, a, c) in enumerate(qa)]


def write_vizwiz(root: Path) -> Path:
    return _write(root / "VizWiz-VQA" / "val.parquet", vizwiz_rows(), {
        "question_id": _STR, "image": datasets.Image(), "question": _STR, "answers": _STRS, "category": _STR})


# ---- every task ------------------------------------------------------------------------------

GENERAL_VQA: dict[str, Callable[[Path], Path]] = {
    "vqav2_val": write_vqav2, "okvqa": fx.write_okvqa, "gqa_testdev_balanced": write_gqa,
    "scienceqa_img_test": write_scienceqa, "vizwiz_vqa_val": write_vizwiz,
}
GENERAL_VQA.update({f"{task}_qwen_vl": builder for task, builder in list(GENERAL_VQA.items())})


def expected_references(task: str) -> list[list[str]]:
    """Each sample's references as the task YAML reads them from the fixture rows."""
    base = task.removesuffix("_qwen_vl")
    if base == "vqav2_val":
        return [[a["answer"] for a in r["answers"]] for r in vqav2_rows()]
    if base == "okvqa":
        return [r["answers"] for r in fx.okvqa_rows()]
    if base == "gqa_testdev_balanced":
        return [[r["answer"]] for r in gqa_instruction_rows()]
    if base == "scienceqa_img_test":
        return [["ABCDE"[r["answer"]]] for r in scienceqa_rows()]
    if base == "vizwiz_vqa_val":
        return [r["answers"] for r in vizwiz_rows()]
    raise AssertionError(f"no expected references for {task}")


def build_all(root: Path) -> dict[str, Path]:
    """Every general-VQA task's fixture under root; returns task -> path for --dataset-override."""
    built: dict[Callable[[Path], Path], Path] = {}
    out: dict[str, Path] = {}
    for task, builder in GENERAL_VQA.items():
        if builder not in built:
            built[builder] = builder(root)
        out[task] = built[builder]
    return out
