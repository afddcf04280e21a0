"""MMMU as a task: several image fields placed at their "<image k>" markers (the message builder, prefetch.prepare),
the options string parsed by doc.literal_fields, a backend's image limit failing a sample alone, and the task end to
end on the tiny model over a dozen rows in lmms-lab/MMMU's schema (results: per-discipline scores, random picks)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
from PIL import Image

from m3eval.cli import main
from m3eval.data.media import VideoRule
from m3eval.data.samples import build_samples
from m3eval.data.synthetic import draw_image
from m3eval.errors import SampleError
from m3eval.metrics.mmmu import parse_multi_choice
from m3eval.run.prefetch import place_images, prepare
from m3eval.tasks.loader import load_file
from m3eval.types import Media, Sample

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "tasks" / "instruction" / "mmmu_val.yaml"
SIZE = (32, 32)
IMAGE_COLS = [f"image_{k}" for k in range(1, 8)]


def _img(seed: int) -> dict[str, Any]:
    return {"type": "image", "image": draw_image(seed, SIZE)}


def _shape(parts: list[dict[str, Any]], images: list[dict[str, Any] | None]) -> list[Any]:
    """A message as text strings and image numbers (k from 1), to compare at a glance."""
    ids = {id(p): k + 1 for k, p in enumerate(images) if p is not None}
    return [p["text"] if p["type"] == "text" else ids[id(p)] for p in parts]


# ---- the message builder -----------------------------------------------------------------------------

def test_each_image_takes_the_place_of_its_first_marker():
    images = [_img(1), _img(2), _img(3)]
    unplaced, parts = place_images("Compare <image 1> with:\n(A) <image 3>\n(B) <image 2>\nAnswer.", images,
                                   "<image {k}>")
    assert unplaced == []
    assert _shape(parts, images) == ["Compare ", 1, " with:\n(A) ", 3, "\n(B) ", 2, "\nAnswer."]


def test_markers_naming_no_image_or_an_image_again_stay_text_and_unnamed_images_go_first():
    images = [_img(1), None, _img(3), _img(4)]  # image 2: a null field; image 4: no marker names it
    unplaced, parts = place_images("<image 1><image 2> and <image 1> then <image 9>, <image 3>", images,
                                   "<image {k}>")
    assert _shape(unplaced, images) == [4]
    assert _shape(parts, images) == [1, "<image 2> and <image 1> then <image 9>, ", 3]
    assert place_images("no markers", [], "<image {k}>") == ([], [{"type": "text", "text": "no markers"}])
    assert place_images("", [], "[{k}]") == ([], [{"type": "text", "text": ""}])
    odd = [_img(5)]  # the marker is matched literally: regex characters in it mean themselves
    assert _shape(place_images("a (1)* b", odd, "({k})*")[1], odd) == ["a ", 1, " b"]


def _rows_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    feats = {"id": datasets.Value("string"), "question": datasets.Value("string"),
             "options": datasets.Value("string"), "answer": datasets.Value("string"),
             **{c: datasets.Image() for c in IMAGE_COLS}}
    return datasets.Dataset.from_list([{**{c: None for c in IMAGE_COLS}, **r} for r in rows],
                                      features=datasets.Features(feats))


def _spec(**doc: Any):
    spec = load_file(TASK)[0]
    return spec.model_copy(update={"doc": spec.doc.model_copy(update=doc)})


def test_prepare_interleaves_the_images_of_several_fields_keeping_the_numbers_of_null_ones():
    ds = _rows_dataset([{"id": "validation_Art_1", "question": "Is <image 2> like <image 1>?",
                         "options": "['yes', 'no <image 3>']", "answer": "A",
                         "image_1": draw_image(1, SIZE), "image_3": draw_image(3, SIZE)}])
    samples, _ = build_samples(load_file(TASK)[0], ds)
    (sample,) = samples
    assert sample.choices == ["yes", "no <image 3>"] and sample.category == "Art and Design"
    assert sample.prompt == ("Is <image 2> like <image 1>?\n(A) yes\n(B) no <image 3>\n\n"
                             "Answer with the option's letter from the given choices directly.")
    p = prepare(sample, VideoRule(), None)
    assert p.error is None and p.info["images"] == 2
    kinds = [part["type"] for part in p.message]
    assert kinds == ["text", "image", "text", "image", "text"]  # image 2 is null: its marker stays text
    assert [part["text"] for part in p.message if part["type"] == "text"] == [
        "Is <image 2> like ", "?\n(A) yes\n(B) no ", "\n\nAnswer with the option's letter from the given choices "
        "directly."]
    assert p.message[1]["image"].tobytes() == draw_image(1, SIZE).tobytes()
    assert p.message[3]["image"].tobytes() == draw_image(3, SIZE).tobytes()
    # the same row without markers: its images first, in order, then the prompt (the old message shape)
    plain = prepare(build_samples(_spec(image_markers=None), ds)[0][0], VideoRule(), None)
    assert [part["type"] for part in plain.message] == ["image", "image", "text"]
    assert plain.message[-1]["text"] == sample.prompt


def test_a_null_single_image_field_still_fails_its_sample():
    sample = Sample(id="x", task="t", prompt="q", references=["a"], media=[Media("image", None)])
    p = prepare(sample, VideoRule(), None)
    assert p.message is None and p.error is not None and p.error.type == "MediaError"


def test_more_images_than_the_backend_takes_fail_the_sample_with_both_counts():
    media = [Media("image", draw_image(k, SIZE)) for k in range(3)]
    sample = Sample(id="x", task="t", prompt="<image 1> <image 2> <image 3>", references=["a"], media=media,
                    image_markers="<image {k}>")
    p = prepare(sample, VideoRule(), None, max_images=2)
    assert p.message is None and p.error.type == "TooManyImages" and p.error.stage == "data"
    assert "3 images" in p.error.message and "at most 2" in p.error.message
    assert prepare(sample, VideoRule(), None, max_images=3).error is None


def test_the_image_limit_is_a_backend_capability_with_a_default():
    from m3eval.errors import ModelLoadError
    from m3eval.models.base import adapt
    from m3eval.models.openai_compat import OpenAICompatAdapter

    class Plain:
        def generate(self, batch, gen):
            return ["x"] * len(batch)

    class OneImage(Plain):
        def max_images(self):
            return 1

    assert adapt(Plain(), "p").max_images() is None and adapt(OneImage(), "p").max_images() == 1
    for bad in (0, -1, "two", True):
        with pytest.raises(ModelLoadError, match="max_images"):
            OpenAICompatAdapter.preflight({"base_url": "http://127.0.0.1:9/v1", "max_images": bad})


def test_options_that_are_no_python_literal_fail_their_row_alone():
    ds = _rows_dataset([{"id": "validation_Art_1", "question": "q", "options": "['a', 'b'", "answer": "A",
                         "image_1": draw_image(1, SIZE)},
                        {"id": "validation_Art_2", "question": "q", "options": "__import__('os')", "answer": "A",
                         "image_1": draw_image(2, SIZE)},
                        {"id": "validation_Art_3", "question": "q", "options": "['a', 'b']", "answer": "A",
                         "image_1": draw_image(3, SIZE)}])
    samples, _ = build_samples(load_file(TASK)[0], ds)
    assert [s.failure is not None for s in samples] == [True, True, False]
    assert "doc.literal_fields (options) is not a Python literal" in samples[0].failure.message
    with pytest.raises(SampleError, match="no field 'image_8'"):
        build_samples(_spec(images=["image_1", "image_8"]), ds)


# ---- end to end on the tiny model ----------------------------------------------------------------------

# (id, question, options, answer, number of images): markers in questions and options, 1 to 3 images, open ones
ROWS = [
    ("validation_Art_Theory_1", "Which work <image 1> matches the style?", "['<image 2>', '<image 3>', 'Neither']",
     "A", 3),
    ("validation_Math_15", "<image 1> Solve for x.", "[]", "['24/7', '3.429']", 1),
    ("validation_Physics_2", "The block in <image 1> moves at", "['1 m/s', '2 m/s', '3 m/s', '4 m/s']", "B", 1),
    ("validation_Accounting_3", "From <image 1>, the net income is", "['$10', '$20', '$30']", "C", 1),
    ("validation_Clinical_Medicine_4", "Compare <image 1> and <image 2>. The lesion is", "['benign', 'malignant']",
     "B", 2),
    ("validation_History_5", "The map <image 1> shows", "['Rome', 'Athens', 'Sparta', 'Troy']", "D", 1),
    ("validation_Computer_Science_6", "How many nodes are in <image 1>?", "[]", "60", 1),
    ("validation_Design_7", "<image 1>", "['red', 'blue']", "A", 1),
    ("validation_Economics_8", "In <image 1> the curve shifts", "['left', 'right', 'up']", "B", 1),
    ("validation_Electronics_9", "The voltage across <image 2> in circuit <image 1> is", "[]", "2.83", 2),
    ("validation_Biology_10", "The cell <image 1> is in", "['prophase', 'anaphase', 'telophase']", "C", 1),
    ("validation_Sociology_11", "The chart <image 1> shows", "['growth', 'decline']", "A", 1),
]


def write_mmmu_fixture(path: Path) -> Path:
    """A dozen rows in lmms-lab/MMMU's validation schema (the card's dataset_info): images in the first columns,
    the rest null; options a string of a Python list."""
    rows = []
    for k, (sid, question, options, answer, n_images) in enumerate(ROWS):
        rows.append({"id": sid, "question": question, "options": options, "explanation": "", "img_type": "['Photos']",
                     "answer": answer, "topic_difficulty": "Easy",
                     "question_type": "multiple-choice" if options != "[]" else "short-answer", "subfield": "x",
                     **{c: draw_image(10 * k + j, SIZE) if j < n_images else None for j, c in enumerate(IMAGE_COLS)}})
    string = datasets.Value("string")
    feats = {"id": string, "question": string, "options": string, "explanation": string,
             **{c: datasets.Image() for c in IMAGE_COLS}, "img_type": string, "answer": string,
             "topic_difficulty": string, "question_type": string, "subfield": string}
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(path))
    return path


def _run(tiny_model: Path, data: Path, out: Path, name: str, extra_args: str = "") -> tuple[dict, list[dict]]:
    assert main(["run", "--model", "hf", "--model-args", f"pretrained={tiny_model}{extra_args}", "--tasks",
                 "mmmu_val", "--output", str(out), "--run-name", name, "--batch-size", "4", "--max-new-tokens", "6",
                 "--threads", "1", "--no-media", "--dataset-override", f"mmmu_val={data}"]) == 0
    run = out / name
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for line in (run / "samples" / "mmmu_val.jsonl").read_text().splitlines()]
    return results["tasks"]["mmmu_val"], records


def test_mmmu_end_to_end_on_the_tiny_model(tiny_model, tmp_path):
    data = write_mmmu_fixture(tmp_path / "mmmu" / "validation.parquet")
    res, records = _run(tiny_model, data, tmp_path / "runs", "all")
    assert res["n_samples"] == len(ROWS) and res["n_errors"] == 0
    metric = res["metrics"]["mmmu_accuracy"]
    by_id = {r["id"]: r for r in records}
    # the random picks: exactly the multiple-choice replies the official parser cannot read, each recorded
    unparsed = [r["id"] for r in records if r["choices"] and parse_multi_choice(r["prediction"], r["choices"]) is None]
    picked = [r["id"] for r in records if "random_pick" in (r.get("details") or {}).get("mmmu_accuracy", {})]
    assert sorted(picked) == sorted(unparsed) and len(picked) >= 3  # the tiny model's replies name no option
    assert metric["details"]["n_random_picks"] == len(picked) == metric["details"]["n_unparsed"]
    for sid in picked:
        pick = by_id[sid]["details"]["mmmu_accuracy"]["random_pick"]
        assert by_id[sid]["scores"]["mmmu_accuracy"] == float(pick == by_id[sid]["references"][0])
    # per discipline: every discipline of the rows, their sizes adding up, each scored by the same metric
    cats = res["categories"]
    assert set(cats) == {"Art and Design", "Science", "Business", "Health and Medicine",
                         "Humanities and Social Science", "Tech and Engineering"}
    assert sum(c["n_samples"] for c in cats.values()) == len(ROWS)
    assert cats["Science"]["n_samples"] == 3  # Math, Physics, Biology
    weighted = sum(c["metrics"]["mmmu_accuracy"]["value"] * c["n_samples"] for c in cats.values()) / len(ROWS)
    assert weighted == pytest.approx(metric["value"])
    assert by_id["validation_Math_15"]["choices"] == []  # an open question: no options, no pick
    assert by_id["validation_Art_Theory_1"]["prompt"].startswith("Which work <image 1> matches the style?\n(A) <")

    # a backend that takes one image: the rows with more fail alone, with the counts; the rest are answered as before
    res1, records1 = _run(tiny_model, data, tmp_path / "runs", "one", ",max_images=1")
    multi = {sid for sid, *_, n in ROWS if n > 1}
    failed = {r["id"]: r["error"] for r in records1 if r["error"]}
    assert set(failed) == multi and res1["n_errors"] == len(multi)
    assert all("TooManyImages" in e and "at most 1" in e for e in failed.values())
    assert "3 images" in failed["validation_Art_Theory_1"]
    assert {r["id"]: r["prediction"] for r in records1 if r["id"] not in multi} == \
        {sid: r["prediction"] for sid, r in by_id.items() if sid not in multi}


def test_the_tiny_models_chat_template_sees_the_images_at_their_markers(tiny_model, tmp_path):
    from m3eval.models.hf import HFAdapter

    data = write_mmmu_fixture(tmp_path / "v.parquet")
    samples, _ = build_samples(load_file(TASK)[0], datasets.Dataset.from_parquet(str(data)))
    message = prepare(samples[0], VideoRule(), None).message
    model = HFAdapter(pretrained=str(tiny_model), device="cpu")
    conv, images, _ = model._conversation(0, message)
    text = model.processor.apply_chat_template(conv, chat_template=model.chat_template, tokenize=False,
                                               add_generation_prompt=True)
    assert len(images) == 3 and all(isinstance(im, Image.Image) for im in images)
    body = text[text.index("Which"):]
    assert body.index("<image>") < body.index("matches") < body.index("(A) <image>") < body.index("(B) <image>")
    assert body.count("<image>") == 3
