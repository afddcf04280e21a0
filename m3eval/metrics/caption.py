"""Caption metrics via pycocoevalcap (the MS-COCO caption evaluation): BLEU-1..4, METEOR,
ROUGE_L, CIDEr (the CIDEr-D variant pycocoevalcap ships as "CIDEr"), always over the whole
task's corpus: CIDEr's IDF comes from all references, so per-batch scores would be wrong.

Tokenization as in pycocoevalcap's eval.py: Stanford PTBTokenizer (Java, lowercased, punctuation
tokens removed) for English and other space-delimited languages. Chinese and Japanese captions
are segmented per character by default (`segment: char`), or with jieba (`segment: jieba`); both
lowercase and drop punctuation, like PTB. Each sample uses its own `lang`.

Exactness: BLEU (BleuScorer) is the library's own code; ROUGE_L repeats rouge.py's arithmetic with
a faster but identical integer LCS (bit-identical); CIDEr by default uses a numpy form of
cider_scorer.py (equal within float rounding, tested at 1e-12; arg `backend: pycocoevalcap` runs
the library's Cider itself), which is also how its bootstrap re-scores resampled corpora.

Java: PTBTokenizer runs once per scoring call (the whole corpus in one process); METEOR's JVM
(~7 s to start) is started once per Python process and reused (m3eval/metrics/meteor.py).
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from array import array
from functools import lru_cache
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import numpy as np
import pycocoevalcap
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import precook

from m3eval.metrics.base import READS_ANSWERS, Metric, MetricInput, MetricResult, check_corpus, register_metric
from m3eval.metrics.text import CharTokenizer, base_lang

_PKG = Path(list(pycocoevalcap.__path__)[0])
_PTB_JAR = _PKG / "tokenizer" / "stanford-corenlp-3.4.1.jar"
METEOR_DIR = _PKG / "meteor"
# pycocoevalcap/tokenizer/ptbtokenizer.py PUNCTUATIONS: tokens dropped after PTB tokenization
_PTB_PUNCT = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                        ".", "?", "!", ",", ":", "-", "--", "...", ";"])
_SEGMENTED_LANGS = {"zh", "ja"}
# ptbtokenizer.py replaces "\n" only; Java also ends lines at these, which would shift every later caption
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x85\u2028\u2029]")
JAVA_UTF8 = ["-Dfile.encoding=UTF-8", "-Dsun.stdout.encoding=UTF-8", "-Dstdout.encoding=UTF-8"]


def java_binary(what: str) -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(f"{what} needs a Java runtime, and 'java' is not on PATH; install one "
                           f"(e.g. `apt-get install default-jre-headless`) or drop the metric from the task")
    return java


def ptb_tokenize(texts: list[str]) -> list[str]:
    """pycocoevalcap PTBTokenizer.tokenize, one Java run for all texts. Differences, none of
    which changes tokens: the temp file goes to the system temp dir (the library writes into its
    own package folder), and Java reads/writes UTF-8 whatever the locale."""
    if not texts:
        return []
    java = java_binary("PTBTokenizer (coco caption metrics)")
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write("\n".join(_LINE_BREAKS.sub(" ", t) for t in texts).encode("utf-8"))
        path = f.name
    try:
        cmd = [java, *JAVA_UTF8, "-cp", str(_PTB_JAR), "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", path]
        proc = subprocess.run(cmd, capture_output=True, check=False)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(f"PTBTokenizer failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')[-500:]}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) < len(texts):
        raise RuntimeError(f"PTBTokenizer returned {len(lines)} lines for {len(texts)} captions")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in _PTB_PUNCT) for line in lines[: len(texts)]]


_CHAR = CharTokenizer()


def segment_text(text: str, segment: str) -> str:
    """Space-joined tokens of a Chinese/Japanese caption: per character, or jieba words."""
    if segment == "char":
        return " ".join(_CHAR.tokenize(text))
    if segment == "jieba":
        import jieba

        jieba.setLogLevel(logging.WARNING)
        toks = [w.strip().lower() for w in jieba.lcut(text)]
        return " ".join(w for w in toks if w and not all(unicodedata.category(c)[0] in "PZS" for c in w))
    raise ValueError(f"segment must be 'char' or 'jieba', got {segment!r}")


@lru_cache(maxsize=1)  # the coco metrics of one task (or of one part of it) tokenize the same corpus once
def _tokenized(hyps: tuple, refs: tuple, langs: tuple, segment: str) -> tuple[list[str], list[list[str]]]:
    ptb_texts = [t for h, rs, lg in zip(hyps, refs, langs) if base_lang(lg) not in _SEGMENTED_LANGS for t in (h, *rs)]
    ptb_iter = iter(ptb_tokenize(ptb_texts))
    out_h, out_r = [], []
    for h, rs, lg in zip(hyps, refs, langs):
        if base_lang(lg) in _SEGMENTED_LANGS:
            out_h.append(segment_text(h, segment))
            out_r.append([segment_text(r, segment) for r in rs])
        else:
            out_h.append(next(ptb_iter))
            out_r.append([next(ptb_iter) for _ in rs])
    return out_h, out_r


def tokenize_items(items: list[MetricInput], segment: str = "char") -> tuple[list[str], list[list[str]]]:
    """Tokenized hypotheses (None -> '') and references of a corpus."""
    return _tokenized(tuple(it.prediction or "" for it in items), tuple(tuple(it.references) for it in items),
                      tuple(it.lang for it in items), segment)


def _dicts(hyps: list[str], refs: list[list[str]]) -> tuple[dict, dict]:
    return {i: list(r) for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}


# ---- BLEU-n (pycocoevalcap Bleu: BleuScorer, option "closest") ----

def coco_bleu_items(items: list[MetricInput], n: int = 4, segment: str = "char") -> MetricResult:
    if n not in (1, 2, 3, 4):
        raise ValueError(f"coco_bleu: n must be 1..4, got {n!r}")
    hyps, refs = tokenize_items(items, segment)
    scorer = BleuScorer(n=4)  # as pycocoevalcap Bleu(4).compute_score
    for h, rs in zip(hyps, refs):
        scorer += (h, rs)
    score, per = scorer.compute_score(option="closest", verbose=0)
    # per-sample statistics, to re-score resampled corpora with BleuScorer.compute_score's formula
    st = np.array([[c["testlen"], scorer._single_reflen(c["reflen"], "closest", c["testlen"]),
                    *c["guess"], *c["correct"]] for c in scorer.ctest], dtype=np.float64)

    def rescore(counts: np.ndarray) -> float:
        tot = counts @ st
        small, tiny = 1e-9, 1e-15  # bleu_scorer.py constants
        b = 1.0
        for k in range(n):
            b *= float(tot[6 + k] + tiny) / (tot[2 + k] + small)
        b **= 1.0 / n
        ratio = (tot[0] + tiny) / (tot[1] + small)
        return b * math.exp(1 - 1 / ratio) if ratio < 1 else b

    return MetricResult(float(score[n - 1]), [float(x) for x in per[n - 1]], None, rescore)


# ---- ROUGE_L (pycocoevalcap rouge.py: LCS F-measure, beta 1.2; mean over images) ----

def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists: the same integer as
    pycocoevalcap's my_lcs dynamic programme, computed bit-parallel (Hyyroe 2004) on Python ints."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def _rouge_l_score(candidate: str, refs: list[str], beta: float = 1.2) -> float:
    """pycocoevalcap Rouge.calc_score, operation for operation (tokens from split(" "), max of
    precisions and max of recalls taken separately), with the LCS computed by lcs_length."""
    token_c = candidate.split(" ")
    prec, rec = [], []
    for reference in refs:
        token_r = reference.split(" ")
        lcs = lcs_length(token_r, token_c)
        prec.append(lcs / float(len(token_c)))
        rec.append(lcs / float(len(token_r)))
    p, r = max(prec), max(rec)
    if p != 0 and r != 0:
        return ((1 + beta ** 2) * p * r) / float(r + beta ** 2 * p)
    return 0.0


def coco_rouge_l_items(items: list[MetricInput], segment: str = "char") -> MetricResult:
    hyps, refs = tokenize_items(items, segment)
    per = [_rouge_l_score(h, rs) for h, rs in zip(hyps, refs)]
    return MetricResult(float(np.mean(np.array(per))), per)  # np.mean as rouge.py compute_score


# ---- CIDEr (pycocoevalcap Cider; fast exact re-scoring for the bootstrap) ----

class _CiderResampler:
    """CIDEr-D of a corpus where sample i appears counts[i] times, computed with numpy.

    Same formula as pycocoevalcap cider_scorer.py: IDF from the (resampled) references' document
    frequencies, ref_len = log(#images), tf-idf vectors per n-gram order, clipped cosine
    min(vh, vr)*vr, Gaussian length penalty with sigma 6 on the bigram counts (the script's
    `length` counts n-grams of index 1), mean over orders, / #refs, * 10. Since idf >= 0,
    min(tf_h*idf, tf_r*idf)*tf_r*idf == idf^2 * min(tf_h, tf_r) * tf_r, so each resample is a few
    bincounts. Equal to pycocoevalcap up to float rounding (tests check 1e-9)."""

    def __init__(self, hyps: list[str], refs: list[list[str]], n: int = 4, sigma: float = 6.0):
        vocab: dict[tuple, int] = {}
        # typed arrays, not lists: an entry is 4 or 8 bytes, not a pointer to an int object (a corpus
        # has hundreds of n-grams a sample); a key is (sample or reference) * n + the n-gram's order
        owner = array("i")  # the sample of each reference j
        hk, rk, mk = array("q"), array("q"), array("q")
        hg, ht, rg, rt, mg, mw, ds, dg = (array("i") for _ in range(8))
        pen = array("d")
        for i, (h, rs) in enumerate(zip(hyps, refs)):
            hc = precook(h, n)
            hlen = sum(c for g, c in hc.items() if len(g) == 2)
            for g, c in hc.items():
                hk.append(i * n + len(g) - 1)
                hg.append(vocab.setdefault(g, len(vocab)))
                ht.append(c)
            seen: set[int] = set()
            for r in rs:
                j = len(owner)
                owner.append(i)
                rc = precook(r, n)
                rlen = sum(c for g, c in rc.items() if len(g) == 2)
                pen.append(np.e ** (-(float(hlen - rlen) ** 2) / (2 * sigma ** 2)))
                for g, c in rc.items():
                    gid = vocab.setdefault(g, len(vocab))
                    rk.append(j * n + len(g) - 1)
                    rg.append(gid)
                    rt.append(c)
                    if gid not in seen:
                        seen.add(gid)
                        ds.append(i)
                        dg.append(gid)
                    if g in hc:
                        mk.append(j * n + len(g) - 1)
                        mg.append(gid)
                        mw.append(min(hc[g], c) * c)
        self.n, self.S, self.J, self.G = n, len(hyps), len(owner), len(vocab)
        del vocab

        def a(x: array, t: Any = None) -> np.ndarray:
            return np.frombuffer(x, dtype={"q": np.int64, "i": np.intc, "d": np.float64}[x.typecode]).astype(
                t or np.intp, copy=t is not None)

        self.h_key, self.h_g, self.h_tf2 = a(hk), a(hg), a(ht, np.float64) ** 2
        self.r_key, self.r_g, self.r_tf2 = a(rk), a(rg), a(rt, np.float64) ** 2
        self.m_key, self.m_g, self.m_w = a(mk), a(mg), a(mw, np.float64)
        self.d_s, self.d_g, self.owner, self.pen = a(ds), a(dg), a(owner), a(pen, np.float64)
        self.nrefs = np.bincount(self.owner, minlength=self.S).astype(np.float64)
        self.log = np.zeros(1)  # log(k) at k: see _logs

    def _logs(self, most: int) -> np.ndarray:
        """log(0..most) (log(0) as 0) from the C library's log. Document frequencies and corpus sizes are
        whole numbers: looked up, not numpy's log, which is vectorised per CPU (AVX-512 or not) and may
        differ in the last bit between machines, as may a BLAS dot product. Every other step of a
        resample is exactly rounded (IEEE) or summed in a fixed order, so a score is the same anywhere."""
        if most >= len(self.log):
            self.log = np.array([0.0, *(math.log(k) for k in range(1, max(most, 2 * len(self.log)) + 1))])
        return self.log

    def per_sample(self, counts: np.ndarray) -> np.ndarray:
        c = counts.astype(np.float64)
        total = int(counts.sum())  # resampled clusters may hold more samples than the corpus
        logs = self._logs(total)
        df = np.bincount(self.d_g, weights=c[self.d_s], minlength=self.G)
        idf2 = (logs[total] - logs[np.maximum(1.0, df).astype(np.intp)]) ** 2
        n, S, J = self.n, self.S, self.J
        nh = np.sqrt(np.bincount(self.h_key, weights=self.h_tf2 * idf2[self.h_g], minlength=S * n)).reshape(S, n)
        nr = np.sqrt(np.bincount(self.r_key, weights=self.r_tf2 * idf2[self.r_g], minlength=J * n)).reshape(J, n)
        val = np.bincount(self.m_key, weights=self.m_w * idf2[self.m_g], minlength=J * n).reshape(J, n)
        den = nh[self.owner] * nr
        val = np.where(den > 0, val / np.where(den > 0, den, 1.0), val) * self.pen[:, None]
        return np.bincount(self.owner, weights=val.mean(axis=1), minlength=S) / self.nrefs * 10.0

    def __call__(self, counts: np.ndarray) -> float:
        return math.fsum((counts * self.per_sample(counts)).tolist()) / float(counts.sum())  # exact: any CPU


def coco_cider_items(items: list[MetricInput], segment: str = "char", backend: str = "fast") -> MetricResult:
    """backend "fast": _CiderResampler on all-ones counts (equal to pycocoevalcap within float
    rounding, ~3x faster, and reused by the bootstrap); "pycocoevalcap": the library's Cider."""
    hyps, refs = tokenize_items(items, segment)
    if backend == "pycocoevalcap":
        score, per_arr = Cider().compute_score(*_dicts(hyps, refs))
        state: dict[str, _CiderResampler] = {}

        def rescore(counts: np.ndarray) -> float:  # built on first use: only the bootstrap needs it
            if "r" not in state:
                state["r"] = _CiderResampler(hyps, refs)
            return state["r"](counts)

        return MetricResult(float(score), [float(x) for x in per_arr], None, rescore)
    if backend != "fast":
        raise ValueError(f"coco_cider: backend must be 'fast' or 'pycocoevalcap', got {backend!r}")
    res = _CiderResampler(hyps, refs)
    per = res.per_sample(np.ones(len(hyps), dtype=np.int64))
    return MetricResult(float(np.mean(per)), [float(x) for x in per], None, res)


def cider(predictions: list[str], references: list[list[str]], lang: str = "en", segment: str = "char") -> float:
    """pycocoevalcap CIDEr(-D) of the whole corpus (10x scale: typical captioning values 0..~1.5)."""
    check_corpus(predictions, references)
    return coco_cider_items([MetricInput(p, list(r), None, lang) for p, r in zip(predictions, references)],
                            segment).value


COCO_SOURCE = (f"pycocoevalcap {_version('pycocoevalcap')} "
               "(PyPI; salaniz/pycocoevalcap, the MS-COCO caption evaluation) ")

register_metric(Metric("coco_bleu", coco_bleu_items, kind="corpus", resamples=1000,
                       reads=READS_ANSWERS, description="pycocoevalcap BLEU-n (arg n, default 4), corpus",
                       source=COCO_SOURCE + "bleu/bleu_scorer.py"))
for _n in (1, 2, 3, 4):
    register_metric(Metric(f"coco_bleu_{_n}", (lambda n: lambda items, segment="char": coco_bleu_items(
        items, n=n, segment=segment))(_n), kind="corpus", resamples=1000,
        reads=READS_ANSWERS,
        description=f"pycocoevalcap BLEU-{_n}, corpus", source=COCO_SOURCE + "bleu/bleu_scorer.py"))
register_metric(Metric("coco_rouge_l", coco_rouge_l_items, reads=READS_ANSWERS,
                       description="pycocoevalcap ROUGE_L (mean over images)",
                       source=COCO_SOURCE + "rouge/rouge.py"))
register_metric(Metric("coco_cider", coco_cider_items, kind="corpus", resamples=200,
                       reads=READS_ANSWERS,
                       description="pycocoevalcap CIDEr(-D), whole corpus (IDF over all references)",
                       bounds="0-10 (CIDEr-D x10, not a 0-1 score; typically 0-1.5)", clip_max=2.0,
                       source=COCO_SOURCE + "cider/cider_scorer.py"))
