"""Group scores: macro / micro aggregation, mixed metrics refused or normalized by name, intervals;
the terminal table's group rows."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from m3eval.metrics import get_metric, metric_names
from m3eval.record import RESULTS_FORMAT, Results, RunBlock
from m3eval.report.tables import format_results, only_tasks
from m3eval.scoring.groups import group_errors, group_scores
from m3eval.scoring.run import score_one
from m3eval.tasks.registry import Registry
from m3eval.types import Prediction

TASK = """
task: {name}
dataset: {{path: d.jsonl}}
doc: {{prompt: "{{{{ q }}}}", references: a}}
metrics: [{{name: {metric}}}]
"""


@pytest.fixture()
def registry(tmp_path) -> Registry:
    for name, metric in [("small", "exact_match"), ("big", "exact_match"), ("cap", "coco_cider"),
                         ("rl", "rouge_l")]:
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(TASK.format(name=name, metric=metric)))
    (tmp_path / "macro.yaml").write_text("group: macro_g\ntasks: [small, big]\n")
    (tmp_path / "micro.yaml").write_text("group: micro_g\ntasks: [small, big]\naggregate: micro\n")
    (tmp_path / "nested.yaml").write_text("group: nested\ntasks: [macro_g, rl]\naggregate: micro\n"
                                          "normalize: scale\n")
    (tmp_path / "mixed.yaml").write_text("group: mixed\ntasks: [small, cap]\n")
    (tmp_path / "mixed_ok.yaml").write_text("group: mixed_ok\ntasks: [small, cap]\nnormalize: scale\n")
    return Registry.discover([tmp_path], builtin=False)


def preds(n: int, right: int, prefix: str = "s") -> list[Prediction]:
    return [Prediction(id=f"{prefix}{i}", prediction="a" if i < right else "b", prompt="p", references=["a"])
            for i in range(n)]


def captions(every: int = 2) -> list[Prediction]:
    """Twelve images, every `every`-th captioned right: CIDEr-D 3.125 (every=2), 1.5625 (every=4)."""
    return [Prediction(id=f"c{i}", prediction=f"a cat number {i} on a mat" if i % every == 1 else "a dog",
                       prompt="p", references=[f"a cat number {i} on a mat", f"the cat {i} sits on the mat"])
            for i in range(12)]


@pytest.fixture()
def run(registry, tmp_path):
    run_dir = tmp_path / "run"
    tasks = {"small": score_one(registry.tasks["small"], preds(10, 9), run_dir, 0),
             "big": score_one(registry.tasks["big"], preds(90, 45), run_dir, 0),
             "rl": score_one(registry.tasks["rl"], preds(20, 10), run_dir, 0),
             "cap": score_one(registry.tasks["cap"], captions(), run_dir, 0)}
    return tasks, run_dir


def test_macro_and_micro(registry, run):
    tasks, run_dir = run
    groups = group_scores(registry, tasks, run_dir, 0)
    assert groups["macro_g"].value == pytest.approx((0.9 + 0.5) / 2)
    assert groups["micro_g"].value == pytest.approx((9 + 45) / 100)  # size-weighted: lm-eval's default
    assert groups["macro_g"].aggregate == "macro" and groups["micro_g"].aggregate == "micro"
    assert groups["macro_g"].metric == "exact_match" and groups["micro_g"].n_samples == 100
    # micro over a member group weighs it by its samples (100) against rl's 20
    assert groups["nested"].value == pytest.approx((100 * 0.7 + 20 * 0.5) / 120)


def test_mixed_primary_metrics_refused_unless_normalized_by_name(registry, run):
    tasks, run_dir = run
    groups = group_scores(registry, tasks, run_dir, 0)
    bad = groups["mixed"]
    assert bad.value is None and bad.ci is None
    assert "exact_match (small)" in bad.error and "coco_cider (cap)" in bad.error
    assert "normalize: scale" in bad.error and "mixed.yaml" in bad.error
    assert group_errors(groups) == [f"group mixed: {bad.error}"]
    ok = groups["mixed_ok"]
    assert ok.normalize == "scale" and ok.metric == "normalized score"
    assert ok.normalization == {"exact_match": "value / scale", "coco_cider": "min(value / scale / 2, 1)"}
    # no plain mean across scales: CIDEr-D 3.125 is clipped at 2 as the board clips it, a normalized 1.0
    assert tasks["cap"].metrics["coco_cider"].value == pytest.approx(3.125)
    assert ok.value == pytest.approx((0.9 + 1.0) / 2)
    # CIDEr enters the group's interval re-scored on each resampled corpus, each resample clipped
    assert ok.ci[0] <= ok.value <= ok.ci[1] <= 1.0 and "ci_note" not in ok.dump()
    cap = tasks["cap"].metrics["coco_cider"]
    assert cap.ci[1] - cap.ci[0] > 0 and ok.ci[1] - ok.ci[0] > 0


def test_an_unbounded_metric_below_its_clip_counts_linearly(registry, run):
    tasks, run_dir = run
    tasks = {**tasks, "cap": score_one(registry.tasks["cap"], captions(every=4), run_dir, 0)}
    assert tasks["cap"].metrics["coco_cider"].value == pytest.approx(1.5625)
    ok = group_scores(registry, tasks, run_dir, 0)["mixed_ok"]
    assert ok.value == pytest.approx((0.9 + 1.5625 / 2) / 2)
    assert 0 <= ok.ci[0] <= ok.value <= ok.ci[1] <= 1.0


def test_the_clip_is_the_boards(registry):
    """Groups know the board's normalization without importing dashboard/: each metric declares it."""
    board = yaml.safe_load((Path(__file__).resolve().parents[1] / "dashboard" / "leaderboard.yaml").read_text())
    rules = board["normalization"]
    assert rules["coco_cider"] == {"rule": "clip", "max": get_metric("coco_cider").clip_max}
    for name, rule in rules.items():
        if name in metric_names():
            assert get_metric(name).clip_max == (rule["max"] if isinstance(rule, dict) else None), name


