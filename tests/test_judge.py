"""The judge metric: parsing, FairEval position swapping, the call cache and failure counting
with a rule-based judge backend; then end to end against a local `transformers serve`."""
from __future__ import annotations

import json

import pytest

from m3eval.scoring.judge import parse_pair, parse_single, pairwise_outcome, run_folder
from m3eval.metrics.base import MetricInput, get_metric
from m3eval.models.registry import register_backend
from m3eval.scoring.run import score_one
from m3eval.tasks.registry import Registry
from m3eval.types import Prediction
from serving import stop, transformers_serve


class RuleJudge:
    """A real backend (through the public registry) whose grades follow fixed rules, so the
    metric's bookkeeping can be checked exactly. bias=True always prefers Assistant 1."""

    name = "rule-judge"
    prompts: list[str] = []

    def __init__(self, bias: bool = False):
        self.bias = bias

    def info(self) -> dict:
        return {"backend": "rule", "id": f"rule-judge-bias{self.bias}", "revision": "r1"}

    def generate(self, batch, gen):
        out = []
        for msg in batch:
            text = msg[0]["text"]
            RuleJudge.prompts.append(text)
            if "Assistant 1" in text:
                a = text.split("[Assistant 1]\n")[1].split("\n[End")[0]
                b = text.split("[Assistant 2]\n")[1].split("\n[End")[0]
                grade = lambda x: 8 if x == "cat" else 6 if "cat" in x else 2  # noqa: E731
                out.append("9 3" if self.bias else f"{grade(a)} {grade(b)}")
            elif "garbled" in text:
                out.append("I refuse to rate")
            else:
                out.append("Rating: [[10]] right" if "Assistant's answer: cat" in text else "Rating: [[2]]")
        return out


register_backend("rule-judge", RuleJudge)


def test_parsers():
    assert parse_single("Rating: [[7]] ok", 10) == 7 and parse_single("Rating: 7", 10) is None
    assert parse_single("[[11]]", 10) is None
    assert parse_pair("\n8 6\nbecause", 10) == (8, 6) and parse_pair("8, 6.5", 10) == (8, 6.5)
    assert parse_pair("Assistant 1: 8", 10) is None and parse_pair("12 3", 10) is None
    assert pairwise_outcome((8, 4), (4, 8)) == 1.0 and pairwise_outcome((9, 3), (9, 3)) == 0.5
    assert pairwise_outcome((4, 8), (8, 4)) == 0.0


def items():
    return [MetricInput("cat", ["a cat"], prompt="What animal?"), MetricInput("dog", ["a cat"], prompt="What animal?"),
            MetricInput(None, ["a cat"], prompt="What animal?"), MetricInput("garbled", ["x"], prompt="Q?")]


def test_single_mode_cache_and_failures(tmp_path):
    m = get_metric("judge")
    RuleJudge.prompts.clear()
    with run_folder(tmp_path):
        r = m.compute(items(), backend="rule-judge", model_args={}, mode="single")
    assert r.per_sample == [1.0, 0.2, 0.0, 0.0]  # None prediction: not judged; garbled: a failure
    assert "judge=rule-judge:rule-judge-biasFalse@r1" in r.signature and "failures=1/3" in r.signature
    assert len(RuleJudge.prompts) == 3
    info = json.loads((tmp_path / "judge" / "info.json").read_text())
    assert info["calls_made"] == 3 and info["failures"] == 1
    with run_folder(tmp_path):  # resumed: every call comes from the cache
        again = m.compute(items(), backend="rule-judge", model_args={}, mode="single")
    assert again.per_sample == r.per_sample and len(RuleJudge.prompts) == 3
    assert json.loads((tmp_path / "judge" / "info.json").read_text())["calls_made"] == 0


def test_pairwise_swaps_positions_and_cancels_position_bias(tmp_path):
    m = get_metric("judge")
    RuleJudge.prompts.clear()
    with run_folder(tmp_path):
        fair = m.compute(items()[:2], backend="rule-judge", model_args={}, mode="pairwise")
        biased = m.compute(items()[:2], backend="rule-judge", model_args={"bias": True}, mode="pairwise")
    assert fair.per_sample == [1.0, 0.0]  # the judge prefers the answer containing "cat"
    assert biased.per_sample == [0.5, 0.5]  # always-first preference cancels over both orders
    shown_first = [p.split("[Assistant 1]\n")[1].split("\n")[0] for p in RuleJudge.prompts[:4]]
    assert sorted(shown_first) == ["a cat", "a cat", "cat", "dog"]  # both orders were asked


# ---- end to end: transformers serve with the tiny VLM --------------------------------------

@pytest.fixture(scope="module")
def served(tiny_model):
    with transformers_serve(tiny_model) as got:
        yield got


def test_judge_end_to_end_against_transformers_serve(served, tiny_model, tmp_path):
    url, proc = served
    spec = Registry.discover().tasks["okvqa_judged"]  # the shipped YAML, its rubric, judge pointed here
    vqa, judge = spec.metrics
    args = {**judge.args, "model_args": {"base_url": url, "model": str(tiny_model)}, "mode": "pairwise",
            "max_new_tokens": 8, "batch_size": 2}
    spec = spec.model_copy(update={"metrics": [vqa, judge.model_copy(update={"args": args})]})
    preds = [Prediction(id=str(i), prediction=p, prompt="What color is the shape?", references=["red"] * 10)
             for i, p in enumerate(["red", "blue", "a green square"])]
    entry = score_one(spec, preds, tmp_path, 0)  # a scoring failure raises here
    m = entry.metrics["judge"]
    calls = (tmp_path / "judge" / "calls.jsonl").read_text().splitlines()
    assert len(calls) == 5  # 3 answers x 2 orders; "red" vs "red" is one prompt in both orders
    info = json.loads((tmp_path / "judge" / "info.json").read_text())
    assert info["judged"] == 3 and info["calls_made"] == 5 and info["judge"] == f"openai:{tiny_model.name}"
    assert str(tiny_model) not in m.signature  # the judge served by its path: recorded by its name
    assert f"failures={info['failures']}/3" in m.signature  # a random tiny model rarely writes "8 6"
    assert 0.0 <= m.value <= 1.0 and m.ci is not None
    stop(proc)  # the judge is gone: re-scoring must come from the cache
    again = score_one(spec, preds, tmp_path, 0)
    assert again.metrics["judge"] == m
    assert json.loads((tmp_path / "judge" / "info.json").read_text())["calls_made"] == 0


def test_scoring_a_part_of_the_task_keeps_info_describing_the_whole(tmp_path):
    from m3eval.scoring.judge import subsets
    m = get_metric("judge")
    with run_folder(tmp_path):
        m.compute(items(), backend="rule-judge", model_args={}, mode="single")
        whole = json.loads((tmp_path / "judge" / "info.json").read_text())
        with subsets():  # e.g. the per-language breakdown: answers come from the cache
            m.compute(items()[:1], backend="rule-judge", model_args={}, mode="single")
    assert json.loads((tmp_path / "judge" / "info.json").read_text()) == whole
    assert whole["judged"] == sum(it.prediction is not None for it in items())
