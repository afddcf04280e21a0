"""The `independent` flag (metrics/base.py Metric): a metric flagged independent may be scored block by
block (a streaming scorer scores e.g. 1024 samples at a time and concatenates the results), so for every
flagged metric: per_sample of the whole == the blocks' per_sample concatenated, value == mean(per_sample)
exactly (base.mean, math.fsum), no details / sample_details / signature / rescore, no None score.

Every flagged metric must have inputs in INPUTS below: a newly flagged metric without them fails here."""
from __future__ import annotations

import json
import random
from typing import Any, Callable

import pytest

import m3eval.metrics  # noqa: F401  (registers the built-in metrics)
from m3eval.metrics.base import Metric, MetricInput, MetricResult, all_metrics, get_metric, mean, metric_names

N = 40
SPLITS = {"1-7-13-rest": [1, 7, 13], "singletons": [1] * (N - 1), "halves": [N // 2]}


def _forty(templates: list[MetricInput], seed: int = 0) -> list[MetricInput]:
    """N items drawn from the templates (each template at least once, then at random), every ninth with
    no prediction (None, scores 0); each with its own id and cluster."""
    rng = random.Random(seed)
    assert len(templates) <= N
    picks = list(templates) + [rng.choice(templates) for _ in range(N - len(templates))]
    rng.shuffle(picks)
    out = []
    for i, t in enumerate(picks):
        prediction = None if i % 9 == 4 else t.prediction
        out.append(MetricInput(prediction, list(t.references), None if t.choices is None else list(t.choices),
                               t.lang, dict(t.media_info) if t.media_info else None, id=f"s{i}", cluster=f"c{i}"))
    return out


def _qa(pairs: list[tuple[str, list[str]]]) -> list[MetricInput]:
    return [MetricInput(p, refs) for p, refs in pairs]


TEN_CAT = ["cat"] * 3 + ["kitten"] * 2 + ["dog"] * 4 + ["two"]  # partial credit: 3 of 10, 2 of 10, 4 of 10, 1


def _vqa_style() -> list[MetricInput]:
    """Leave-one-out VQA scores: 10 answers each, the prediction matching 0..10 of them."""
    return _qa([("cat", TEN_CAT), ("kitten", TEN_CAT), ("dog", TEN_CAT), ("Dog.", TEN_CAT), ("2", TEN_CAT),
                ("two", TEN_CAT), ("bird", TEN_CAT), ("yes", ["yes"] * 10), ("Yes", ["yes"] * 10),
                ("no", ["yes"] * 9 + ["no"]), ("unanswerable", ["unanswerable"] * 6 + ["blue"] * 4),
                ("the blue car", ["blue car"] * 5 + ["car"] * 5), ("a red one", ["red"] * 2 + ["red one"] * 8)])


def _short_answers() -> list[MetricInput]:
    return _qa([("cat", ["cat"]), ("Cat", ["cat"]), ("cat.", ["cat"]), (" cat  ", ["cat"]), ("dog", ["cat"]),
                ("two", ["2", "two"]), ("2", ["two"]), ("blue car", ["blue  car", "car"]), ("red", ["blue"]),
                ("Yes", ["yes"]), ("the dog", ["dog"]), ("is a cat", ["cat"])])


def _aokvqa_da() -> list[MetricInput]:
    refs = ["cat"] * 4 + ["kitten"] * 2 + ["pet"] * 1 + ["dog"] * 3
    return _qa([("cat", refs), ("kitten", refs), ("pet", refs), ("dog", refs), ("Cat", refs), ("bird", refs)])


CHOICES = ["red", "blue", "green", "yellow"]


def _choice() -> list[MetricInput]:
    return [MetricInput(p, [gold], list(CHOICES)) for p, gold in [
        ("B", "B"), ("A", "B"), ("blue", "B"), ("red", "A"), ("(C)", "C"), ("D", "yellow"), ("C", "yellow"),
        ("E", "A"), ("maybe green", "C"), ("c", "C")]]


def _aokvqa_mc() -> list[MetricInput]:
    return [MetricInput(p, [gold], list(CHOICES)) for p, gold in [
        ("blue", "blue"), ("red", "blue"), ("green", "C"), ("yellow", "C"), ("Blue", "blue"), ("B", "blue")]]


def _gqa() -> list[MetricInput]:
    return _qa([("yes", ["yes"]), ("Yes", ["yes"]), ("cat ", ["cat"]), ("cat", ["cat"]), ("left", ["right"]),
                ("table", ["table", "desk"]), ("desk", ["table"])])


def _textvqa() -> list[MetricInput]:
    ten = ["nokia"] * 4 + ["Nokia phone"] * 3 + ["samsung"] * 2 + ["12"]
    return _qa([("Nokia", ten), ("nokia phone", ten), ("samsung", ten), ("12", ten), ("twelve", ten),
                ("apple", ten), ("nokia", ["nokia"] * 10)])


def _grounding() -> list[MetricInput]:
    # reference box 100,100,300,300 in a 1000 x 500 image
    size = {"image_size": [1000, 500]}
    ref, ref_wh = "100,100,300,300", "[100, 100, 300, 300, 1000, 500]"
    return [
        MetricInput("<ref>the man</ref><box>(100,200),(300,600)</box>", [ref], media_info=size),  # grid: exact
        MetricInput("<box>(120,220),(310,610)</box>", [ref_wh]),  # grid, size in the reference: hit
        MetricInput("<box>(500,500),(900,900)</box>", [ref], media_info=size),  # grid: miss
        MetricInput("[100, 100, 300, 300]", [ref]),  # pixels: exact
        MetricInput("[150, 150, 350, 350]", [ref]),  # pixels: IoU 0.39, miss
        MetricInput("[0.1, 0.2, 0.3, 0.6]", [ref], media_info=size),  # normalized: exact
        MetricInput("[0.5, 0.5, 0.9, 0.9]", [ref_wh]),  # normalized: miss
        MetricInput("I cannot tell", [ref], media_info=size),  # no box: 0
    ]


def _rouge() -> list[MetricInput]:
    return [MetricInput("a man riding a horse", ["a man rides a horse on the beach"]),
            MetricInput("a dog on the grass", ["a dog runs on the grass", "a brown dog"]),
            MetricInput("two cats sleeping", ["a plate of food"]),
            MetricInput("a plate of food", ["a plate of food"]),
            MetricInput("一只猫在睡觉", ["一只猫在沙发上睡觉"], lang="zh"),
            MetricInput("Le chat dort", ["le chat dort sur le lit"], lang="fr")]


def _anls() -> list[MetricInput]:
    return _qa([("Invoice 2019", ["invoice 2019"]), ("invoce 2019", ["invoice 2019"]), ("2019", ["invoice 2019"]),
                ("total: $12.50", ["$12.50", "12.50"]), ("12.5", ["12.50"]), ("John Smith", ["john  smith"]),
                ("Jon Smith", ["John Smith"]), ("nothing", ["John Smith"])])


def _relaxed() -> list[MetricInput]:
    return _qa([("12", ["12"]), ("12.4", ["12"]), ("13", ["12"]), ("50%", ["0.5"]), ("0.52", ["0.5"]),
                ("0", ["0"]), ("1", ["0"]), ("Yes", ["yes"]), ("no", ["yes"]), ("1,000", ["1000"]),
                ("98", ["100", "97"])])


def _topk() -> list[MetricInput]:
    # prediction: the 10 best class indices, best first; reference: the label index
    ranking = "3 17 5 8 2 9 11 0 4 6"
    return _qa([(ranking, ["3"]), (ranking, ["17"]), (ranking, ["2"]), (ranking, ["6"]), (ranking, ["42"]),
                ("5 3", ["3"])])


def _i2t() -> list[MetricInput]:
    caps = ["a caption", "another caption"]
    return _qa([(json.dumps({"i2t": r, "t2i": [r, r + 1]}), caps) for r in (0, 1, 3, 4, 7, 9, 10, 25)])


# name -> (inputs builder, args); every metric flagged independent must be here (a family shares a builder)
Builder = Callable[[], list[MetricInput]]
INPUTS: dict[str, tuple[Builder, dict[str, Any]]] = {
    "exact_match": (_short_answers, {"ignore_case": True}),
    "open_qa_accuracy": (_short_answers, {}),
    "gqa_accuracy": (_gqa, {}),
    "vqa_accuracy": (_vqa_style, {}),
    "vizwiz_accuracy": (_vqa_style, {}),
    "qwen_vl_vqa_score": (_vqa_style, {}),
    "textvqa_accuracy": (_textvqa, {}),
    "aokvqa_da": (_aokvqa_da, {}),
    "choice_accuracy": (_choice, {}),
    "aokvqa_mc": (_aokvqa_mc, {}),
    "grounding_acc": (_grounding, {}),
    "rouge_l": (_rouge, {}),
    "anls": (_anls, {}),
    "relaxed_accuracy": (_relaxed, {}),
    "top1_accuracy": (_topk, {}),
    "top5_accuracy": (_topk, {}),
    "i2t_r1": (_i2t, {}),
    "i2t_r5": (_i2t, {}),
    "i2t_r10": (_i2t, {}),
}


def _flagged() -> list[Metric]:
    return [m for m in all_metrics() if m.independent]


FLAGGED = [m.name for m in _flagged()]


def test_every_flagged_metric_has_inputs():
    assert FLAGGED, "no metric is flagged independent"
    missing = [n for n in FLAGGED if n not in INPUTS]
    assert not missing, f"metrics flagged independent without inputs in INPUTS: {missing}"
    stale = [n for n in INPUTS if n not in FLAGGED]
    assert not stale, f"INPUTS names metrics not flagged independent (or not registered): {stale}"


def _check_result(name: str, r: MetricResult, n: int) -> list[float]:
    assert r.details is None and r.sample_details is None, f"{name}: details"
    assert r.rescore is None and r.signature is None, f"{name}: rescore / signature"
    assert r.per_sample is not None and len(r.per_sample) == n, f"{name}: per_sample"
    assert all(s is not None for s in r.per_sample), f"{name}: a None per-sample score"
    scores = [float(s) for s in r.per_sample if s is not None]
    assert r.value == mean(scores), f"{name}: value {r.value!r} != mean(per_sample) {mean(scores)!r}"
    return scores


def _blocks(items: list[MetricInput], sizes: list[int]) -> list[list[MetricInput]]:
    out, start = [], 0
    for size in sizes:
        out.append(items[start:start + size])
        start += size
    if start < len(items):
        out.append(items[start:])
    assert sum(len(b) for b in out) == len(items)
    return out


@pytest.mark.parametrize("name", FLAGGED)
@pytest.mark.parametrize("split", sorted(SPLITS))
def test_independent_metric_scores_in_blocks(name: str, split: str):
    metric = get_metric(name)
    assert metric.independent and metric.kind == "mean"
    build, args = INPUTS[name]
    items = _forty(build())
    assert any(it.prediction is None for it in items)
    whole = _check_result(name, metric.compute(items, **args), len(items))
    assert len(set(whole)) > 1, f"{name}: every score is {whole[0]}; the inputs cannot tell blocks apart"
    concat: list[float] = []
    for block in _blocks(items, SPLITS[split]):
        concat += _check_result(name, metric.compute(block, **args), len(block))
    assert concat == whole, f"{name}: block scores differ from the whole's"
    value = metric.compute(items, **args).value
    assert value == mean(concat) == mean(whole)


def test_graded_metrics_give_partial_scores():
    """The graded metrics' inputs reach scores strictly between 0 and 1 (not just right / wrong)."""
    for name in ("vqa_accuracy", "vizwiz_accuracy", "qwen_vl_vqa_score", "textvqa_accuracy", "aokvqa_da",
                 "rouge_l", "anls"):
        build, args = INPUTS[name]
        scores = get_metric(name).compute(_forty(build()), **args).per_sample or []
        assert any(s is not None and 0 < s < 1 for s in scores), name


def test_independent_needs_kind_mean():
    def compute(items: list[MetricInput]) -> MetricResult:
        return MetricResult(0.0, None)

    with pytest.raises(ValueError, match="'x'"):
        Metric("x", compute, kind="corpus", independent=True)
    assert Metric("y", compute, kind="corpus").independent is False
    assert Metric("z", compute, independent=True).kind == "mean"


@pytest.mark.parametrize("name", [
    "coco_cider", "coco_bleu", "coco_bleu_4", "coco_meteor", "bleu", "chrf",  # corpus
    "coco_rouge_l",  # np.mean: its pairwise summation depends on how the samples are split
    "mmmu_accuracy", "pope_accuracy", "pope_yes_ratio",  # details
    "pope_f1", "mme_score", "circular_accuracy", "first_pass_accuracy",  # grouped / corpus statistics
    "t2i_r1", "mean_recall",  # weighted by caption counts
    "judge", "circular_accuracy_judged",  # call a judge model
])
def test_not_independent(name: str):
    assert name in metric_names()
    assert get_metric(name).independent is False
