"""The embedded demo tasks' data: small synthetic datasets in the schemas of real
benchmarks (VQA with 10 answers, A-OKVQA-style multiple choice, M3IT rows with
base64 images or 8 stored frames, MSRVTT-QA-style video files, COCO-style
captions with 5 references, Chinese M3IT instructions).

Deterministic: `python -m m3eval.demo.data` rewrites tasks/demo/data/ with the
same content; a test checks that.
"""
from __future__ import annotations

import base64
import io
import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from ..resources import TASKS_DIR

DATA_DIR = TASKS_DIR / "demo" / "data"
COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
          "white": (245, 245, 245), "black": (15, 15, 15)}
ZH_COLORS = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "white": "白色", "black": "黑色"}
SHAPES = ["circle", "square", "triangle"]
ZH_SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形"}
NUMBER_WORDS = ["zero", "one", "two", "three", "four"]


def draw_scene(rng: random.Random, size: int = 64) -> tuple[Image.Image, dict]:
    """A background and 1-3 shapes of one kind and colour; returns the facts drawn."""
    bg = rng.choice(["white", "black"])
    color = rng.choice([c for c in COLORS if c != bg])
    shape, count = rng.choice(SHAPES), rng.randint(1, 3)
    img = Image.new("RGB", (size, size), COLORS[bg])
    d = ImageDraw.Draw(img)
    for k in range(count):
        x, y, r = 2 + k * 21, rng.randint(4, size - 24), 10
        box = [x, y, x + 2 * r, y + 2 * r]
        if shape == "circle":
            d.ellipse(box, fill=COLORS[color])
        elif shape == "square":
            d.rectangle(box, fill=COLORS[color])
        else:
            d.polygon([(x + r, y), (x, y + 2 * r), (x + 2 * r, y + 2 * r)], fill=COLORS[color])
    return img, {"color": color, "shape": shape, "count": count, "background": bg}


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def b64(img: Image.Image) -> str:
    return base64.b64encode(png(img)).decode()


def _ten(answer: str, alt: str, rng: random.Random) -> list[str]:
    """Ten annotator answers as in VQA v2 / OK-VQA: mostly the answer, some variants."""
    n_alt = rng.randint(0, 3)
    return [answer] * (10 - n_alt) + [alt] * n_alt


def vqa_question(f: dict, kind: int) -> tuple[str, str, str]:
    """(question, answer, an annotator's variant) about a scene: colour, shape or count."""
    if kind == 0:
        return f"What color is the {f['shape']}?", f["color"], f"{f['color']} {f['shape']}"
    if kind == 1:
        return "What shape is shown?", f["shape"], f"a {f['shape']}"
    return f"How many {f['shape']}s are there?", str(f["count"]), NUMBER_WORDS[f["count"]]


def caption_en(f: dict) -> str:
    s = "s" if f["count"] > 1 else ""
    return f"{NUMBER_WORDS[f['count']]} {f['color']} {f['shape']}{s} on a {f['background']} background."


def caption_zh(f: dict) -> str:
    return f"图片中有{f['count']}个{ZH_COLORS[f['color']]}的{ZH_SHAPES[f['shape']]}。"


def vqa_rows(n: int, seed: int) -> list[dict]:
    rng, rows = random.Random(seed), []
    for i in range(n):
        img, f = draw_scene(rng)
        kind = i % 3
        q, a, alt = vqa_question(f, kind)
        rows.append({"question_id": 1000 + i, "question": q, "image": {"bytes": png(img), "path": None},
                     "answers": _ten(a, alt, rng), "answer_type": ["other", "other", "number"][kind]})
    return rows


def mc_choices() -> list[str]:
    """Every colour, always in this order: a 2-MB model learns which letter names which
    colour, but not, in seconds of training, to find a colour among shuffled options
    (with those it gave one letter to every question)."""
    return list(COLORS)


def mc_rows(n: int, seed: int) -> list[dict]:
    rng, rows = random.Random(seed), []
    for i in range(n):
        img, f = draw_scene(rng)
        choices = mc_choices()
        rows.append({"question_id": f"mc{i:03d}", "question": "Which color are the shapes in the picture?",
                     "image": {"bytes": png(img), "path": None}, "choices": choices,
                     "correct_choice_idx": choices.index(f["color"]),
                     "direct_answers": _ten(f["color"], "dark " + f["color"], rng)})
    return rows


M3IT_EN_INSTRUCTIONS = [
    "Describe the image briefly.", "Write a short caption for this picture.",
    "What does the image show? Answer in one sentence.", "Give a one-sentence description of the image.",
]
M3IT_ZH_INSTRUCTIONS = ["请用一句话描述这张图片。", "这张图片里有什么？", "请简要说明图片的内容。"]


