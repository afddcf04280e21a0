"""Multiple-choice answers: letter extraction from free text, and choice accuracy.

Extraction never guesses: text that does not name exactly one option gives None, which the
scorer records as an extraction failure and scores 0 (unlike harnesses that fall back to a
random option).

Option labels are letters: choice i has letter chr(ord("A") + i).
"""
from __future__ import annotations

import re
import unicodedata

from m3eval.metrics.base import Metric, MetricInput, MetricResult, mean, register_metric


# The whole answer is a lone label: "B", "(B)", "B.", "B)", "[B]", "B:", "B、", "选项B" is handled below.
_LONE = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]]?\s*[\.\):,、。]?\s*$")
# Explicit phrases, English and Chinese, in two tiers: statements of the answer ("the answer is
# B", "答案是B", "选B") outrank mentions of an option ("Option A is wrong", "选项A"). Phrase words
# are case-insensitive, the English letter must be upper case (so "the answer is a cat" is not
# option A). Text is NFKC-normalized first, which turns full-width "（Ｂ）" and "：" into ASCII.
_LETTER_EN = r"\s*:?\s*[\(\[]?([A-Z])(?![A-Za-z])"
_LETTER_ZH = r"\s*:?\s*[\(\[]?\s*([A-Za-z])(?![A-Za-z])"
_ANSWER_PHRASES = [
    re.compile(r"(?i:\b(?:final answer|answer|correct (?:option|choice)|best (?:option|choice))\b)\s*"
               r"(?i:is|would be|should be|will be)?\s*(?i:option|choice)?" + _LETTER_EN),
    re.compile(r"(?:答案|应该选|应选|选择|选)\s*(?:应该是|应为|是|为)?\s*(?:选项)?" + _LETTER_ZH),
]
_OPTION_PHRASES = [re.compile(r"(?i:\b(?:option|choice)\b)" + _LETTER_EN), re.compile(r"选项" + _LETTER_ZH)]
# Leading label followed by the option text: "B. a cat", "(B) a cat", "B) a cat", "B: a cat".
_LEADING = re.compile(r"^\s*(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])[\.\):、])(?:\s|$)")
_PAREN = re.compile(r"\(([A-Z])\)")


def letter(i: int) -> str:
    return chr(ord("A") + i)


def _valid_letters(choices: list[str] | None, n_choices: int) -> str:
    n = len(choices) if choices else n_choices
    return "".join(letter(i) for i in range(min(n, 26)))


def _norm_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = text.strip(" \t\n.。!！?？,，;；:：'\"“”()[]")
    return " ".join(text.split())


def _match_choice_text(text: str, choices: list[str]) -> int | None:
    """Index of the one choice the text names by its own words, else None."""
    norm = _norm_text(text)
    normed = [_norm_text(c) for c in choices]
    equal = [i for i, c in enumerate(normed) if c and c == norm]
    if len(equal) == 1:
        return equal[0]
    if equal:
        return None  # duplicate choice texts: ambiguous
    def contains(c: str) -> bool:
        if not c:
            return False
        if c.isascii():  # whole words for space-delimited text; substring for CJK
            return re.search(r"(?<![\w])" + re.escape(c) + r"(?![\w])", norm) is not None
        return c in norm
    hits = [i for i, c in enumerate(normed) if contains(c)]
    # "red" inside "red and blue": keep only the longest of nested hits
    hits = [i for i in hits if not any(j != i and normed[i] in normed[j] and normed[i] != normed[j] for j in hits)]
    return hits[0] if len(hits) == 1 else None


