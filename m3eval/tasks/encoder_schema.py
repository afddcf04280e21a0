"""Task-schema parts of the encoder task types (`type: zero_shot_classification | retrieval`).

    type: zero_shot_classification
    encoder:
      classes: {en: feature:label}          # per language: a list, a file (one name a line,
                                            # relative to the YAML) or feature:<column> (the
                                            # dataset's ClassLabel names)
      templates: {en: ["a photo of a {}."]} # per language: prompt templates, "{}" = the class
      openness: {step: 10, trials: 3, seed: 0}   # optional: accuracy as the vocabulary grows

`doc.references` names the class index field (zero-shot) or the captions field (retrieval:
a list of captions per image); `doc.images` the image.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TaskType = Literal["generate", "zero_shot_classification", "retrieval"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpennessSpec(_Strict):
    """CLIP-openness extensibility (arXiv 2206.01986): the vocabulary grows by `step` classes in
    a seeded random order; at each size, accuracy over the samples whose class is in it."""

    step: int = Field(10, ge=1)
    trials: int = Field(3, ge=1)  # random vocabulary orders averaged
    seed: int = 0


class EncoderSpec(_Strict):
    classes: dict[str, list[str] | str] | None = None
    templates: dict[str, list[str] | str] | None = None
    openness: OpennessSpec | None = None


def check_encoder_task(task_type: str, encoder: EncoderSpec | None) -> None:
    """What each type needs; raised as a validation error naming the field."""
    if task_type == "generate":
        if encoder is not None:
            raise ValueError("encoder: only for type zero_shot_classification or retrieval")
        return
    if encoder is None:
        if task_type == "retrieval":
            return
        raise ValueError(f"type {task_type}: needs an `encoder:` section (classes, templates)")
    if task_type == "zero_shot_classification":
        if not encoder.classes or not encoder.templates:
            raise ValueError("encoder: zero_shot_classification needs classes and templates (per language)")
        missing = sorted(set(encoder.classes) - set(encoder.templates))
        if missing:
            raise ValueError(f"encoder.templates: no templates for language(s) {missing}")
        for lang, t in encoder.templates.items():
            if isinstance(t, list) and (not t or any("{}" not in s for s in t)):
                raise ValueError(f"encoder.templates.{lang}: each template must contain {{}} (the class name)")
    elif encoder.classes or encoder.templates or encoder.openness:
        raise ValueError("encoder: classes/templates/openness are for zero_shot_classification only")
