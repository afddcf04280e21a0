"""The benchmark suite (tasks/) without the hub: every task's YAML, run end to end with the
tiny model on a fixture in its real source's schema (tests/fixtures_suite.py), in ONE
`m3eval run` with --dataset-override per task. A schema mistake in a YAML breaks this file.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fixtures_suite as fx  # noqa: E402
from m3eval.data.samples import SampleError  # noqa: E402
import m3eval.metrics  # noqa: E402,F401  (registers the metric modules)
from m3eval.metrics.base import get_metric  # noqa: E402
from m3eval.data.task_samples import load_task_data  # noqa: E402
from m3eval.tasks.registry import Registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The paper protocol, as docs/TASKS_SUITE.md sources it: task -> (M3IT config, split, language).
M3IT_CONFIGS = {
    "m3it_okvqa": ("okvqa", "validation", "en"),
    "m3it_aokvqa": ("a-okvqa", "validation", "en"),
    "m3it_viquae": ("viquae", "test", "en"),
    "m3it_msrvtt": ("msrvtt", "test", "en"),
    "m3it_ivqa": ("ivqa", "test", "en"),
    "m3it_activitynet_qa": ("activitynet-qa", "test", "en"),
    "m3it_msrvtt_qa": ("msrvtt-qa", "test", "en"),
    "m3it_msvd_qa": ("msvd-qa", "test", "en"),
    "m3it_flickr8k_cn": ("flickr8k-cn", "test", "zh"),
    "m3it_fm_iqa": ("fm-iqa", "validation", "zh"),
    "m3it_chinese_food": ("chinese-food", "test", "zh"),
}
M3IT80_LANGS = ("af am ar as ast be bg bn bs ca ceb cs cy da de el es et fi fr fuv gl gu ha he hi hr hu "
                "hy id ig is it ja jv ka kk km kn ko ky lb lg lij li ln lo lt lv mi mk ml mr mt my nl ny "
                "oc pa pl pt ro ru sd sk sn so sr sv ta te tg th tl tr uk ur vi wo zh").split()
GROUPS = {
    "m3it_knowledge_vqa": ["m3it_okvqa", "m3it_aokvqa", "m3it_viquae"],
    "m3it_video": ["m3it_msrvtt", "m3it_ivqa", "m3it_activitynet_qa", "m3it_msrvtt_qa", "m3it_msvd_qa"],
    "m3it_chinese": ["m3it_flickr8k_cn", "m3it_fm_iqa", "m3it_chinese_food"],
    "official_knowledge_vqa": ["okvqa", "aokvqa_mc", "aokvqa_da"],
    "official_video": ["msrvtt_qa", "msvd_qa", "msrvtt_caption"],
    "official_chinese": ["flickr8k_cn_caption"],
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    return fx.build_all(tmp_path_factory.mktemp("suite_data"))


def test_suite_files_load_without_errors(registry):
    from m3eval.cli import main

    assert registry.errors == []
    assert main(["validate", str(ROOT / "tasks")]) == 0  # also checks metric and filter names
    for group, members in GROUPS.items():
        assert registry.expand(group) == members
    assert registry.expand("m3it_heldout") == sum((GROUPS[g] for g in
                                                   ["m3it_knowledge_vqa", "m3it_video", "m3it_chinese"]), [])
    assert set(registry.expand("official_heldout")) == set(fx.OFFICIAL)
    assert registry.expand("chartqa") == ["chartqa_human", "chartqa_augmented"]
    assert registry.expand("qwen_vl_text_vqa") == ["textvqa_val", "docvqa_val", "chartqa_human", "chartqa_augmented",
                                                   "ai2d_test", "ocrvqa_test"]
    assert registry.expand("qwen_vl_text_vqa_qwen_vl") == [f"{t}_qwen_vl" for t in registry.expand("qwen_vl_text_vqa")]
    assert set(registry.expand("qwen_vl_text_vqa") + registry.expand("qwen_vl_text_vqa_qwen_vl")) == set(fx.TEXT_VQA)


def test_paper_protocol_reads_the_m3it_configs(registry):
    for task, (config, split, lang) in M3IT_CONFIGS.items():
        spec = registry.tasks[task]
        assert (spec.dataset.path, spec.dataset.name, spec.dataset.split) == ("MMInstruction/M3IT", config, split)
        assert spec.dataset.format == "m3it"  # the raw-file reader, m3eval/data/m3it.py
        assert spec.language == lang and spec.protocol == "paper"
        assert spec.primary == "rouge_l" and [m.name for m in spec.metrics] == ["rouge_l"]
        assert spec.doc.references == "outputs" and spec.doc.instruction == "instruction"
        video = task in fx.M3IT_VIDEO
        assert (spec.doc.frames, spec.doc.images) == (("image_base64_str", None) if video
                                                      else (None, "image_base64_str"))


def test_m3it80_templates_expand_over_the_80_languages(registry):
    assert len(M3IT80_LANGS) == 80
    for base, config, split in [("m3it80_okvqa", "okvqa", "validation"),
                                ("m3it80_msrvtt_qa", "msrvtt-qa", "test"), ("m3it80_msrvtt", "msrvtt", "validation")]:
        tasks = registry.expand(base)
        assert tasks == [f"{base}_{lang}" for lang in M3IT80_LANGS]
        for lang, name in zip(M3IT80_LANGS, tasks):
            spec = registry.tasks[name]
            assert spec.language == lang and spec.dataset.name == f"{config}-{lang}"
            assert spec.dataset.path == "MMInstruction/M3IT-80" and spec.dataset.split == split
            assert spec.dataset.format == "m3it80" and spec.consistency_with == f"{base}_en"
        english = registry.tasks[f"{base}_en"]  # the untranslated originals: same items, same ids
        assert (english.language, english.dataset.name, english.dataset.split) == ("en", f"{config}-en", split)
        assert english.consistency_with is None and english.doc == registry.tasks[f"{base}_zh"].doc
    assert len(registry.expand("m3it80")) == 240
    assert registry.expand("m3it80_en") == ["m3it80_okvqa_en", "m3it80_msrvtt_qa_en", "m3it80_msrvtt_en"]


def test_reference_rows_name_suite_tasks_and_their_metric(registry):
    files = sorted((ROOT / "results" / "reference").glob("m3it_paper_*.json"))
    assert {f.name for f in files} >= {"m3it_paper_ying_vlm.json", "m3it_paper_minigpt4.json"}
    for f in files:
        ref = json.loads(f.read_text(encoding="utf-8"))
        assert ref["format"] == "m3eval.reference/1" and ref["reported"] is True
        assert "2306.04387" in ref["source"]
        for task, entry in ref["tasks"].items():
            assert registry.tasks[task].primary == "rouge_l", (f.name, task)
            m = entry["metrics"]["rouge_l"]
            assert m["scale"] == 1 and 0 < m["value"] < 1, (f.name, task)
    ying = json.loads((ROOT / "results/reference/m3it_paper_ying_vlm.json").read_text())["tasks"]
    assert ying["m3it_okvqa"]["metrics"]["rouge_l"]["value"] == pytest.approx(0.275)


def test_a_schema_mistake_is_an_error_naming_the_field(registry, tmp_path):
    rows = fx.m3it_rows("m3it_okvqa")
    for r in rows:
        r["output"] = r.pop("outputs")  # the raw jsonl's name, not the script's
    bad = fx._write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SampleError, match="outputs"):
        load_task_data(registry.tasks["m3it_okvqa"], None, "default", str(bad))


def test_m3it_instruction_variants_come_from_the_rows(registry, fixtures):
    samples = load_task_data(registry.tasks["m3it_okvqa"], None, "all", str(fixtures["m3it_okvqa"])).samples
    n_variants = len({r["instruction"] for r in fx.m3it_rows("m3it_okvqa")})
    assert n_variants == 3 and len(samples) == fx.N_ROWS * n_variants
    assert {s.id for s in samples} == {f"{i}#i{k}" for i in range(fx.N_ROWS) for k in range(n_variants)}


def _expected_references(task: str, fixtures: dict[str, Path]) -> list[list[str]]:
    if task in fx.M3IT80:  # translated rows: read back what the fixture wrote
        return [[r["outputs"]] for r in _jsonl(fixtures[task])]
    if task in fx.M3IT_IMAGE + fx.M3IT_VIDEO + fx.M3IT_CHINESE:
        return [[r["outputs"]] for r in fx.m3it_rows(task)]
    if task == "okvqa":
        return [r["answers"] for r in fx.okvqa_rows()]
    if task == "aokvqa_mc":
        return [[r["choices"][r["correct_choice_idx"]]] for r in fx.aokvqa_rows()]
    if task == "aokvqa_da":
        return [r["direct_answers"] for r in fx.aokvqa_rows() if not r["difficult_direct_answer"]]  # exclude_if
    if task in ("msrvtt_qa", "msvd_qa"):
        return [[r["answer"]] for r in fx.videoqa_rows(["a", "b", "c"])]
    if task == "msrvtt_caption":
        return [[f"a person is doing thing number {j} in a video" for j in range(20)]] * fx.N_ROWS
    if task == "flickr8k_cn_caption":
        return [["一只狗在草地上奔跑。", "两只猫在沙发上睡觉。", "一个男人在厨房里做饭。",
                 "一个女人在舞台上弹钢琴。", "人们在聚会上跳舞。"]] * fx.N_ROWS
    base = task.removesuffix("_qwen_vl")
    if base == "textvqa_val":
        return [r["answers"] for r in fx.textvqa_rows()]
    if base == "docvqa_val":
        return [r["answers"] for r in fx.docvqa_rows()]
    if task in fx.CHARTQA:  # each part keeps its own rows of the one split
        return [[r["answer"]] for r in fx.chartqa_rows() if r["type"] == fx.CHARTQA[task]]
    if task == "ai2d_test":  # the correct option's letter
        return [["ABCD"[int(r["answer"])]] for r in fx.ai2d_rows()]
    if task == "ai2d_test_qwen_vl":  # Qwen-VL's target: the correct option's text
        return [[r["options"][int(r["answer"])]] for r in fx.ai2d_rows()]
    if base == "ocrvqa_test":  # one sample per question of each cover (doc.explode)
        return [[q["answer"]] for q in fx.ocrvqa_questions()]
    raise AssertionError(f"no expected references for {task}")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_suite_task_runs_end_to_end_on_its_fixture(registry, fixtures, tmp_path):
    from m3eval.cli import main
    from m3eval.demo.tiny_model import ensure_tiny_model

    tasks = list(fixtures)
    argv = ["run", "--model", "hf", "--model-args", f"pretrained={ensure_tiny_model()}",
            "--tasks", ",".join(tasks), "--output", str(tmp_path / "runs"), "--run-name", "suite",
            "--batch-size", "8", "--max-new-tokens", "6", "--threads", "1", "--no-media"]
    for task, path in fixtures.items():
        argv += ["--dataset-override", f"{task}={path}"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "suite"
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))

    for task in tasks:
        spec = registry.tasks[task]
        res = results["tasks"][task]
        assert res["n_samples"] + (res.get("n_excluded") or 0) == fx.n_rows(task), task
        excluded = 1 if task == "aokvqa_da" else fx.N_ROWS if task in fx.CHARTQA else None  # the other ChartQA part
        assert res.get("n_excluded") == excluded, task  # aokvqa_da: difficult_direct_answer
        assert res["n_errors"] == 0, (task, [s["error"] for s in _jsonl(run / "samples" / f"{task}.jsonl")])
        assert res["primary_metric"] == spec.primary
        assert {m.name for m in spec.metrics} <= set(res["metrics"]), task
        value = res["metrics"][spec.primary]["value"]
        assert math.isfinite(value) and value >= 0, (task, value)

        samples = _jsonl(run / "samples" / f"{task}.jsonl")
        assert [s["references"] for s in samples] == _expected_references(task, fixtures), task
        if get_metric(spec.primary).kind == "mean":  # the task score is the mean of what each sample got
            assert value == pytest.approx(sum(s["scores"][spec.primary] for s in samples) / len(samples)), task
        assert {s["lang"] for s in samples} == {spec.language}, task
        if task == "aokvqa_mc":  # options shown, and the filters leave a choice text or nothing
            assert all(s["choices"] == r["choices"] for s, r in zip(samples, fx.aokvqa_rows()))
            assert all(s["extracted"] is None or s["extracted"] in s["choices"] for s in samples)
        if task == "ai2d_test":  # a letter or nothing; nothing is counted as unparsed, never guessed
            assert all(s["extracted"] is None or s["extracted"] in "ABCD" for s in samples)
            assert res["n_extraction_failures"] == sum(s["extracted"] is None for s in samples)

        preds = _jsonl(run / "predictions" / f"{task}.jsonl")
        if spec.doc.frames:  # M3IT's 8 stored frames pass straight through
            assert all(p["media_info"]["frames"] == 8 and p["media_info"]["rule"] == "frames" for p in preds), task
        if spec.doc.video:  # real videos (12-20 frames): 8 uniformly sampled frames, the rule recorded
            assert all(p["media_info"]["rule"] == "uniform" and p["media_info"]["frames"] == 8 for p in preds), task

    ids = [s["id"] for s in _jsonl(run / "samples" / "okvqa.jsonl")]
    assert ids == [str(r["question_id"]) for r in fx.okvqa_rows()]
    for group in ["m3it_heldout", "m3it_knowledge_vqa", "m3it_video", "m3it_chinese", "official_heldout",
                  "qwen_vl_text_vqa", "qwen_vl_text_vqa_qwen_vl"]:
        assert group in results["groups"], group
    for group in ["chartqa", "chartqa_qwen_vl"]:  # the paper's ChartQA: the plain mean of the two parts
        parts = [results["tasks"][t]["metrics"]["relaxed_accuracy"]["value"] for t in registry.expand(group)]
        g = results["groups"][group]
        assert g["metric"] == "relaxed_accuracy" and g["aggregate"] == "macro" and g.get("error") is None
        assert g["value"] == pytest.approx(sum(parts) / 2), group
    # translated okvqa vs its English originals: the rows share ids (line index), so all 3 items pair
    pairs = results["consistency"]
    assert set(pairs) == {"m3it80_okvqa_zh|m3it80_okvqa_en", "m3it80_okvqa_fr|m3it80_okvqa_en"}
    assert all(p["n"] == fx.N_ROWS and 0 <= p["correctness_agreement"] <= 1 for p in pairs.values())
    assert pairs["m3it80_okvqa_zh|m3it80_okvqa_en"]["langs"] == ["zh", "en"]
