"""The captioning benchmarks of the Qwen-VL table (tasks/captioning/): each task's source, split, prompt and
metric as its YAML cites them, what the `qwen_vl` protocol changes, every task end to end on fixtures in the
hub schemas (tests/fixtures_captioning.py; read from the Qwen-VL table's one run, conftest.qwen_vl_table_run),
and CIDEr over the whole corpus equal to pycocoevalcap (PTBTokenizer + Cider) called directly on the same
predictions and references."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

sys.path.insert(0, str(Path(__file__).parent))

import fixtures_captioning as fx  # noqa: E402

from m3eval.data.task_samples import load_task_data  # noqa: E402
from m3eval.scoring.task import score_task  # noqa: E402
from m3eval.tasks.registry import Registry  # noqa: E402
from m3eval.types import Prediction  # noqa: E402

COCO_METRICS = [("coco_cider", {}), ("coco_bleu_4", {}), ("coco_meteor", {}), ("coco_rouge_l", {})]
# task -> (hub id, split, revision, doc.id, doc.references), as docs/TASKS_SUITE.md sources them
OFFICIAL = {
    "nocaps_val": ("lmms-lab/NoCaps", "validation", "44ac713d48d5eb96d4f66a2de19236b5465a5ace", "image_id",
                   "annotations_captions"),
    "flickr30k_test": ("umaru97/flickr30k_train_val_test", "test", "main", "img_id", "caption"),
}
LMMS_EVAL_PROMPT = "Provide a one-sentence caption for the provided image."  # lmms-eval's, both benchmarks
# QwenLM/Qwen-VL eval_mm/evaluate_caption.py @ cfe66a7: '<img>{}</img>Describe the image in English:', 30 tokens
QWEN_VL_PROMPT, QWEN_VL_TOKENS = "Describe the image in English:", 30


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def test_each_benchmark_reads_its_source_split_and_metric(registry):
    for task, (path, split, revision, id_field, refs) in OFFICIAL.items():
        spec = registry.tasks[task]
        assert (spec.dataset.path, spec.dataset.name, spec.dataset.split, spec.dataset.revision) == \
            (path, None, split, revision), task
        assert (spec.doc.id, spec.doc.references, spec.doc.images) == (id_field, refs, "image"), task
        assert spec.protocol == "official" and spec.category == "captioning" and spec.language == "en", task
        assert spec.doc.prompt == LMMS_EVAL_PROMPT and spec.doc.exclude_if is None, task
        assert [(m.name, m.args) for m in spec.metrics] == COCO_METRICS and spec.primary == "coco_cider", task
        g = spec.generation
        assert (g.max_new_tokens, g.do_sample, g.num_beams) == (64, False, 1), task


def test_the_qwen_vl_protocol_changes_only_the_prompt_and_the_token_budget(registry):
    for task in OFFICIAL:
        official, qwen = registry.tasks[task], registry.tasks[f"{task}_qwen_vl"]
        assert qwen.protocol == "qwen_vl" and qwen.category == official.category, task
        assert qwen.dataset == official.dataset and qwen.metrics == official.metrics, task  # same items, scorer
        assert qwen.doc == official.doc.model_copy(update={"prompt": QWEN_VL_PROMPT}), task
        assert qwen.generation == official.generation.model_copy(update={"max_new_tokens": QWEN_VL_TOKENS}), task
    assert registry.expand("qwen_vl_captioning") == ["nocaps_val", "flickr30k_test"]
    assert registry.expand("qwen_vl_captioning_qwen_vl") == ["nocaps_val_qwen_vl", "flickr30k_test_qwen_vl"]


def coco_scores(predictions: list[str], references: list[list[str]]) -> tuple[float, list[float], float, float]:
    """pycocoevalcap as COCOEvalCap.evaluate runs it: PTBTokenizer over the corpus, then CIDEr (corpus and per
    image), BLEU-4 and ROUGE_L."""
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    cider, per = Cider().compute_score(gts, res)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    return float(cider), [float(x) for x in per], float(bleu[3]), float(rouge)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_captioning_task_runs_end_to_end_and_scores_cider_as_pycocoevalcap(registry, qwen_vl_table_run):
    run, results, fixtures = qwen_vl_table_run  # the Qwen-VL table's one run (conftest.py), these fixtures in it
    assert {t for t in results["tasks"] if registry.tasks[t].category == "captioning"} == set(fx.TASKS)
    assert {t: results["run"]["config"]["dataset_overrides"][t] for t in fx.TASKS} == \
        {t: fixtures[t].name for t in fx.TASKS}

    for task, (_, rows, id_field, refs_field) in fx.TASKS.items():
        spec, res = registry.tasks[task], results["tasks"][task]
        samples = _jsonl(run / "samples" / f"{task}.jsonl")
        assert res["n_samples"] == len(samples) == fx.N_ROWS and res["n_errors"] == 0, task
        assert [s["id"] for s in samples] == [str(r[id_field]) for r in rows()], task
        assert [s["references"] for s in samples] == [r[refs_field] for r in rows()], task
        assert {s["prompt"] for s in samples} == {spec.doc.prompt}, task
        assert res["primary_metric"] == "coco_cider" and set(res["metrics"]) == {m for m, _ in COCO_METRICS}, task
        cider, per, bleu4, rouge = coco_scores([s["prediction"] or "" for s in samples],
                                               [s["references"] for s in samples])
        assert res["metrics"]["coco_cider"]["value"] == pytest.approx(cider, abs=1e-12), task
        assert [s["scores"]["coco_cider"] for s in samples] == pytest.approx(per, abs=1e-12), task
        assert res["metrics"]["coco_bleu_4"]["value"] == pytest.approx(bleu4, abs=1e-12), task
        assert res["metrics"]["coco_rouge_l"]["value"] == pytest.approx(rouge, abs=1e-12), task
    for group, members in [("qwen_vl_captioning", ["nocaps_val", "flickr30k_test"]),
                           ("qwen_vl_captioning_qwen_vl", ["nocaps_val_qwen_vl", "flickr30k_test_qwen_vl"])]:
        g = results["groups"][group]
        assert g["metric"] == "coco_cider" and g["aggregate"] == "macro" and g.get("error") is None, group
        values = [results["tasks"][t]["metrics"]["coco_cider"]["value"] for t in members]
        assert g["value"] == pytest.approx(sum(values) / 2), group


def _captions_for(rows: list[dict], refs_field: str) -> list[str]:
    """Predictions that share words with their references in different amounts, one empty."""
    out = [r[refs_field][0] for r in rows]  # a reference itself
    out[1] = out[1].upper().rstrip(".!") + " , today"  # case and punctuation: PTB lowercases, drops ","
    out[2] = " ".join(out[2].split()[:3]) + " in a photo"  # a few words right
    out[3] = ""
    return out


@pytest.mark.parametrize("task", ["nocaps_val", "flickr30k_test_qwen_vl"])
def test_cider_is_computed_over_the_corpus_as_pycocoevalcap_computes_it(registry, tmp_path, task):
    builder, rows, _, refs_field = fx.TASKS[task]
    spec = registry.tasks[task]
    samples = load_task_data(spec, None, "default", str(builder(tmp_path))).samples
    captions = _captions_for(rows(), refs_field)
    preds = [Prediction.for_sample(s, c) for s, c in zip(samples, captions)]
    cider_spec = [m for m in spec.metrics if m.name != "coco_meteor"]  # METEOR: its own tests (one JVM less)
    summary, records = score_task(preds, cider_spec, spec.filters, primary_metric=spec.primary, with_ci=False)

    cider, per, bleu4, rouge = coco_scores(captions, [s.references for s in samples])
    assert cider > 0.5 and per[0] > per[2] > 0 and per[3] == 0  # a case where every part of the formula counts
    assert summary["metrics"]["coco_cider"]["value"] == pytest.approx(cider, abs=1e-12)
    assert [r["scores"]["coco_cider"] for r in records] == pytest.approx(per, abs=1e-12)
    assert summary["metrics"]["coco_bleu_4"]["value"] == pytest.approx(bleu4, abs=1e-12)
    assert summary["metrics"]["coco_rouge_l"]["value"] == pytest.approx(rouge, abs=1e-12)
    # over the corpus, not per sample: the IDF comes from every image's references, so an image scored
    # alone (IDF over its own references: log(1) - log(1) = 0 for all its n-grams) gets another score
    alone = [score_task([p], cider_spec[:1], spec.filters, with_ci=False)[0]["metrics"]["coco_cider"]["value"]
             for p in preds]
    assert alone == [0.0] * len(preds) and summary["metrics"]["coco_cider"]["value"] > 0.5
