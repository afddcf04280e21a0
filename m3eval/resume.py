"""A run directory's identity (run.json): a re-run may resume it only when it is
the same run — same model and weights, settings, task definitions and data."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .results import public_args, read_json
from .runner import generation_key, prediction_files
from .tasks.schema import TaskSpec


class RunError(RuntimeError):
    """The run cannot go on (nothing finished is lost); the message says why."""


def _fingerprint(path: str) -> str:
    """What a local override's predictions depend on: its path, size and mtime (for a
    folder, those of every file in it)."""
    p = Path(path).expanduser().resolve()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.exists() else []
    h = hashlib.sha256(str(p).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p.parent)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def identity(model: str, model_args: dict[str, Any], seed: int, instructions: str, max_new_tokens: int | None,
             specs: list[TaskSpec], overrides: dict[str, str]) -> dict[str, Any]:
    def task_key(spec: TaskSpec) -> str:
        key = generation_key(spec)
        return f"{key}+{_fingerprint(overrides[spec.task])}" if spec.task in overrides else key

    return {"model": {"backend": model, "args": public_args(model_args)}, "seed": seed, "instructions": instructions,
            "max_new_tokens": max_new_tokens, "tasks": {s.task: task_key(s) for s in specs}}


def check_resume(run_dir: Path, ident: dict[str, Any]) -> dict[str, Any]:
    """Refuse to mix predictions of two different runs; return run.json's new content."""
    path = run_dir / "run.json"
    if not path.exists():
        return ident
    old = read_json(path, "it records what the predictions were made with: restore it, or use another "
                    "--run-name (or delete the folder to start over)")
    for key in ("model", "seed", "instructions", "max_new_tokens"):
        if old.get(key) != ident[key]:
            raise RunError(f"{run_dir} holds a run with a different {key} ({old.get(key)!r} vs {ident[key]!r}); "
                           "use another --output or --run-name")
    for task, key in ident["tasks"].items():
        old_key = old.get("tasks", {}).get(task)
        if old_key is not None and old_key != key and any(f.exists() for f in prediction_files(run_dir, task)):
            raise RunError(f"{run_dir}: task {task}'s prompts, data or generation settings changed since its "
                           f"predictions were made; delete {run_dir}/predictions/{task}.jsonl to regenerate "
                           "(a change to metrics or filters alone only needs `m3eval score`)")
    return {**old, **ident, "tasks": {**old.get("tasks", {}), **ident["tasks"]}}


def check_model_revision(run_dir: Path, ident: dict[str, Any], revision: str | None) -> dict[str, Any]:
    """The same model arguments may name new weights (a checkpoint folder trained again):
    compare the loaded model's revision with the one the predictions were made with."""
    old = ident.get("model_revision")
    if old is not None and revision is not None and old != revision:
        if any(f.exists() for t in ident["tasks"] for f in prediction_files(run_dir, t)):
            raise RunError(f"{run_dir}: the model's weights changed since its predictions were made "
                           f"(revision {old} -> {revision}); use another --output or --run-name")
    return {**ident, "model_revision": revision if revision is not None else old}
