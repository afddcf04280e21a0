"""A run directory's identity (run.json): a re-run may resume it only when it is
the same run — same model and weights, settings, task definitions and data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.fingerprint import data_changed, model_files_fingerprint
from ..results import prediction_files, public_args, read_json
from ..tasks.schema import TaskSpec


class RunError(RuntimeError):
    """The run cannot go on (nothing finished is lost); the message says why."""


def identity(model: str, model_args: dict[str, Any], seed: int, instructions: str, max_new_tokens: int | None,
             specs: list[TaskSpec], data: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """run.json's content. `tasks`: each task's generation key (prompt, doc, generation
    settings); `data`: each task's data fingerprint (m3eval/data/fingerprint.py: content of
    local files, commit of hub data); `model_files`: digests of files named by model
    arguments (a chat_template=FILE whose text may change under the same name)."""
    public = public_args(model_args)  # a secret (api_key=...) is neither stored nor digested
    return {"model": {"backend": model, "args": public}, "seed": seed, "instructions": instructions,
            "max_new_tokens": max_new_tokens, "tasks": {s.task: s.generation_key() for s in specs},
            "data": {t: fp for t, fp in (data or {}).items() if fp},
            "model_files": model_files_fingerprint({k: v for k, v in model_args.items() if public[k] == v})}


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
    done = [t for t in ident["tasks"] if any(f.exists() for f in prediction_files(run_dir, t))]
    for arg, digest in ident["model_files"].items():
        before = old.get("model_files", {}).get(arg)
        if before is not None and before != digest and done:
            raise RunError(f"{run_dir}: the file of model argument {arg}={ident['model']['args'].get(arg)} changed since "
                           "its predictions were made; use a new --run-name (or delete the run folder) to regenerate")
    for task in done:
        why = data_changed(old.get("data", {}).get(task), ident["data"].get(task))
        if why:
            raise RunError(f"{run_dir}: task {task}'s data changed since its predictions were made ({why}); "
                           f"use a new --run-name, or delete {run_dir}/predictions/{task}.jsonl (or the run "
                           "folder) to regenerate")
        old_key = old.get("tasks", {}).get(task)
        if old_key is not None and old_key != ident["tasks"][task]:
            raise RunError(f"{run_dir}: task {task}'s prompts, data or generation settings changed since its "
                           f"predictions were made; delete {run_dir}/predictions/{task}.jsonl to regenerate "
                           "(a change to metrics or filters alone only needs `m3eval score`)")
    return {**old, **ident, "tasks": {**old.get("tasks", {}), **ident["tasks"]},
            "data": {**old.get("data", {}), **ident["data"]},
            "model_files": {**old.get("model_files", {}), **ident["model_files"]}}


def check_model_revision(run_dir: Path, ident: dict[str, Any], revision: str | None) -> dict[str, Any]:
    """The same model arguments may name new weights (a checkpoint folder trained again):
    compare the loaded model's revision with the one the predictions were made with."""
    old = ident.get("model_revision")
    if old is not None and revision is not None and old != revision:
        if any(f.exists() for t in ident["tasks"] for f in prediction_files(run_dir, t)):
            raise RunError(f"{run_dir}: the model's weights changed since its predictions were made "
                           f"(revision {old} -> {revision}); use another --output or --run-name")
    return {**ident, "model_revision": revision if revision is not None else old}
