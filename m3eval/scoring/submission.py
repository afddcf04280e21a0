"""Submission-only splits (answers withheld: VQAv2 test-dev, VizWiz-VQA test, DocVQA test): the
file an evaluation server takes, never a score.

A task with `submission: {format: NAME}` (tasks/schema.py) is generated like any other; then
`write_submission` turns its predictions into <run>/submissions/<task>.json in the named format
and returns its results.json entry (record.SubmissionResult). `m3eval score RUN` rewrites the
file the same way. Each format is a plain function from (question id, answer) pairs to the
file's JSON, with the server's format cited beside it.

The answer is the prediction after the task's filters, as scoring would see it. A failed sample
(or one whose answer the filters cannot extract) is still written, with an empty answer: a server
refuses a file that misses a question. It is counted in n_errors (n_extraction_failures).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..record import Results, SubmissionResult
from ..results import atomic_write_bytes, submission_file
from ..tasks.schema import TaskSpec
from ..types import Prediction
from .filters import apply_filters

Entry = dict[str, Any]


@dataclass(frozen=True)
class SubmissionFormat:
    name: str
    server: str  # where the file is uploaded (printed, and recorded in results.json)
    build: Callable[[str, str], Entry]  # (question id: the sample id, answer) -> one entry of the list
    key: str  # the entry's id field: the file lists entries sorted by it


def _int_id(qid: str) -> int:
    try:
        return int(qid)
    except ValueError:
        raise ValueError(f"question id {qid!r} is not an integer, as this server's format needs (doc.id)") from None


def _vqav2(qid: str, answer: str) -> Entry:
    # visualqa.org/evaluation.html, "Results Format": results = [result], result{"question_id": int,
    # "answer": str}; the EvalAI VQA challenge takes the same list (lmms-eval lmms_eval/tasks/vqav2/utils.py
    # vqav2_process_results writes {"question_id", "answer"}; Qwen-VL eval_mm/evaluate_vqa.py @ cfe66a7 too).
    return {"question_id": _int_id(qid), "answer": answer}


def _vizwiz(qid: str, answer: str) -> Entry:
    # The VizWiz-VQA challenge (EvalAI) takes [{"image": "VizWiz_test_00000000.jpg", "answer": str}]:
    # lmms-eval lmms_eval/tasks/vizwiz_vqa/utils.py writes {"image": f"{question_id}.jpg", "answer"} from
    # lmms-lab/VizWiz-VQA's question_id ("VizWiz_test_00000000"); Qwen-VL eval_mm/evaluate_vqa.py @ cfe66a7
    # (vizwiz_test) writes {"image", "answer"} from its own files' image names.
    return {"image": qid if qid.endswith(".jpg") else f"{qid}.jpg", "answer": answer}


def _docvqa(qid: str, answer: str) -> Entry:
    # The RRC DocVQA Task 1 submission (rrc.cvc.uab.es/?ch=17): [{"questionId": int, "answer": str}], as
    # QwenLM/Qwen-VL eval_mm/evaluate_vqa.py @ cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c writes for docvqa_test
    # (and the RRC's infographicsvqa_eval.py reads: questionId, answer).
    return {"questionId": _int_id(qid), "answer": answer}


FORMATS: dict[str, SubmissionFormat] = {f.name: f for f in (
    SubmissionFormat("vqav2", "EvalAI, VQA Challenge (https://eval.ai/web/challenges/challenge-page/830), "
                     "phase test-dev2015 or test2015", _vqav2, "question_id"),
    SubmissionFormat("vizwiz", "EvalAI, VizWiz VQA Challenge (https://vizwiz.org/tasks-and-datasets/vqa/), "
                     "test phase", _vizwiz, "image"),
    SubmissionFormat("docvqa", "RRC, DocVQA Task 1 (https://rrc.cvc.uab.es/?ch=17&com=mymethods&task=1)",
                     _docvqa, "questionId"),
)}


def get_format(name: str) -> SubmissionFormat:
    if name not in FORMATS:
        raise ValueError(f"submission.format {name!r} is not a submission format (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def check_submission(spec: TaskSpec) -> None:
    """A submission task names a known format (checked before the model loads, and by validate)."""
    if spec.submission is not None:
        get_format(spec.submission.format)


def submission_entries(spec: TaskSpec, preds: list[Prediction]) -> tuple[list[Entry], int, int]:
    """The file's entries (sorted by the question id), the failed samples and the unextracted answers."""
    assert spec.submission is not None
    fmt = get_format(spec.submission.format)
    entries: list[Entry] = []
    n_err = n_fail = 0
    for p in preds:
        answer = None
        if p.error is None:
            try:
                answer = apply_filters(p.prediction, spec.filters, p.choices)
            except (TypeError, ValueError) as e:
                raise ValueError(f"sample {p.id!r}: {e}") from None
            n_fail += answer is None
        n_err += p.error is not None
        entries.append(fmt.build(str(p.id), answer or ""))  # the server needs every question, answered or not
    entries.sort(key=lambda e: e[fmt.key])
    ids = [e[fmt.key] for e in entries]
    twice = next((a for a, b in zip(ids, ids[1:]) if a == b), None)
    if twice is not None:
        raise ValueError(f"question {twice!r} appears twice: the server takes one answer per question")
    return entries, n_err, n_fail


def write_submission(spec: TaskSpec, preds: list[Prediction], run_dir: Path | None) -> SubmissionResult:
    """Write <run_dir>/submissions/<task>.json atomically (when run_dir is given); its results entry."""
    assert spec.submission is not None
    if not preds:
        raise ValueError("no predictions to write a submission from")
    fmt = get_format(spec.submission.format)
    entries, n_err, n_fail = submission_entries(spec, preds)
    rel = Path("submissions") / f"{spec.task}.json"
    if run_dir is not None:
        # compact: VQAv2 test-dev is 107,394 questions, and servers cap the upload's size
        data = json.dumps(entries, ensure_ascii=False) + "\n"
        atomic_write_bytes(submission_file(run_dir, spec.task), data.encode())
    return SubmissionResult(
        hash=spec.content_hash(), version=spec.version, category=spec.category, protocol=spec.protocol,
        language=spec.language, description=spec.description,
        dataset=spec.dataset.model_dump(mode="json", exclude_none=True), format=fmt.name, server=fmt.server,
        file=rel.as_posix(), n_samples=len(entries), n_errors=n_err, n_extraction_failures=n_fail,
        n_generate_errors=sum(1 for p in preds if p.error is not None and p.error.stage == "generate"))


def merge_submissions(earlier: Results | None, new: dict[str, SubmissionResult],
                      scored: set[str]) -> dict[str, SubmissionResult]:
    """The new submission entries plus those an earlier invocation wrote into the same folder, except
    tasks this invocation scored (a task's definition moved from one kind to the other)."""
    if earlier is None:
        return new
    old = {t: e for t, e in earlier.submissions.items() if t not in new and t not in scored}
    return {**old, **new}
