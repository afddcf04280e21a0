"""Tiny fixture datasets in the schema of each real source of the benchmark suite.

Each builder writes a few rows, in the container and with the field names and
types the real source has (docs/TASKS_SUITE.md says which), so the suite's
YAML files run end to end on them through `--dataset-override TASK=PATH`:

- M3IT / M3IT-80 rows (the loading script's output): instruction, inputs,
  outputs, image_base64_str (a list of base64 JPEGs; video tasks: 8 frames).
- lmms-lab/OK-VQA: parquet with a `datasets.Image` column, question, answers
  (10), question_id.
- HuggingFaceM4/A-OKVQA: a DatasetDict (train/validation) with image,
  question_id, question, choices, correct_choice_idx, direct_answers,
  difficult_direct_answer, rationales.
- MSRVTT-QA / MSVD-QA: test_qa.json (a JSON list of video_name, question,
  answer, question_id; video_name without extension) with the video files
  (.mp4 / .avi encoded with PyAV) beside it.
- MSR-VTT captioning (prepared): jsonl of video_id, video, captions (20).
- Flickr8k-CN (prepared): parquet of image_id, image, captions (5, Chinese).
- Text-rich VQA (the Qwen-VL table): lmms-lab/textvqa, lmms-lab/DocVQA (config DocVQA),
  lmms-lab/ChartQA (one test split, `type` human_test / augmented_test), lmms-lab/ai2d
  (options, answer index as a string) with every column their cards list; howard-hou/OCR-VQA (one
  row per cover, parallel questions / answers lists, and the card's other columns).

Images are drawn with Pillow and videos encoded with PyAV by m3eval.data.synthetic.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any, Callable

import datasets
from PIL import Image

from m3eval.data.synthetic import draw_frame, draw_image, encode_video

SIZE = (32, 32)  # the tiny model's image size; draw_frame needs width >= 32
N_ROWS = 3

# M3IT paper tasks: task name -> (kind, example instruction/input/output makers)
M3IT_IMAGE = ["m3it_okvqa", "m3it_aokvqa", "m3it_viquae"]
M3IT_VIDEO = ["m3it_msrvtt", "m3it_ivqa", "m3it_activitynet_qa", "m3it_msrvtt_qa", "m3it_msvd_qa"]
M3IT_CHINESE = ["m3it_flickr8k_cn", "m3it_fm_iqa", "m3it_chinese_food"]

_EN_INSTRUCTIONS = [
    "Answer the question about the image with a short sentence.",
    "Look at the picture and respond to the question.",
    "Use what you know about the world to answer the question.",
]
_VIDEO_INSTRUCTIONS = [
    "Watch the video frames and answer the question.",
    "Based on the video, give a short answer.",
]
_ZH_INSTRUCTIONS = ["请根据图片回答问题。", "请仔细观察图片，然后回答。"]


def b64_jpeg(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def m3it_rows(task: str, n: int = N_ROWS, seed: int = 0) -> list[dict[str, Any]]:
    """Rows as M3IT.py yields them; video tasks carry 8 frames in image_base64_str."""
    rows = []
    for i in range(n):
        s = seed * 100 + i
        if task in M3IT_VIDEO:
            frames = [b64_jpeg(draw_frame(4 * i + k, SIZE)) for k in range(8)]
            captioning = task.endswith("msrvtt")
            rows.append({"instruction": _VIDEO_INSTRUCTIONS[i % len(_VIDEO_INSTRUCTIONS)],
                         "inputs": "" if captioning else f"What is the man doing in the video? ({i})",
                         "outputs": "A man is cooking food in the kitchen." if captioning
                         else "The man is playing the piano.",
                         "image_base64_str": frames})
        elif task in M3IT_CHINESE:
            captioning = task.endswith("flickr8k_cn")
            rows.append({"instruction": _ZH_INSTRUCTIONS[i % len(_ZH_INSTRUCTIONS)],
                         "inputs": "" if captioning else "图片中的形状是什么颜色？",
                         "outputs": "一只狗在公园的草地上奔跑。" if captioning else "红色",
                         "image_base64_str": [b64_jpeg(draw_image(s, SIZE))]})
        else:
            rows.append({"instruction": _EN_INSTRUCTIONS[i % len(_EN_INSTRUCTIONS)],
                         "inputs": f"What color is the shape in the image? ({i})",
                         "outputs": "The shape in the image is red.",
                         "image_base64_str": [b64_jpeg(draw_image(s, SIZE))]})
    return rows


def write_m3it(task: str, root: Path) -> Path:
    return _write_jsonl(root / "m3it" / f"{task}.jsonl", m3it_rows(task))


def write_m3it80(task: str, root: Path) -> Path:
    """One M3IT-80 config: translated text (here French-, Chinese-like strings) over English images."""
    lang = task.rsplit("_", 1)[1]
    video = "msrvtt" in task
    rows = []
    for i in range(N_ROWS):
        media = [b64_jpeg(draw_frame(2 * i + k, SIZE)) for k in range(8)] if video \
            else [b64_jpeg(draw_image(50 + i, SIZE))]
        rows.append({"instruction": f"[{lang}] instruction {i % 2}", "inputs": f"[{lang}] question {i}",
                     "outputs": f"[{lang}] answer {i}", "image_base64_str": media})
    return _write_jsonl(root / "m3it80" / f"{task}.jsonl", rows)


def okvqa_rows() -> list[dict[str, Any]]:
    return [{"image": draw_image(10 + i, SIZE),
             "question": ["What sport can you use this for?", "What is the man riding?",
                          "Which animal is in the picture?"][i],
             "answers": [["surfing"] * 6 + ["surf"] * 4, ["bike"] * 7 + ["bicycle"] * 3, ["dog"] * 10][i],
             "question_id": 5000 + i} for i in range(N_ROWS)]


def write_okvqa(root: Path) -> Path:
    feats = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                               "answers": datasets.Sequence(datasets.Value("string")),
                               "question_id": datasets.Value("int64")})
    path = root / "okvqa" / "val2014.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(okvqa_rows(), features=feats).to_parquet(str(path))
    return path


def aokvqa_rows(offset: int = 0) -> list[dict[str, Any]]:
    rows = []
    for i in range(N_ROWS):
        choices = [["red", "green", "blue", "yellow"], ["cat", "dog", "bird", "fish"],
                   ["one", "two", "three", "four"]][i]
        gold = [2, 1, 3][i]
        rows.append({"image": draw_image(20 + offset + i, SIZE), "question_id": f"aok{offset + i:05d}",
                     "question": ["What color is the sky?", "Which animal barks?", "How many legs has a dog?"][i],
                     "choices": choices, "correct_choice_idx": gold,
                     "direct_answers": [choices[gold]] * 7 + [choices[(gold + 1) % 4]] * 3,
                     "difficult_direct_answer": i == 2,
                     "rationales": [f"rationale {k} for question {i}." for k in range(3)]})
    return rows


def write_aokvqa(root: Path) -> Path:
    feats = datasets.Features({"image": datasets.Image(), "question_id": datasets.Value("string"),
                               "question": datasets.Value("string"),
                               "choices": datasets.Sequence(datasets.Value("string")),
                               "correct_choice_idx": datasets.Value("int8"),
                               "direct_answers": datasets.Sequence(datasets.Value("string")),
                               "difficult_direct_answer": datasets.Value("bool"),
                               "rationales": datasets.Sequence(datasets.Value("string"))})
    path = root / "aokvqa"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(aokvqa_rows(100), features=feats),
        "validation": datasets.Dataset.from_list(aokvqa_rows(0), features=feats),
    }).save_to_disk(str(path))
    return path


def videoqa_rows(names: list[str]) -> list[dict[str, Any]]:
    qs = [("what is a man doing?", "cook"), ("who is playing the piano?", "woman"), ("what is running?", "dog")]
    return [{"video_name": name, "question": q, "answer": a, "question_id": f"v_{k}"}
            for k, (name, (q, a)) in enumerate(zip(names, qs))]


def _write_videoqa(root: Path, folder: str, names: list[str], ext: str) -> Path:
    base = root / folder  # the videos sit beside the annotation file
    base.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        encode_video(base / f"{name}{ext}", 12 + 4 * k, SIZE, fps=8)
    path = base / "test_qa.json"
    path.write_text(json.dumps(videoqa_rows(names)), encoding="utf-8")
    return path


def write_msrvtt_qa(root: Path) -> Path:
    return _write_videoqa(root, "MSRVTT-QA", ["video7010", "video7011", "video7012"], ".mp4")


def write_msvd_qa(root: Path) -> Path:
    return _write_videoqa(root, "MSVD-QA", ["-4wsuPCjDBc_5_15", "0lh_UWF9ZP4_62_69", "3chLmUAd6cE_1_9"], ".avi")


def write_msrvtt_caption(root: Path) -> Path:
    base = root / "MSR-VTT"
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(N_ROWS):
        vid = f"video{7010 + k}"
        encode_video(base / f"{vid}.mp4", 16, SIZE, fps=8)
        rows.append({"video_id": vid, "video": f"{vid}.mp4",
                     "captions": [f"a person is doing thing number {j} in a video" for j in range(20)]})
    return _write_jsonl(base / "test_captions.jsonl", rows)


def write_flickr8k_cn(root: Path) -> Path:
    feats = datasets.Features({"image_id": datasets.Value("string"), "image": datasets.Image(),
                               "captions": datasets.Sequence(datasets.Value("string"))})
    rows = [{"image_id": f"{1000 + k}_abc.jpg", "image": draw_image(30 + k, SIZE),
             "captions": ["一只狗在草地上奔跑。", "两只猫在沙发上睡觉。", "一个男人在厨房里做饭。",
                          "一个女人在舞台上弹钢琴。", "人们在聚会上跳舞。"]} for k in range(N_ROWS)]
    path = root / "Flickr8k-CN" / "test.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=feats).to_parquet(str(path))
    return path


OFFICIAL: dict[str, Callable[[Path], Path]] = {
    "okvqa": write_okvqa,
    "aokvqa_mc": write_aokvqa,
    "aokvqa_da": write_aokvqa,
    "msrvtt_qa": write_msrvtt_qa,
    "msvd_qa": write_msvd_qa,
    "msrvtt_caption": write_msrvtt_caption,
    "flickr8k_cn_caption": write_flickr8k_cn,
}

def _write_parquet(path: Path, rows: list[dict[str, Any]], feats: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(path))
    return path


_STR, _INT = datasets.Value("string"), datasets.Value("int64")
_STRS = datasets.Sequence(datasets.Value("string"))
_FLOAT = datasets.Value("float64")


def textvqa_rows() -> list[dict[str, Any]]:
    """lmms-lab/textvqa validation: answers as annotators typed them (lowercase), 10 per question."""
    qa = [("what brand is the phone?", ["nokia"] * 10), ("what number is on the jersey?", ["23"] * 8 + ["2"] * 2),
          ("what does the sign say?", ["stop"] * 6 + ["stop sign"] * 4)]
    return [{"image_id": f"img{k:04d}", "question_id": 34602 + k, "question": q, "question_tokens": q.split(),
             "image": draw_image(60 + k, SIZE), "image_width": SIZE[0], "image_height": SIZE[1],
             "flickr_original_url": "", "flickr_300k_url": "", "answers": a, "image_classes": ["Sign"],
             "set_name": "val", "ocr_tokens": ["nokia", "23", "stop"]} for k, (q, a) in enumerate(qa)]


def write_textvqa(root: Path) -> Path:
    return _write_parquet(root / "textvqa" / "validation.parquet", textvqa_rows(), {
        "image_id": _STR, "question_id": datasets.Value("int32"), "question": _STR, "question_tokens": _STRS,
        "image": datasets.Image(), "image_width": datasets.Value("int32"), "image_height": datasets.Value("int32"),
        "flickr_original_url": _STR, "flickr_300k_url": _STR, "answers": _STRS, "image_classes": _STRS,
        "set_name": _STR, "ocr_tokens": _STRS})


def docvqa_rows() -> list[dict[str, Any]]:
    qa = [("What is the date mentioned in the letter?", ["March 3, 1978", "3 March 1978"]),
          ("Who is the memo addressed to?", ["Dr. Smith"]), ("What is the total amount?", ["$1,250.00", "1250"])]
    return [{"questionId": str(49153 + k), "question": q, "question_types": ["form"], "image": draw_image(70 + k, SIZE),
             "docId": 14465 + k, "ucsf_document_id": f"txpp00{k}", "ucsf_document_page_no": "1", "answers": a,
             "data_split": "val"} for k, (q, a) in enumerate(qa)]


def write_docvqa(root: Path) -> Path:
    return _write_parquet(root / "docvqa" / "validation.parquet", docvqa_rows(), {
        "questionId": _STR, "question": _STR, "question_types": _STRS, "image": datasets.Image(), "docId": _INT,
        "ucsf_document_id": _STR, "ucsf_document_page_no": _STR, "answers": _STRS, "data_split": _STR})


def chartqa_rows() -> list[dict[str, Any]]:
    """lmms-lab/ChartQA test: human rows first, then augmented ones (upload_chartqa.py's order)."""
    qa = [("What is the highest value in the chart?", "73"), ("Which country has the lowest share?", "Peru"),
          ("What percentage said yes?", "45%")]
    return [{"type": kind, "question": q, "answer": a, "image": draw_image(80 + 3 * j + k, SIZE)}
            for j, kind in enumerate(["human_test", "augmented_test"]) for k, (q, a) in enumerate(qa)]


def write_chartqa(root: Path) -> Path:
    return _write_parquet(root / "chartqa" / "test.parquet", chartqa_rows(),
                          {"type": _STR, "question": _STR, "answer": _STR, "image": datasets.Image()})


def ai2d_rows() -> list[dict[str, Any]]:
    qa = [("Which stage comes after the egg?", ["larva", "pupa", "adult", "egg"], "0"),
          ("What does the arrow from the sun point to?", ["moon", "plant", "rock", "cloud"], "1"),
          ("How many stages are shown?", ["2", "3", "4", "5"], "2")]
    return [{"question": q, "options": o, "answer": a, "image": draw_image(90 + k, SIZE)}
            for k, (q, o, a) in enumerate(qa)]


def write_ai2d(root: Path) -> Path:
    return _write_parquet(root / "ai2d" / "test.parquet", ai2d_rows(),
                          {"question": _STR, "options": _STRS, "answer": _STR, "image": datasets.Image()})


def ocrvqa_rows() -> list[dict[str, Any]]:
    """howard-hou/OCR-VQA test as the hub has it: one row per cover, its questions and answers in parallel
    lists (the task explodes them: N_ROWS questions on two covers)."""
    covers = [("0140434267", "Pride and Prejudice", "Jane Austen", "Literature & Fiction",
               [("Who wrote this book?", "Jane Austen"), ("What is the title of this book?", "Pride and Prejudice")]),
              ("0486280616", "Moby Dick", "Herman Melville", "Literature & Fiction",
               [("Is this a romantic book?", "No")])]
    return [{"image": draw_image(100 + k, SIZE), "image_id": img, "questions": [q for q, _ in qa],
             "answers": [a for _, a in qa], "ocr_tokens": title.split(),
             "ocr_info": [{"word": w, "bounding_box": {"width": 0.2, "height": 0.05, "top_left_x": 0.1 * j,
                                                       "top_left_y": 0.1}} for j, w in enumerate(title.split())],
             "title": title, "authorName": author, "genre": genre, "image_width": SIZE[0], "image_height": SIZE[1],
             "image_url": f"http://ecx.images-amazon.com/images/I/{img}.jpg", "set_name": "test"}
            for k, (img, title, author, genre, qa) in enumerate(covers)]


def ocrvqa_questions() -> list[dict[str, Any]]:
    """The samples the task makes of ocrvqa_rows(): (id, question, answer), cover by cover."""
    return [{"id": f"{r['image_id']}-{k}", "question": q, "answer": a}
            for r in ocrvqa_rows() for k, (q, a) in enumerate(zip(r["questions"], r["answers"]))]


def write_ocrvqa(root: Path) -> Path:
    box = {"width": _FLOAT, "height": _FLOAT, "top_left_x": _FLOAT, "top_left_y": _FLOAT}
    return _write_parquet(root / "OCR-VQA" / "test.parquet", ocrvqa_rows(), {
        "image": datasets.Image(), "image_id": _STR, "questions": _STRS, "answers": _STRS, "ocr_tokens": _STRS,
        "ocr_info": [{"word": _STR, "bounding_box": box}], "title": _STR, "authorName": _STR, "genre": _STR,
        "image_width": _INT, "image_height": _INT, "image_url": _STR, "set_name": _STR})


# The text-rich VQA tasks of the Qwen-VL table, both protocols (tasks/text_vqa/).
TEXT_VQA: dict[str, Callable[[Path], Path]] = {
    "textvqa_val": write_textvqa, "docvqa_val": write_docvqa, "chartqa_human": write_chartqa,
    "chartqa_augmented": write_chartqa, "ai2d_test": write_ai2d, "ocrvqa_test": write_ocrvqa,
}
TEXT_VQA.update({f"{task}_qwen_vl": builder for task, builder in list(TEXT_VQA.items())})
CHARTQA = {"chartqa_human": "human_test", "chartqa_augmented": "augmented_test",
           "chartqa_human_qwen_vl": "human_test", "chartqa_augmented_qwen_vl": "augmented_test"}


def n_rows(task: str) -> int:
    """Samples (and excluded rows) of a task's fixture (ChartQA's two parts share one file of both; OCR-VQA's
    N_ROWS questions are on two covers)."""
    return 2 * N_ROWS if task in CHARTQA else N_ROWS


# A few languages of each M3IT-80 template (the 80 share one definition; validated in full elsewhere),
# and the English originals of okvqa, which the translated okvqa tasks pair with (consistency_with).
M3IT80 = ["m3it80_okvqa_zh", "m3it80_okvqa_fr", "m3it80_okvqa_en", "m3it80_msrvtt_qa_ja", "m3it80_msrvtt_de"]


def build_all(root: Path) -> dict[str, Path]:
    """Every suite task's fixture under root; returns task -> path for --dataset-override."""
    out: dict[str, Path] = {}
    for task in M3IT_IMAGE + M3IT_VIDEO + M3IT_CHINESE:
        out[task] = write_m3it(task, root)
    for task in M3IT80:
        out[task] = write_m3it80(task, root)
    return {**out, **_build(OFFICIAL, root), **build_text_vqa(root)}


def build_text_vqa(root: Path) -> dict[str, Path]:
    """The text-rich VQA tasks' fixtures alone (the Qwen-VL table's run); task -> path for --dataset-override."""
    return _build(TEXT_VQA, root)


def _build(builders: dict[str, Callable[[Path], Path]], root: Path) -> dict[str, Path]:
    built: dict[Callable[[Path], Path], Path] = {}  # tasks that share a source share one file
    out: dict[str, Path] = {}
    for task, builder in builders.items():
        if builder not in built:
            built[builder] = builder(root)
        out[task] = built[builder]
    return out
