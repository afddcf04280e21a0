"""Group scores: macro / micro aggregation, mixed metrics refused or normalized by name, intervals."""
from __future__ import annotations

import textwrap

import pytest

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


def captions() -> list[Prediction]:
    return [Prediction(id=f"c{i}", prediction=f"a cat number {i} on a mat" if i % 2 else "a dog", prompt="p",
                       references=[f"a cat number {i} on a mat", f"the cat {i} sits on the mat"]) for i in range(12)]


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
    assert ok.normalize == "scale" and ok.metric == "primary / scale (mixed: exact_match, coco_cider)"
    assert ok.value == pytest.approx((0.9 + tasks["cap"].metrics["coco_cider"].value) / 2)
    # CIDEr enters the group's interval re-scored on each resampled corpus
    assert ok.ci[0] <= ok.value <= ok.ci[1] and "ci_note" not in ok.dump()
    cap = tasks["cap"].metrics["coco_cider"]
    assert cap.ci[1] - cap.ci[0] > 0 and ok.ci[1] - ok.ci[0] > 0


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