def extract_choice_letter(text: str | None, choices: list[str] | None = None, n_choices: int = 4) -> str | None:
    """The option letter a free-text answer names, or None when it names none or several.

    Tried in order: the whole answer is a label ("B", "(b)", "B.", "B)"); an explicit phrase
    ("The answer is B", "Answer: (B)", "答案是B", "答案：B", "选B", "选项B"), accepted when all such
    phrases agree; a leading label ("B. a cat", "(B) a cat"); a single parenthesized label
    anywhere; the text of exactly one choice (equal, else contained). Letters outside the
    choices are ignored. Without choices, letters A..A+n_choices-1 are valid.
    """
    if text is None:
        return None
    valid = _valid_letters(choices, n_choices)
    t = unicodedata.normalize("NFKC", text).strip()
    if not t:
        return None
    m = _LONE.match(t)
    if m and m.group(1).upper() in valid:
        return m.group(1).upper()
    for tier in (_ANSWER_PHRASES, _OPTION_PHRASES):
        found = {m.group(1).upper() for rx in tier for m in rx.finditer(t)} & set(valid)
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None  # "answer is A ... answer is B": contradictory, never pick one
    m = _LEADING.match(t)
    if m:
        got = next(g for g in m.groups() if g)
        if got in valid:
            return got
    paren = {x for x in _PAREN.findall(t) if x in valid}
    if len(paren) == 1:
        return paren.pop()
    if choices:
        idx = _match_choice_text(t, choices)
        if idx is not None:
            return letter(idx)
    return None


def choice_index(answer: str | None, choices: list[str]) -> int | None:
    """Index of the choice an answer denotes: a lone letter label, else the exact text of one choice
    (compared after stripping surrounding whitespace)."""
    if answer is None:
        return None
    a = answer.strip()
    m = _LONE.match(a)
    if m and len(a) <= 4:
        i = ord(m.group(1).upper()) - ord("A")
        # a choice whose own text is a single letter wins over the label reading only if it is unambiguous
        if 0 <= i < len(choices) and a not in [c.strip() for c in choices]:
            return i
    texts = [c.strip() for c in choices]
    if texts.count(a) == 1:
        return texts.index(a)
    return None


def _gold_index(it: MetricInput, i: int) -> int:
    if not it.choices:
        raise ValueError(f"sample {i}: multiple-choice metric needs choices, got {it.choices!r}")
    if not it.references:
        raise ValueError(f"sample {i}: no gold answer in references")
    g = choice_index(it.references[0], it.choices)
    if g is None:
        raise ValueError(f"sample {i}: gold answer {it.references[0]!r} is neither an option letter "
                         f"A-{letter(len(it.choices) - 1)} nor the text of exactly one choice")
    return g


def choice_accuracy_items(items: list[MetricInput]) -> MetricResult:
    """Generic multiple-choice accuracy. Gold = references[0], given as an option letter ("B") or as
    the text of one choice. The prediction (after the task's filters, normally `choice_letter`) is
    read the same way; anything else, including None, scores 0."""
    scores = []
    for i, it in enumerate(items):
        gold = _gold_index(it, i)
        pred = choice_index(it.prediction, it.choices or [])
        scores.append(1.0 if pred == gold else 0.0)
    return MetricResult(mean(scores), scores)


def aokvqa_mc_items(items: list[MetricInput]) -> MetricResult:
    """A-OKVQA multiple-choice accuracy (allenai/aokvqa eval_aokvqa, multiple_choice=True):
    1 when the prediction equals the correct choice's text, else 0. references[0] is the correct
    choice (its text, or its letter). Predictions must already be choice texts (use the filters
    `choice_letter` then `choice_text`); the official script's optional GloVe re-mapping of
    free text (map_to_choices) is not applied."""
    scores = []
    for i, it in enumerate(items):
        gold = (it.choices or [])[_gold_index(it, i)]
        scores.append(1.0 if it.prediction is not None and it.prediction == gold else 0.0)
    return MetricResult(mean(scores), scores)


register_metric(Metric("choice_accuracy", choice_accuracy_items,
                       description="multiple-choice accuracy: predicted option (letter or text) == gold option"))
register_metric(Metric("aokvqa_mc", aokvqa_mc_items,
                       description="A-OKVQA multiple-choice accuracy (allenai/aokvqa): prediction == correct choice"))
