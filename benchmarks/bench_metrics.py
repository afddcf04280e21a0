"""Metric-suite timings on synthetic data (prints figures; not a test).

    python benchmarks/bench_metrics.py [--captions 5000] [--vqa 100000] [--text-rich 50000]

Targets (issue 3): 5,000 captions x 5 refs, BLEU-4 + ROUGE_L + CIDEr <= 5 s (METEOR timed
separately); 100,000 VQA predictions <= 3 s; plus the time the bootstrap CIs add.
Issue 21: ANLS on 50,000 answers and relaxed accuracy on 50,000 pairs, each < 2 s.
Issue 22: MME at full size (2,374 questions), every metric with its CI, < 2 s.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3eval.metrics import get_metric  # noqa: E402
from m3eval.metrics import caption, vqa  # noqa: E402
from m3eval.metrics.base import MetricInput  # noqa: E402
from m3eval.metrics.stats import bootstrap_ci, corpus_bootstrap_ci  # noqa: E402
from m3eval.scoring.task import score_task  # noqa: E402
from m3eval.types import Prediction  # noqa: E402

NOUNS = "man woman dog cat horse bus car train plate pizza table street beach field kitchen bird boy girl tree bench".split()
ADJS = "red small large white black young old wooden busy green yellow two several".split()
VERBS = "riding sitting standing holding eating walking playing driving lying looking".split()
PREPS = "on in near under beside with at next to".split()


def caption_text(rng: np.random.Generator) -> str:
    w = lambda xs: xs[int(rng.zipf(1.6) - 1) % len(xs)]  # noqa: E731
    words = ["A", w(ADJS), w(NOUNS), "is", w(VERBS), w(PREPS), "a", w(ADJS), w(NOUNS)]
    if rng.random() < 0.5:
        words += [w(PREPS), "the", w(NOUNS)]
    return " ".join(words) + "."


def timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    print(f"  {label:<48} {dt:8.2f} s")
    return out, dt


def bench_captions(n: int) -> None:
    rng = np.random.default_rng(0)
    items = [MetricInput(caption_text(rng), [caption_text(rng) for _ in range(5)]) for _ in range(n)]
    print(f"captions: {n} predictions x 5 references (English, PTBTokenizer)")
    _, t_tok = timed("PTBTokenizer (whole corpus, one Java run)", lambda: caption.tokenize_items(items))
    res = {}
    total = t_tok
    for name in ("coco_bleu_4", "coco_rouge_l", "coco_cider"):
        res[name], dt = timed(f"{name} (tokenized corpus cached)", lambda name=name: get_metric(name).compute(items))
        total += dt
    print(f"  {'= BLEU-4 + ROUGE_L + CIDEr incl. tokenization':<48} {total:8.2f} s   (target <= 5 s)")
    for name, lib in (("bleu", "sacrebleu"), ("rouge_l", "rouge-score"), ("chrf", "sacrebleu")):
        timed(f"{name} ({lib}, not part of the target)", lambda name=name: get_metric(name).compute(items))
    timed("METEOR JVM start + first call (once per process)",
          lambda: get_metric("coco_meteor").compute(items[:2]))
    res["coco_meteor"], _ = timed("coco_meteor", lambda: get_metric("coco_meteor").compute(items))
    print("  bootstrap CI added time:")
    for name in ("coco_bleu_4", "coco_cider", "coco_meteor"):
        m = get_metric(name)
        timed(f"{name} CI ({m.resamples} re-scorings)",
              lambda m=m, name=name: corpus_bootstrap_ci(res[name].rescore, n, m.resamples, 0))
    timed("coco_rouge_l CI (1000 resamples of the mean)", lambda: bootstrap_ci(res["coco_rouge_l"].per_sample))
    b = get_metric("bleu").compute(items)
    timed("bleu (sacrebleu) CI (1000 re-scorings)", lambda: corpus_bootstrap_ci(b.rescore, n, 1000, 0))


def bench_vqa(n: int) -> None:
    rng = np.random.default_rng(1)
    vocab = [f"answer{i}" for i in range(3000)] + ["2", "yes", "no", "red", "dog", "tennis", "don’t"]
    forms = {"2": ["two", "Two.", "2"], "yes": ["Yes", "yes.", "Yes, it is"], "don’t": ["dont"]}
    preds = []
    for i in range(n):
        gold = vocab[int(rng.zipf(1.3)) % len(vocab)]
        answers = [gold] * int(rng.integers(3, 11)) + [vocab[int(rng.integers(len(vocab)))] for _ in range(10)]
        answers = answers[:10]
        p = rng.choice(forms.get(gold, [gold, gold + ".", "The " + gold])) if rng.random() < 0.6 else "a " + vocab[int(rng.integers(len(vocab)))]
        preds.append(Prediction(id=str(i), prediction=str(p), prompt="", references=answers))
    items = [MetricInput(p.prediction, p.references) for p in preds]
    print(f"VQA: {n} predictions x 10 answers")
    vqa.normalize_answer.cache_clear()
    r, _ = timed("vqa_accuracy (cold normalization cache)", lambda: get_metric("vqa_accuracy").compute(items))
    timed("vqa_accuracy (warm cache)", lambda: get_metric("vqa_accuracy").compute(items))
    timed("bootstrap CI (1000 resamples)", lambda: bootstrap_ci(r.per_sample))
    vqa.normalize_answer.cache_clear()
    timed("score_task: vqa_accuracy + CI, cold (target <= 3 s)", lambda: score_task(preds, ["vqa_accuracy"]))


def _doc_answer(rng: np.random.Generator) -> str:
    k = rng.random()
    if k < 0.3:
        return str(int(rng.integers(1, 100000)))
    if k < 0.4:
        return f"{int(rng.integers(1, 29))}/{int(rng.integers(1, 13))}/{int(rng.integers(1950, 2024))}"
    words = [NOUNS[int(rng.integers(len(NOUNS)))].capitalize() if rng.random() < 0.3 else
             ADJS[int(rng.integers(len(ADJS)))] for _ in range(int(rng.integers(1, 7)))]
    return " ".join(words)


def _near(rng: np.random.Generator, text: str) -> str:
    chars = list(text)
    for _ in range(int(rng.integers(1, 4))):
        if chars:
            chars[int(rng.integers(len(chars)))] = "abcxyz01"[int(rng.integers(8))]
    return "".join(chars)


def bench_text_rich(n: int) -> None:
    rng = np.random.default_rng(2)
    items = []
    for _ in range(n):  # DocVQA-like: 1-3 gold answers; exact, near-miss, case/space variants, unrelated
        answers = [_doc_answer(rng) for _ in range(int(rng.integers(1, 4)))]
        k = rng.random()
        gold = answers[0]
        pred = (gold if k < 0.35 else " " + gold.upper() + " " if k < 0.5 else _near(rng, gold) if k < 0.75
                else _doc_answer(rng) + (" " + _doc_answer(rng) if rng.random() < 0.3 else ""))
        items.append(MetricInput(pred, answers))
    print(f"text-rich VQA: {n} predictions")
    r, _ = timed("anls, 1-3 gold answers (target < 2 s)", lambda: get_metric("anls").compute(items))
    print(f"  {'  = ANLS':<48} {r.value:8.4f}")
    pairs = []
    for _ in range(n):  # ChartQA-like: numbers, percentages, labels
        k = rng.random()
        if k < 0.6:
            v = float(rng.choice([rng.integers(0, 1000), rng.uniform(-100, 100)]))
            target = f"{v:g}" if rng.random() < 0.8 else f"{v:g}%"
            pred = f"{v * (1 + rng.uniform(-0.1, 0.1)):.2f}" + ("%" if target.endswith("%") else "")
        else:
            target = NOUNS[int(rng.integers(len(NOUNS)))]
            pred = target.capitalize() if rng.random() < 0.5 else ADJS[int(rng.integers(len(ADJS)))]
        pairs.append(MetricInput(pred, [target]))
    for order in ("official", "qwen_vl"):
        r, _ = timed(f"relaxed_accuracy {order} (target < 2 s)",
                     lambda order=order: get_metric("relaxed_accuracy").compute(pairs, argument_order=order))
        print(f"  {'  = relaxed accuracy':<48} {r.value:8.4f}")


# MME's 14 subtasks and their images (two questions each): 1,187 images, 2,374 questions
MME_IMAGES = {"existence": 30, "count": 30, "position": 30, "color": 30, "posters": 147, "celebrity": 170,
              "scene": 200, "landmark": 200, "artwork": 200, "OCR": 20, "commonsense_reasoning": 70,
              "numerical_calculation": 20, "text_translation": 20, "code_reasoning": 20}


def bench_mme() -> None:
    """Issue 22: MME at full size (2,374 synthetic questions), every MME metric and its CI, target < 2 s."""
    from m3eval.metrics import mme_scores

    rng = np.random.default_rng(3)
    answers = ["Yes", "No", "yes", "no", "Yes, there is.", "No, it is not.", "maybe", "", "The answer is yes."]
    rows = [{"subtask": s, "image": f"{s}/{k:04d}.jpg", "answer": gold, "prediction": str(rng.choice(answers))}
            for s, n in MME_IMAGES.items() for k in range(n) for gold in ("Yes", "No")]
    items = [MetricInput(r["prediction"], [r["answer"]], id=str(i), cluster=r["image"], category=r["subtask"])
             for i, r in enumerate(rows)]
    clusters = [it.cluster for it in items]
    print(f"MME: {len(rows)} questions, {len(MME_IMAGES)} subtasks")
    out, total = timed("mme_scores", lambda: mme_scores(rows))
    for name in ("mme_score", "mme_perception", "mme_cognition", "mme_acc", "mme_acc_plus"):
        m = get_metric(name)
        _, dt = timed(f"{name} + CI ({m.resamples} re-scorings, images)", lambda m=m: (
            res := m.compute(items), corpus_bootstrap_ci(res.rescore, len(items), m.resamples, 0, clusters=clusters)))
        total += dt
    print(f"  {'= every MME metric with its CI':<48} {total:8.2f} s   (target < 2 s)")
    print(f"  {'  = perception, cognition':<48} {out['perception']:8.2f} {out['cognition']:8.2f}")


def bench_mmbench(n: int = 4000) -> None:
    """Issue 22: MMBench CircularEval on n synthetic questions (2-4 options, every circular shift a row): the
    rule-based extraction, circular accuracy and its CI (questions resampled), target < 2 s."""
    from m3eval.metrics.mmbench import mmbench_choice

    rng = np.random.default_rng(4)
    forms = ["{x}", "The answer is {x}.", "({x}) {t}", "{t}", "I think {x} because it is shown in the image", "no idea"]
    rows = []
    for g in range(n):
        k = int(rng.integers(2, 5))
        options = [f"option {g}-{j}" for j in range(k)]
        for s in range(k):
            shifted = options[s:] + options[:s]
            gold = chr(65 + shifted.index(options[0]))
            x = gold if rng.random() < 0.8 else chr(65 + int(rng.integers(k)))
            text = forms[int(rng.integers(len(forms)))].format(x=x, t=shifted[ord(x) - 65])
            rows.append((str(g + s * 1_000_000), str(g), text, gold, shifted))
    print(f"MMBench CircularEval: {n} questions, {len(rows)} rows (every shift)")
    extracted, total = timed("mmbench_choice filter (the authors' rules)",
                             lambda: [mmbench_choice(text, ch) for _, _, text, _, ch in rows])
    items = [MetricInput(e, [gold], ch, id=i, cluster=c) for e, (i, c, _, gold, ch) in zip(extracted, rows)]
    m = get_metric("circular_accuracy")
    r, dt = timed("circular_accuracy", lambda: m.compute(items))
    total += dt
    clusters = [it.cluster for it in items]
    _, dt = timed(f"circular_accuracy CI ({m.resamples} re-scorings, questions)",
                  lambda: corpus_bootstrap_ci(r.rescore, len(items), m.resamples, 0, clusters=clusters))
    total += dt
    print(f"  {'= extraction + CircularEval + CI':<48} {total:8.2f} s   (target < 2 s)")
    print(f"  {'  = circular accuracy':<48} {r.value:8.4f}")

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--captions", type=int, default=5000)
    ap.add_argument("--vqa", type=int, default=100000)
    ap.add_argument("--text-rich", type=int, default=50000)
    a = ap.parse_args()
    bench_mme()
    bench_mmbench()
    bench_text_rich(a.text_rich)
    bench_vqa(a.vqa)
    bench_captions(a.captions)
