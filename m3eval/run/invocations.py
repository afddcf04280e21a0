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
from typing import Any

SINGLE_INSTRUCTION = "single (task has no variants)"


def invocation_record(config: dict[str, Any], model: dict[str, Any], created: str, git_sha: str | None,
                      versions: dict[str, Any]) -> dict[str, Any]:
    rec = {"config": config, "model": model, "created": created, "git_sha": git_sha, "versions": versions}
    rec["id"] = hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return rec


def merge_tasks(earlier: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The new tasks plus those an earlier invocation scored into the same folder. An earlier
    entry without its own record (an older results.json) gets one from that file's run block,
    marked `inferred`."""
    if not earlier:
        return new
    old = {name: {**entry, "invocation": entry.get("invocation") or inferred_invocation(earlier)}
           for name, entry in (earlier.get("tasks") or {}).items() if name not in new}
    return {**old, **new}


def inferred_invocation(results: dict[str, Any]) -> dict[str, Any]:
    """For a task entry written before per-task records existed: its file's run block."""
    run = results.get("run") or {}
    rec = invocation_record(run.get("config") or {}, run.get("model") or {}, run.get("created"),
                            run.get("git_sha"), run.get("versions") or {})
    return {**rec, "inferred": True}


def run_invocations(tasks: dict[str, Any]) -> dict[str, Any]:
    """The run block's summary: merged (tasks from more than one invocation) and each invocation's tasks."""
    by_id: dict[str, dict[str, Any]] = {}
    for name, entry in tasks.items():
        rec = entry.get("invocation") or {}
        inv = by_id.setdefault(rec.get("id", "unknown"), {
            "id": rec.get("id"), "created": rec.get("created"), "git_sha": rec.get("git_sha"),
            "limit": (rec.get("config") or {}).get("limit"),
            "batch_size": (rec.get("config") or {}).get("batch_size"), "tasks": []})
        inv["tasks"].append(name)
    invocations = sorted(by_id.values(), key=lambda i: str(i["created"]))
    return {"merged": len(invocations) > 1, "invocations": invocations}
