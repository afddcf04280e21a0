"""Prompt rendering: Jinja2 in a sandbox, strict about missing fields.

Templates see the row's fields, plus `choices` (a list or None) and two
helpers: `letters` (["A", "B", ...]) and `options` ("A. cat\\nB. dog").
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

LETTERS = [chr(ord("A") + i) for i in range(26)]
_env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


@lru_cache(maxsize=256)
def _compile(template: str):
    return _env.from_string(template)


def format_options(choices: list[str] | None) -> str:
    if choices and len(choices) > len(LETTERS):
        raise KeyError(f"{len(choices)} choices; at most {len(LETTERS)} can be lettered A-Z")
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices or []))


def render(template: str, row: dict[str, Any], choices: list[str] | None = None) -> str:
    try:
        ctx = {**row, "letters": LETTERS[:len(choices or [])], "options": format_options(choices)}
        if choices is not None:
            ctx["choices"] = choices
        return _compile(template).render(ctx)
    except UndefinedError as e:
        raise KeyError(f"{e.message} (fields: {', '.join(sorted(row))})") from None
    except (TemplateError, TypeError, ValueError) as e:  # e.g. "{{ question + 1 }}"
        raise KeyError(f"template error: {type(e).__name__}: {e}") from None
