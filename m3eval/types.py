"""The plain types that flow through m3eval (see docs/FORMATS.md).

Sample  -> what a task yields: text fields now, media only as lazy references.
Message -> what a model receives: an ordered list of parts, one format for all backends.
Prediction -> what a model returned for one sample.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .line_record import Scored
from .record import SampleFailure

# A Message is an ordered list of parts, e.g.
#   [{"type": "image", "image": PIL.Image},
#    {"type": "video", "frames": [PIL.Image, ...], "fps": 1.0},
#    {"type": "text", "text": "What is shown?"}]
Message = list[dict[str, Any]]


class LazySource:
    """A media field read only when its sample reaches a model: `get()` gives what the row holds
    (data/samples.py LazyField reads the table; run/data_process.py RemoteField asks the data process)."""

    __slots__ = ()
    optional: bool  # one of several image fields: a null is no image (None), not a bad one

    def get(self) -> Any:
        raise NotImplementedError


@dataclass(slots=True)  # slots: a run holds one per media field of every sample
class Media:
    """A lazy reference to one image or one video of a sample.

    `source` is whatever the dataset row holds (base64 string, bytes, a path, a
    `datasets` Image dict, a PIL image, or for "frames" a list of those), or a
    LazySource that reads it; it is decoded only when the sample reaches a model, so a
    run never holds a whole dataset's decoded pixels.
    """

    kind: Literal["image", "video", "frames"]
    source: Any


@dataclass(slots=True)  # slots: a run holds every sample of a task (issue 24: memory per sample)
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
    category: str | None = None  # doc.category's value: results score each category apart
    image_markers: str | None = None  # doc.image_markers: image k goes at its marker in the prompt
    failure: SampleFailure | None = None  # a bad row (no references, a prompt over the bound): recorded, never run
    metadata: dict[str, Any] = field(default_factory=dict)


# Sample ids. Under `--instructions all` (or K) a row yields one sample per instruction
# variant k, with id "<row id>#i<k>" (data/samples.py writes it); scoring resamples the
# variants of one row together, keyed by the id without the suffix (scoring/task.py).
_VARIANT_SUFFIX = re.compile(r"#i\d+$")


def variant_id(row_id: str, k: int) -> str:
    """The id of instruction variant `k` of the row with id `row_id`: "<row_id>#i<k>"."""
    return f"{row_id}#i{k}"


def base_id(sample_id: str) -> str:
    """A sample id without its "#i<k>" instruction-variant suffix (unchanged when it has none)."""
    return _VARIANT_SUFFIX.sub("", sample_id)


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
    category: str | None = None  # from doc.category, when the task declares one
    error: SampleFailure | None = None
    seconds: float = 0.0  # this sample's share of its batch's generate() time
    media_info: dict[str, Any] = field(default_factory=dict)  # e.g. frames sampled, rule used
    scored: Scored | None = None  # its scores, made where it was generated (scoring/prescore.py)

    @classmethod
    def for_sample(cls, s: Sample, prediction: str = "", *, error: SampleFailure | None = None,
                   seconds: float = 0.0, media_info: dict[str, Any] | None = None,
                   prompt: str | None = None) -> Prediction:
        """The prediction for sample `s`: everything scoring needs from the sample (references,
        choices, language, instruction, cluster) is carried over here, and only here, whoever
        made the answer (generation, an encoder, or a file scored with `score --predictions`).
        `prompt`: what the model saw when it was not the sample's prompt (an encoder's). A bad row's
        failure (no references, a prompt over the bound) is the prediction's error whatever answered."""
        error = error or s.failure
        return cls(id=s.id, prediction="" if error else prediction, prompt=s.prompt if prompt is None else prompt,
                   references=list(s.references), choices=s.choices, lang=s.lang, instruction=s.instruction,
                   cluster=s.cluster, category=s.category, error=error, seconds=round(seconds, 6),
                   media_info=media_info or {})

    def to_json(self) -> dict[str, Any]:
        # field by field, not dataclasses.asdict: no deep copy of what json.dumps reads next (a hot path)
        return {"id": self.id, "prediction": self.prediction, "prompt": self.prompt, "references": self.references,
                "choices": self.choices, "lang": self.lang, "instruction": self.instruction, "cluster": self.cluster,
                "category": self.category, "error": None if self.error is None else self.error.dump(),
                "seconds": self.seconds, "media_info": self.media_info,
                "scored": None if self.scored is None else self.scored.dump()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Prediction:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known["error"] = SampleFailure.parse(d.get("error"))
        known["scored"] = None if d.get("scored") is None else Scored.model_validate(d["scored"])
        return cls(**known)
