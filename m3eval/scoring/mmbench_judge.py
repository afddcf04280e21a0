"""`circular_accuracy_judged`: MMBench CircularEval with the authors' LLM choice extractor behind the rules.

VLMEvalKit (open-compass/VLMEvalKit @ e8e78f05f3080fe28154f2130321f17951c3be94,
vlmeval/dataset/utils/multiple_choice.py eval_circular_group / extract_answer_from_item) reads each answer with
the rules first (can_infer; m3eval/metrics/mmbench.py); for an answer they cannot read, in a question no other
shift has already failed, it asks an LLM (ChatGPT by default) to match the answer to an option with the prompt
build_prompt (build_prompt_cn when the question holds Chinese), then reads the LLM's output with the same rules.
Here the LLM is any m3eval backend, configured as the `judge` metric's (m3eval/scoring/judge.py): its calls are
cached in <run>/judge/calls.jsonl and `m3eval score RUN` re-scores from the cache.

    metrics:
      - name: circular_accuracy_judged
        args: {backend: openai, model_args: {base_url: "http://127.0.0.1:8000/v1", model: gpt-4o-mini}}

Differences, on purpose: an output the rules cannot read is unparsed (counted in details, scored 0), where
VLMEvalKit asks twice more and then picks an option AT RANDOM; the "question" shown to the LLM is the prompt the
model saw (hint, question and options; m3eval keeps no bare question), where VLMEvalKit shows the bare question.
The task feeds the raw answers to this metric (no filter: the rules run here, before the LLM).
"""
from __future__ import annotations

import re
from typing import Any

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import Metric, MetricInput, MetricResult, register_metric
from m3eval.metrics.choice import letter
from m3eval.metrics.mmbench import MMBENCH_SOURCE, circular_accuracy_items, mmbench_infer

from .judge import JudgeModel

# the authors' extractor prompts (multiple_choice.py build_prompt / build_prompt_cn), placeholders in order:
# question, options (build_option_str), answer
EXTRACT_PROMPT = (
    "You are an AI assistant who will help me to match an answer with several options of a single-choice "
    "question. You are provided with a question, several options, and an answer, and you need to find which option "
    "is most similar to the answer. If the meaning of all options are significantly different from the answer, "
    "output Z. Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\nExample 2: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: Spider\nYour output: Z\nExample 3: \nQuestion: {}?\nOptions: {}\nAnswer: {}\nYour output: ")
EXTRACT_PROMPT_CN = (
    "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
    "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
    "如果所有选项的意义都与答案显著不同，则输出 Z。"
    "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。"
    "例 1:问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n"
    "例 2: \n问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n"
    "例 3: \n问题: {}?\n选项: {}\n答案: {}\n输出: ")
_CJK = re.compile("[\u4e00-\u9fff]")


def extract_prompt(question: str, choices: list[str], answer: str) -> str:
    """The extractor prompt for one answer (Chinese when the question holds a CJK character, as cn_string)."""
    options = "There are several options: \n" + "".join(f"{letter(i)}. {c}\n" for i, c in enumerate(choices))
    template = EXTRACT_PROMPT_CN if _CJK.search(question) else EXTRACT_PROMPT
    return template.format(question, options, answer)


def _failed_questions(items: list[MetricInput], rules: list[str | None]) -> set[str]:
    """Questions a shift already fails by the rules (a letter, or Z, that is not the answer): no call needed."""
    return {it.cluster or it.id for it, r in zip(items, rules)
            if r is not None and (not it.references or r != it.references[0].strip())}


def circular_accuracy_judged_items(items: list[MetricInput], backend: str = "openai",
                                   model_args: dict[str, Any] | None = None,
                                   category_groups: dict[str, list[str]] | None = None,
                                   max_new_tokens: int = 32, batch_size: int = 8) -> MetricResult:
    for i, it in enumerate(items):
        if not it.choices:
            raise SampleScoreError(i, f"MMBench needs each sample's options, got {it.choices!r}")
    rules = [None if it.prediction is None else mmbench_infer(it.prediction, it.choices or []) for it in items]
    failed = _failed_questions(items, rules)
    ask = [i for i, (it, r) in enumerate(zip(items, rules))
           if r is None and it.prediction is not None and (it.cluster or it.id) not in failed]
    calls = JudgeModel(backend, model_args or {})
    outputs = calls.run([extract_prompt(items[i].prompt, items[i].choices or [], items[i].prediction or "")
                         for i in ask], max_new_tokens, batch_size)
    letters = list(rules)
    notes: dict[int, dict[str, Any]] = {}
    for i, out in zip(ask, outputs):
        letters[i] = mmbench_infer(out, items[i].choices or []) if out is not None else None
        notes[i] = {"judge_output": None if out is None else out[:200], "judge_option": letters[i]}
    scored = [MetricInput(None if x in (None, "Z") else x, it.references, it.choices, it.lang, it.media_info,
                          it.prompt, id=it.id, cluster=it.cluster, category=it.category)
              for it, x in zip(items, letters)]
    result = circular_accuracy_items(scored, category_groups=category_groups)
    unresolved = sum(1 for i in ask if letters[i] is None)
    # (not the number of calls made: a re-scoring from the cache makes none, and must write the same details)
    result.details = {**(result.details or {}), "n_judged": len(ask), "n_judge_unresolved": unresolved}
    base = result.sample_details or [None] * len(items)
    result.sample_details = [{**(d or {}), **notes[i]} if i in notes else d for i, d in enumerate(base)]
    result.signature = f"judge={calls.public_id}@{calls.revision or 'unknown'}|unresolved={unresolved}/{len(ask)}"
    return result


register_metric(Metric(
    "circular_accuracy_judged", circular_accuracy_judged_items, kind="corpus",
    description="MMBench CircularEval, an LLM matching the answers the rules cannot read to an option "
                "(backend, model_args as the judge metric; args category_groups)",
    source=MMBENCH_SOURCE + "; extract_answer_from_item / build_prompt(_cn)"))
