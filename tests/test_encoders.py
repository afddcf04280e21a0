"""The clip backend and the encoder task types, end to end with the tiny CLIPModel (random
weights): embeddings, the CLIP zero-shot protocol and retrieval ranks recomputed here
independently, results.json shape, embedding cache / resume, rescoring, openness."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m3eval.data.task_samples import load_task_data
from m3eval.demo.tiny_clip import build_tiny_clip
from m3eval.metrics.openness import openness_curve
from m3eval.models.base import ModelLoadError
from m3eval.models.registry import load_model
from m3eval.run.pipeline import RunConfig, evaluate
from m3eval.scoring.rescore import rescore
from m3eval.tasks.loader import TaskError, load_file
from m3eval.tasks.registry import Registry

DEMO = ["demo_zero_shot", "demo_zero_shot_zh", "demo_retrieval"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")


@pytest.fixture(scope="module")
def run(tiny_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = RunConfig(tasks=["demo_encoders"], output=out, model="clip",
                    model_args={"pretrained": str(tiny_clip), "batch_size": 5}, progress=False)
    results, failures = evaluate(cfg)
    assert failures == []
    return cfg, out / "clip", results


def dumped(metrics: dict) -> dict:
    """A task's metrics as results.json holds them."""
    return {name: m.dump() for name, m in metrics.items()}


def _argsort_recall(sim: np.ndarray, positives: list[set[int]], k: int) -> list[float]:
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return [float(bool(set(order[q]) & positives[q])) for q in range(sim.shape[0])]


def test_backend_embeddings_normalized_and_batch_invariant(tiny_clip):
    from PIL import Image

    a = load_model("clip", {"pretrained": str(tiny_clip), "batch_size": 1})
    b = load_model("clip", {"pretrained": str(tiny_clip), "batch_size": 7})
    imgs = [Image.new("RGB", (40 + i, 30), (i * 20, 100, 200 - i * 10)) for i in range(7)]
    texts = ["a red circle", "一张红色的圆形的照片。", "a blue square", "x", "a drawing of a green triangle"]
    ea, eb = a.encode_images(imgs), b.encode_images(imgs)
    ta, tb = a.encode_texts(texts), b.encode_texts(texts)
    assert ea.shape == (7, 32) and ta.shape == (5, 32)
    assert np.allclose(np.linalg.norm(ea, axis=1), 1, atol=1e-5)
    assert np.allclose(ea, eb, atol=1e-5) and np.allclose(ta, tb, atol=1e-5)  # padding does not leak
    assert not np.allclose(ta[0], ta[2])
    info = a.info()
    assert info["backend"] == "clip" and info["class"] == "CLIPModel" and info["revision"]
    with pytest.raises(NotImplementedError, match="cannot generate"):
        a.generate([], None)


def test_backend_rejects_a_generative_model(tiny_model):
    with pytest.raises(ModelLoadError, match="get_text_features|cannot load"):
        load_model("clip", {"pretrained": str(tiny_model)})


def test_task_type_validation(tmp_path):
    def write(body: str) -> Path:
        p = tmp_path / "t.yaml"
        p.write_text("task: t\ndataset: {path: x.parquet}\ndoc: {prompt: '', references: label, images: image}\n"
                     "metrics: [{name: top1_accuracy}]\n" + body)
        return p
    with pytest.raises(TaskError, match="needs an `encoder:` section"):
        load_file(write("type: zero_shot_classification\n"))
    with pytest.raises(TaskError, match="must contain"):
        load_file(write("type: zero_shot_classification\nencoder: {classes: {en: [a]}, templates: {en: [photo]}}\n"))
    with pytest.raises(TaskError, match="no templates for language"):
        load_file(write("type: zero_shot_classification\nencoder: {classes: {zh: [a]}, templates: {en: ['{}']}}\n"))
    with pytest.raises(TaskError, match="only for type"):
        load_file(write("encoder: {classes: {en: [a]}}\n"))
    with pytest.raises(TaskError, match="type"):
        load_file(write("type: segmentation\n"))
    assert load_file(write("type: retrieval\n"))[0].type == "retrieval"


