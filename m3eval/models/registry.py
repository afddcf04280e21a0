"""Backends by name: the built-ins (imported only when used), `register_backend(name, factory)`,
and plugins of the entry-point group `m3eval.models` (name -> factory), e.g. in a plugin's
pyproject.toml:

    [project.entry-points."m3eval.models"]
    mybackend = "my_pkg.adapter:MyAdapter"

A factory is called as `factory(**model_args)`; one that is not a `ModelAdapter` subclass is
wrapped so its objects are adapted (base.adapt). Also `--model-args` parsing and checking."""
from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol, cast

from m3eval.errors import ModelLoadError
from m3eval.models.base import ModelAdapter, adapt
from m3eval.plugins import unknown_arguments

# Built-in backends are imported lazily so `import m3eval` never pulls in torch.
_BUILTIN: dict[str, str] = {
    "hf": "m3eval.models.hf:HFAdapter",
    "openai": "m3eval.models.openai_compat:OpenAICompatAdapter",
    "clip": "m3eval.models.clip:CLIPAdapter",
    "vllm": "m3eval.models.vllm:VLLMAdapter",
}
_REGISTERED: dict[str, Callable[..., Any]] = {}


class Backend(Protocol):
    """What `get_backend` returns: called with the model args it loads the model; its
    `preflight` and `revision_without_loading` work before loading (ModelAdapter's)."""

    def __call__(self, *args: Any, **kwargs: Any) -> ModelAdapter: ...

    def preflight(self, model_args: dict[str, Any]) -> None: ...

    def revision_without_loading(self, model_args: dict[str, Any]) -> str | None: ...

    @property
    def transport_args(self) -> frozenset[str]: ...


class PluginBackend:
    """A plugin factory that is not a ModelAdapter subclass (a function, or a class of its
    own), as a `Backend`: what it builds is adapted (`adapt`), and its own `preflight` /
    `revision_without_loading`, where it has them, are used, else ModelAdapter's defaults."""

    def __init__(self, name: str, factory: Callable[..., Any]):
        self.name, self.factory = name, factory

    def __call__(self, *args: Any, **kwargs: Any) -> ModelAdapter:
        return adapt(self.factory(*args, **kwargs), self.name)

    def preflight(self, model_args: dict[str, Any]) -> None:
        check = getattr(self.factory, "preflight", None)
        if callable(check):
            check(model_args)

    def revision_without_loading(self, model_args: dict[str, Any]) -> str | None:
        read = getattr(self.factory, "revision_without_loading", None)
        return cast("str | None", read(model_args)) if callable(read) else None

    @property
    def transport_args(self) -> frozenset[str]:
        return frozenset(getattr(self.factory, "transport_args", ()))


def _as_backend(name: str, factory: Callable[..., Any]) -> Backend:
    if isinstance(factory, type) and issubclass(factory, ModelAdapter):
        return cast(Backend, factory)
    return PluginBackend(name, factory)


def register_backend(name: str, factory: Callable[..., Any]) -> None:
    """Add (or replace) backend `name`: a ModelAdapter subclass, or any factory whose
    result has a `generate` (adapted when loaded)."""
    _REGISTERED[name] = factory


def _plugin_backends() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="m3eval.models")}


def backend_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(_plugin_backends()))


def get_backend(name: str) -> Backend:
    """The backend registered under `name`: its ModelAdapter subclass, or a plugin's
    factory as a PluginBackend."""
    if name in _REGISTERED:
        return _as_backend(name, _REGISTERED[name])
    if name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        return _as_backend(name, getattr(importlib.import_module(module), attr))
    plugins = _plugin_backends()
    if name in plugins:
        try:
            factory = plugins[name].load()
        except Exception as e:  # a broken plugin should say which one
            raise ModelLoadError(f"backend {name!r}: cannot load entry point {plugins[name].value!r}: {e}") from e
        return _as_backend(name, factory)
    known = backend_names()
    near = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ModelLoadError(f"unknown model backend {name!r}{hint}; known backends: {', '.join(known)}")


def _check_args(backend: str, factory: Backend, model_args: dict[str, Any]) -> None:
    unknown, accepted = unknown_arguments(factory.factory if isinstance(factory, PluginBackend) else factory,
                                          model_args)
    if unknown:
        raise ModelLoadError(f"backend {backend!r}: unknown model arg(s) {', '.join(map(repr, unknown))}; "
                             f"accepted: {', '.join(accepted)}")


def check_backend(backend: str, model_args: dict[str, Any]) -> None:
    """Cheap checks before any task data loads: the backend exists, its args are known, and
    its `preflight(model_args)` (a missing package, GPU or required arg) passes. Raises
    ModelLoadError."""
    factory = get_backend(backend)
    _check_args(backend, factory, model_args)
    factory.preflight(model_args)


def load_model(backend: str, model_args: dict[str, Any]) -> ModelAdapter:
    """Load backend `backend` with `model_args`, as a ModelAdapter (a plugin's object adapted)."""
    factory = get_backend(backend)
    _check_args(backend, factory, model_args)
    return factory(**model_args)


# ---- --model-args parsing ---------------------------------------------------

def _typed(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def parse_model_args(text: str) -> dict[str, Any]:
    """"pretrained=PATH,dtype=bfloat16,max_pixels=1024" -> typed dict.

    Values become bool / int / float / None where obvious, else stay strings.
    Quote a value ("k='a,b'") to keep commas or keep it a string.
    """
    out: dict[str, Any] = {}
    for item in _split_top_level(text):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"--model-args: {item.strip()!r} is not key=value (in {text!r})")
        key, value = item.split("=", 1)
        key, value = key.strip(), value.strip()
        if not key:
            raise ValueError(f"--model-args: empty key in {item!r}")
        if key in out:
            raise ValueError(f"--model-args: key {key!r} given twice")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            out[key] = value[1:-1]
        else:
            out[key] = _typed(value)
    return out


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside quotes."""
    parts: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if quote:
        raise ValueError(f"--model-args: unclosed quote in {text!r}")
    parts.append("".join(cur))
    return parts