def test_the_table_names_how_each_group_was_made(registry, run):
    tasks, run_dir = run
    results = Results(format=RESULTS_FORMAT, run=RunBlock(name="r"), tasks=tasks,
                      groups=group_scores(registry, tasks, run_dir, 0))
    rows = {line.split()[1]: line for line in format_results(results).splitlines() if line.startswith("[group] ")
            and not line.split()[1].endswith(":")}
    assert "macro mean of exact_match" in rows["macro_g"] and "95.00" in rows["mixed_ok"]
    assert "macro mean of normalized scores" in rows["mixed_ok"]
    assert "no mean: different primary metrics" in rows["mixed"]
    table = format_results(results)
    assert "[group] mixed_ok: normalized scores are value / scale, coco_cider as min(value / scale / 2, 1)" in table
    assert "[group] mixed:" not in table and "primary / scale" not in table
    for name in metric_names():  # every label fits in 40 characters
        assert len(f"micro mean of {name}") <= 40, name
    assert len("no mean: different primary metrics") <= 40


def test_a_step_prints_its_own_tasks(registry, run):
    """The demo's grounding step writes into the VLM's run folder: it shows its task and the groups within."""
    tasks, run_dir = run
    results = Results(format=RESULTS_FORMAT, run=RunBlock(name="r"), tasks=tasks,
                      groups=group_scores(registry, tasks, run_dir, 0))
    step = only_tasks(results, ["small", "big"])
    assert list(step.tasks) == ["small", "big"] and set(step.groups) == {"macro_g", "micro_g"}
    table = format_results(step)
    assert "rl" not in table.split() and "cap" not in table.split() and "[group] nested" not in table


def test_group_interval_from_the_tasks_resamples(registry, run):
    tasks, run_dir = run
    g = group_scores(registry, tasks, run_dir, 0)["macro_g"]
    assert g.ci[0] < g.value < g.ci[1]
    assert g == group_scores(registry, tasks, run_dir, 0)["macro_g"]  # seeded
    # wider than the bigger task's own interval would allow for the mean alone, narrower than the small one's
    small, big = tasks["small"].metrics["exact_match"].ci, tasks["big"].metrics["exact_match"].ci
    width = g.ci[1] - g.ci[0]
    assert (big[1] - big[0]) / 2 < width < (small[1] - small[0])
    assert group_scores(registry, tasks)["macro_g"].ci_note == "no interval: no per-sample records"


def test_shared_items_across_tasks_move_together(registry, tmp_path):
    """Two tasks over the same items (one item in two languages): identical outcomes give a group
    interval as wide as one task's, not the sqrt(2)-narrower one of independent tasks."""
    run_dir = tmp_path / "run2"
    same = {t: score_one(registry.tasks[t], preds(60, 30), run_dir, 0) for t in ("small", "big")}
    g = group_scores(registry, same, run_dir, 0)["macro_g"]
    one = same["small"].metrics["exact_match"].ci
    assert g.ci[1] - g.ci[0] == pytest.approx(one[1] - one[0], rel=0.15)
    other = {"small": same["small"], "big": score_one(registry.tasks["big"], preds(60, 30, "t"), run_dir, 0)}
    g2 = group_scores(registry, other, run_dir, 0)["macro_g"]
    assert g2.ci[1] - g2.ci[0] < 0.85 * (g.ci[1] - g.ci[0])
