"""The RefCOCO/+/g task files on a local fixture in lmms-lab's schema (bbox in COCO xywh pixels):
samples load, the runner records the image size, and scoring gives accuracy at IoU >= 0.5 with
unparsable answers counted as extraction failures; their `*_qwen_vl` twins send Qwen-VL's prompt and
read answers as Qwen-VL's evaluate_grounding.py does."""
from __future__ import annotations

import io
from pathlib import Path

import datasets
import pytest
from PIL import Image, ImageDraw

from m3eval.data.media import VideoRule
from m3eval.data.task_samples import load_task_data
from m3eval.run.prefetch import prepare
from m3eval.scoring.run import score_one
from m3eval.tasks.registry import Registry
from m3eval.types import Prediction

TASKS = ["refcoco_val", "refcoco_testA", "refcoco_testB", "refcocoplus_val", "refcocoplus_testA",
         "refcocoplus_testB", "refcocog_val", "refcocog_test"]


def write_refcoco_fixture(path: Path, n: int = 6) -> Path:
    rows = []
    for i in range(n):
        w, h = 120 + 10 * i, 80 + 5 * i
        img = Image.new("RGB", (w, h), (255, 255, 255))
        x, y, bw, bh = 10 + i, 12, 40, 30
        ImageDraw.Draw(img).rectangle([x, y, x + bw, y + bh], fill=(200, 30, 30))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        rows.append({"question_id": f"q{i}", "image": {"bytes": buf.getvalue(), "path": None},
                     "question": "", "answer": [f"the red box {i}", "red thing"], "segmentation": [0.0] * 8,
                     "bbox": [float(x), float(y), float(bw), float(bh)], "iscrowd": 0, "file_name": f"{i}.jpg"})
    feats = datasets.Features({"question_id": datasets.Value("string"), "image": datasets.Image(),
                               "question": datasets.Value("string"),
                               "answer": datasets.Sequence(datasets.Value("string")),
                               "segmentation": datasets.Sequence(datasets.Value("float32")),
                               "bbox": datasets.Sequence(datasets.Value("float32")),
                               "iscrowd": datasets.Value("int8"), "file_name": datasets.Value("string")})
    datasets.Dataset.from_list(rows, features=feats).to_parquet(str(path))
    return path


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> Path:
    return write_refcoco_fixture(tmp_path_factory.mktemp("refcoco") / "val.parquet")


def test_grounding_group_lists_every_split():
    reg = Registry.discover()
    assert reg.expand("grounding") == TASKS
    for t in TASKS:
        spec = reg.tasks[t]
        assert spec.dataset.path.startswith("lmms-lab/RefCOCO") and spec.primary == "grounding_acc"


def test_the_qwen_vl_twins_are_the_same_items_under_qwen_vls_protocol():
    reg = Registry.discover()
    assert reg.expand("grounding_qwen_vl") == [f"{t}_qwen_vl" for t in TASKS]
    for t in TASKS:
        official, twin = reg.tasks[t], reg.tasks[f"{t}_qwen_vl"]
        assert (official.protocol, twin.protocol) == ("official", "qwen_vl")
        assert (twin.dataset.path, twin.dataset.split) == (official.dataset.path, official.dataset.split)
        assert twin.doc.references == official.doc.references and twin.doc.images == official.doc.images
        assert twin.doc.prompt == "<ref>{{ answer[0] }}</ref><box>"  # the text after '<img>..</img>'
        assert twin.generation.max_new_tokens == 28 and not twin.generation.do_sample
        assert [(f.name, f.args) for f in twin.filters] == [("box", {"protocol": "qwen_vl"})]
        assert [(m.name, m.args) for m in twin.metrics] == [("grounding_acc",
                                                             {"threshold": 0.5, "protocol": "qwen_vl"})]


def test_the_qwen_vl_twin_reads_answers_as_qwen_vl_does(fixture):
    reg = Registry.discover()
    answers = ["<ref>the red box</ref><box>(83,149),(416,524)</box>",  # Qwen-VL's grid: right under both
               "((85,141),(392,494))",       # the script's first pair is "(85,141" + "392,494": no box there
               "[11, 12, 51, 42]",           # plain pixels: the script reads no such box
               "(8.3e1,1.49e2),(4.16e2,524)",  # float() reads exponents: right under qwen_vl only
               "(0,0),(999,999)",            # the whole image: wrong under both
               ""]
    scores = {}
    for task in ("refcoco_testA", "refcoco_testA_qwen_vl"):
        spec = reg.tasks[task]
        samples = load_task_data(spec, None, "default", override=str(fixture)).samples
        if task.endswith("_qwen_vl"):
            assert [s.prompt for s in samples[:2]] == ["<ref>the red box 0</ref><box>", "<ref>the red box 1</ref><box>"]
        preds = [Prediction.for_sample(s, a, media_info=prepare(s, VideoRule(), None).info)
                 for s, a in zip(samples, answers)]
        entry = score_one(spec, preds, None, seed=0)
        scores[task] = (entry.metrics["grounding_acc"].value, entry.n_extraction_failures)
    assert scores["refcoco_testA"] == (pytest.approx(3 / 6), 2)  # answers 0, 1, 2 right; 3 and 5 unparsed
    assert scores["refcoco_testA_qwen_vl"] == (pytest.approx(2 / 6), 3)  # answers 0 and 3; 1, 2, 5 unparsed


def test_refcoco_scores_on_fixture(fixture):
    spec = Registry.discover().tasks["refcoco_testA"]
    samples = load_task_data(spec, None, "default", override=str(fixture)).samples
    assert [s.references for s in samples[:2]] == [["10.0,12.0,50.0,42.0"], ["11.0,12.0,51.0,42.0"]]
    assert samples[0].prompt.endswith("the red box 0")
    preds = []
    answers = ["<ref>the red box</ref><box>(83,149),(416,524)</box>",  # grid box over the drawn one: right
               "[11, 12, 51, 42]",                                   # pixels, exact: right
               "[0.5, 0.5, 0.9, 0.9]",                               # normalized, elsewhere: wrong
               "somewhere on the left",                              # unparsable: counted, scores 0
               "[0.0, 0.0, 1.0, 1.0]",                               # whole image: IoU small, wrong
               ""]
    for s, a in zip(samples, answers):
        p = prepare(s, VideoRule(), None)
        assert p.info["image_size"] == list(Image.open(io.BytesIO(s.media[0].source.get()["bytes"])).size)
        preds.append(Prediction.for_sample(s, a, media_info=p.info))
    entry = score_one(spec, preds, None, seed=0)
    m = entry.metrics["grounding_acc"]
    assert m.value == pytest.approx(2 / 6) and m.ci is not None
    assert entry.n_extraction_failures == 2
