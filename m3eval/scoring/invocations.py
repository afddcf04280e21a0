"""Which invocation produced which task of a run directory.

A run folder can be filled by several `m3eval run` calls (`--tasks A --limit 20`, then
`--tasks B --limit 50 --batch-size 1`). results.json covers every task of the folder, so each
task entry carries its own `invocation` record (config incl. limit, batch size, instructions
and overrides; model; created time; git sha; versions), and the run block says when the
tasks come from more than one (`merged`, `invocations`).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from ..public_paths import public_config, public_paths
from ..record import Instructions, Invocation, InvocationSummary, Results, RunBlock, SubmissionResult, TaskResult

SINGLE_INSTRUCTION = "single (task has no variants)"


def invocation_record(config: dict[str, Any], model: dict[str, Any], created: str | None, git_sha: str | None,
                      versions: dict[str, Any]) -> Invocation:
    config, model = public_config(config), public_paths(model)  # the id digests what the record holds
    rec = {"config": config, "model": model, "created": created, "git_sha": git_sha, "versions": versions}
    digest = hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Invocation(config=config, model=model, created=created, git_sha=git_sha, versions=versions, id=digest)


def single_instruction(entry: TaskResult) -> TaskResult:
    """Under --instructions for a task without variants: say it ran its one instruction."""
    return entry if entry.instructions is not None else \
        entry.model_copy(update={"instructions": Instructions(n=1, mode=SINGLE_INSTRUCTION)})


def merge_tasks(earlier: Results | None, new: dict[str, TaskResult]) -> dict[str, TaskResult]:
    """The new tasks plus those an earlier invocation scored into the same folder. An earlier
    entry without its own record (an older results.json) gets one from that file's run block,
    marked `inferred`."""
    if earlier is None:
        return new
    old = {name: with_invocation(entry, earlier.run) for name, entry in earlier.tasks.items() if name not in new}
    return {**old, **new}


def with_invocation(entry: TaskResult, run: RunBlock | None) -> TaskResult:
    """The entry with its invocation record: its own, or one inferred from its file's run block."""
    if entry.invocation is not None:
        return entry
    return entry.model_copy(update={"invocation": inferred_invocation(run)})


def inferred_invocation(run: RunBlock | None) -> Invocation:
    """For a task entry written before per-task records existed: its file's run block."""
    rec = invocation_record(run.config or {}, run.model or {}, run.created, run.git_sha, run.versions or {}) \
        if run is not None else invocation_record({}, {}, None, None, {})
    return rec.model_copy(update={"inferred": True})


def run_invocations(tasks: Mapping[str, TaskResult | SubmissionResult]) -> tuple[bool, list[InvocationSummary]]:
    """The run block's summary: merged (tasks from more than one invocation) and each invocation's tasks."""
    by_id: dict[str | None, dict[str, Any]] = {}
    for name, entry in tasks.items():
        rec = entry.invocation or Invocation()
        inv = by_id.setdefault(rec.id or "unknown", {
            "id": rec.id, "created": rec.created, "git_sha": rec.git_sha, "limit": rec.config.get("limit"),
            "batch_size": rec.config.get("batch_size"), "tasks": []})
        inv["tasks"].append(name)
    invocations = sorted(by_id.values(), key=lambda i: str(i["created"]))
    return len(invocations) > 1, [InvocationSummary(**i) for i in invocations]
