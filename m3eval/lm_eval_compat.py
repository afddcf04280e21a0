"""lm-eval / lmms-eval spellings on `m3eval run`, translated to m3eval's: `--gen_kwargs`
(lm-eval's generation keys -> GenerationSpec fields) and `--limit` as a fraction. Only the
parsing of the flags: a task's generation settings are overridden by
tasks/schema.apply_gen_kwargs, and a limit is applied by data/samples.limit_count.
(The underscore spellings of the other flags are aliases in cli.py.)"""
from __future__ import annotations

import json
from typing import Any

# lm-eval's generation keys -> m3eval's GenerationSpec fields
GEN_KEYS = {"max_new_tokens": "max_new_tokens", "max_gen_toks": "max_new_tokens", "temperature": "temperature",
            "top_p": "top_p", "num_beams": "num_beams", "do_sample": "do_sample", "until": "stop", "stop": "stop"}


def parse_gen_kwargs(text: str) -> dict[str, Any]:
    """"max_new_tokens=32,temperature=0,until=###" -> GenerationSpec fields (validated).

    until/stop take one string, or a JSON list in quotes: until='["\\n", "###"]'.
    """
    from pydantic import ValidationError

    from .models.registry import parse_model_args
    from .tasks.schema import GenerationSpec

    try:
        raw = parse_model_args(text)
    except ValueError as e:
        raise ValueError(str(e).replace("--model-args", "--gen_kwargs")) from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in GEN_KEYS:
            raise ValueError(f"--gen_kwargs: unknown key {key!r}; known: {', '.join(GEN_KEYS)}")
        if GEN_KEYS[key] == "stop":
            text_value = str(value)
            value = json.loads(text_value) if text_value.startswith("[") else [text_value]
        out[GEN_KEYS[key]] = value
    if "temperature" in out and "do_sample" not in out:
        out["do_sample"] = out["temperature"] > 0  # lm-eval: temperature 0 means greedy
    try:
        GenerationSpec(**out)
    except ValidationError as e:  # name the key and the rule
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"--gen_kwargs: {where}: {first['msg']}") from None
    return out


def parse_limit(text: str) -> int | float:
    """A count (N >= 1: the first N samples of each task) or a fraction 0 < x < 1 of each."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--limit: expected a whole number >= 1 or a fraction 0 < x < 1, got {text!r}") from None
    if 0 < value < 1:
        return value
    if value >= 1 and value.is_integer():
        return int(value)
    raise ValueError(f"--limit: expected a whole number >= 1 or a fraction 0 < x < 1, got {text!r}")

