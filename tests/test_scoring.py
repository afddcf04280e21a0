"""score_task: the results.json task entry and samples records, errors and extraction failures."""
import json
import re

import pytest

from m3eval.record import SampleFailure
from m3eval.scoring.task import score_by, score_task, split_by
from m3eval.types import Prediction

CHOICES = ["cat", "dog", "bird"]


def pred(i, text, refs, **kw):
    return Prediction(id=f"s{i}", prediction=text, prompt=f"q{i}", references=refs, **kw)


def vqa_preds():
    bad_image = SampleFailure(stage="data", type="MediaError", message="image: cannot identify image file")
    return [pred(0, "Two.", ["2"] * 3 + ["3"] * 7), pred(1, "dog", ["dog"] * 10),
            pred(2, "", ["cat"] * 10, error=bad_image), pred(3, "cat", ["dog"] * 10)]


def test_task_entry_format():
    summary, records = score_task(vqa_preds(), [{"name": "vqa_accuracy"}, {"name": "bleu"}], [], "en", seed=0)
    assert summary["n_samples"] == 4 and summary["n_errors"] == 1 and summary["n_extraction_failures"] == 0
    assert summary["primary_metric"] == "vqa_accuracy"
    v = summary["metrics"]["vqa_accuracy"]
    assert v["value"] == pytest.approx((0.9 + 1 + 0 + 0) / 4)  # the errored sample counts as 0
    assert set(v) == {"value", "ci", "ci_method", "scale", "higher_is_better", "kind"} and v["kind"] == "mean"
    assert v["ci_method"] == "bca" and b_method(summary) == "percentile"
    assert summary["clusters"] == {"key": "sample id (one sample per cluster)", "n": 4}
    assert v["ci"][0] <= v["value"] <= v["ci"][1]
    b = summary["metrics"]["bleu"]
    assert b["kind"] == "corpus" and b["scale"] == 100 and b["resamples"] == 1000 and "tok:13a" in b["signature"]
    assert [r["scores"]["vqa_accuracy"] for r in records] == pytest.approx([0.9, 1, 0, 0])
    r2 = records[2]
    assert r2["error"].startswith("MediaError: image:")
    assert r2["extracted"] is None and r2["scores"]["vqa_accuracy"] == 0
    assert set(records[0]) == {"id", "prompt", "prediction", "extracted", "references", "choices", "lang",
                               "instruction", "cluster", "error", "scores"}


def b_method(summary):
    return summary["metrics"]["bleu"]["ci_method"]


def test_deterministic_output():
    args = (vqa_preds(), [{"name": "vqa_accuracy"}, {"name": "rouge_l"}, {"name": "coco_cider"}], None, "en", 7)
    first = json.dumps(score_task(*args), sort_keys=True)
    assert first == json.dumps(score_task(*args), sort_keys=True)


def test_extraction_failures_counted_and_scored_zero():
    ps = [pred(0, "The answer is B", ["B"], choices=CHOICES), pred(1, "I do not know", ["A"], choices=CHOICES),
          pred(2, "bird", ["bird"], choices=CHOICES)]
    summary, records = score_task(ps, ["choice_accuracy"], [{"name": "choice_letter"}], "en")
    assert summary["n_extraction_failures"] == 1 and summary["n_errors"] == 0
    assert summary["metrics"]["choice_accuracy"]["value"] == pytest.approx(2 / 3)
    assert [r["extracted"] for r in records] == ["B", None, "C"]


def test_mixed_languages_each_sample_own_tokenizer():
    ps = [pred(0, "a cat on the mat", ["a cat is on the mat"], lang="en"),
          pred(1, "一只猫坐在垫子上", ["一只猫在垫子上"], lang="zh")]
    summary, records = score_task(ps, ["rouge_l"], None, "en")
    assert records[1]["scores"]["rouge_l"] == pytest.approx(14 / 15)
    by_lang = score_by(ps, "lang", ["rouge_l"])
    assert list(by_lang) == ["en", "zh"] and by_lang["zh"]["metrics"]["rouge_l"]["value"] == pytest.approx(14 / 15)