def test_results_match_independent_computation(run, tiny_clip):
    cfg, run_dir, results = run
    model = load_model("clip", {"pretrained": str(tiny_clip)})
    reg = Registry.discover()
    # zero-shot: CLIP's prompt ensembling recomputed here, top-1 per image
    spec = reg.tasks["demo_zero_shot"]
    samples = load_task_data(spec, None, "default").samples
    from m3eval.data.media import decode_image
    imgs = [decode_image(s.media[0].source.get()) for s in samples]
    ie = model.encode_images(imgs)
    names, temps = spec.encoder.classes["en"], spec.encoder.templates["en"]
    cls = []
    for n in names:
        e = model.encode_texts([t.replace("{}", n) for t in temps]).mean(axis=0)
        cls.append(e / np.linalg.norm(e))
    logits = ie @ np.array(cls).T
    labels = [int(s.references[0]) for s in samples]
    top1 = np.mean(logits.argmax(axis=1) == labels)
    entry = results.tasks["demo_zero_shot"]
    assert entry.metrics["top1_accuracy"].value == pytest.approx(top1)
    assert entry.metrics["top1_accuracy"].ci is not None and entry.n_samples == 48
    o = entry.openness["en"]
    assert o["sizes"] == [6, 12, 18, 24] and len(o["orders"]) == 3 and sorted(o["orders"][0]) == list(range(24))
    assert o["accuracy"][-1] == pytest.approx(top1)  # the full vocabulary is plain zero-shot
    # retrieval: argsort protocol on freshly computed embeddings
    spec = reg.tasks["demo_retrieval"]
    samples = load_task_data(spec, None, "default").samples
    ie = model.encode_images([decode_image(s.media[0].source.get()) for s in samples])
    caps = [c for s in samples for c in s.references]
    owner = [i for i, s in enumerate(samples) for _ in s.references]
    te = model.encode_texts(caps)
    sim = ie @ te.T
    i2t = _argsort_recall(sim, [{j for j, o in enumerate(owner) if o == i} for i in range(len(samples))], 5)
    t2i = _argsort_recall(sim.T, [{o} for o in owner], 1)
    m = results.tasks["demo_retrieval"].metrics
    assert m["i2t_r5"].value == pytest.approx(np.mean(i2t))
    assert m["t2i_r1"].value == pytest.approx(np.mean(t2i))
    assert m["t2i_r1"].ci is not None and m["mean_recall"].kind == "corpus"
    six = [m[k].value for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")]
    assert m["mean_recall"].value == pytest.approx(sum(six) / 6)


def test_resume_reuses_embeddings_and_rescore_agrees(run):
    cfg, run_dir, results = run
    cached = sorted((run_dir / "embeddings").rglob("*.npy"))
    assert cached
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    (run_dir / "predictions" / "demo_retrieval.jsonl").unlink()  # as if interrupted after encoding
    again, failures = evaluate(cfg)
    assert failures == [] and {p: p.stat().st_mtime_ns for p in cached} == stamps
    for t in DEMO:
        assert dumped(again.tasks[t].metrics) == dumped(results.tasks[t].metrics)
    re = rescore(run_dir)
    assert dumped(re.tasks["demo_retrieval"].metrics) == dumped(results.tasks["demo_retrieval"].metrics)
    assert re.tasks["demo_zero_shot"].openness == results.tasks["demo_zero_shot"].openness


def test_a_finished_encoder_run_does_not_load_the_model_again(run, capsys):
    cfg, _, results = run
    capsys.readouterr()
    again, failures = evaluate(cfg)
    err = capsys.readouterr().err
    assert failures == [] and "nothing left to generate" in err and "loading" not in err
    assert dumped(again.tasks["demo_zero_shot"].metrics) == dumped(results.tasks["demo_zero_shot"].metrics)


def test_clip_on_a_generative_task_is_a_task_failure(tiny_clip, tmp_path):
    cfg = RunConfig(tasks=["demo_retrieval", "demo_vqa"], output=tmp_path, model="clip",
                    model_args={"pretrained": str(tiny_clip)}, progress=False)
    results, failures = evaluate(cfg)
    assert list(results.tasks) == ["demo_retrieval"]
    assert len(failures) == 1 and "demo_vqa" in failures[0] and "cannot generate" in failures[0]


def test_openness_curve():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 5)
    perfect = np.eye(20)[labels] + rng.normal(0, 0.01, (100, 20))
    c = openness_curve(perfect, labels, step=5, trials=2, seed=3)
    assert c["sizes"] == [5, 10, 15, 20] and c["accuracy"] == [1.0] * 4 and c["drop"] == 0.0
    noisy = np.eye(20)[labels] + rng.normal(0, 0.8, (100, 20))
    a, b = openness_curve(noisy, labels, 5, 4, 7), openness_curve(noisy, labels, 5, 4, 7)
    assert a == b and a["orders"] != openness_curve(noisy, labels, 5, 4, 8)["orders"]
    assert a["accuracy"][-1] == pytest.approx(np.mean(noisy.argmax(1) == labels))
    assert a["accuracy"][0] > a["accuracy"][-1]  # fewer classes, easier
    # by hand: the first size's accuracy of trial 0
    order = np.array(a["orders"][0])
    keep = np.isin(labels, order[:5])
    pred = order[:5][noisy[keep][:, order[:5]].argmax(1)]
    assert a["per_trial"][0][0] == pytest.approx(np.mean(pred == labels[keep]))
    with pytest.raises(ValueError, match="step"):
        openness_curve(noisy, labels, step=20)
    with pytest.raises(ValueError, match="NaN"):
        openness_curve(np.where(noisy > 1.5, np.nan, noisy), labels, step=5)


def test_openness_running_argmax_equals_argmax_over_each_prefix_with_ties():
    """The curve keeps a running argmax block by block; it must pick what np.argmax over the
    first n classes picks, ties (here: small integer logits, many) included."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 23, 300)
    logits = rng.integers(0, 4, (300, 23)).astype(np.float32)
    c = openness_curve(logits, labels, step=4, trials=3, seed=2)
    stability = []
    for order, ext in zip(c["orders"], c["per_trial"]):
        rank = np.argsort(order)[labels]
        want, stab = [], []
        for n in c["sizes"]:
            correct = logits[:, order][:, :n].argmax(1) == rank
            want.append(np.mean(correct[rank < n]))
            stab.append(np.mean(correct[rank < c["sizes"][0]]))
        assert ext == pytest.approx(want)
        stability.append(stab)
    assert c["stability"] == pytest.approx(np.mean(stability, axis=0).tolist())
