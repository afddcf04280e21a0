"""m3eval/data/m3it.py: the raw files of MMInstruction/M3IT(-80) -> the loading scripts' output schema.

A tiny local snapshot in the repos' raw layout is built here: okvqa with the raw fields M3IT.py
reads (question / image_str / answer / paraphrased_answer, val_v2.jsonl, instructions.json),
a video task whose rows hold their 8 frames as a list (field name `video_str`: the real one is
unverified, see CONFIGS), chinese-food rows that carry their own instruction, and M3IT-80 okvqa:
a zh translation file plus the val_500.jsonl image file, joined by line.
"""
from __future__ import annotations

import base64
import io
import json
import random
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from m3eval.data.m3it import CONFIGS, M3IT80_LANGS, SEED, load_m3it  # noqa: E402
from m3eval.data.sources import DataError, load_dataset_rows  # noqa: E402
from m3eval.tasks.schema import DatasetSpec  # noqa: E402

INSTR = ["Answer using world knowledge.", "Look and reply.", "Give a short answer."]
OUTPUT_COLUMNS = {"id", "instruction", "inputs", "outputs", "image_base64_str"}


def b64(seed: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), ((seed * 40) % 256, 80, 160)).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


OKVQA = [{"question_id": 10 + i, "question": q, "image_str": b64(i), "answer": a, "paraphrased_answer": p}
         for i, (q, a, p) in enumerate([
             ("What sport is this?", "surfing", "The people are surfing on the waves."),
             ("What animal is this?", "dog", "Sorry, I cannot paraphrase this answer."),
             ("What is he riding?", "bike", "He is riding a bicycle."),
             ("What color is it?", "red", "It is red."),
             ("Where is this?", "beach", "This is a beach.")])]
ZH = [{"instruction": f"请回答问题{i}", "input": f" 问题{i} ", "output": f"答案{i}"} for i in range(3)]
EN = [{"instruction": f"Answer question {i}", "inputs": f"question {i}", "outputs": f"answer {i}",
       "image_base64_str": [b64(20 + i)]} for i in range(3)]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("M3IT")
    write_jsonl(root / "data/vqa/okvqa/val_v2.jsonl", OKVQA)
    (root / "data/vqa/okvqa/instructions.json").write_text(json.dumps(INSTR), encoding="utf-8")
    write_jsonl(root / "data/vqa/msrvtt-qa/test.jsonl",
                [{"question": f"what is happening {i}?", "answer": "cooking", "video_str": [b64(k) for k in range(8)]}
                 for i in range(2)])
    (root / "data/vqa/msrvtt-qa/instructions.json").write_text(json.dumps(INSTR[:2]), encoding="utf-8")
    write_jsonl(root / "data/classification/chinesefoodnet-10/test.jsonl",
                [{"instruction": "这是什么菜？", "input": "", "output": "宫保鸡丁", "image_str": b64(1)},
                 {"instruction": "", "input": "", "output": "麻婆豆腐", "image_str": b64(2)}])
    (root / "data/classification/chinesefoodnet-10/instructions.json").write_text(
        json.dumps(["请识别图中的菜。"]), encoding="utf-8")
    write_jsonl(root / "data/okvqa/okvqa_validation_zh.jsonl", ZH)
    write_jsonl(root / "data/okvqa/okvqa_validation_fr.jsonl", ZH[:2])  # one line short
    write_jsonl(root / "data/okvqa/val_500.jsonl", EN)
    return root


def load(snapshot: Path, name: str, split: str, fmt: str = "m3it", **kw) -> list[dict]:
    spec = DatasetSpec(path=str(snapshot), name=name, split=split, format=fmt, **kw)
    ds, _ = load_m3it(spec, Path("/nonexistent"))
    return ds.to_list()


def test_okvqa_rows_follow_the_script(snapshot):
    rows = load(snapshot, "okvqa", "validation")
    assert [set(r) for r in rows] == [OUTPUT_COLUMNS] * len(OKVQA)
    assert [r["id"] for r in rows] == list(range(len(OKVQA)))
    assert [r["inputs"] for r in rows] == [r["question"] for r in OKVQA]
    assert [r["image_base64_str"] for r in rows] == [[r["image_str"]] for r in OKVQA]
    # M3IT.py (839be68): a paraphrase that says "sorry" falls back to the template on the raw answer
    assert rows[1]["outputs"] == "The answer is dog."
    assert [r["outputs"] for i, r in enumerate(rows) if i != 1] == \
        [r["paraphrased_answer"] for i, r in enumerate(OKVQA) if i != 1]


