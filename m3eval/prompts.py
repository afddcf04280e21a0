"""Prompt rendering: Jinja2 in a sandbox, strict about missing fields, with sizes
bounded (m3eval/prompt_limits.py).

Templates see the row's fields, plus `choices` (a list or None) and two
helpers: `letters` (["A", "B", ...]) and `options` ("A. cat\\nB. dog").
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError

from .errors import TemplateLimitError
from .prompt_limits import MAX_PROMPT_CHARS, bounded_environment, budgeted, limit_error, with_step_counts

__all__ = ["LETTERS", "MAX_PROMPT_CHARS", "TemplateLimitError", "check_template", "format_options", "is_template",
           "render"]

LETTERS = [chr(ord("A") + i) for i in range(26)]
_env = bounded_environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


@lru_cache(maxsize=256)
def _compile(template: str):
    return _env.from_string(with_step_counts(_env.parse(template)))


def check_template(template: str) -> str | None:
    """The syntax error in a template (unknown filters included), or None: for load-time checks."""
    try:
        _compile(template)
    except TemplateError as e:
        lineno = getattr(e, "lineno", None)  # TemplateSyntaxError has it; other TemplateErrors do not
        line = f" (line {lineno})" if lineno else ""
        return f"{type(e).__name__}{line}: {e.message or e}"
    return None


def _render_bounded(template: str, ctx: dict[str, Any]) -> str:
    out, size = [], 0
    for piece in budgeted(_compile(template).generate(ctx)):  # streamed: a loop bomb stops at the bound
        size += len(piece)
        if size > MAX_PROMPT_CHARS:
            raise limit_error("rendered output")
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
        return _render_bounded(template, ctx)  # TemplateLimitError (a KeyError) passes through as it is
    except UndefinedError as e:
        raise KeyError(f"{e.message} (fields: {', '.join(sorted(row))})") from None
    except RecursionError:  # a macro calling itself
        raise TemplateLimitError("template recursion too deep") from None
    except (MemoryError, OverflowError) as e:
        raise limit_error(type(e).__name__) from None
    except (TemplateError, TypeError, ValueError) as e:  # e.g. "{{ question + 1 }}"
        raise KeyError(f"template error: {type(e).__name__}: {e}") from None
