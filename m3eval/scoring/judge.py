"""The `judge` metric: a language model grades the answers (M3IT graded knowledge-VQA with GPT-4).

    metrics:
      - name: judge
        args:
          backend: openai                       # any m3eval backend; openai = a hosted API or a
          model_args: {base_url: "http://127.0.0.1:8000/v1", model: gpt-4o}   # local `transformers serve` / vLLM
          mode: single                          # single: a 1..max_score grade of the answer
                                                # pairwise: the answer against references[0], in BOTH
                                                # orders (FairEval's balanced position calibration)
          rubric: "Correct and complete ..."    # optional; shown to the judge
          prompt: "..."                         # optional Jinja2 template (defaults below)

single: per sample score/max_score (0..1). pairwise: the two orders' scores are averaged per side
(FairEval, Wang et al. 2023, "Large Language Models are not Fair Evaluators"); 1 = the answer
wins, 0.5 = tie, 0 = the reference wins.

Every judge call is cached by its exact prompt and the judge's id/revision in
<run>/judge/calls.jsonl (append-only): re-scoring makes no call twice, and an interrupted
scoring resumes. A judge output that cannot be parsed, or a failed call, scores 0 and is
counted (`failures` in the metric's signature and <run>/judge/info.json); failed calls are not
cached, so the next scoring retries them. The judge's id and revision are in the signature.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

from m3eval.metrics.base import Metric, MetricInput, MetricResult, mean, register_metric
from m3eval.prompts import render
from m3eval.public_paths import public_text
from m3eval.results import append_jsonl, atomic_write_json, read_jsonl

_RUN_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("judge_run_dir", default=None)
_WHOLE_TASK: contextvars.ContextVar[bool] = contextvars.ContextVar("judge_whole_task", default=True)
_MODELS: dict[str, Any] = {}

SINGLE_PROMPT = (
    "You are grading an AI assistant's answer to a question about an image. You cannot see the image: "
    "judge against the reference answer.\n{% if rubric %}Rubric: {{ rubric }}\n{% endif %}"
    "Question: {{ question }}\nReference answer: {{ reference }}\nAssistant's answer: {{ answer }}\n"
    "Rate the answer from 1 to {{ max_score }}, then explain briefly. Begin with the rating in the form "
    "Rating: [[N]]."
)
PAIRWISE_PROMPT = (
    "Two AI assistants answered the same question about an image. You cannot see the image.\n"
    "{% if rubric %}Rubric: {{ rubric }}\n{% endif %}Question: {{ question }}\n"
    "[Assistant 1]\n{{ answer_a }}\n[End of Assistant 1]\n[Assistant 2]\n{{ answer_b }}\n[End of Assistant 2]\n"
    "Rate the helpfulness, relevance and accuracy of each answer from 1 to {{ max_score }}. On the first line "
    "write only the two ratings, Assistant 1 first, separated by a space; then explain."
)
_SINGLE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_PAIR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[,\s]\s*(\d+(?:\.\d+)?)")


@contextlib.contextmanager
def run_folder(run_dir: Path | None) -> Iterator[None]:
    """Judge calls made while scoring this run are cached in <run_dir>/judge/."""
    token = _RUN_DIR.set(run_dir)
    try:
        yield
    finally:
        _RUN_DIR.reset(token)


@contextlib.contextmanager
def subsets() -> Iterator[None]:
    """Scoring parts of a task (per language, per instruction): judge calls still come from the
    cache, but info.json keeps describing the whole task."""
    token = _WHOLE_TASK.set(False)
    try:
        yield
    finally:
        _WHOLE_TASK.reset(token)


def parse_single(text: str, max_score: float) -> float | None:
    m = _SINGLE.search(text or "")
    if not m or not 0 <= float(m.group(1)) <= max_score:
        return None
    return float(m.group(1))


def parse_pair(text: str, max_score: float) -> tuple[float, float] | None:
    first = next((line for line in (text or "").splitlines() if line.strip()), "")
    m = _PAIR.match(first)
    if not m:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    return (a, b) if 0 <= a <= max_score and 0 <= b <= max_score else None


def pairwise_outcome(first: tuple[float, float], swapped: tuple[float, float]) -> float:
    """first: (answer, reference) scores with the answer shown first; swapped: (reference, answer).
    Balanced position calibration: each side's two scores averaged; 1 win, 0.5 tie, 0 loss."""
    answer, reference = (first[0] + swapped[1]) / 2, (first[1] + swapped[0]) / 2
    return 1.0 if answer > reference else 0.5 if answer == reference else 0.0


