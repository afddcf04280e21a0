"""Language-aware text metrics: ROUGE-L (rouge-score), BLEU and chrF (sacrebleu corpus scores).

Tokenization by language (each sample's own `lang`, so a mixed-language task is scored right):
- ROUGE-L: English uses rouge-score's default tokenizer unchanged (lowercase, [a-z0-9]+ tokens).
  That tokenizer drops every non-ASCII character, so for Chinese and Japanese (and Thai, Lao,
  Khmer, Burmese: no spaces between words) each character is a token; for every other language
  tokens are Unicode word runs (\\w+), lowercased. Punctuation is never a token.
- BLEU: sacrebleu's tokenizer "zh" for Chinese (the WMT convention); "char" for Japanese (and
  Thai/Lao/Khmer/Burmese), because "ja-mecab" needs MeCab, which is not installed; "13a"
  (sacrebleu's default) for everything else, Korean included (it is space-delimited).
  The tokenizer is in the stored sacrebleu signature.
- chrF: character n-grams, no tokenizer; sacrebleu defaults (chrF2, char order 6, word order 0).
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Callable

import numpy as np

from m3eval.metrics.base import READS_ANSWERS, Metric, MetricInput, MetricResult, check_corpus, mean, register_metric

if TYPE_CHECKING:  # sacrebleu is imported when a metric of it runs: a run's process starts 60 ms sooner
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.base import Metric as SacreMetric

_CHAR_LANGS = {"zh", "ja", "th", "lo", "km", "my"}


def base_lang(lang: str | None) -> str:
    """'zh-CN', 'zh_Hant', 'ZH' -> 'zh'."""
    return re.split(r"[-_]", (lang or "en").strip().lower(), maxsplit=1)[0] or "en"


# A character is its own token when it belongs to a script written without spaces.
_CHAR_SCRIPT = (r"\u2E80-\u2FDF\u3040-\u30FF\u3100-\u312F\u3190-\u31FF\u3400-\u4DBF\u4E00-\u9FFF"
                r"\uF900-\uFAFF\uFF66-\uFF9F\U00020000-\U0003134F"
                r"\u0E00-\u0E7F\u0E80-\u0EFF\u1780-\u17FF\u1000-\u109F")
_CHAR_TOKEN = re.compile(rf"[{_CHAR_SCRIPT}]|[^\W{_CHAR_SCRIPT}]+")
_WORD_TOKEN = re.compile(r"\w+")


class CharTokenizer:
    """Per-character tokens for CJK / Thai-like scripts; runs of other letters/digits stay words."""

    def tokenize(self, text: str) -> list[str]:
        return _CHAR_TOKEN.findall(text.lower())


class UnicodeWordTokenizer:
    """Unicode word tokens (\\w+), lowercased: rouge-score's default would drop non-ASCII words."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD_TOKEN.findall(text.lower())


@lru_cache(maxsize=None)
def _rouge_scorer(kind: str, use_stemmer: bool):  # -> rouge_score.rouge_scorer.RougeScorer
    tok = {"char": CharTokenizer(), "word": UnicodeWordTokenizer()}.get(kind)
    from rouge_score import rouge_scorer  # imports nltk: only when ROUGE is computed (fast `m3eval validate`)
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer, tokenizer=tok)


def rouge_tokenizer_kind(lang: str) -> str:
    b = base_lang(lang)
    return "default" if b == "en" else "char" if b in _CHAR_LANGS else "word"


def rouge_l_one(prediction: str | None, references: list[str], lang: str = "en", use_stemmer: bool = False) -> float:
    """rouge-score rougeL F-measure of one prediction, the max over its references."""
    if prediction is None:
        return 0.0
    scorer = _rouge_scorer(rouge_tokenizer_kind(lang), use_stemmer)
    return float(max(scorer.score(r, prediction)["rougeL"].fmeasure for r in references))


def rouge_l(predictions: list[str], references: list[list[str]], lang: str = "en") -> float:
    """Mean ROUGE-L F-measure, 0..1 (rouge-score; max over references per prediction)."""
    check_corpus(predictions, references)
    return mean([rouge_l_one(p, r, lang) for p, r in zip(predictions, references)])


# ---- sacrebleu corpus metrics, computed from per-segment statistics ----
# sacrebleu's corpus score is a function of the summed per-segment statistics; extracting them
# once (as sacrebleu's own paired bootstrap does) gives the score, a mixed-language corpus (each
# language with its own tokenizer), and cheap re-scoring of resampled corpora for the CI.

def bleu_tokenizer(lang: str) -> str:
    b = base_lang(lang)
    return "zh" if b == "zh" else "char" if b in _CHAR_LANGS else "13a"


