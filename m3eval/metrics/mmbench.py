"""MMBench (Liu et al., 2023, arXiv 2307.06281): the authors' rule-based choice matching and CircularEval.

Official code: open-compass/VLMEvalKit (the MMBench authors' toolkit; open-compass/MMBench's README points to it)
@ e8e78f05f3080fe28154f2130321f17951c3be94 (port: tests/reference/mmbench_circular.py):
- vlmeval/utils/matching_util.py can_infer = can_infer_option, else can_infer_text (last changed in 2cf2a36c);
- vlmeval/dataset/utils/multiple_choice.py mcq_circular_eval / eval_circular_group: a question (its group:
  index % 1e6) counts only when every circular shift of its options is answered right; report_acc: overall, per
  l2-category and per category;
- vlmeval/dataset/image_mcq.py evaluate_heuristic, PRINT_VANILLA: "vanilla circ0", the accuracy on each question's
  original pass (index == g_index).

Rules only (VLMEvalKit's `exact_matching` policy): an answer the rules cannot read scores 0 and is counted;
VLMEvalKit's LLM fallback (ChatGPT, then a RANDOM option after 3 failures) is not applied. Where m3eval differs
on purpose: a question whose shifts are not all present (`--limit`, a failed row) is excluded, counted and named
in the details, never scored on fewer shifts (VLMEvalKit scores the shifts it finds).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import READS_ANSWERS, Metric, MetricInput, MetricResult, register_metric
from m3eval.metrics.choice import letter

MMBENCH_SOURCE = ("open-compass/VLMEvalKit vlmeval/utils/matching_util.py (can_infer) and "
                  "vlmeval/dataset/utils/multiple_choice.py (mcq_circular_eval) @ "
                  "e8e78f05f3080fe28154f2130321f17951c3be94")

# answers that refuse: read as "Z" (no option), as can_infer_option does
_REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
             "I'm sorry, but without the image provided", "Cannot determine the answer")
_API_FAILED = "Failed to obtain answer via API"
_SEPARATORS = str.maketrans({c: " " for c in ".()[],:;!*#{}"})
_STATED = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")  # "The correct answer is **B**"


def mmbench_infer(text: str, choices: list[str]) -> str | None:
    """The option letter an answer names by MMBench's rules, "Z" for a refusal or an explicit Z, None when the
    rules find nothing. Options are lettered A, B, ... in order.

    1. the answer's tokens (split on whitespace after .()[],:;!*#{} become spaces) hold exactly one option letter,
       and its first occurrence is among the last four tokens: that letter; no option letter but a "Z": "Z";
    2. "answer is X" (any case; X in A-D and an option): X;
    3. the answer is at most twice as long as all options together and contains (lowercased) exactly one
       option's text: that option.
    """
    letters = [letter(i) for i in range(len(choices))]
    found = None if _API_FAILED in text else _by_letter(text, letters)
    return found if found else _by_text(text, choices, letters)


def _by_letter(text: str, letters: list[str]) -> str | None:
    if any(r in text for r in _REFUSALS):
        return "Z"
    tokens = text.translate(_SEPARATORS).split()
    named = [x for x in letters if x in tokens]
    if len(named) == 1:
        if tokens.index(named[0]) > len(tokens) - 5:
            return named[0]
    elif not named and "Z" in tokens:
        return "Z"
    m = _STATED.search(text)
    return m.group(1).upper() if m and m.group(1).upper() in letters else None


def _by_text(text: str, choices: list[str], letters: list[str]) -> str | None:
    low = text.lower()
    if len(low) > 2 * sum(len(c) for c in choices):
        return None
    hits = [x for x, c in zip(letters, choices) if c.lower() in low]
    return hits[0] if len(hits) == 1 else None


def mmbench_choice(text: str, choices: list[str] | None) -> str | None:
    """The `mmbench_choice` filter: mmbench_infer's letter; a refusal ("Z") or nothing found is None (unparsed)."""
    if not choices:
        raise ValueError("filter mmbench_choice: the sample has no choices")
    found = mmbench_infer(text, choices)
    return None if found in (None, "Z") else found


# ---- CircularEval ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Groups:
    """The questions (groups of circular shifts) of a corpus: scored ones and excluded ones."""

    keys: list[str]  # scored questions, in order of first appearance
    first: np.ndarray  # index of each scored question's first sample (its weight in a resampled corpus)
    hit: np.ndarray  # 1.0 where every shift of the question is right
    members: list[list[int]]  # sample indices of each scored question
    excluded: list[tuple[str, int, int]]  # (question, samples present, options)


def _correct(items: list[MetricInput]) -> list[bool]:
    """Prediction == gold, both option letters (as VLMEvalKit compares them; never an option's text, which
    could itself be a letter)."""
    out = []
    for i, it in enumerate(items):
        if not it.choices:
            raise SampleScoreError(i, f"MMBench needs each sample's options, got {it.choices!r}")
        gold = it.references[0].strip() if it.references else None
        if gold not in [letter(k) for k in range(len(it.choices))]:
            raise SampleScoreError(i, f"gold answer {gold!r} is not an option letter A-{letter(len(it.choices) - 1)}")
        out.append(it.prediction is not None and it.prediction.strip() == gold)
    return out


def _keys(items: list[MetricInput]) -> list[str]:
    """Each sample's question: its cluster key (the scorer always sets one), else its id."""
    return [it.cluster or it.id or f"#{i}" for i, it in enumerate(items)]


