"""The general-VQA benchmarks of the Qwen-VL table (tasks/general_vqa/): each task's source, split and metric
as its YAML cites them, where the `official` and `qwen_vl` protocols differ, GQA's two hub configs joined by
dataset.join (read from a local copy of the repo), scoring of known answers, the column-mismatch error, the
Qwen-VL and Qwen-VL-Chat reference rows, and every task end to end on the tiny model with --dataset-override,
read from the Qwen-VL table's one run (conftest.qwen_vl_table_run)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fixtures_general_vqa as fg  # noqa: E402

from test_text_vqa_tasks import check_official_tasks  # noqa: E402

from m3eval.data.media import decode_image  # noqa: E402
from m3eval.data.task_samples import load_task_data  # noqa: E402
from m3eval.metrics import get_metric  # noqa: E402
from m3eval.metrics.base import MetricInput  # noqa: E402
from m3eval.results import parse_reference  # noqa: E402
from m3eval.scoring.task import score_task  # noqa: E402
from m3eval.tasks.registry import Registry  # noqa: E402
from m3eval.types import Prediction  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# task -> (hub id or file, config, split, revision, doc.id, primary metric, its args, max_new_tokens), as the
# YAML files (and /tmp/tasks_suite_general_vqa.md) source them
OFFICIAL = {
    "vqav2_val": ("lmms-lab/VQAv2", None, "validation", "32665d35052eb4a6d4414851c3c829a72754915a", "question_id",
                  "vqa_accuracy", {}, 16),
    "gqa_testdev_balanced": ("lmms-lab/GQA", "testdev_balanced_instructions", "testdev", "main", "id",
                             "gqa_accuracy", {}, 16),
    "scienceqa_img_test": ("lmms-lab/ScienceQA", "ScienceQA-IMG", "test", "69dd4d6b67373d38f96a5badd5d24d0eb5bcdc50",
                           None, "choice_accuracy", {}, 16),
    "vizwiz_vqa_val": ("lmms-lab/VizWiz-VQA", None, "val", "d428a2dae984f79cf1b9d99467dfa883e0c30686", "question_id",
                       "vizwiz_accuracy", {}, 32),
}
# Qwen-VL eval_mm: the metric each qwen_vl task scores with, and max_new_tokens (ds_collections: 10 for every
# general-VQA set; ScienceQA has no generation in Qwen-VL, lmms-eval's qwen_vl form uses 16)
QWEN_VL = {"vqav2_val": ("qwen_vl_vqa_score", {}, 10), "okvqa": ("qwen_vl_vqa_score", {}, 10),
           "gqa_testdev_balanced": ("gqa_accuracy", {"protocol": "qwen_vl"}, 10),
           "scienceqa_img_test": ("choice_accuracy", {}, 16), "vizwiz_vqa_val": ("qwen_vl_vqa_score", {}, 10)}
# QwenLM/Qwen-VL README.md @ aa00ed04091eea5fcdd32985e7915f1c53e7d599, 'Zero-shot Captioning & General VQA':
# OK-VQA, GQA, SciQA-Img, VizWiz (VQAv2 is test-dev there: left out)
README = {"qwen_vl_paper_qwen_vl.json": ("Qwen-VL", {"okvqa_qwen_vl": 58.6, "gqa_testdev_balanced_qwen_vl": 59.3,
                                                     "scienceqa_img_test_qwen_vl": 67.1,
                                                     "vizwiz_vqa_val_qwen_vl": 35.2}),
          "qwen_vl_paper_qwen_vl_chat.json": ("Qwen-VL-Chat", {"okvqa_qwen_vl": 56.6,
                                                               "gqa_testdev_balanced_qwen_vl": 57.5,
                                                               "scienceqa_img_test_qwen_vl": 68.2,
                                                               "vizwiz_vqa_val_qwen_vl": 38.9})}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def test_each_benchmark_reads_its_source_split_and_metric(registry):
    check_official_tasks(registry, OFFICIAL, "general_vqa")
    assert registry.tasks["vqav2_val"].doc.references == "answers.answer"  # the list of answer dicts
    assert registry.tasks["scienceqa_img_test"].filters[0].name == "choice_letter"
    join = registry.tasks["gqa_testdev_balanced"].dataset.join  # the images: lmms-eval's gqa_process_docs join
    assert join is not None and (join.path, join.name, join.split, join.revision, join.field, join.key) == \
        ("lmms-lab/GQA", "testdev_balanced_images", "testdev", "main", "imageId", "id")


def test_the_groups_hold_the_five_benchmarks_under_each_protocol(registry):
    official = ["vqav2_val", "okvqa", "gqa_testdev_balanced", "scienceqa_img_test", "vizwiz_vqa_val"]
    assert registry.expand("qwen_vl_general_vqa") == official
    assert registry.expand("qwen_vl_general_vqa_qwen_vl") == [f"{t}_qwen_vl" for t in official]
    for group in ["qwen_vl_general_vqa", "qwen_vl_general_vqa_qwen_vl"]:
        assert registry.groups[group].normalize == "scale" and registry.groups[group].category == "general_vqa"


def test_the_qwen_vl_protocol_changes_only_what_qwen_vl_does(registry):
    for task, (metric, args, tokens) in QWEN_VL.items():
        official, qwen = registry.tasks[task], registry.tasks[f"{task}_qwen_vl"]
        assert qwen.protocol == "qwen_vl" and qwen.category == official.category, task
        assert qwen.dataset == official.dataset and qwen.doc.images == official.doc.images, task  # same items
        assert (qwen.doc.id, qwen.doc.references, qwen.doc.choices) == \
            (official.doc.id, official.doc.references, official.doc.choices), task
        assert qwen.doc.prompt.endswith(" Answer:") or qwen.doc.prompt.endswith("\nAnswer:"), task
        assert (qwen.generation.max_new_tokens, qwen.generation.do_sample, qwen.generation.num_beams) == \
            (tokens, False, 1), task
        assert qwen.primary == metric and [(m.name, m.args) for m in qwen.metrics] == [(metric, args)], task
        assert qwen.filters == official.filters, task
    for task in ["vqav2_val", "okvqa", "gqa_testdev_balanced", "vizwiz_vqa_val"]:  # '<img>{}</img>{} Answer:'
        assert registry.tasks[f"{task}_qwen_vl"].doc.prompt == "{{ question }} Answer:", task


def _predictions(spec, data_path: Path, answers: list[str]) -> list[Prediction]:
    samples = load_task_data(spec, None, "default", str(data_path)).samples
    assert len(samples) == len(answers)
    return [Prediction.for_sample(s, a) for s, a in zip(samples, answers)]


def _scores(spec, data_path: Path, answers: list[str], metric: str | None = None) -> tuple[dict, list[float]]:
    summary, records = score_task(_predictions(spec, data_path, answers), spec.metrics, spec.filters,
                                  primary_metric=spec.primary, with_ci=False)
    return summary, [r["scores"][metric or spec.primary] for r in records]


def test_gqa_joins_each_question_to_its_image_in_the_other_config(registry, tmp_path):
    """A local copy of the repo holds both configs: each question takes its image from the images config,
    read from that table (two rows for three questions: nothing copied), and run.json's data record
    fingerprints both tables."""
    folder = fg.write_gqa(tmp_path)
    data = load_task_data(registry.tasks["gqa_testdev_balanced"], None, "default", str(folder))
    rows = fg.gqa_instruction_rows()
    assert [s.id for s in data.samples] == [r["id"] for r in rows] and [s.cluster for s in data.samples] == \
        [r["imageId"] for r in rows]
    drawn = {r["id"]: np.asarray(r["image"].convert("RGB")) for r in fg.gqa_image_rows()}
    for s, r in zip(data.samples, rows):  # each question carries its own image
        (image,) = s.media
        assert s.failure is None and len(image.source.ds) == len(fg.GQA_IMAGE_IDS), r["id"]
        assert np.array_equal(np.asarray(decode_image(image.source.get())), drawn[r["imageId"]]), r["id"]
    assert data.fingerprint["kind"] == data.fingerprint["join"]["kind"] == "local"
    assert data.fingerprint["join"]["path"] == folder.resolve().name


def test_the_questions_config_alone_reads_the_images_from_the_hub(registry, tmp_path, capsys, monkeypatch):
    """Overriding with the questions alone keeps the join's table as the task names it (the hub config):
    offline that is one line naming the task, the joined dataset and its config, exit 1, before the
    model loads."""
    import huggingface_hub.constants as hub

    from m3eval.cli import main
    from m3eval.demo.tiny_model import ensure_tiny_model

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # the real client, refusing the network
    questions = next((fg.write_gqa(tmp_path) / fg.GQA_QUESTIONS).glob("*.parquet"))
    rc = main(["run", "--model", "hf", "--model-args", f"pretrained={ensure_tiny_model()}", "--tasks",
               "gqa_testdev_balanced", "--output", str(tmp_path / "runs"), "--run-name", "r",
               "--dataset-override", f"gqa_testdev_balanced={questions}", "--no-media"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "task gqa_testdev_balanced: dataset lmms-lab/GQA (config testdev_balanced_images), split testdev: " in err
    assert "--dataset-override" in err
    assert not (tmp_path / "runs" / "r" / "predictions").exists()  # nothing generated


def test_the_protocols_score_known_answers_as_their_scripts_do(registry, tmp_path):
    gqa = fg.write_gqa(tmp_path)  # gold: blue, racket, left
    answers = ["blue", "The man is holding a racket.", "Left"]
    assert _scores(registry.tasks["gqa_testdev_balanced"], gqa, answers)[1] == [1.0, 0.0, 0.0]  # as given
    assert _scores(registry.tasks["gqa_testdev_balanced_qwen_vl"], gqa, answers)[1] == [1.0, 1.0, 1.0]
    vizwiz = fg.write_vizwiz(tmp_path)  # 6x unanswerable + 4x soup; 5 blue, 4 dark blue, navy; 8 coke, 2 coca cola
    answers = ["Unanswerable.", "Dark blue", "Coca Cola"]
    official = _scores(registry.tasks["vizwiz_vqa_val"], vizwiz, answers)[1]
    assert official == pytest.approx([1.0, 1.0, 0.6])
    vqav2 = fg.write_vqav2(tmp_path)  # red x7 + dark red x3; 2 x6, two x2, 3 x2; no x10
    answers = ["Red.", "Two", "No"]
    assert _scores(registry.tasks["vqav2_val"], vqav2, answers)[1] == pytest.approx([1.0, 1.0, 0.0])
    assert _scores(registry.tasks["vqav2_val_qwen_vl"], vqav2, answers)[1] == pytest.approx([1.0, 1.0, 1.0])


def test_scienceqa_counts_an_answer_naming_no_single_option_as_unparsed(registry, tmp_path):
    path = fg.write_scienceqa(tmp_path)  # gold: B (Maine), A (meerkat), C (140°F)
    for task in ["scienceqa_img_test", "scienceqa_img_test_qwen_vl"]:
        spec = registry.tasks[task]
        preds = _predictions(spec, path, ["The answer is B.", "A or B", "I am not sure"])
        summary, records = score_task(preds, spec.metrics, spec.filters, primary_metric=spec.primary, with_ci=False)
        assert [r["extracted"] for r in records] == ["B", None, None], task  # never guessed
        assert summary["n_extraction_failures"] == 2, task
        assert summary["metrics"]["choice_accuracy"]["value"] == pytest.approx(1 / 3), task


def test_a_dataset_whose_columns_do_not_match_names_the_task_the_column_and_the_columns(registry, tmp_path, capsys):
    from m3eval.cli import main
    from m3eval.demo.tiny_model import ensure_tiny_model

    rows = fg.vizwiz_rows()
    for r in rows:
        r["answer"] = r.pop("answers")
    feats = {"question_id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
             "category": datasets.Value("string"), "answer": datasets.Sequence(datasets.Value("string"))}
    bad = fg._write(tmp_path / "vizwiz.parquet", rows, feats)
    line = "task vizwiz_vqa_val: row 0: no field 'answers' (columns: question_id, image, question, category, answer)"
    rc = main(["run", "--model", "hf", "--model-args", f"pretrained={ensure_tiny_model()}", "--tasks",
               "vizwiz_vqa_val", "--output", str(tmp_path / "runs"), "--dataset-override", f"vizwiz_vqa_val={bad}",
               "--no-media"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert any(ln.strip().endswith(line) for ln in err.splitlines()), err


def test_the_reference_rows_are_the_readme_table_under_the_qwen_vl_tasks(registry):
    for file_name, (model, values) in README.items():
        file = ROOT / "results" / "reference" / file_name
        ref = parse_reference(json.loads(file.read_text(encoding="utf-8")), file)
        assert ref.model == model and ref.reported and "aa00ed04091eea5fcdd32985e7915f1c53e7d599" in ref.source
        assert "vqav2_val_qwen_vl" not in ref.tasks and "test-dev" in ref.source  # VQAv2 dev is not our val
        general = {t: e for t, e in ref.tasks.items() if t in values}
        assert set(general) == set(values), file_name
        for name, entry in general.items():
            spec = registry.tasks[name]
            (metric, m), = entry.metrics.items()
            assert spec.protocol == "qwen_vl" and metric == spec.primary and m.scale == 1, name
            assert get_metric(metric).scale == 1
            assert m.value == pytest.approx(values[name] / 100), name


def test_every_general_vqa_task_runs_end_to_end_on_its_fixture(registry, qwen_vl_table_run):
    run, results, fixtures = qwen_vl_table_run  # the Qwen-VL table's one run (conftest.py), these fixtures in it
    tasks = list(fg.GENERAL_VQA)
    assert {t: results["run"]["config"]["dataset_overrides"][t] for t in tasks} == {t: fixtures[t].name for t in tasks}
    for task in tasks:
        spec, res = registry.tasks[task], results["tasks"][task]
        samples = [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]
        assert res["n_samples"] == fg.N_ROWS and res["n_errors"] == 0, (task, [s["error"] for s in samples])
        assert res["primary_metric"] == spec.primary and spec.primary in res["metrics"], task
        value = res["metrics"][spec.primary]["value"]
        assert math.isfinite(value) and 0 <= value <= 1, (task, value)
        assert [s["references"] for s in samples] == fg.expected_references(task), task
        assert value == pytest.approx(sum(s["scores"][spec.primary] for s in samples) / len(samples)), task
        if spec.filters:  # ScienceQA: a letter of the options or nothing, nothing counted as unparsed
            assert all(s["extracted"] is None or s["extracted"] in "ABCDE"[:len(s["choices"])] for s in samples)
            assert res["n_extraction_failures"] == sum(s["extracted"] is None for s in samples)
    # the recorded per-sample scores are the metric's on the recorded raw predictions (no filters here)
    for task in ["vizwiz_vqa_val", "vizwiz_vqa_val_qwen_vl", "gqa_testdev_balanced_qwen_vl"]:
        spec = registry.tasks[task]
        samples = [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]
        metric = spec.metrics[0]
        again = get_metric(metric.name).compute([MetricInput(s["prediction"], s["references"]) for s in samples],
                                                **metric.args).per_sample
        assert again == [s["scores"][spec.primary] for s in samples], task
    for group in ["qwen_vl_general_vqa", "qwen_vl_general_vqa_qwen_vl"]:
        g = results["groups"][group]
        assert g.get("error") is None and math.isfinite(g["value"]), group
