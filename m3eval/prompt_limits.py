"""Size and work bounds for prompt templates, on top of Jinja's sandbox (which bounds attribute
access and range()). A task file is untrusted input: `{{ question * 100000000000 }}`,
`center(10**10)`, a nested loop that prints nothing or a string doubled in a loop must fail as
one sample with a clear error, checked before anything is allocated, never as a MemoryError
or a hang that takes the run down.

Work: every loop iteration, call, `~` and arithmetic is a step; a render may take MAX_STEPS
steps (deterministic: a sample fails on every machine or none) and, as a backstop for steps
made slow by large strings, MAX_RENDER_SECONDS. Memory: the sandbox is the immutable one (no
`list.append`, `dict.update`: nothing grows in place), and each value a template builds (`*`,
`+`, `~`, padding, format, replace) is bounded by MAX_PROMPT_CHARS, so a render holds at most
a few values of that size.
"""
from __future__ import annotations

import contextvars
import functools
import re
import time
from typing import Any, Iterable, Iterator

from jinja2 import Environment, nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from .errors import TemplateLimitError

# A rendered prompt is text for one model call: 1M characters is far beyond any context
# window, and small enough that a template bomb fails fast instead of exhausting memory.
MAX_PROMPT_CHARS = 1_000_000
_MAX_INT_ARG = 100_000  # widths passed to padding str methods and filters (center, ljust, indent...)
_MAX_POW_BITS = 4096
MAX_STEPS = 1_000_000  # loop iterations + calls + operators of one render: a real prompt takes hundreds
MAX_RENDER_SECONDS = 10.0


class _Budget:
    """The steps and time one render has left (a context variable: renders in threads are apart)."""

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(f"template takes more than {MAX_STEPS:,} steps (loop iterations, calls)")
        if not self.steps & 1023 and time.monotonic() > self.deadline:
            raise TemplateLimitError(f"template takes more than {MAX_RENDER_SECONDS:g} s to render")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("m3eval_template_budget", default=None)


def budgeted(render: Iterator[str]) -> Iterator[str]:
    """A render's output with a fresh step and time budget for its whole generation."""
    token = _budget.set(_Budget())
    try:
        yield from render
    finally:
        _budget.reset(token)


def _step() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step()


def limit_error(what: str) -> TemplateLimitError:
    return TemplateLimitError(f"template expands beyond {MAX_PROMPT_CHARS:,} characters ({what})")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's sandbox bounds attribute access and range(); this also bounds sizes, checked
    before anything is allocated: `{{ question * 10**11 }}` is refused, not attempted."""

    intercepted_binops = frozenset(["*", "**", "+"])

    def call_binop(self, context, operator, left, right):
        _step()
        if operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)) and \
                    _size(left, MAX_PROMPT_CHARS + 1) + _size(right, MAX_PROMPT_CHARS + 1) > MAX_PROMPT_CHARS:
                raise limit_error(f"{type(left).__name__} + {type(right).__name__}")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and n > 0 and \
                        _size(seq, MAX_PROMPT_CHARS // n + 1) * n > MAX_PROMPT_CHARS:
                    raise limit_error(f"{type(seq).__name__} of {len(seq)} * {n}")
        elif isinstance(left, int) and isinstance(right, int) and right > 0 and \
                abs(left).bit_length() * right > _MAX_POW_BITS:
            raise limit_error(f"{left} ** {right}")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's own signature)
        _step()
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
            raise limit_error("replace")


def _check_ints(args: tuple, kwargs: dict) -> None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > _MAX_INT_ARG:
            raise limit_error(f"argument {a}")


def _check_format(fmt: Any, args: tuple, kwargs: dict) -> None:
    if isinstance(fmt, str):
        if _WIDE.search(fmt):
            raise limit_error("format width")
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


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        _step()
        yield item


def _concat(parts: list[Any]) -> str:
    """`a ~ b`: Jinja joins the parts' text; bounded like `*` and `+` (a string doubled in a loop)."""
    _step()
    texts = [str(p) for p in parts]
    if sum(map(len, texts)) > MAX_PROMPT_CHARS:
        raise limit_error("~")
    return "".join(texts)


# Filters, not globals: a template can assign any variable name but cannot redefine a filter.
_LOOP, _CONCAT = "m3eval_counted", "m3eval_concat"


class _StepCounts(NodeTransformer):
    """Every `for` loop's items counted as steps, every `~` bounded: rewritten in the parsed
    template (Jinja compiles loops to plain Python `for` statements, with no hook)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 (jinja's visitor names)
        self.generic_visit(node)  # in place: a For stays a For
        node.iter = nodes.Filter(node.iter, _LOOP, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT, [], [], None, None,
                            lineno=node.lineno)


def with_step_counts(tree: nodes.Template) -> nodes.Template:
    return _StepCounts().visit(tree)


def bounded_environment(**options: Any) -> ImmutableSandboxedEnvironment:
    env = _BoundedEnvironment(**options)
    env.filters = {n: _bounded_filter(n, f) if n in _PADDING | {"format", "replace"} else f
                   for n, f in env.filters.items()}
    env.filters[_LOOP], env.filters[_CONCAT] = _counted, _concat
    return env
