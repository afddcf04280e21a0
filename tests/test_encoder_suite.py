"""The encoder suite (tasks/encoders/) without the hub: every task on a local fixture in its
source's schema (ClassLabel names, img / image columns, caption lists), in one run of the
tiny CLIP with --dataset-override per task."""
from __future__ import annotations

import io
from pathlib import Path

import datasets
import pytest
from PIL import Image

from m3eval.demo.tiny_clip import build_tiny_clip
from m3eval.run.encode import run_encoder_task
from m3eval.models.registry import load_model
from m3eval.run.pipeline import RunConfig, evaluate
from m3eval.data.task_samples import load_task_data
from m3eval.tasks.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def _png(i: int) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (20 + i, 24), ((i * 37) % 255, (i * 91) % 255, 120)).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _classification(path, image_col: str, label_col: str, names: list[str], n: int = 12):
    feats = datasets.Features({image_col: datasets.Image(), label_col: datasets.ClassLabel(names=names)})
    rows = [{image_col: _png(i), label_col: (i * 7) % len(names)} for i in range(n)]
    datasets.Dataset.from_list(rows, features=feats).to_parquet(str(path))
    return str(path)


def _retrieval(path, lang: str, n: int = 8, id_col: str | None = None):
    caps = (lambda i: [f"a photo number {i}", f"picture {i} of a dog", f"{i} cats", "a man", "a red circle"]) \
        if lang == "en" else (lambda i: [f"一张照片{i}", "一只狗", "两只猫在沙发上睡觉。", "红色的圆形", f"图{i}"])
    rows = [{"image": _png(i), "caption": caps(i), **({id_col: f"im{i}"} if id_col else {})} for i in range(n)]
    datasets.Dataset.from_list(rows).cast_column("image", datasets.Image()).to_parquet(str(path))
    return str(path)


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc_suite")
    overrides = {
        "imagenet1k_zeroshot": _classification(d / "in.parquet", "image", "label",
                                               [f"class{i}, synonym{i}" for i in range(1000)], n=6),
        "imagenet_cn_zeroshot": _classification(d / "in2.parquet", "image", "label", ["a", "b"], n=2),
        "cifar10_zeroshot": _classification(d / "c10.parquet", "img", "label", [f"thing{i}" for i in range(10)]),
        "cifar100_zeroshot": _classification(d / "c100.parquet", "img", "fine_label", [f"t{i}" for i in range(100)]),
        "flickr30k_retrieval": _retrieval(d / "f30k.parquet", "en", id_col="img_id"),
        "mscoco5k_retrieval": _retrieval(d / "coco.parquet", "en"),
        "flickr30k_cn_retrieval": _retrieval(d / "f30kcn.parquet", "zh"),
        "cococn_retrieval": _retrieval(d / "cococn.parquet", "zh"),
    }
    model = build_tiny_clip(d / "clip")
    cfg = RunConfig(tasks=["encoders"], output=d / "runs", model="clip", model_args={"pretrained": str(model)},
                    dataset_overrides=overrides, progress=False)
    return evaluate(cfg)


def test_every_suite_task_runs_on_its_schema(suite_run):
    results, failures = suite_run
    expected = set(Registry.discover().expand("encoders"))
    assert failures == [] and set(results.tasks) == expected
    for name in expected:
        entry = results.tasks[name]
        assert entry.n_errors == 0 and entry.metrics[entry.primary_metric].ci is not None, name
    assert results.tasks["imagenet1k_zeroshot"].openness["en"]["sizes"][:2] == [100, 200]
    assert len(results.tasks["cifar100_zeroshot"].openness["en"]["orders"][0]) == 100


def test_imagenet_cn_class_list():
    names = (ROOT / "tasks" / "encoders" / "imagenet_cn_classes.txt").read_text(encoding="utf-8").splitlines()
    assert len(names) == 1000 and all(n.strip() == n and n for n in names)
    assert (names[0], names[1], names[99], names[500], names[999]) == ("丁鲷", "金鱼", "鹅", "悬崖屋", "卫生纸")


def test_a_missing_class_file_fails_the_task_clearly(tmp_path):
    spec = Registry.discover().tasks["imagenet_cn_zeroshot"]
    moved = spec.model_copy(update={"source": str(tmp_path / "imagenet_cn_zeroshot.yaml")})
    path = _classification(tmp_path / "x.parquet", "image", "label", ["a", "b"], n=2)
    data = load_task_data(moved, None, "default", override=path)
    model = load_model("clip", {"pretrained": str(build_tiny_clip(tmp_path / "clip"))})
    with pytest.raises(ValueError, match="imagenet_cn_classes.txt"):
        run_encoder_task(moved, data, model, tmp_path / "run")


def test_a_bad_label_fails_only_its_sample(tmp_path):
    import datasets as ds
    rows = [{"image": _png(i), "label": lab} for i, lab in enumerate([0, 1, 7, 2])]  # 7: not a class of 3
    ds.Dataset.from_list(rows).cast_column("image", ds.Image()).to_parquet(str(tmp_path / "d.parquet"))
    spec = Registry.discover().tasks["demo_zero_shot"]
    spec = spec.model_copy(update={"encoder": spec.encoder.model_copy(update={
        "classes": {"en": ["red circle", "blue square", "green triangle"]}, "openness": None})})
    data = load_task_data(spec, None, "default", override=str(tmp_path / "d.parquet"))
    model = load_model("clip", {"pretrained": str(build_tiny_clip(tmp_path / "clip"))})
    preds, _ = run_encoder_task(spec, data, model, tmp_path / "run")
    assert [p.error is not None for p in preds] == [False, False, True, False]
    assert "not a class index 0..2" in str(preds[2].error)


def test_a_corrupt_image_fails_only_its_sample_also_on_resume(tmp_path):
    import datasets as ds
    rows = [{"image_id": f"im{i}", "image": _png(i), "caption": [f"a photo number {i}", "a dog"]} for i in range(5)]
    rows[2]["image"] = {"bytes": b"not a png", "path": None}
    ds.Dataset.from_list(rows).cast_column("image", ds.Image(decode=False)).to_parquet(str(tmp_path / "r.parquet"))
    spec = Registry.discover().tasks["demo_retrieval"]
    data = load_task_data(spec, None, "default", override=str(tmp_path / "r.parquet"))
    model = load_model("clip", {"pretrained": str(build_tiny_clip(tmp_path / "clip"))})
    preds, _ = run_encoder_task(spec, data, model, tmp_path / "run")
    assert [p.error is not None for p in preds] == [False, False, True, False, False]
    (tmp_path / "run" / "predictions" / "demo_retrieval.jsonl").unlink()  # resume from the embedding cache
    again, _ = run_encoder_task(spec, data, model, tmp_path / "run")
    assert [p.error for p in again] == [p.error for p in preds]
    assert [p.prediction for p in again] == [p.prediction for p in preds]
