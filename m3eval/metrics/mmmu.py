"""MMMU (Yue et al., CVPR 2024) scoring: the authors' answer parsing and accuracy, as
MMMU-Benchmark/MMMU mmmu/utils/eval_utils.py @ bb0b95a945998d91dfef37e969e07d49d1139438 does them
(parse_multi_choice_response, parse_open_response, eval_multi_choice, eval_open; the oracle is the
port in tests/reference/mmmu_eval_utils.py, and the differential test holds this module to it).

The official parser's quirks are kept on purpose, since they decide which answers count: the reply
is stripped of , . ! ? ; : ' one character kind after another; an open reply's sentence split
looks for a capital letter after the reply was lower-cased (so it splits only at line breaks);
numbers are rounded to 2 places. MMMU is the one benchmark where m3eval guesses: a multiple-choice
reply naming no option gets a random option, as the official parser does. Here the draw is seeded
per sample (the metric's `seed` and the sample id), so it does not depend on batch size, order or
workers, and it is recorded per sample (`random_pick`) and counted (`n_random_picks`).
`unparsed: wrong` scores those replies 0 instead.

A question is multiple-choice when it has options (MMMU's open questions have "[]"); an open
question's gold answers are its references, or the list a lone reference spells as a Python list
literal (the hub stores the three such answers of the validation split as text: "['24/7', '3.429']",
where the official answer_dict_val.json holds the list).
"""
from __future__ import annotations

import ast
import random
import re
from typing import Any

from m3eval.metrics.base import READS_ANSWERS, Metric, MetricInput, MetricResult, mean, register_metric

# (the number patterns of extract_numbers, in its order: with thousands commas, scientific, plain)
_NUMBER_PATTERNS = (re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b"), re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+"),
                    re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"))
_KEY_CUES = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = frozenset(":,.!?;'")
_SENTENCES = re.compile(r"\.\s(?=[A-Z])|\n")

Normalized = str | float  # an open answer after normalization: lower-cased text, or a number to 2 places


def letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def parse_multi_choice(response: str, options: list[str]) -> str | None:
    """The option letter the official parser reads from a reply, or None where it would pick at random.

    In order: "(B)" anywhere; else " B " as a word; else, for a reply of more than 5 words, the
    options whose text it contains (case-insensitive). Several found: the one found last in the reply."""
    for ch in ",.!?;:'":  # one kind after another: ".,A" keeps its comma
        response = response.strip(ch)
    padded = f" {response} "
    labels = letters(len(options))
    found = [c for c in labels if f"({c})" in padded]
    needle = "({})"
    by_text = False
    if not found:
        found = [c for c in labels if f" {c} " in padded]
        needle = " {} "
    if not found and len(padded.split()) > 5:
        low = padded.lower()
        found = [c for c, text in zip(labels, options) if text.lower() in low]
        by_text = True
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    if by_text:
        low = padded.lower()
        ends = [low.rfind(options[ord(c) - ord("A")].lower()) for c in found]
    else:
        ends = [padded.rfind(needle.format(c)) for c in found]
    return found[ends.index(max(ends))]  # the first of equal positions, as numpy's argmax


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def normalize(text: str) -> list[Normalized]:
    """An answer as the official parser compares it: a number (commas dropped, rounded to 2 places),
    else the lower-cased text; a single character is padded on either side (" a", "a ") so it matches
    only as a word."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def extract_numbers(text: str) -> list[str]:
    return [n for pattern in _NUMBER_PATTERNS for n in pattern.findall(text)]


def _key_parts(response: str) -> list[str]:
    """The parts of a reply that may hold the answer: per sentence (line), the shortest tail after a
    cue word ("is ", "therefore ", ... and "=" in the last); the whole reply when there is none."""
    response = response.strip().strip(".").lower()
    sentences = _SENTENCES.split(response)
    keys = []
    for i, sentence in enumerate(sentences):
        cues = _KEY_CUES + ("=",) if i == len(sentences) - 1 else _KEY_CUES
        shortest = ""
        for cue in cues:
            if cue in sentence:
                tail = sentence.split(cue)[-1].strip()
                if not shortest or len(tail) < len(shortest):  # an empty tail is no tail
                    shortest = tail
        if shortest and shortest not in _TRIVIAL:
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list[Normalized]:
    """The official parser's candidate answers of an open reply: its key parts and the numbers in
    them, normalized, each once (in a fixed order; the official set's order never changes a score)."""
    keys = _key_parts(response)
    raw = keys + [n for key in keys for n in extract_numbers(key)]
    return list(dict.fromkeys(v for text in raw for v in normalize(text)))


def eval_open(gold: list[str], preds: list[Normalized]) -> bool:
    """Correct when a text candidate contains a gold text, or a number candidate equals a gold number."""
    answers = [v for g in gold for v in normalize(g)]
    texts = [a for a in answers if isinstance(a, str)]
    return any(any(t in p for t in texts) if isinstance(p, str) else p in answers for p in preds)


def open_gold(references: list[str]) -> list[str]:
    """An open question's gold answers: the references, or the list a lone reference writes as a Python
    list literal ("['24/7', '3.429']")."""
    if len(references) == 1 and references[0].lstrip().startswith("["):
        try:
            value = ast.literal_eval(references[0].strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return references
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return references


def pick_at_random(seed: int, sample_id: str, n_options: int) -> str:
    """The official parser's random option for an unparsable reply, drawn from the sample's own
    generator (string seeds hash the same in every process), so no other sample changes it."""
    return random.Random(f"mmmu:{seed}:{sample_id}").choice(letters(n_options))


def mmmu_accuracy_items(items: list[MetricInput], unparsed: str = "random", seed: int = 42) -> MetricResult:
    """Per sample 1/0 as the official eval_multi_choice / eval_open; the value is the accuracy over all
    samples (official "Overall": instance level; per discipline through doc.category). unparsed:
    "random" (official: a multiple-choice reply naming no option gets a seeded random option) or
    "wrong" (scored 0). seed: the draw's seed (42: the official run's). A failed sample scores 0."""
    if unparsed not in ("random", "wrong"):
        raise ValueError(f"mmmu_accuracy: unparsed={unparsed!r}: expected random (official) or wrong")
    scores: list[float] = []
    notes: list[dict[str, Any] | None] = []
    n_unparsed = 0
    for it in items:
        note: dict[str, Any] | None = None
        if it.prediction is None:
            correct = False
        elif it.choices:
            pred = parse_multi_choice(it.prediction, it.choices)
            if pred is None:
                n_unparsed += 1
                if unparsed == "random":
                    pred = pick_at_random(seed, it.id, len(it.choices))
                    note = {"random_pick": pred}
                else:
                    note = {"unparsed": True}
            correct = pred is not None and pred in it.references
        else:
            correct = eval_open(open_gold(it.references), parse_open(it.prediction))
        scores.append(1.0 if correct else 0.0)
        notes.append(note)
    details = {"unparsed": unparsed, "n_unparsed": n_unparsed,
               "n_random_picks": n_unparsed if unparsed == "random" else 0}
    return MetricResult(mean(scores), scores, details=details, sample_details=notes)


register_metric(Metric(
    "mmmu_accuracy", mmmu_accuracy_items,
    reads=READS_ANSWERS,
    description="MMMU accuracy: the official parser (multiple-choice letter or option text; open answers by "
                "number or text) and eval_multi_choice / eval_open; an unparsable multiple-choice reply gets a "
                "seeded random option (args.unparsed: random | wrong), counted in details.n_random_picks",
    source="MMMU-Benchmark/MMMU mmmu/utils/eval_utils.py @ bb0b95a945998d91dfef37e969e07d49d1139438"))
