"""Scoring a run: instruction spread, per-language scores, cross-lingual consistency, groups."""
from __future__ import annotations

import statistics
import textwrap

import pytest

from m3eval.record import TaskResult
from m3eval.scoring.groups import group_scores
from m3eval.scoring.run import consistency, score_one
from m3eval.tasks.registry import Registry
from m3eval.types import Prediction

TASK = """
task: {name}
language: {lang}
dataset: {{path: d.jsonl}}
doc: {{prompt: "{{{{ q }}}}", references: a}}
metrics: [{{name: exact_match}}]
consistency_with: {other}
"""


@pytest.fixture()
def registry(tmp_path) -> Registry:
    for name, lang, other in [("qa_en", "en", "null"), ("qa_zh", "zh", "qa_en"), ("other", "en", "null")]:
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(TASK.format(name=name, lang=lang, other=other)))
    (tmp_path / "g.yaml").write_text("group: both\ntasks: [qa_en, qa_zh]\n")
    (tmp_path / "top.yaml").write_text("group: top\ntasks: [both, other]\n")
    return Registry.discover([tmp_path], builtin=False)


def pred(i: str, text: str, ref: str, lang: str = "en", instruction: int | None = None) -> Prediction:
    return Prediction(id=i, prediction=text, prompt="p", references=[ref], lang=lang, instruction=instruction)


def test_instruction_spread_is_mean_std_min_max_over_variants(registry):
    # 4 items x 3 instructions; instruction k gets k+1 of the 4 right.
    preds = [pred(f"{i}#i{k}", "yes" if i <= k else "no", "yes", instruction=k) for k in range(3) for i in range(4)]
    entry = score_one(registry.tasks["qa_en"], preds, None, seed=0)
    spread = entry.instructions
    assert spread.per_instruction == [0.25, 0.5, 0.75] and spread.n == 3
    assert spread.mean == pytest.approx(0.5) and spread.min == 0.25 and spread.max == 0.75
    assert spread.std == pytest.approx(statistics.pstdev([0.25, 0.5, 0.75]))
    assert entry.metrics["exact_match"].value == pytest.approx(0.5)


def test_mixed_language_task_reports_each_language(registry):
    preds = [pred("1", "a", "a", "en"), pred("2", "b", "x", "en"), pred("3", "猫", "猫", "zh")]
    entry = score_one(registry.tasks["qa_en"], preds, None, seed=0)
    assert entry.languages["en"]["exact_match"].value == 0.5
    assert entry.languages["zh"]["exact_match"].value == 1.0


def test_consistency_counts_items_right_or_wrong_in_both_languages(registry, tmp_path):
    run = tmp_path / "run"
    en = [pred("1", "a", "a"), pred("2", "b", "b"), pred("3", "x", "c"), pred("4", "d", "d")]
    zh = [pred("1", "甲", "甲", "zh"), pred("2", "错", "乙", "zh"), pred("3", "错", "丙", "zh"), pred("4", "丁", "丁", "zh")]
    tasks = {"qa_en": score_one(registry.tasks["qa_en"], en, run, 0),
             "qa_zh": score_one(registry.tasks["qa_zh"], zh, run, 0)}
    out = consistency(list(registry.tasks.values()), tasks, run)
    assert list(out) == ["qa_zh|qa_en"]
    # agree on 1 (both right), 3 (both wrong), 4 (both right); disagree on 2
    assert out["qa_zh|qa_en"].correctness_agreement == 0.75 and out["qa_zh|qa_en"].n == 4


def test_groups_average_their_members_and_nest(registry):
    def entry(v: float) -> TaskResult:
        return TaskResult.model_validate({"hash": "h", "version": 1, "primary_metric": "m",
                                          "metrics": {"m": {"value": v, "scale": 1}}})
    tasks = {"qa_en": entry(0.2), "qa_zh": entry(0.4), "other": entry(0.9)}
    groups = group_scores(registry, tasks)
    assert groups["both"].value == pytest.approx(0.3)
    assert groups["top"].value == pytest.approx((0.3 + 0.9) / 2)  # a member group counts once
    assert set(group_scores(registry, {"qa_en": entry(0.2)})) == set()  # incomplete groups are not reported