class JudgeModel:
    """The judge model and its call cache."""

    def __init__(self, backend: str, model_args: dict[str, Any]):
        from m3eval.models.registry import load_model

        key = json.dumps([backend, model_args], sort_keys=True)
        if key not in _MODELS:
            _MODELS[key] = load_model(backend, dict(model_args))
        self.model = _MODELS[key]
        info = self.model.info()
        self.judge_id = f"{backend}:{info.get('id') or model_args.get('model') or model_args.get('pretrained')}"
        # as recorded (signature, info.json): a judge served by its path named by its last part
        self.public_id = public_text(self.judge_id)
        self.revision = info.get("revision")
        run_dir = _RUN_DIR.get()
        self.file = run_dir / "judge" / "calls.jsonl" if run_dir is not None else None
        self.cache = {r["key"]: r["output"] for r in read_jsonl(self.file)} if self.file and self.file.exists() else {}
        self.made = 0

    def key(self, prompt: str, max_new_tokens: int) -> str:
        return hashlib.sha256(json.dumps([self.judge_id, self.revision, max_new_tokens, prompt]).encode()).hexdigest()

    def run(self, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str | None]:
        """Outputs aligned with prompts; None where the call failed."""
        from m3eval.models.base import GenerationConfig

        keys = [self.key(p, max_new_tokens) for p in prompts]
        first: dict[str, int] = {}
        for i, k in enumerate(keys):  # each distinct prompt once
            first.setdefault(k, i)
        todo = [k for k in first if k not in self.cache]
        gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, do_sample=False)
        for s in range(0, len(todo), batch_size):
            chunk = todo[s:s + batch_size]
            try:
                outs = self.model.generate([[{"type": "text", "text": prompts[first[k]]}] for k in chunk], gen)
            except Exception:  # noqa: BLE001 -- a failed judge call is counted, not fatal; retried next time
                continue
            rows = [{"key": k, "output": o} for k, o in zip(chunk, outs) if isinstance(o, str)]
            self.made += len(rows)
            self.cache.update((r["key"], r["output"]) for r in rows)
            if self.file is not None and rows:
                append_jsonl(self.file, rows)
        return [self.cache.get(k) for k in keys]



def judge_items(items: list[MetricInput], backend: str = "openai", model_args: dict[str, Any] | None = None,
                mode: str = "single", rubric: str = "", prompt: str | None = None, max_score: float = 10,
                max_new_tokens: int = 256, batch_size: int = 8) -> MetricResult:
    if mode not in ("single", "pairwise"):
        raise ValueError(f"judge: mode must be single or pairwise, got {mode!r}")
    calls = JudgeModel(backend, model_args or {})
    template = prompt or (SINGLE_PROMPT if mode == "single" else PAIRWISE_PROMPT)
    todo = [i for i, it in enumerate(items) if it.prediction is not None]
    ctx = [{"question": items[i].prompt, "answer": items[i].prediction, "rubric": rubric, "max_score": max_score,
            "reference": items[i].references[0] if items[i].references else ""} for i in todo]
    try:
        if mode == "single":
            prompts = [render(template, c) for c in ctx]
        else:  # the answer first, then the reference first
            prompts = [render(template, {**c, "answer_a": a, "answer_b": b}) for c in ctx
                       for a, b in ((c["answer"], c["reference"]), (c["reference"], c["answer"]))]
    except KeyError as e:
        raise ValueError(f"judge: prompt template: {e}") from None
    outs = calls.run(prompts, max_new_tokens, batch_size)
    scores, failures = [0.0] * len(items), 0
    for n, i in enumerate(todo):
        if mode == "single":
            out = outs[n]
            s = parse_single(out, max_score) if out is not None else None
            value = None if s is None else s / max_score
        else:
            pair = [parse_pair(o, max_score) if o is not None else None for o in outs[2 * n:2 * n + 2]]
            value = None if None in pair else pairwise_outcome(pair[0], pair[1])  # type: ignore[arg-type]
        failures += value is None
        scores[i] = value or 0.0
    info = {"judge": calls.public_id, "revision": calls.revision, "mode": mode, "max_score": max_score,
            "judged": len(todo), "failures": failures, "calls_made": calls.made, "prompt_template": template}
    if calls.file is not None and _WHOLE_TASK.get():
        atomic_write_json(calls.file.parent / "info.json", info)
    signature = f"judge={calls.public_id}@{calls.revision or 'unknown'}|mode={mode}|failures={failures}/{len(todo)}"
    return MetricResult(mean(scores), scores, signature=signature)


register_metric(Metric("judge", judge_items,
                       description="LLM-as-judge: single grade or pairwise vs the reference with position swapping "
                                   "(backend, model_args, mode, rubric, prompt in the task YAML)"))