def test_score_by_instruction():
    ps = [pred(i, "dog", ["dog"] * 10, instruction=i % 2) for i in range(4)]
    ps[1].prediction = "cat"
    groups = split_by(ps, "instruction")
    assert [len(v) for v in groups.values()] == [2, 2]
    out = score_by(ps, "instruction", ["vqa_accuracy"])
    assert out[0]["metrics"]["vqa_accuracy"]["value"] == 1.0 and out[1]["metrics"]["vqa_accuracy"]["value"] == 0.5


def test_bad_specs_and_inputs():
    with pytest.raises(ValueError, match="no predictions"):
        score_task([], ["vqa_accuracy"])
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        score_task(vqa_preds(), ["nope"])
    with pytest.raises(ValueError, match="unknown args \\['max_ordr'\\]"):
        score_task(vqa_preds(), [{"name": "bleu", "args": {"max_ordr": 2}}])
    with pytest.raises(ValueError, match="named twice"):
        score_task(vqa_preds(), ["bleu", "bleu"])
    with pytest.raises(ValueError, match="primary_metric"):
        score_task(vqa_preds(), ["bleu"], primary_metric="rouge_l")
    bad = vqa_preds() + [pred(9, "x", ["x"])]  # one answer: vqa leave-one-out undefined
    with pytest.raises(ValueError, match="metric 'vqa_accuracy': sample 's9' \\(index 4\\)"):
        score_task(bad, ["vqa_accuracy"])
    nonstr = vqa_preds() + [pred(5, None, ["dog"] * 10)]
    summary, records = score_task(nonstr, ["vqa_accuracy"])  # recorded per-sample error, not a crash
    assert summary["n_errors"] == 2 and "not str" in records[-1]["error"]


def test_corpus_metric_errors_enter_corpus_as_empty():
    ps = [pred(0, "a cat on the mat", ["a cat is on the mat"]), pred(1, "a dog", ["a dog runs"])]
    full, _ = score_task(ps, ["bleu"])
    ps[1].error = SampleFailure(stage="generate", type="RequestError", message="timeout")
    err, recs = score_task(ps, ["bleu"])
    assert err["metrics"]["bleu"]["value"] < full["metrics"]["bleu"]["value"]
    assert err["n_errors"] == 1


def test_hf_evaluate_metric_is_a_clear_error_offline():
    # `evaluate` is not installed here (and could not fetch its scripts offline): a clear error, at compute
    with pytest.raises(RuntimeError, match="evaluate"):
        score_task(vqa_preds(), ["hf:bleu"])


@pytest.mark.parametrize("args, says", [
    ({"ignore_case": "false"}, "arg 'ignore_case' should be bool (as its default False), got 'false'"),
    ({"ignore_case": 1}, "arg 'ignore_case' should be bool"),
])
def test_metric_args_of_the_wrong_type_are_task_errors(tmp_path, args, says):
    """Issue 20, case 6: `ignore_case: 'false'` (a string) acted as true. `validate` says so."""
    import json as _json
    import subprocess
    import sys
    (tmp_path / "t.yaml").write_text("task: t\ndataset: {path: d.jsonl}\ndoc: {prompt: p, references: a}\n"
                                     f"metrics: [{{name: exact_match, args: {_json.dumps(args)}}}]\n")
    r = subprocess.run([sys.executable, "-m", "m3eval", "validate", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and says in r.stderr, r.stderr


@pytest.mark.parametrize("args, says", [
    ({"pattern": "("}, "invalid pattern '('"),
    ({"pattern": "a(b)", "group": 2}, "has no group 2"),
    ({"pattern": "a(?P<x>b)", "group": "y"}, "has no group 'y'"),
    ({"pattern": "a", "fallback": "drop"}, "fallback must be 'none' or 'keep'"),
])
def test_a_bad_filter_regex_is_found_when_the_task_is_read(args, says):
    """Issue 20, case 22: an invalid regex passed `validate` and was caught only after the model ran."""
    from m3eval.scoring.task import check_scoring
    from m3eval.tasks.schema import StepSpec
    with pytest.raises(ValueError, match=re.escape(says)):
        check_scoring([StepSpec(name="exact_match")], [StepSpec(name="regex", args=args)])