def test_instruction_choice_is_the_seeded_stream_and_repeats(snapshot):
    rng = random.Random(SEED)
    expected = [INSTR[rng.choice(range(len(INSTR)))] for _ in OKVQA]
    first = [r["instruction"] for r in load(snapshot, "okvqa", "validation")]
    assert first == expected and len(set(first)) > 1
    assert [r["instruction"] for r in load(snapshot, "okvqa", "validation")] == first


def test_a_row_with_its_own_instruction_keeps_it(snapshot):
    rows = load(snapshot, "chinese-food", "test")
    assert [r["instruction"] for r in rows] == ["这是什么菜？", "请识别图中的菜。"]  # empty -> drawn
    assert [r["outputs"] for r in rows] == ["宫保鸡丁", "麻婆豆腐"] and rows[0]["inputs"] == ""


def test_video_rows_keep_their_frames_as_a_list(snapshot):
    rows = load(snapshot, "msrvtt-qa", "test")
    assert [len(r["image_base64_str"]) for r in rows] == [8, 8]
    assert rows[0]["image_base64_str"][3] == b64(3) and rows[1]["outputs"] == "cooking"


def test_m3it80_joins_translation_and_images_by_line(snapshot):
    zh = load(snapshot, "okvqa-zh", "validation", "m3it80")
    assert [set(r) for r in zh] == [OUTPUT_COLUMNS] * 3
    assert [r["image_base64_str"] for r in zh] == [e["image_base64_str"] for e in EN]
    assert [(r["instruction"], r["inputs"], r["outputs"]) for r in zh] == \
        [(t["instruction"], t["input"].strip(), t["output"]) for t in ZH]


def test_m3it80_english_originals_share_ids_with_every_language(snapshot):
    en = load(snapshot, "okvqa-en", "validation", "m3it80")
    zh = load(snapshot, "okvqa-zh", "validation", "m3it80")
    assert [r["id"] for r in en] == [r["id"] for r in zh] == [0, 1, 2]
    assert [(r["instruction"], r["inputs"], r["outputs"]) for r in en] == \
        [(e["instruction"], e["inputs"], e["outputs"]) for e in EN]
    assert [r["image_base64_str"] for r in en] == [r["image_base64_str"] for r in zh]


def test_explicit_data_files_replace_the_config_table(snapshot):
    files = {"rows": "data/vqa/okvqa/val_v2.jsonl", "instructions": "data/vqa/okvqa/instructions.json"}
    rows = load(snapshot, "okvqa", "validation", data_files=files)
    assert rows == load(snapshot, "okvqa", "validation")


def test_through_the_dataset_source_hook(snapshot):
    spec = DatasetSpec(path=snapshot.name, name="okvqa", split="validation", format="m3it")
    ds, _ = load_dataset_rows(spec, snapshot.parent, "m3it_okvqa")  # path relative to the YAML folder
    assert len(ds) == len(OKVQA) and set(ds.column_names) == OUTPUT_COLUMNS


@pytest.mark.parametrize("kw, match", [
    (dict(name="okvqa-x", split="validation"), "unknown M3IT config 'okvqa-x'; m3eval reads: a-okvqa, activitynet-qa"),
    (dict(name="okvqa", split="test"), "has no split 'test'; it has train, validation"),
    (dict(name="viquae", split="test"), r"missing file .*data/vqa/viquae/test_v2.jsonl"),
])
def test_m3it_errors_name_the_cause(snapshot, kw, match):
    with pytest.raises(DataError, match=match):
        load(snapshot, **kw)


def test_m3it80_errors_name_the_cause(snapshot):
    with pytest.raises(DataError, match="unknown language 'xx'; the 80 codes are af am .* zh") as e:
        load(snapshot, "okvqa-xx", "validation", "m3it80")
    assert all(f" {code} " in f" {str(e.value).split('are ')[1]} " for code in M3IT80_LANGS)
    with pytest.raises(DataError, match="okvqa_validation_fr.jsonl has 2 lines but .*val_500.jsonl has 3"):
        load(snapshot, "okvqa-fr", "validation", "m3it80")
    with pytest.raises(DataError, match="unknown task 'coco'"):
        load(snapshot, "coco-zh", "validation", "m3it80")


