"""The text-rich VQA benchmarks of the Qwen-VL table (tasks/text_vqa/): each task's source, split and
metric as its YAML cites them, where the `official` and `qwen_vl` protocols differ, ChartQA's two parts
of one hub split, the column-mismatch error, and the Qwen-VL reference row. The end-to-end run of every
task on its fixture is in test_suite_tasks.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fixtures_suite as fx  # noqa: E402

from m3eval.data.task_samples import load_task_data  # noqa: E402
from m3eval.errors import SampleError, TaskError  # noqa: E402
from m3eval.results import parse_reference  # noqa: E402
from m3eval.scoring.task import score_task  # noqa: E402
from m3eval.tasks.loader import load_file  # noqa: E402
from m3eval.tasks.registry import Registry  # noqa: E402
from m3eval.types import Prediction  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# task -> (hub id or file, config, split, revision, doc.id, primary metric, its args, max_new_tokens), as
# docs/TASKS_SUITE.md section 7 sources them; revisions: full shas where the card was read at one.
OFFICIAL = {
    "textvqa_val": ("lmms-lab/textvqa", None, "validation", "main", "question_id", "textvqa_accuracy", {}, 32),
    "docvqa_val": ("lmms-lab/DocVQA", "DocVQA", "validation", "700643acd865ff3ede094825df884d69d4f7cc10",
                   "questionId", "anls", {"threshold": 0.5}, 32),
    "chartqa_human": ("lmms-lab/ChartQA", None, "test", "main", None, "relaxed_accuracy",
                      {"max_relative_change": 0.05}, 16),
    "chartqa_augmented": ("lmms-lab/ChartQA", None, "test", "main", None, "relaxed_accuracy",
                          {"max_relative_change": 0.05}, 16),
    "ai2d_test": ("lmms-lab/ai2d", None, "test", "c83a9b9692933aff8349157c88a413df9d02c4e5", None,
                  "choice_accuracy", {}, 16),
    "ocrvqa_test": ("howard-hou/OCR-VQA", None, "test", "88234cc092c5f6d199b5cf3b471e3b490a69c07b",
                    "{{ image_id }}-{{ explode_index }}", "exact_match", {"ignore_case": True}, 32),
}
# Qwen-VL eval_mm/evaluate_vqa.py ds_collections: max_new_tokens per dataset
QWEN_VL_TOKENS = {"textvqa_val": 10, "docvqa_val": 100, "chartqa_human": 100, "chartqa_augmented": 100,
                  "ai2d_test": 10, "ocrvqa_test": 100}
# Qwen-VL README.md @ aa00ed04091eea5fcdd32985e7915f1c53e7d599, "Text-oriented VQA", row Qwen-VL (Qwen-7B)
README_QWEN_VL = {"textvqa_val_qwen_vl": 63.8, "docvqa_val_qwen_vl": 65.1, "chartqa_qwen_vl": 65.7,
                  "ai2d_test_qwen_vl": 62.3, "ocrvqa_test_qwen_vl": 75.7}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def check_official_tasks(registry: Registry, official: dict, category: str) -> None:
    """Each task: (hub path, config, split, revision, id field, metric, metric args, max_new_tokens)."""
    for task, (path, name, split, revision, id_field, metric, args, tokens) in official.items():
        spec = registry.tasks[task]
        assert (spec.dataset.path, spec.dataset.name, spec.dataset.split, spec.dataset.revision) == \
            (path, name, split, revision), task
        assert spec.doc.id == id_field and spec.doc.images == "image", task
        assert spec.protocol == "official" and spec.category == category and spec.language == "en", task
        assert spec.primary == metric and [(m.name, m.args) for m in spec.metrics] == [(metric, args)], task
        assert spec.generation.max_new_tokens == tokens and not spec.generation.do_sample, task


def test_each_benchmark_reads_its_source_split_and_metric(registry):
    check_official_tasks(registry, OFFICIAL, "text_rich_vqa")


def test_the_qwen_vl_protocol_changes_only_what_evaluate_vqa_py_does(registry):
    for task, tokens in QWEN_VL_TOKENS.items():
        official, qwen = registry.tasks[task], registry.tasks[f"{task}_qwen_vl"]
        assert qwen.protocol == "qwen_vl" and qwen.category == official.category, task
        assert qwen.dataset == official.dataset and qwen.doc.images == official.doc.images, task  # same items
        assert qwen.doc.id == official.doc.id and qwen.doc.exclude_if == official.doc.exclude_if, task
        assert qwen.doc.prompt.endswith(" Answer:"), task  # '<img>{}</img>{} Answer:'
        assert (qwen.generation.max_new_tokens, qwen.generation.do_sample, qwen.generation.num_beams) == \
            (tokens, False, 1), task
    for task in ["textvqa_val", "docvqa_val", "ocrvqa_test"]:  # other prompt and budget
        official, qwen = registry.tasks[task], registry.tasks[f"{task}_qwen_vl"]
        question = "{{ questions }}" if task == "ocrvqa_test" else "{{ question }}"  # one item of doc.explode
        assert qwen.doc.references == official.doc.references and qwen.doc.prompt == f"{question} Answer:", task
        assert qwen.doc.explode == official.doc.explode, task
        if task != "textvqa_val":  # same scorer
            assert qwen.metrics == official.metrics, task
    # TextVQA: Qwen-VL's VQAEval (eval_mm/vqa_eval.py), not TextVQA's own evaluator
    assert [(m.name, m.args) for m in registry.tasks["textvqa_val_qwen_vl"].metrics] == \
        [("textvqa_accuracy", {"protocol": "qwen_vl"})]
    for part in ["human", "augmented"]:  # ChartQA: the swapped relaxed_correctness arguments
        qwen = registry.tasks[f"chartqa_{part}_qwen_vl"]
        assert [(m.name, m.args) for m in qwen.metrics] == \
            [("relaxed_accuracy", {"max_relative_change": 0.05, "argument_order": "qwen_vl"})]
    ai2d = registry.tasks["ai2d_test_qwen_vl"]  # generation + exact match on the option text, no letter parsing
    assert ai2d.filters == [] and [(m.name, m.args) for m in ai2d.metrics] == [("exact_match", {"ignore_case": True})]


def _predictions(spec, data_path: Path, answers: list[str]) -> list[Prediction]:
    samples = load_task_data(spec, None, "default", str(data_path)).samples
    assert len(samples) == len(answers)
    return [Prediction.for_sample(s, a) for s, a in zip(samples, answers)]


def _score(spec, preds: list[Prediction]) -> tuple[dict, list[dict]]:
    return score_task(preds, spec.metrics, spec.filters, primary_metric=spec.primary, with_ci=False)


def test_chartqa_parts_are_one_split_divided_by_type(registry, tmp_path):
    path = fx.write_chartqa(tmp_path)
    human = load_task_data(registry.tasks["chartqa_human"], None, "default", str(path))
    augmented = load_task_data(registry.tasks["chartqa_augmented"], None, "default", str(path))
    rows = fx.chartqa_rows()
    assert [s.id for s in human.samples] == [str(i) for i, r in enumerate(rows) if r["type"] == "human_test"]
    assert [s.id for s in augmented.samples] == [str(i) for i, r in enumerate(rows) if r["type"] == "augmented_test"]
    assert human.n_excluded == len(augmented.samples) == augmented.n_excluded == len(human.samples) == fx.N_ROWS


def test_an_exclude_if_template_is_checked_when_the_file_loads_and_names_a_missing_field(registry, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: t\ndataset: {path: x.parquet}\nmetrics: [{name: exact_match}]\n"
                   "doc: {prompt: '{{ question }}', references: answer, exclude_if: \"{{ type != }}\"}\n")
    with pytest.raises(TaskError, match="doc.exclude_if: template"):
        load_file(bad)
    typo = registry.tasks["chartqa_human"].model_copy(
        update={"doc": registry.tasks["chartqa_human"].doc.model_copy(update={"exclude_if": "{{ kind != 'x' }}"})})
    with pytest.raises(SampleError, match=r"row 0: .*kind.*columns: type, question, answer, image"):
        load_task_data(typo, None, "default", str(fx.write_chartqa(tmp_path)))


def test_the_protocols_score_one_chartqa_answer_differently(registry, tmp_path):
    """gold 100, answer 95.1: 4.9% of the gold answer (official: correct), 5.15% of the model's answer
    (Qwen-VL's call: wrong); gold '45%' and answer '0.45': percentages parsed either way."""
    rows = [{"type": "human_test", "question": "q", "answer": a, "image": fx.draw_image(1, fx.SIZE)}
            for a in ["100", "45%", "Peru"]]
    path = fx._write_parquet(tmp_path / "chart.parquet", rows, {"type": fx._STR, "question": fx._STR,
                                                                "answer": fx._STR, "image": datasets.Image()})
    answers = ["95.1", "0.45", "peru"]
    for task, expected in [("chartqa_human", [1.0, 1.0, 1.0]), ("chartqa_human_qwen_vl", [0.0, 1.0, 1.0])]:
        spec = registry.tasks[task]
        _, records = _score(spec, _predictions(spec, path, answers))
        assert [r["scores"]["relaxed_accuracy"] for r in records] == expected, task


def test_ai2d_counts_an_answer_naming_no_single_option_as_unparsed(registry, tmp_path):
    spec = registry.tasks["ai2d_test"]
    preds = _predictions(spec, fx.write_ai2d(tmp_path), ["A", "B or C", "I cannot tell"])
    summary, records = _score(spec, preds)
    assert [r["extracted"] for r in records] == ["A", None, None]  # never guessed
    assert summary["n_extraction_failures"] == 2 and summary["metrics"]["choice_accuracy"]["value"] == \
        pytest.approx(1 / 3)
    qwen = registry.tasks["ai2d_test_qwen_vl"]  # Qwen-VL compares the option text, lowercased
    _, records = _score(qwen, _predictions(qwen, fx.write_ai2d(tmp_path), ["Larva", "B", "4 "]))
    assert [r["scores"]["exact_match"] for r in records] == [1.0, 0.0, 1.0]


def test_a_dataset_whose_columns_do_not_match_names_the_task_the_column_and_the_columns(registry, tmp_path, capsys):
    from m3eval.cli import main
    from m3eval.demo.tiny_model import ensure_tiny_model

    rows = fx.docvqa_rows()
    for r in rows:
        r["answer"] = r.pop("answers")  # a copy with DocVQA's singular spelling
    feats = {"questionId": fx._STR, "question": fx._STR, "image": datasets.Image(), "answer": fx._STRS}
    bad = fx._write_parquet(tmp_path / "docvqa.parquet", [{k: r[k] for k in feats} for r in rows], feats)
    line = "task docvqa_val: row 0: no field 'answers' (columns: questionId, question, image, answer)"
    with pytest.raises(SampleError) as e:
        load_task_data(registry.tasks["docvqa_val"], None, "default", str(bad))
    assert str(e.value) == line
    rc = main(["run", "--model", "hf", "--model-args", f"pretrained={ensure_tiny_model()}", "--tasks", "docvqa_val",
               "--output", str(tmp_path / "runs"), "--dataset-override", f"docvqa_val={bad}", "--no-media"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert any(ln.strip().endswith(line) and ln.strip().startswith("docvqa_val (") for ln in err.splitlines()), err


def test_the_qwen_vl_reference_row_is_the_readme_table_under_the_qwen_vl_tasks(registry):
    file = ROOT / "results" / "reference" / "qwen_vl_paper_qwen_vl.json"
    ref = parse_reference(json.loads(file.read_text(encoding="utf-8")), file)
    assert ref.model == "Qwen-VL" and ref.reported and "aa00ed04091eea5fcdd32985e7915f1c53e7d599" in ref.source
    text_vqa = {t: e for t, e in ref.tasks.items() if t in README_QWEN_VL}
    assert set(text_vqa) == set(README_QWEN_VL)
    for name, entry in text_vqa.items():
        leaves = registry.expand(name)  # chartqa_qwen_vl: the group of the two parts, as the paper's one number
        specs = [registry.tasks[t] for t in leaves]
        assert {s.protocol for s in specs} == {"qwen_vl"} and len({s.primary for s in specs}) == 1, name
        (metric, m), = entry.metrics.items()
        assert metric == specs[0].primary and m.scale == 1, name  # these metrics are 0..1
        assert m.value == pytest.approx(README_QWEN_VL[name] / 100), name
