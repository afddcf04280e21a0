"""Caption metrics against pycocoevalcap itself (real Java for PTBTokenizer and METEOR)."""
import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from m3eval.metrics import cider, get_metric
from m3eval.metrics.base import MetricInput
from m3eval.metrics import caption, meteor

PREDS = ["A man is riding a horse.", "Two dogs play in the snow!", "A red bus on the street.",
         "A woman holding an umbrella.", "A plate of food with broccoli.", "A cat sleeping on a sofa."]
REFS = [["A man rides a brown horse.", "A person riding a horse on a beach.", "Man on horseback."],
        ["Two dogs running in the snow.", "Dogs playing in snow.", "A pair of dogs in the snow."],
        ["A red double decker bus on a street.", "A bus driving down the road.", "Red bus in the city."],
        ["A woman with an umbrella in the rain.", "A lady holding an umbrella.", "Woman walking in the rain."],
        ["A plate with broccoli and meat.", "Food on a white plate.", "A dish of broccoli and rice."],
        ["A cat asleep on a couch.", "A grey cat sleeping on the sofa.", "A cat lying on a sofa."]]


def coco_tokenized(preds, refs):
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    return gts, res


@pytest.fixture(scope="module")
def official():
    return coco_tokenized(PREDS, REFS)


def items(preds=PREDS, refs=REFS, lang="en"):
    return [MetricInput(p, list(r), None, lang) for p, r in zip(preds, refs)]


def test_tokenization_matches_ptbtokenizer(official):
    gts, res = official
    hyps, refs = caption.tokenize_items(items())
    assert hyps == [res[i][0] for i in range(len(PREDS))]
    assert refs == [gts[i] for i in range(len(PREDS))]


def test_cider_equals_pycocoevalcap_and_whole_corpus_matters(official):
    gts, res = official
    expected, per = Cider().compute_score(gts, res)
    # default backend: numpy CIDEr-D, equal to the library up to float summation order
    assert cider(PREDS, REFS) == pytest.approx(expected, rel=1e-12)
    r = get_metric("coco_cider").compute(items())
    assert r.per_sample == pytest.approx([float(x) for x in per], rel=1e-12, abs=1e-15)
    lib = get_metric("coco_cider").compute(items(), backend="pycocoevalcap")
    assert lib.value == expected and lib.per_sample == [float(x) for x in per]
    # per-batch scoring (batches of 3, averaged) gives a different number: IDF depends on the corpus
    batched = np.mean([cider(PREDS[:3], REFS[:3]), cider(PREDS[3:], REFS[3:])])
    assert abs(batched - expected) > 1e-3


def test_cider_rescore_is_exact(official):
    gts, res = official
    r = get_metric("coco_cider").compute(items())
    assert r.rescore(np.ones(6, dtype=int)) == pytest.approx(r.value, rel=1e-9)
    counts = np.array([2, 0, 1, 3, 0, 0])  # a resampled corpus, written out with fresh keys
    keys = [i for i, c in enumerate(counts) for _ in range(c)]
    dup_g = {k: gts[i] for k, i in enumerate(keys)}
    dup_r = {k: res[i] for k, i in enumerate(keys)}
    assert r.rescore(counts) == pytest.approx(Cider().compute_score(dup_g, dup_r)[0], rel=1e-9)


def test_bleu_and_rouge_equal_pycocoevalcap(official):
    gts, res = official
    bl, bl_per = Bleu(4).compute_score(gts, res, verbose=0)
    for n in (1, 2, 3, 4):
        r = get_metric(f"coco_bleu_{n}").compute(items())
        assert r.value == bl[n - 1] and r.per_sample == [float(x) for x in bl_per[n - 1]]
    r4 = get_metric("coco_bleu").compute(items(), n=4)
    counts = np.array([0, 1, 2, 1, 1, 1])
    keys = [i for i, c in enumerate(counts) for _ in range(c)]
    dup = Bleu(4).compute_score({k: gts[i] for k, i in enumerate(keys)}, {k: res[i] for k, i in enumerate(keys)}, verbose=0)
    assert r4.rescore(counts) == pytest.approx(dup[0][3], rel=1e-12)
    rg, rg_per = Rouge().compute_score(gts, res)
    ours = get_metric("coco_rouge_l").compute(items())
    assert ours.value == rg and ours.per_sample == [float(x) for x in rg_per]  # bit-identical


def test_lcs_equals_pycocoevalcap_my_lcs():
    import random

    from pycocoevalcap.rouge.rouge import my_lcs
    rnd = random.Random(0)
    for _ in range(3000):
        a = [rnd.choice("abcde") for _ in range(rnd.randint(0, 25))]
        b = [rnd.choice("abcdef") for _ in range(rnd.randint(0, 25))]
        assert caption.lcs_length(a, b) == my_lcs(a, b)


def test_meteor_runs_once_via_java(official):
    gts, res = official
    ours = get_metric("coco_meteor").compute(items())
    proc = meteor.meteor_process()
    again = get_metric("coco_meteor").compute(items())
    assert meteor.meteor_process() is proc and proc.alive()  # one JVM, reused
    m = Meteor()
    try:
        expected, per = m.compute_score(gts, res)
    finally:
        m.meteor_p.kill()
    assert 0 < ours.value < 1 and ours.value == pytest.approx(expected, abs=1e-9) and again.value == ours.value
    assert ours.per_sample == pytest.approx(per, abs=1e-9)
    assert ours.rescore(np.ones(6, dtype=int)) == pytest.approx(ours.value, abs=1e-12)
    # the Python re-scoring of resampled corpora equals the jar's EVAL on those corpora
    stats = proc.stats(*caption.tokenize_items(items()))
    for counts in ([2, 0, 1, 3, 0, 0], [0, 0, 0, 0, 6, 0], [1, 1, 1, 1, 1, 1]):
        java = proc.evaluate([s for s, c in zip(stats, counts) for _ in range(c)])[0]
        assert ours.rescore(np.array(counts)) == pytest.approx(java, abs=1e-12)


def test_chinese_segmentation():
    zp, zr = ["一只猫在沙发上睡觉。", "两只狗在雪地里玩"], [["一只猫正在沙发上睡觉", "猫在睡觉"], ["两只狗在雪中奔跑", "狗在玩雪"]]
    hyps, refs = caption.tokenize_items(items(zp, zr, "zh"))
    assert hyps[0] == "一 只 猫 在 沙 发 上 睡 觉"  # per character, punctuation dropped
    assert cider(zp, zr, lang="zh") > 0
    assert cider(zp, zr, lang="en") != cider(zp, zr, lang="zh")  # English path would not segment
    hyps_j, _ = caption.tokenize_items(items(zp, zr, "zh"), segment="jieba")
    assert "沙发" in hyps_j[0].split()
    assert get_metric("coco_cider").compute(items(zp, zr, "zh"), segment="jieba").value > 0


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="METEOR.*Java"):
        meteor._MeteorProcess()
    with pytest.raises(RuntimeError, match="PTBTokenizer.*Java"):
        caption.tokenize_items(items(["never seen before"], [["a unique caption"]]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="1 predictions, 2 reference"):
        cider(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="n must be 1..4"):
        get_metric("coco_bleu").compute(items(), n=5)
    # an empty prediction scores 0 but stays in the corpus
    r = get_metric("coco_cider").compute(items([""] + PREDS[1:]))
    assert r.per_sample[0] == 0.0 and r.value > 0