def test_a_raw_file_without_the_fields_names_its_columns(tmp_path):
    write_jsonl(tmp_path / "data/vqa/ivqa/test.jsonl", [{"question": "what?", "video_str": [b64(0)]}])
    (tmp_path / "data/vqa/ivqa/instructions.json").write_text(json.dumps(INSTR), encoding="utf-8")
    with pytest.raises(DataError, match=r"ivqa/test.jsonl: no raw field for outputs \(tried paraphrased_answer, "
                                        r"output, outputs, answer\); the file has: question, video_str"):
        load(tmp_path, "ivqa", "test")


def test_m3it80_english_uses_a_translation_format_file_when_the_repo_has_one(tmp_path):
    write_jsonl(tmp_path / "data/okvqa/val_500.jsonl", EN)
    write_jsonl(tmp_path / "data/okvqa/okvqa_validation_en.jsonl",
                [{"instruction": f"EN {i}", "input": "q", "output": "a"} for i in range(3)])
    en = load(tmp_path, "okvqa-en", "validation", "m3it80")
    assert [r["instruction"] for r in en] == ["EN 0", "EN 1", "EN 2"]
    assert [r["image_base64_str"] for r in en] == [e["image_base64_str"] for e in EN]


def test_a_missing_snapshot_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=f"local snapshot folder {tmp_path}/nope does not exist"):
        load(tmp_path / "nope", "okvqa", "validation")


def test_an_unreachable_hub_says_so_and_suggests_local_data(monkeypatch):
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # the real client, refusing the network
    spec = DatasetSpec(path="MMInstruction/M3IT", name="okvqa", split="validation", format="m3it", revision="main")
    with pytest.raises(DataError, match="hub is unreachable.*--dataset-override.*local snapshot"):
        load_m3it(spec, Path.cwd())


def test_the_config_table_covers_the_held_out_tasks():
    held_out = {"okvqa", "a-okvqa", "viquae", "msrvtt", "ivqa", "activitynet-qa", "msrvtt-qa", "msvd-qa",
                "flickr8k-cn", "fm-iqa", "chinese-food"}
    assert held_out <= set(CONFIGS)


def test_the_suite_yamls_build_samples_from_a_snapshot(snapshot):
    """The real task definitions (tasks/m3it, tasks/m3it80) over the snapshot: prompts, references, ids."""
    from m3eval.data.task_samples import load_task_data
    from m3eval.tasks.registry import Registry

    reg = Registry.discover()

    def at_snapshot(task: str):
        spec = reg.tasks[task]
        return spec.model_copy(update={"dataset": spec.dataset.model_copy(update={"path": str(snapshot)})})

    okvqa = load_task_data(at_snapshot("m3it_okvqa"), None, "default").samples
    assert [s.references for s in okvqa][1] == ["The answer is dog."]
    assert okvqa[0].prompt.endswith(OKVQA[0]["question"]) and len(okvqa[0].media) == 1
    every = load_task_data(at_snapshot("m3it_okvqa"), None, "all").samples  # variants: the drawn instructions
    assert len(every) == len(OKVQA) * len({r["instruction"] for r in load(snapshot, "okvqa", "validation")})
    zh, en = (load_task_data(at_snapshot(t), None, "default").samples for t in ("m3it80_okvqa_zh", "m3it80_okvqa_en"))
    assert [s.id for s in zh] == [s.id for s in en] == ["0", "1", "2"]
    assert reg.tasks["m3it80_okvqa_zh"].consistency_with == "m3it80_okvqa_en"
    assert {s.lang for s in zh} == {"zh"} and zh[0].references == [ZH[0]["output"]]


def test_dataset_override_with_a_snapshot_folder_keeps_the_m3it_reader(snapshot):
    """`--dataset-override m3it_okvqa=SNAPSHOT` reads the snapshot as the repo, config and split kept."""
    from m3eval.data.task_samples import load_task_data
    from m3eval.tasks.registry import Registry

    spec = Registry.discover().tasks["m3it_okvqa"]
    samples = load_task_data(spec, None, "default", override=str(snapshot)).samples
    assert len(samples) == len(OKVQA) and samples[1].references == ["The answer is dog."]
