"""ROUGE-L (rouge-score, per-character for Chinese), BLEU and chrF (sacrebleu) and bad inputs."""
import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from m3eval.metrics import bleu, chrf, get_metric, rouge_l
from m3eval.metrics.base import MetricInput

PREDS = ["the cat sat on the mat", "a dog runs in the park", "two birds"]
REFS = [["the cat is on the mat", "there is a cat on the mat"], ["a dog is running in a park"], ["two birds fly", "birds"]]


def streams(refs):
    k = max(map(len, refs))
    return [[r[j] if j < len(r) else None for r in refs] for j in range(k)]


def test_rouge_l_english_is_rouge_score():
    sc = rouge_scorer.RougeScorer(["rougeL"])
    expected = np.mean([max(sc.score(r, p)["rougeL"].fmeasure for r in rs) for p, rs in zip(PREDS, REFS)])
    assert rouge_l(PREDS, REFS) == pytest.approx(expected, abs=1e-12)


def test_rouge_l_chinese_per_character():
    # pred 8 chars, ref 7 chars, LCS = 7 (一只猫 在垫子上): P = 7/8, R = 1, F = 2PR/(P+R) = 14/15
    assert rouge_l(["一只猫坐在垫子上"], [["一只猫在垫子上"]], lang="zh") == pytest.approx(14 / 15)
    assert rouge_l(["一只猫坐在垫子上"], [["一只猫在垫子上"]], lang="zh-CN") == pytest.approx(14 / 15)
    # the same text through rouge-score's default (English) tokenizer scores nothing
    assert rouge_l(["一只猫坐在垫子上"], [["一只猫在垫子上"]], lang="en") == 0.0
    # punctuation is not a token; latin words inside Chinese stay whole: LCS(猫 dog, 猫 dog 叫) = 2, F = 2*1*(2/3)/(5/3) = 0.8
    assert rouge_l(["猫，dog。"], [["猫 dog 叫"]], lang="zh") == pytest.approx(0.8)


def test_rouge_l_other_scripts_not_dropped():
    assert rouge_l(["кошка сидит"], [["кошка спит"]], lang="ru") == pytest.approx(0.5)


def test_bleu_equals_sacrebleu():
    assert bleu(PREDS, REFS) == sacrebleu.corpus_bleu(PREDS, streams(REFS)).score
    zp, zr = ["一只猫坐在垫子上。", "两只鸟"], [["一只猫在垫子上。"], ["两只鸟在飞"]]
    assert bleu(zp, zr, lang="zh") == sacrebleu.corpus_bleu(zp, streams(zr), tokenize="zh").score
    assert bleu(zp, zr, lang="zh") > 0
    assert bleu(PREDS, REFS, max_order=2) == sacrebleu.BLEU(max_ngram_order=2).corpus_score(PREDS, streams(REFS)).score


def test_bleu_registry_signature_and_rescore():
    items = [MetricInput(p, r) for p, r in zip(PREDS, REFS)]
    res = get_metric("bleu").compute(items)
    assert "tok:13a" in res.signature and "nrefs:var" in res.signature
    assert res.rescore(np.ones(3, dtype=int)) == pytest.approx(res.value, abs=1e-9)
    # a resampled corpus (sample 0 twice, 1 never) == sacrebleu on that corpus written out
    dup_p, dup_r = [PREDS[0], PREDS[0], PREDS[2]], [REFS[0], REFS[0], REFS[2]]
    assert res.rescore(np.array([2, 0, 1])) == pytest.approx(sacrebleu.corpus_bleu(dup_p, streams(dup_r)).score, abs=1e-9)
    zh = get_metric("bleu").compute([MetricInput("一只猫", ["一只狗"], None, "zh")])
    assert "tok:zh" in zh.signature
    ja = get_metric("bleu").compute([MetricInput("猫です", ["猫だ"], None, "ja")])
    assert "tok:char" in ja.signature


def test_bleu_mixed_languages_use_each_tokenizer():
    items = [MetricInput(PREDS[0], REFS[0], None, "en"), MetricInput("一只猫坐在垫子上", ["一只猫在垫子上"], None, "zh")]
    res = get_metric("bleu").compute(items)
    assert "13a:" in res.signature and "zh:" in res.signature
    assert res.value > bleu([PREDS[0], "一只猫坐在垫子上"], [REFS[0], ["一只猫在垫子上"]], lang="en")


def test_chrf_equals_sacrebleu():
    assert chrf(PREDS, REFS) == pytest.approx(sacrebleu.corpus_chrf(PREDS, streams(REFS)).score, abs=1e-12)
    assert get_metric("chrf").kind == "corpus" and get_metric("chrf").scale == 100


def test_bad_inputs():
    with pytest.raises(ValueError, match="2 predictions, 1 reference"):
        bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="empty list"):
        rouge_l([], [])
    with pytest.raises(TypeError, match="index 1"):
        rouge_l(["a", 5], [["a"], ["b"]])
    with pytest.raises(TypeError, match="reference 0 at index 0"):
        bleu(["a"], [[None]])
    with pytest.raises(ValueError, match="index 0 are empty"):
        bleu(["a"], [[]])
    with pytest.raises(TypeError, match="list of strings"):
        bleu("abc", [["a"]])
    # single reference, empty prediction, and a prediction far longer than its reference: finite scores
    assert rouge_l([""], [["a cat"]]) == 0.0
    assert bleu([""], [["a cat"]]) == 0.0
    long = " ".join(["cat"] * 2000)
    assert 0 <= bleu([long], [["a cat"]]) < 1 and 0 < rouge_l([long], [["a cat"]]) < 0.01