def _ref_streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu wants reference streams; a shorter reference list is padded with None."""
    k = max(len(r) for r in refs)
    return [[r[j] if j < len(r) else None for r in refs] for j in range(k)]


def _group_by(items: list[MetricInput], key: Callable[[str], str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(key(it.lang), []).append(i)
    return groups


def _sacre_corpus(items: list[MetricInput], make: Callable[[str], SacreMetric], key: Callable[[str], str],
                  sentence: Callable[[str], SacreMetric] | None) -> MetricResult:
    """Score with one sacrebleu metric object per tokenizer group; None predictions are ''."""
    stats: list[np.ndarray | None] = [None] * len(items)
    sigs = []
    scorer: SacreMetric | None = None
    for group, idx in sorted(_group_by(items, key).items()):
        scorer = make(group)
        hyps = [items[i].prediction or "" for i in idx]
        # sacrebleu's annotation says str, but its docs and code take None for a missing reference
        seg = scorer._extract_corpus_statistics(
            hyps, _ref_streams([items[i].references for i in idx]))  # type: ignore[arg-type]
        for i, s in zip(idx, seg):
            stats[i] = np.asarray(s, dtype=np.float64)
        sigs.append(str(scorer.get_signature()))
    mat = np.stack(stats)  # type: ignore[arg-type]
    assert scorer is not None  # np.stack raised above for an empty corpus
    value = float(scorer._compute_score_from_stats(_int_list(mat.sum(axis=0))).score)
    if len(sigs) > 1:  # several tokenizers: one signature per language group
        sigs = [f"{g}:{s}" for g, s in zip(sorted(_group_by(items, key)), sigs)]
    per_sample = None
    if sentence is not None:
        sent = {g: sentence(g) for g in _group_by(items, key)}
        per_sample = [float(sent[key(it.lang)]._compute_score_from_stats(_int_list(mat[i])).score)
                      for i, it in enumerate(items)]

    def rescore(counts: np.ndarray) -> float:
        return float(scorer._compute_score_from_stats(_int_list(counts @ mat)).score)

    return MetricResult(value, per_sample, " + ".join(sigs), rescore)


def _int_list(v: np.ndarray) -> list:
    # statistics are integer counts (chrF's too); sacrebleu expects plain ints
    return [int(round(x)) for x in v]


def bleu_items(items: list[MetricInput], max_order: int = 4) -> MetricResult:
    from sacrebleu.metrics import BLEU

    def make(tok: str) -> BLEU:
        return BLEU(tokenize=tok, max_ngram_order=max_order)

    def sentence(tok: str) -> BLEU:  # sacrebleu's sentence-level setting, for browsing only
        return BLEU(tokenize=tok, max_ngram_order=max_order, effective_order=True)

    return _sacre_corpus(items, make, lambda lang: bleu_tokenizer(lang), sentence)


def chrf_items(items: list[MetricInput]) -> MetricResult:
    from sacrebleu.metrics import CHRF
    return _sacre_corpus(items, lambda _: CHRF(), lambda lang: "all", lambda _: CHRF())


def bleu(predictions: list[str], references: list[list[str]], lang: str = "en", max_order: int = 4) -> float:
    """sacrebleu corpus BLEU, 0..100 (tokenize "zh" for Chinese, "char" for Japanese, else "13a")."""
    check_corpus(predictions, references)
    return bleu_items([MetricInput(p, list(r), None, lang) for p, r in zip(predictions, references)], max_order).value


def chrf(predictions: list[str], references: list[list[str]], lang: str = "en") -> float:
    """sacrebleu corpus chrF (chrF2), 0..100."""
    check_corpus(predictions, references)
    return chrf_items([MetricInput(p, list(r), None, lang) for p, r in zip(predictions, references)]).value


def _rouge_items(items: list[MetricInput], use_stemmer: bool = False) -> MetricResult:
    scores = [rouge_l_one(it.prediction, it.references, it.lang, use_stemmer) for it in items]
    return MetricResult(mean(scores), scores)


register_metric(Metric("rouge_l", _rouge_items, independent=True,
                       description="rouge-score rougeL F-measure, max over references; per-character for zh/ja; "
                                   "no stemming unless use_stemmer",
                       source=f"rouge-score {_version('rouge-score')} (PyPI; google-research/rouge) "
                              "RougeScorer(['rougeL'])"))
# BLEU/chrF re-scoring is a sum over statistics: 1,000 resamples cost well under a second.
register_metric(Metric("bleu", bleu_items, kind="corpus", scale=100, resamples=1000,
                       reads=READS_ANSWERS,
                       description="sacrebleu corpus BLEU (tokenize zh for Chinese, char for Japanese, else 13a)",
                       source=f"sacrebleu {_version('sacrebleu')} (PyPI; mjpost/sacrebleu) "
                              "BLEU.corpus_score; signature stored in results"))
register_metric(Metric("chrf", chrf_items, kind="corpus", scale=100, resamples=1000,
                       reads=READS_ANSWERS, description="sacrebleu corpus chrF2",
                       source=f"sacrebleu {_version('sacrebleu')} (PyPI; mjpost/sacrebleu) "
                              "CHRF.corpus_score; signature stored in results"))
