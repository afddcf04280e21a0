"""Multiple-choice answers: letter extraction from free text, and choice accuracy.

Extraction never guesses: text that does not name exactly one option gives None, which the
scorer records as an extraction failure and scores 0 (unlike harnesses that fall back to a
random option).

Option labels are letters: choice i has letter chr(ord("A") + i).
"""
from __future__ import annotations

import re
import unicodedata

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import Metric, MetricInput, MetricResult, mean, register_metric

# A lone label is the whole answer: "B", "(b)", "B.", "[C]", "**B**" (markdown is removed first).
_LONE = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]]?\s*[\.\):,、。]?\s*$")
_LETTER = r"[\(\[]?\s*([A-Za-z])\s*[\)\]]?(?![A-Za-z0-9'’])"
# Cues that state the answer, English and Chinese. Case-insensitive cue words; what may follow the
# letter is checked afterwards (a list "A, B", an article "A dog", negation "not A").
_ANSWER_CUES = re.compile(
    r"(?i:\b(?:final answer|answer|correct (?:option|choice|answer)|best (?:option|choice|answer)|"
    r"i(?: would| will|'d|’d) (?:choose|pick|select|go with|say)|i (?:choose|pick|select|go with)|"
    r"i think (?:it is|it's|the answer is)|it (?:is|'s|must be|should be)|it’s)\b)"
    r"\s*(?i:is|would be|should be|will be|must be)?\s*(?::|：)?\s*(?i:option|choice)?\s*" + _LETTER
    + r"|(?:正确答案|答案|应该选|应选|我选|选择|选)\s*(?:应该是|应为|是|为)?\s*[:：]?\s*(?:选项)?\s*" + _LETTER)
_OPTION_CUES = re.compile(r"(?i:\b(?:option|choice)\b)\s*" + _LETTER + r"|选项\s*" + _LETTER
                          + r"|(?<![A-Za-z])([A-Za-z])\s*(?:选项|项)")
# An enumerated label: "A. red", "(B) blue", "C) green", "D: yellow" (at the start or after a space)
_ENUM = re.compile(r"(?:^|(?<=\s))(?:\(([A-Z])\)|([A-Z])[\.\):])(?=\s*\S)")
_LIST_AFTER = re.compile(r"^\s*(?:,|，|/|&|、|和|或|与|及|\bor\b|\band\b)\s*"
                         r"(?:(?i:maybe|perhaps|possibly)\s*|也许|可能|者)?"
                         r"\s*[\(\[]?\s*([A-Z]|[a-z](?=\s*(?:$|[^\w\s])))"
                         r"(?![A-Za-z])")
_NEG_AFTER = re.compile(r"\s*(?i:(?:is|was|would be|seems)\s+(?:not|wrong|incorrect)\b|isn't|isn’t)|\s*(?:不|错)")
# words after a label that show it is a label, not the article "A": "A because ...", "A is correct"
_CONNECTORS = frozenset("because since as is was seems would should which this it correct right here so".split())
_PAREN = re.compile(r"\(([A-Z])\)")
_MARKDOWN = re.compile(r"\*\*|__|`")


def letter(i: int) -> str:
    return chr(ord("A") + i)


def _valid_letters(choices: list[str] | None, n_choices: int) -> str:
    n = len(choices) if choices else n_choices
    return "".join(letter(i) for i in range(min(n, 26)))


def _norm_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = text.strip(" \t\n.。!！?？,，;；:：'\"“”()[]")
    return " ".join(text.split())


def _contains(hay: str, needle: str) -> bool:
    if not needle:
        return False
    if needle.isascii():  # whole words for space-delimited text; substring for CJK
        return re.search(r"(?<![\w])" + re.escape(needle) + r"(?![\w])", hay) is not None
    return needle in hay


def _named(text: str, choices: list[str]) -> list[int]:
    """Indices of the choices the text names by their own words: the one it equals, else those it
    contains ("red" inside "red and blue" counts once, as the longer)."""
    norm = _norm_text(text)
    normed = [_norm_text(c) for c in choices]
    equal = [i for i, c in enumerate(normed) if c and c == norm]
    if equal:
        return equal  # several: duplicate choice texts, ambiguous
    hits = [i for i, c in enumerate(normed) if _contains(norm, c)]
    return [i for i in hits if not any(j != i and normed[i] in normed[j] and normed[i] != normed[j] for j in hits)]


def _match_choice_text(text: str, choices: list[str]) -> int | None:
    """Index of the one choice the text names by its own words, else None."""
    hits = _named(text, choices)
    return hits[0] if len(hits) == 1 else None


def _starts_with_choice(rest: str, choices: list[str]) -> list[int]:
    norm = _norm_text(rest)
    normed = [_norm_text(c) for c in choices]
    hits = [i for i, c in enumerate(normed) if c and (norm == c or (norm.startswith(c) and not norm[len(c)].isalnum()))]
    longest = max((len(normed[i]) for i in hits), default=0)
    return [i for i in hits if len(normed[i]) == longest]


