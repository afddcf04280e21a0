"""The model adapter protocol, generation settings and the backend registry.

Every backend receives the same `Message` format (m3eval/types.py) and returns
one string per message. Backends are looked up by name; plugins add their own
through the entry-point group `m3eval.models` (name -> factory), e.g. in a
plugin's pyproject.toml:

    [project.entry-points."m3eval.models"]
    mybackend = "my_pkg.adapter:MyAdapter"

A factory is called as `factory(**model_args)` and returns a ModelAdapter.

Optional parts a backend may add (the runner uses them when present):
- `preflight(model_args)` (static): cheap checks run before any task data loads
  (a missing package or GPU, a missing required arg); raises ModelLoadError.
- `revision_without_loading(model_args)` (static): the revision the loaded model would
  record, where it can be read without loading (a local folder's fingerprint); lets a run
  with nothing left to generate still notice weights retrained in place.
- `generate_stream(items)`: (key, message, gen) in, (key, text or the sample's Exception,
  seconds) out in completion order. The runner then feeds every task's samples as one
  lazy stream (continuous submission) and logs each answer as it arrives.
- `splits_preprocessing` + `preprocess(messages, gen)` + `generate_prepared(inputs, gen)`:
  the runner builds inputs ahead of the model (run/prefetch.py: in a forked worker process,
  or threads), and the model thread only generates.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol, runtime_checkable

from m3eval.types import Message


@dataclass
class GenerationConfig:
    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    num_beams: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ModelAdapter(Protocol):
    name: str  # display name, e.g. the model folder or hub id

    def info(self) -> dict[str, Any]:
        """At least {"backend", "id", "revision"}; never secrets."""
        ...

    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        """One string per message, in order (greedy unless gen.do_sample)."""
        ...


class ModelLoadError(RuntimeError):
    """The model could not be loaded: the message says why and what to check."""


class BadMessageError(ValueError):
    """One message of a batch is malformed. `index` is its position in the batch,
    so a caller can record that sample as failed and run the others."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"message {index}: {reason}")
        self.index = index
        self.reason = reason


def truncate_at_stop(text: str, stop: list[str]) -> str:
    """Cut `text` at the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


# ---- registry ---------------------------------------------------------------

# Built-in backends are imported lazily so `import m3eval` never pulls in torch.
_BUILTIN: dict[str, str] = {
    "hf": "m3eval.models.hf:HFAdapter",
    "openai": "m3eval.models.openai_compat:OpenAICompatAdapter",
    "clip": "m3eval.models.clip:CLIPAdapter",
    "vllm": "m3eval.models.vllm:VLLMAdapter",
}
_REGISTERED: dict[str, Callable[..., ModelAdapter]] = {}


def register_backend(name: str, factory: Callable[..., ModelAdapter]) -> None:
    _REGISTERED[name] = factory


def _plugin_backends() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="m3eval.models")}


def backend_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(_plugin_backends()))


def get_backend(name: str) -> Callable[..., ModelAdapter]:
    """The factory (usually the adapter class) registered under `name`."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        return getattr(importlib.import_module(module), attr)
    plugins = _plugin_backends()
    if name in plugins:
        try:
            return plugins[name].load()
        except Exception as e:  # a broken plugin should say which one
            raise ModelLoadError(f"backend {name!r}: cannot load entry point {plugins[name].value!r}: {e}") from e
    known = backend_names()
    near = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ModelLoadError(f"unknown model backend {name!r}{hint}; known backends: {', '.join(known)}")


def _check_args(backend: str, factory: Callable[..., ModelAdapter], model_args: dict[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some callables have no signature
        return
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [k for k in model_args if k not in accepted]
        if unknown:
            raise ModelLoadError(f"backend {backend!r}: unknown model arg(s) {', '.join(map(repr, unknown))}; "
                                 f"accepted: {', '.join(accepted)}")


def check_backend(backend: str, model_args: dict[str, Any]) -> None:
    """Cheap checks before any task data loads: the backend exists, its args are known, and
    its own `preflight(model_args)` (if it has one: a missing package, GPU or required arg)
    passes. Raises ModelLoadError."""
    factory = get_backend(backend)
    _check_args(backend, factory, model_args)
    preflight = getattr(factory, "preflight", None)
    if callable(preflight):
        preflight(model_args)


def load_model(backend: str, model_args: dict[str, Any]) -> ModelAdapter:
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
    for cast in (int, float):
        try:
            return cast(value)
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
    parts, cur, quote = [], [], None
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


# ---- message checking (shared by all backends) -----------------------------

def check_message(index: int, message: Message) -> list[dict[str, Any]]:
    """Validate one message and return its parts with images decoded to RGB.

    Parts: {"type": "text", "text": str} | {"type": "image", "image": PIL.Image}
    | {"type": "video", "frames": [PIL.Image, ...], "fps": float | None}
    | {"type": "frames", "frames": [PIL.Image, ...]}.
    Raises BadMessageError naming the message and part.
    """
    from PIL import Image

    def rgb(img: Any, where: str) -> Any:
        if not isinstance(img, Image.Image):
            raise BadMessageError(index, f"{where}: expected a PIL.Image, got {type(img).__name__}")
        try:
            img.load()  # a lazily opened, truncated file fails here, not inside the model
        except Exception as e:
            raise BadMessageError(index, f"{where}: cannot decode image: {e}") from e
        return img if img.mode == "RGB" else img.convert("RGB")

    if not isinstance(message, list):
        raise BadMessageError(index, f"expected a list of parts, got {type(message).__name__}")
    if not message:
        raise BadMessageError(index, "the message has no parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message):
        where = f"part {j}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadMessageError(index, f"{where}: text part needs a string under 'text'")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image":
            parts.append({"type": "image", "image": rgb(part.get("image"), f"{where} (image)")})
        elif kind in ("video", "frames"):
            frames = part.get("frames")
            if not isinstance(frames, list) or not frames:
                raise BadMessageError(index, f"{where}: {kind} part needs a non-empty list under 'frames'")
            decoded = [rgb(f, f"{where} ({kind} frame {k})") for k, f in enumerate(frames)]
            fps = part.get("fps")
            if fps is not None and not isinstance(fps, (int, float)):
                raise BadMessageError(index, f"{where}: fps must be a number or None, got {fps!r}")
            parts.append({"type": kind, "frames": decoded, "fps": fps})
        else:
            shown = kind if isinstance(part, dict) else type(part).__name__
            raise BadMessageError(index, f"{where}: unknown part type {shown!r} (expected text, image, video or frames)")
    return parts