def m3it_rows(n: int, seed: int, lang: str) -> list[dict]:
    """Rows in M3IT's schema: instruction, inputs, outputs, image_base64_str (a list)."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        img, f = draw_scene(rng)
        if lang == "zh":
            out, instr = caption_zh(f), M3IT_ZH_INSTRUCTIONS[i % len(M3IT_ZH_INSTRUCTIONS)]
        else:
            out, instr = caption_en(f), M3IT_EN_INSTRUCTIONS[i % len(M3IT_EN_INSTRUCTIONS)]
        rows.append({"instruction": instr, "inputs": "", "outputs": out, "image_base64_str": [b64(img)]})
    return rows


def caption_rows(n: int, seed: int) -> list[dict]:
    """COCO-style: one image, five reference captions."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        img, f = draw_scene(rng)
        s = "s" if f["count"] > 1 else ""
        c, sh, bg, k = f["color"], f["shape"], f["background"], NUMBER_WORDS[f["count"]]
        refs = [caption_en(f), f"A picture of {k} {c} {sh}{s}.",
                f"{c.capitalize()} {sh}{s} drawn on {bg}.", f"There {'are' if s else 'is'} {k} {c} {sh}{s}.",
                f"A simple drawing of {c} {sh}{s}."]
        rows.append({"image_id": 500 + i, "image": {"bytes": png(img), "path": None}, "captions": refs})
    return rows


VIDEO_QUESTIONS = {"shape": "what moves across the screen?", "color": "what color is the moving shape?"}
FRAMES_INSTRUCTION = "Watch the video and answer: what color is the moving shape?"


def moving_frames(f: dict, n: int, size: int = 64) -> list[Image.Image]:
    """n frames of one shape of the scene's colour and kind crossing its background."""
    frames, r = [], 11
    for t in range(n):
        img = Image.new("RGB", (size, size), COLORS[f["background"]])
        x, y = round((size - 2 * r) * t / max(1, n - 1)), size // 2 - r
        box = [x, y, x + 2 * r, y + 2 * r]
        d = ImageDraw.Draw(img)
        if f["shape"] == "circle":
            d.ellipse(box, fill=COLORS[f["color"]])
        elif f["shape"] == "square":
            d.rectangle(box, fill=COLORS[f["color"]])
        else:
            d.polygon([(x + r, y), (x, y + 2 * r), (x + 2 * r, y + 2 * r)], fill=COLORS[f["color"]])
        frames.append(img)
    return frames


def frames_rows(n: int, seed: int) -> list[dict]:
    """M3IT video tasks: 8 frames stored as base64 images in image_base64_str."""
    rng, rows = random.Random(seed), []
    for _ in range(n):
        _, f = draw_scene(rng)
        rows.append({"instruction": FRAMES_INSTRUCTION, "inputs": "", "outputs": f["color"],
                     "image_base64_str": [b64(im) for im in moving_frames(f, 8)]})
    return rows


def video_rows(n: int, folder: Path, seed: int) -> list[dict]:
    """MSRVTT-QA style: a video file (a shape crossing the screen) and a short-answer question."""
    from ..data.synthetic import encode_video  # PyAV only when videos are written

    folder.mkdir(parents=True, exist_ok=True)
    rng, rows = random.Random(seed), []
    for i in range(n):
        _, f = draw_scene(rng)
        name = f"video{i}.mp4"
        frames = moving_frames(f, 6 if i == 0 else 12 * i)
        # the first is shorter than 8 frames
        encode_video(folder / name, len(frames), frames[0].size, fps=12, images=frames)
        kind = "shape" if i % 2 == 0 else "color"
        rows.append({"id": i, "video_id": f"video{i}", "video": f"videos/{name}",
                     "question": VIDEO_QUESTIONS[kind], "answer": f[kind], "category": kind})
    return rows


def write_all(out: Path = DATA_DIR) -> list[Path]:
    import datasets

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def parquet(name: str, rows: list[dict], image_col: str | None = "image") -> None:
        ds = datasets.Dataset.from_list(rows)
        if image_col:
            ds = ds.cast_column(image_col, datasets.Image())
        ds.to_parquet(str(out / name))
        written.append(out / name)

    def jsonl(name: str, rows: list[dict]) -> None:
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        written.append(out / name)

    parquet("vqa.parquet", vqa_rows(64, seed=1))
    parquet("mc.parquet", mc_rows(32, seed=2))
    parquet("captions.parquet", caption_rows(32, seed=3))
    jsonl("m3it_caption_en.jsonl", m3it_rows(32, seed=4, lang="en"))
    jsonl("m3it_caption_zh.jsonl", m3it_rows(24, seed=5, lang="zh"))
    jsonl("m3it_video_frames.jsonl", frames_rows(16, seed=6))
    jsonl("video_qa.jsonl", video_rows(8, out / "videos", seed=7))
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR):
        print(p)