def _group(items: list[MetricInput]) -> _Groups:
    """Samples sharing a cluster key are the shifts of one question; a question is scored when it has as many
    samples as options."""
    if not items:
        raise ValueError("MMBench: no samples to score")
    correct = _correct(items)
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(_keys(items)):
        by_key.setdefault(key, []).append(i)
    keys, first, hit, members, excluded = [], [], [], [], []
    for key, idx in by_key.items():
        n_options = max(len(items[i].choices or []) for i in idx)
        if len(idx) != n_options:
            excluded.append((key, len(idx), n_options))
            continue
        keys.append(key)
        first.append(idx[0])
        hit.append(float(all(correct[i] for i in idx)))
        members.append(idx)
    return _Groups(keys, np.asarray(first, dtype=np.int64), np.asarray(hit, dtype=np.float64), members, excluded)


def _weighted(first: np.ndarray, hit: np.ndarray) -> Callable[[np.ndarray], float]:
    """rescore(counts): a question weighs its first sample's count (under cluster resampling, every shift's)."""
    def rescore(counts: np.ndarray) -> float:
        w = counts[first]
        total = w.sum()
        return float(np.dot(w, hit) / total) if total > 0 else 0.0
    return rescore


def _excluded_details(g: _Groups) -> dict[str, Any]:
    return {"n_excluded_questions": len(g.excluded), "excluded_questions": [k for k, _, _ in g.excluded]}


def _category_groups(items: list[MetricInput], g: _Groups, groups: dict[str, list[str]]) -> dict[str, Any]:
    """Scores of groups of categories (MMBench's l2-category: coarse_perception = image_style, image_scene, ...)."""
    owner: dict[str, str] = {}
    for name, cats in groups.items():
        for c in cats:
            if owner.setdefault(c, name) != name:
                raise ValueError(f"category_groups: category {c!r} is in both {owner[c]!r} and {name!r}")
    out: dict[str, Any] = {}
    for name in groups:
        sel = [q for q, idx in enumerate(g.members) if owner.get(items[idx[0]].category or "") == name]
        if sel:
            out[name] = {"value": float(g.hit[sel].mean()), "n_questions": len(sel)}
    return out


def circular_accuracy_items(items: list[MetricInput],
                            category_groups: dict[str, list[str]] | None = None) -> MetricResult:
    """MMBench CircularEval: the share of questions (samples sharing MetricInput.cluster are one question's
    circular shifts) whose every shift is answered right. A question with fewer (or more) samples than options
    is excluded and named in details. category_groups {name: [category, ...]}: scores of those groups of
    categories too (MMBench's l2-category), in details."""
    g = _group(items)
    per_sample: list[float | None] = [None] * len(items)
    sample_details: list[dict[str, Any] | None] = [None] * len(items)
    for h, idx in zip(g.hit, g.members):
        for i in idx:
            per_sample[i] = float(h)
    notes = {key: {"excluded": f"question {key}: {n} of its {n_options} circular shifts present"}
             for key, n, n_options in g.excluded}
    if notes:
        for i, key in enumerate(_keys(items)):
            sample_details[i] = notes.get(key)
    scored = [i for idx in g.members for i in idx]
    details: dict[str, Any] = {"n_questions": len(g.keys),
                               "n_unparsed_answers": sum(items[i].prediction is None for i in scored),
                               **_excluded_details(g)}
    if category_groups:
        details["category_groups"] = _category_groups(items, g, category_groups)
    rescore = _weighted(g.first, g.hit)
    value = rescore(np.ones(len(items)))
    # per_sample: each shift shows its question's 0/1, None where the question was excluded (browsing only:
    # this is a corpus metric, its interval comes from rescore)
    return MetricResult(value, per_sample, rescore=rescore, details=details,
                        sample_details=sample_details)


def first_pass_accuracy_items(items: list[MetricInput]) -> MetricResult:
    """Accuracy on each question's original pass (VLMEvalKit's "vanilla circ0"): the sample whose id is its
    cluster key (MMBench: index == index % 1e6). A question without one is excluded and named in details."""
    if not items:
        raise ValueError("MMBench: no samples to score")
    correct = _correct(items)
    originals: dict[str, int] = {}
    keys: dict[str, None] = {}
    for i, (it, key) in enumerate(zip(items, _keys(items))):
        keys.setdefault(key, None)
        if it.id == key:
            originals.setdefault(key, i)
    first = np.asarray(list(originals.values()), dtype=np.int64)
    hit = np.asarray([float(correct[i]) for i in originals.values()], dtype=np.float64)
    per_sample: list[float | None] = [None] * len(items)
    for i in originals.values():
        per_sample[i] = float(correct[i])
    missing = [k for k in keys if k not in originals]
    rescore = _weighted(first, hit)
    details = {"n_questions": len(originals), "n_unparsed_answers": sum(items[i].prediction is None
                                                                        for i in originals.values()),
               "n_excluded_questions": len(missing), "excluded_questions": missing}
    return MetricResult(rescore(np.ones(len(items))), per_sample,
                        rescore=rescore, details=details)


register_metric(Metric(
    "circular_accuracy", circular_accuracy_items, kind="corpus",
    reads=READS_ANSWERS,
    description="MMBench CircularEval: questions (doc.cluster = the question) right in every circular shift / "
                "questions; incomplete questions excluded (details); args category_groups",
    source=MMBENCH_SOURCE))
register_metric(Metric(
    "first_pass_accuracy", first_pass_accuracy_items, kind="corpus",
    reads=READS_ANSWERS,
    description="accuracy on each question's original pass (the sample whose id is its cluster key; MMBench's "
                "vanilla circ0)",
    source="open-compass/VLMEvalKit vlmeval/dataset/image_mcq.py evaluate_heuristic (PRINT_VANILLA) @ "
           "e8e78f05f3080fe28154f2130321f17951c3be94"))
