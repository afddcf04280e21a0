"""Answer-extraction steps, named in task YAML:

    filters:
      - {name: remove_prefix, args: {prefixes: ["Answer:"]}}
      - {name: choice_letter}

Each step maps text -> text, or -> None when the answer cannot be extracted; the pipeline stops
at the first None, the sample scores 0 and is counted as an extraction failure. No step ever
guesses (no random fallback). Plugins add steps through the entry point group `m3eval.filters`
(an entry point yields a Filter, or a callable returning a list of them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from m3eval.metrics.choice import choice_index, extract_choice_letter, letter
from m3eval.metrics.grounding import box_filter, check_box_args
from m3eval.metrics.mmbench import MMBENCH_SOURCE, mmbench_choice
from m3eval.plugins import Registry


@dataclass(frozen=True)
class Filter:
    name: str
    fn: Callable[..., str | None]  # fn(text: str, choices: list[str] | None, **args) -> str | None
    description: str = ""
    source: str = "m3eval"  # the official implementation it follows, if any
    check: Callable[..., object] | None = None  # check(**args) raises on bad args: found when the task is read

_REGISTRY: Registry[Filter] = Registry("filter", "m3eval.filters", Filter)
register_filter = _REGISTRY.register
get_filter = _REGISTRY.get
filter_names = _REGISTRY.names
all_filters = _REGISTRY.items  # every registered filter (plugins included), by name


def step_spec(spec: Any) -> tuple[str, dict]:
    """(name, args) of a filter or metric step: a name, an object with .name and .args (the
    task schema's), or a {"name", "args"} dict."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict):
        return spec["name"], dict(spec.get("args") or {})
    return spec.name, dict(spec.args or {})


def apply_filters(text: str | None, specs: list[Any] | None, choices: list[str] | None = None) -> str | None:
    """Run the named steps in order; None as soon as one cannot extract an answer."""
    for spec in specs or []:
        if text is None:
            return None
        name, args = step_spec(spec)
        f = get_filter(name)
        try:
            text = f.fn(text, choices, **args)
        except TypeError as e:
            raise TypeError(f"filter {name!r}: bad args {args!r}: {e}") from None
    return text


# ---- built-in steps ----

def _strip(text: str, choices: Any, chars: str | None = None) -> str:
    return text.strip(chars)


def _lowercase(text: str, choices: Any) -> str:
    return text.lower()


def _first_line(text: str, choices: Any, skip_empty: bool = True) -> str:
    """First non-empty line, stripped. skip_empty=False: the text before the first "\n", as is
    (Ying-VLM's `generated_text.split("\n")[0]`, the M3IT paper protocol)."""
    if not skip_empty:
        return text.split("\n")[0]
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def _first_sentence(text: str, choices: Any) -> str:
    """Up to and including the first sentence end (. ! ? followed by a space, or 。！？)."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()


@lru_cache(maxsize=256)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as e:
        raise ValueError(f"filter regex: invalid pattern {pattern!r}: {e}") from None


def _check_regex(pattern: str, group: int | str = 1, ignore_case: bool = False, fallback: str = "none") -> re.Pattern:
    """The compiled pattern; a pattern that does not compile, a group it lacks or an unknown
    fallback is an error (at `validate` and before the model runs, not after)."""
    rx = _compile(pattern, ignore_case)
    if fallback not in ("none", "keep"):
        raise ValueError(f"filter regex: fallback must be 'none' or 'keep', got {fallback!r}")
    if isinstance(group, int) and group > rx.groups or isinstance(group, str) and group not in rx.groupindex:
        raise ValueError(f"filter regex: pattern {pattern!r} has no group {group!r}")
    return rx


def _regex(text: str, choices: Any, pattern: str, group: int | str = 1, ignore_case: bool = False,
           fallback: str = "none") -> str | None:
    """First match's `group` (1 by default; 0 = whole match). No match: None (an extraction
    failure), or the text unchanged with fallback: keep."""
    m = _check_regex(pattern, group, ignore_case, fallback).search(text)
    if m is None:
        return text if fallback == "keep" else None
    got = m.group(group)
    return None if got is None else got.strip()


def _remove_prefix(text: str, choices: Any, prefixes: list[str] | tuple[str, ...] | str = ("Answer:", "答案："),
                   ignore_case: bool = True) -> str:
    """Strip one leading prefix (e.g. "Answer:") and the whitespace after it."""
    t = text.lstrip()
    for p in [prefixes] if isinstance(prefixes, str) else prefixes:
        head = t[: len(p)]
        if head == p or (ignore_case and head.casefold() == p.casefold()):
            return t[len(p):].lstrip()
    return t


def _map(text: str, choices: Any, mapping: dict[str, str], ignore_case: bool = True) -> str:
    """Replace a whole answer by its mapped value (e.g. {"是": "yes"}); others unchanged."""
    key = text.strip()
    if key in mapping:
        return mapping[key]
    if ignore_case:
        folded = {k.casefold(): v for k, v in mapping.items()}
        return folded.get(key.casefold(), text)
    return text


def _choice_letter(text: str, choices: list[str] | None, n_choices: int = 4) -> str | None:
    """The option letter the answer names (see metrics.choice.extract_choice_letter), else None."""
    return extract_choice_letter(text, choices, n_choices)


def _choice_text(text: str, choices: list[str] | None) -> str | None:
    """Option letter -> that choice's text; a choice's exact text passes; anything else -> None."""
    if not choices:
        raise ValueError("filter choice_text: the sample has no choices")
    idx = choice_index(text, choices)
    return None if idx is None else choices[idx]


for _f in [
    Filter("strip", _strip, "strip surrounding whitespace (arg chars)"),
    Filter("lowercase", _lowercase, "lowercase"),
    Filter("first_line", _first_line, "first non-empty line (skip_empty: false = text before the first newline)",
           "skip_empty=false: M3-IT/YING-VLM inference_example.py @ cd965973591ad7bf5030fceadc1aa9e4f28a9be6"),
    Filter("first_sentence", _first_sentence, "first sentence"),
    Filter("regex", _regex, "first match of pattern (args pattern, group, ignore_case, fallback)",
           check=_check_regex),
    Filter("remove_prefix", _remove_prefix, "strip a leading prefix such as 'Answer:' (arg prefixes)"),
    Filter("map", _map, "map whole answers (arg mapping)"),
    Filter("choice_letter", _choice_letter, "the option letter named by the answer; None if unresolved"),
    Filter("choice_text", _choice_text, "option letter -> choice text"),
]:
    register_filter(_f)
register_filter(Filter("mmbench_choice", mmbench_choice, "MMBench's rule-based option matching (VLMEvalKit can_infer); "
                       "None if unresolved or a refusal", MMBENCH_SOURCE))
register_filter(Filter("box", box_filter,
                       "the first box named (Qwen-VL (x1,y1),(x2,y2) or [x1, y1, x2, y2]); None if none "
                       "(protocol qwen_vl: Qwen-VL's own reading)", check=check_box_args))

__all__ = ["Filter", "all_filters", "apply_filters", "filter_names", "get_filter", "letter", "register_filter"]
