"""Prompt rendering: Jinja2 in a sandbox, strict about missing fields.

Templates see the row's fields, plus `choices` (a list or None) and two
helpers: `letters` (["A", "B", ...]) and `options` ("A. cat\\nB. dog").
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import functools
import re

from jinja2 import Environment, StrictUndefined, TemplateError, UndefinedError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

LETTERS = [chr(ord("A") + i) for i in range(26)]
# A rendered prompt is text for one model call: 1M characters is far beyond any context
# window, and small enough that a template bomb fails fast instead of exhausting memory.
MAX_PROMPT_CHARS = 1_000_000
_MAX_INT_ARG = 100_000  # widths passed to padding str methods and filters (center, ljust, indent...)
_MAX_POW_BITS = 4096


class TemplateLimitError(KeyError):
    """A template would expand beyond the prompt size bound (per row: that sample fails)."""


def _limit(what: str) -> TemplateLimitError:
    return TemplateLimitError(f"template expands beyond {MAX_PROMPT_CHARS:,} characters ({what})")


class _BoundedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox bounds attribute access and range(); this also bounds sizes, checked
    before anything is allocated: `{{ question * 10**11 }}` is refused, not attempted."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and n > 0 and \
                        _size(seq, MAX_PROMPT_CHARS // n + 1) * n > MAX_PROMPT_CHARS:
                    raise _limit(f"{type(seq).__name__} of {len(seq)} * {n}")
        elif isinstance(left, int) and isinstance(right, int) and right > 0 and \
                abs(left).bit_length() * right > _MAX_POW_BITS:
            raise _limit(f"{left} ** {right}")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's own signature)
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
        if isinstance(owner, str):
            if name in _PADDING:
                _check_ints(args, kwargs)
            elif name in ("format", "format_map"):
                _check_format(owner, args, kwargs)
            elif name == "replace":
                _check_replace(owner, args)
        return super().call(__context, __obj, *args, **kwargs)


_PADDING = {"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap", "truncate"}
_WIDE = re.compile(r"%[-#0 +]*\d{7,}|\{[^{}]*:[^{}]*\d{7,}[^{}]*\}")  # a literal width of >= 7 digits
_DYNAMIC = re.compile(r"%[-#0 +]*\*|\{[^{}]*:[^{}]*\{")  # a width taken from an argument


def _size(obj: Any, budget: int) -> int:
    """Characters a value can expand to when joined (strings count their length, nested
    lists their items'), counted only up to budget: `[q * 9000] * 1000` is caught too."""
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, (list, tuple)):
        total = 0
        for item in obj:
            total += max(1, _size(item, budget - total))
            if total > budget:
                break
        return total
    return 1


def _check_replace(text: Any, args: tuple) -> None:
    if isinstance(text, str) and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        grow = (len(args[1]) - len(args[0])) * (text.count(args[0]) if args[0] else len(text) + 1)
        if len(text) + grow > MAX_PROMPT_CHARS:
            raise _limit("replace")


def _check_ints(args: tuple, kwargs: dict) -> None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > _MAX_INT_ARG:
            raise _limit(f"argument {a}")


def _check_format(fmt: Any, args: tuple, kwargs: dict) -> None:
    if isinstance(fmt, str):
        if _WIDE.search(fmt):
            raise _limit("format width")
        if _DYNAMIC.search(fmt):
            _check_ints(args, kwargs)


def _bounded_filter(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        rest = list(args)
        while rest and isinstance(rest[0], (Environment, Context, EvalContext)):
            rest.pop(0)
        if name == "format":
            _check_format(rest[0] if rest else None, tuple(rest[1:]), kwargs)
        elif name == "replace":
            _check_replace(rest[0] if rest else None, tuple(rest[1:]))
        else:
            _check_ints(tuple(rest[1:]), kwargs)
        return fn(*args, **kwargs)
    return wrapper


_env = _BoundedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
_env.filters = {n: _bounded_filter(n, f) if n in _PADDING | {"format", "replace"} else f
                for n, f in _env.filters.items()}


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


@lru_cache(maxsize=256)
def _compile(template: str):
    return _env.from_string(template)


def check_template(template: str) -> str | None:
    """The syntax error in a template (unknown filters included), or None: for load-time checks."""
    try:
        _compile(template)
    except TemplateError as e:
        line = f" (line {e.lineno})" if getattr(e, "lineno", None) else ""
        return f"{type(e).__name__}{line}: {e.message or e}"
    return None


def _render_bounded(template: str, ctx: dict[str, Any]) -> str:
    out, size = [], 0
    for piece in _compile(template).generate(ctx):  # streamed: a loop bomb stops at the bound
        size += len(piece)
        if size > MAX_PROMPT_CHARS:
            raise _limit("rendered output")
        out.append(piece)
    return "".join(out)


def format_options(choices: list[str] | None) -> str:
    if choices and len(choices) > len(LETTERS):
        raise KeyError(f"{len(choices)} choices; at most {len(LETTERS)} can be lettered A-Z")
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices or []))


def render(template: str, row: dict[str, Any], choices: list[str] | None = None) -> str:
    try:
        ctx = {**row, "letters": LETTERS[:len(choices or [])], "options": format_options(choices)}
        if choices is not None:
            ctx["choices"] = choices
        return _render_bounded(template, ctx)
    except TemplateLimitError:
        raise
    except UndefinedError as e:
        raise KeyError(f"{e.message} (fields: {', '.join(sorted(row))})") from None
    except (MemoryError, OverflowError) as e:
        raise _limit(type(e).__name__) from None
    except (TemplateError, TypeError, ValueError) as e:  # e.g. "{{ question + 1 }}"
        raise KeyError(f"template error: {type(e).__name__}: {e}") from None