def _read(t: str, end: int, got: str, valid: str, choices: list[str] | None) -> str | None:
    """What a label-looking letter `got` ending at t[end] means given what follows it: the letter, another
    option's letter ("A dog": the article, then the dog option), "?" (ambiguous: a list "A, B",
    an unresolvable "A dog"), or None (not a label: "a cat" in running text)."""
    up = got.upper()
    if up not in valid:
        return None
    rest = t[end:]
    if (m := _LIST_AFTER.match(rest)) and m.group(1).upper() in valid and m.group(1).upper() != up:
        return "?"
    word = re.match(r"[ \t]+([^\W\d_][\w'’-]*)", rest)
    if word is None:  # end, punctuation, a line break, CJK: the letter stands alone
        return up
    connector = word.group(1).casefold() in _CONNECTORS
    if got.islower() and not connector:
        return None  # "a cat", "b dog": running text, left to the option-text rule
    marked = t[end - 1: end] in ").]:、"  # "A." / "(A)": a label, never the article
    if choices and not connector:  # "B dog" / "A dog": the words after the letter must agree
        start, named = _starts_with_choice(rest, choices), set(_named(rest, choices))
        own = ord(up) - 65
        if own in start:
            return up if named <= {own} else "?"
        if start and marked:
            return "?"  # "A. blue" when blue is B: label and text disagree
        if up == "A" and len(start) == 1:  # "A" was the article: "Answer: A dog"
            return letter(start[0]) if named == set(start) else "?"
    if up == "A" and not connector and not marked:
        return "?"  # "A cow" naming no option: the article or the label, cannot tell
    return up


def _cue_letters(rx: re.Pattern, t: str, valid: str, choices: list[str] | None) -> set[str]:
    """Letters named by the cue matches (see _read); "Option A is wrong" names none."""
    found = set()
    for m in rx.finditer(t):
        gi = next(i for i in range(1, rx.groups + 1) if m.group(i))
        end = m.end()  # past a closing bracket, if any
        if _NEG_AFTER.match(t[end:]):
            continue
        r = _read(t, end, m.group(gi), valid, choices)
        if r is not None:
            found.add(r)
    return found


def extract_choice_letter(text: str | None, choices: list[str] | None = None, n_choices: int = 4) -> str | None:
    """The option letter a free-text answer names, or None when it names none or several.

    A wrong letter is far worse than None (None is counted as unparsed and shown), so every rule
    refuses when in doubt. Tried in order, after NFKC (full-width "（Ｂ）" -> "(B)") and removing
    markdown emphasis:
      1. the whole answer is a label: "B", "(b)", "B.", "**B**";
      2. answer cues: "The answer is B", "Answer: b", "I think it's B", "I would choose C",
         "答案是B", "选B", "我选C"; all cues must agree, and "Answer: A, B" (a list) gives None;
      3. an echo of the options ("A. red B. blue ...", one per line, "(A) red (B) blue") gives None;
      4. option mentions: "Option B", "选项B", "B选项" ("选项A和B": None);
      5. a leading label: "B. dog", "(B) dog", "B because ...", "B\nIt is not red.";
      6. one parenthesized label anywhere: "I pick (C).";
      7. the text of exactly one choice ("It is a dog.").
    "A" followed by words is read as the article when the words name another option ("Answer: A
    dog" -> the dog option), and is ambiguous when they name none. Letters outside the choices are
    ignored. Without choices, letters A..A+n_choices-1 are valid.
    """
    if text is None:
        return None
    valid = _valid_letters(choices, n_choices)
    t = _MARKDOWN.sub("", unicodedata.normalize("NFKC", text)).strip()
    if not t:
        return None
    m = _LONE.match(t)
    if m:
        return m.group(1).upper() if m.group(1).upper() in valid else None
    found = _cue_letters(_ANSWER_CUES, t, valid, choices)
    if found:
        return found.pop() if len(found) == 1 and "?" not in found else None
    if len({a or b for a, b in _ENUM.findall(t)} & set(valid)) >= 2:
        return None  # the options echoed back
    found = _cue_letters(_OPTION_CUES, t, valid, choices)
    if found:
        return found.pop() if len(found) == 1 and "?" not in found else None
    m = re.match(r"\s*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])(?=[\.\):、]|\s)|([a-z])(?=[\.\):、]))", t)
    if m:
        gi = next(i for i in range(1, 5) if m.group(i))
        end = m.end() + (1 if t[m.end(): m.end() + 1] in ".:、" and gi > 2 else 0)
        r = None if _NEG_AFTER.match(t[end:]) else _read(t, end, m.group(gi), valid, choices)
        if r is not None:
            return None if r == "?" else r
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
        raise SampleScoreError(i, f"multiple-choice metric needs choices, got {it.choices!r}")
    if not it.references:
        raise SampleScoreError(i, "no gold answer in references")
    g = choice_index(it.references[0], it.choices)
    if g is None:
        raise SampleScoreError(i, f"gold answer {it.references[0]!r} is neither an option letter "
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


register_metric(Metric("choice_accuracy", choice_accuracy_items, independent=True,
                       description="multiple-choice accuracy: predicted option (letter or text) == gold option",
                       source="m3eval"))
register_metric(Metric("aokvqa_mc", aokvqa_mc_items, independent=True,
                       description="A-OKVQA multiple-choice accuracy: prediction == correct choice's text",
                       source="allenai/aokvqa evaluation/eval_predictions.py"
                              " @ 42e8c44ff40d13cf272776a3197365f582137772"))
