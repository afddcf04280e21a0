"""The backend interface (`ModelAdapter`) and generation settings (lookup by name: registry.py).

A backend subclasses `ModelAdapter` and implements `generate`; every optional capability
(streaming, split preprocessing, encoding, preflight checks, revision, info, close, the most
images a message may carry) is a member with a default, documented where it is defined, so the
runner calls the interface and never asks an object what it has.

Every backend receives the same `Message` format (m3eval/types.py) and returns one string
per message. A plugin's model that is not a `ModelAdapter` subclass (any object with a
`generate`) is adapted once, here (`adapt`), so the runner sees the same interface.
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, cast

from m3eval.errors import BadMessageError, ModelLoadError
from m3eval.types import Message

if TYPE_CHECKING:
    import numpy as np

__all__ = [  # the errors are re-exported from m3eval.errors, where they are defined
    "BadMessageError", "GenerationConfig", "ModelAdapter", "ModelLoadError", "PluginAdapter", "adapt",
    "truncate_at_stop",
]


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


StreamItem = tuple[Any, Message, GenerationConfig]
"""What `generate_stream` takes: (the caller's key, the message, its generation settings)."""
StreamResult = tuple[Any, str | Exception, float]
"""What `generate_stream` yields: (the key, the text or that sample's exception, seconds)."""


class ModelAdapter(abc.ABC):
    """A model backend. Implement `generate`; override any other member to add a capability.

    The runner (m3eval/run/) and the judge (m3eval/scoring/judge.py) use only these members.
    The capability flags (`streams`, `splits_preprocessing`, `is_encoder`) say which path
    the runner takes; each flag goes with the methods it names, which are not called while
    it is False.
    """

    backend: str = ""
    """The backend's short name, recorded in `info()` (e.g. "hf"); the class name when empty."""

    name: str = ""
    """Display name of the loaded model, e.g. the model folder or hub id (set it in __init__)."""

    streams: bool = False
    """True: the runner calls `generate_stream` instead of `generate`, with every task's
    samples as one lazy stream (continuous submission), and logs each answer as it arrives.
    For backends that keep many requests in flight (openai, vllm)."""

    splits_preprocessing: bool = False
    """True: the runner calls `preprocess` ahead of the model (run/prefetch.py: in a forked
    worker process, or threads) and then `generate_prepared` on the model thread, which only
    generates. `generate` is still called when `preprocess` or `generate_prepared` fails,
    to retry a batch sample by sample."""

    transport_args: frozenset[str] = frozenset()
    """Model args that say how to reach the model, not which model answers (a server's address,
    timeouts, retries, concurrency): a run folder resumes when only these change."""

    is_encoder: bool = False
    """True: a contrastive encoder (`encode_images` / `encode_texts`), which runs the encoder
    task types (m3eval/run/encode.py) and not generative tasks."""

    @abc.abstractmethod
    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        """One string per message, in order (greedy unless gen.do_sample). A malformed message
        raises BadMessageError with its index; any other exception fails the batch, whose
        samples the runner then retries one at a time, so one bad sample costs no others."""

    def info(self) -> dict[str, Any]:
        """What results.json records about the model: at least {"backend", "id", "revision"}
        (the revision of the weights, or None where unknown); never secrets.
        Default: the backend, `name` as the id, and no revision."""
        return {"backend": self.backend or type(self).__name__, "id": self.name or None, "revision": None}

    def close(self) -> None:
        """Free the model (GPU memory, connections, threads). Default: nothing to free."""

    def max_images(self) -> int | None:
        """The most images one message may carry (image parts; a video's frames are ruled by the
        task's video settings), or None for no limit. A sample with more (MMMU has up to seven)
        fails alone, recorded with both counts, and is never sent. Default: None."""
        return None

    @staticmethod
    def preflight(model_args: dict[str, Any]) -> None:
        """Cheap checks run before any task data loads (a missing package or GPU, a missing
        required arg); raises ModelLoadError. Called on the class, before loading.
        Default: no checks."""

    @staticmethod
    def revision_without_loading(model_args: dict[str, Any]) -> str | None:
        """The revision a loaded model would record in `info()`, where it can be read without
        loading (a local folder's fingerprint): lets a run with nothing left to generate still
        notice weights retrained in place. Called on the class. Default: None (unknown)."""
        return None

    def generate_stream(self, items: Iterable[StreamItem]) -> Iterator[StreamResult]:
        """With `streams = True`: (key, message, gen) in, (key, text or the sample's exception,
        seconds) out, in completion order. Pull items only as capacity frees: the stream is
        lazy (media decoded on demand). A failed request is that sample's error, not retried
        by the runner. Default: not streaming (the runner calls `generate`)."""
        raise NotImplementedError(f"{type(self).__name__} does not stream (streams = False)")

    def preprocess(self, batch: list[Message], gen: GenerationConfig) -> Any:
        """With `splits_preprocessing = True`: build the model's inputs for one batch (chat
        template, image processing) off the model thread; the result must pickle when it is
        built in a worker process. Default: not split (the runner calls `generate`)."""
        raise NotImplementedError(f"{type(self).__name__} does not split preprocessing")

    def generate_prepared(self, inputs: Any, gen: GenerationConfig) -> list[str]:
        """With `splits_preprocessing = True`: `generate` for inputs that `preprocess` built,
        the only work on the model thread. Default: not split."""
        raise NotImplementedError(f"{type(self).__name__} does not split preprocessing")

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """With `is_encoder = True`: PIL images -> (n, d) L2-normalized float32 embeddings.
        Default: not an encoder."""
        raise NotImplementedError(f"{type(self).__name__} is not an encoder")

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """With `is_encoder = True`: strings -> (n, d) L2-normalized float32 embeddings.
        Default: not an encoder."""
        raise NotImplementedError(f"{type(self).__name__} is not an encoder")


_OPTIONAL = ("info", "close", "max_images", "generate_stream", "preprocess", "generate_prepared", "encode_images",
             "encode_texts")


class PluginAdapter(ModelAdapter):
    """A plugin's model object that does not subclass ModelAdapter, behind the interface:
    `generate` and each optional method it has are forwarded, the rest are the defaults, and
    the capability flags say what it has. The one place m3eval looks at what a model object
    has (once, when it loads), so the runner never probes. The object is `.wrapped`."""

    def __init__(self, wrapped: Any, backend: str):
        if not callable(getattr(wrapped, "generate", None)):
            raise ModelLoadError(f"backend {backend!r}: its factory returned {type(wrapped).__name__}, "
                                 "which has no generate(batch, gen) method")
        self.wrapped = wrapped
        self.backend = backend
        self.name = str(getattr(wrapped, "name", "") or "")
        self._has = {m for m in _OPTIONAL if callable(getattr(wrapped, m, None))}
        self.streams = "generate_stream" in self._has
        self.splits_preprocessing = (bool(getattr(wrapped, "splits_preprocessing", False))
                                     and {"preprocess", "generate_prepared"} <= self._has)
        self.is_encoder = {"encode_images", "encode_texts"} <= self._has

    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        return cast("list[str]", self.wrapped.generate(batch, gen))

    def info(self) -> dict[str, Any]:
        return dict(self.wrapped.info()) if "info" in self._has else super().info()

    def close(self) -> None:
        if "close" in self._has:
            self.wrapped.close()

    def max_images(self) -> int | None:
        return cast("int | None", self.wrapped.max_images()) if "max_images" in self._has else None

    def generate_stream(self, items: Iterable[StreamItem]) -> Iterator[StreamResult]:
        if not self.streams:
            return super().generate_stream(items)
        return cast("Iterator[StreamResult]", self.wrapped.generate_stream(items))

    def preprocess(self, batch: list[Message], gen: GenerationConfig) -> Any:
        if not self.splits_preprocessing:
            return super().preprocess(batch, gen)
        return self.wrapped.preprocess(batch, gen)

    def generate_prepared(self, inputs: Any, gen: GenerationConfig) -> list[str]:
        if not self.splits_preprocessing:
            return super().generate_prepared(inputs, gen)
        return cast("list[str]", self.wrapped.generate_prepared(inputs, gen))

    def encode_images(self, images: list[Any]) -> np.ndarray:
        if not self.is_encoder:
            return super().encode_images(images)
        return cast("np.ndarray", self.wrapped.encode_images(images))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not self.is_encoder:
            return super().encode_texts(texts)
        return cast("np.ndarray", self.wrapped.encode_texts(texts))


def adapt(model: Any, backend: str) -> ModelAdapter:
    """`model` as a ModelAdapter: itself when it is one, else wrapped in a PluginAdapter."""
    return model if isinstance(model, ModelAdapter) else PluginAdapter(model, backend)


def truncate_at_stop(text: str, stop: list[str]) -> str:
    """Cut `text` at the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]
