"""The plain types that flow through m3eval (see docs/FORMATS.md).

Sample  -> what a task yields: text fields now, media only as lazy references.
Message -> what a model receives: an ordered list of parts, one format for all backends.
Prediction -> what a model returned for one sample.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# A Message is an ordered list of parts, e.g.
#   [{"type": "image", "image": PIL.Image},
#    {"type": "video", "frames": [PIL.Image, ...], "fps": 1.0},
#    {"type": "text", "text": "What is shown?"}]
Message = list[dict[str, Any]]


@dataclass
class Media:
    """A lazy reference to one image or one video of a sample.

    `source` is whatever the dataset row holds (base64 string, bytes, a path, a
    `datasets` Image dict, a PIL image, or for "frames" a list of those); it is
    decoded only when the sample reaches a model, so a run never holds a whole
    dataset's decoded pixels.
    """

    kind: Literal["image", "video", "frames"]
    source: Any


@dataclass
class Sample:
    id: str
    task: str
    prompt: str
    references: list[str]
    media: list[Media] = field(default_factory=list)
    choices: list[str] | None = None
    lang: str = "en"
    instruction: int | None = None  # index of the instruction variant, when a task has several
    cluster: str | None = None  # doc.cluster's value: samples sharing it are resampled together
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prediction:
    """One line of predictions/<task>.jsonl (append-only)."""

    id: str
    prediction: str
    prompt: str
    references: list[str]
    choices: list[str] | None = None
    lang: str = "en"
    instruction: int | None = None
    cluster: str | None = None  # from doc.cluster, when the task declares one
    error: str | None = None
    seconds: float = 0.0  # this sample's share of its batch's generate() time
    media_info: dict[str, Any] = field(default_factory=dict)  # e.g. frames sampled, rule used

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Prediction":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)
