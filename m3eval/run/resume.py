"""A run directory's identity (run.json): a re-run may resume it only when it is
the same run — same model and weights, settings, task definitions and data.

run.json holds no path of the machine (it is published with the results): a local model
folder is named by its name and told apart by its content fingerprint (`model_revision`), a
file argument by its digest (`model_files`), local data by its digest (`data`). So a folder
moved or copied elsewhere resumes, and other weights under the same name do not."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..data.fingerprint import data_changed, model_files_fingerprint
from ..errors import ModelLoadError, RunError
from ..models.registry import get_backend
from ..record import RunIdentity
from ..results import field_path, prediction_files, public_args, read_json, secret_arg
from ..tasks.schema import TaskSpec

_FIX = ("it records what the predictions were made with: restore it, or use another --run-name "
        "(or delete the folder to start over)")


def identity(model: str, model_args: dict[str, Any], seed: int, instructions: str, max_new_tokens: int | None,
             specs: list[TaskSpec], data: dict[str, dict[str, Any]] | None = None) -> RunIdentity:
    """run.json's content. `tasks`: each task's generation key (prompt, doc, generation
    settings); `data`: each task's data fingerprint (m3eval/data/fingerprint.py: content of
    local files, commit of hub data); `model_files`: digests of files named by model
    arguments (a chat_template=FILE whose text may change under the same name)."""
    public = public_args(model_args)  # a secret (api_key=...) is neither stored nor digested
    return RunIdentity(model=_which_model({"backend": model, "args": public}), seed=seed, instructions=instructions,
                       max_new_tokens=max_new_tokens, tasks={s.task: s.generation_key() for s in specs},
                       data={t: fp for t, fp in (data or {}).items() if fp},
                       model_files=model_files_fingerprint({k: v for k, v in model_args.items() if not secret_arg(k)}))


def _which_model(model: dict[str, Any]) -> dict[str, Any]:
    """The model block without the backend's transport args (a longer timeout, another port: the
    same model, so the same run)."""
    try:
        transport = get_backend(str(model.get("backend"))).transport_args
    except ModelLoadError:  # a plugin no longer installed: its block as recorded
        return model
    return {**model, "args": {k: v for k, v in (model.get("args") or {}).items() if k not in transport}}


def _read(path: Path) -> RunIdentity:
    try:
        return RunIdentity.model_validate(read_json(path, _FIX))
    except ValidationError as e:
        raise RunError(f"{path}: {field_path(e)}; {_FIX}") from None


def check_resume(run_dir: Path, ident: RunIdentity) -> RunIdentity:
    """Refuse to mix predictions of two different runs; return run.json's new content."""
    path = run_dir / "run.json"
    if not path.exists():
        return ident
    old = _read(path)
    old = old.model_copy(update={"model": _which_model(old.model)})  # folders written before transport_args
    for key in ("model", "seed", "instructions", "max_new_tokens"):
        if getattr(old, key) != getattr(ident, key):
            raise RunError(f"{run_dir} holds a run with a different {key} ({getattr(old, key)!r} vs "
                           f"{getattr(ident, key)!r}); use another --output or --run-name")
    done = [t for t in ident.tasks if any(f.exists() for f in prediction_files(run_dir, t))]
    for arg, digest in ident.model_files.items():
        before = old.model_files.get(arg)
        if before is not None and before != digest and done:
            raise RunError(f"{run_dir}: the file of model argument {arg}={ident.model['args'].get(arg)} changed since "
                           "its predictions were made; use a new --run-name (or delete the run folder) to regenerate")
    for task in done:
        why = data_changed(old.data.get(task), ident.data.get(task))
        if why:
            raise RunError(f"{run_dir}: task {task}'s data changed since its predictions were made ({why}); "
                           f"use a new --run-name, or delete {run_dir}/predictions/{task}.jsonl (or the run "
                           "folder) to regenerate")
        old_key = old.tasks.get(task)
        if old_key is not None and old_key != ident.tasks[task]:
            raise RunError(f"{run_dir}: task {task}'s prompts, data or generation settings changed since its "
                           f"predictions were made; delete {run_dir}/predictions/{task}.jsonl to regenerate "
                           "(a change to metrics or filters alone only needs `m3eval score`)")
    return ident.model_copy(update={"tasks": {**old.tasks, **ident.tasks}, "data": {**old.data, **ident.data},
                                    "model_files": {**old.model_files, **ident.model_files},
                                    "model_revision": old.model_revision})


def check_model_revision(run_dir: Path, ident: RunIdentity, revision: str | None) -> RunIdentity:
    """The same model arguments may name new weights (a checkpoint folder trained again):
    compare the loaded model's revision with the one the predictions were made with."""
    old = ident.model_revision
    if old is not None and revision is not None and old != revision:
        if any(f.exists() for t in ident.tasks for f in prediction_files(run_dir, t)):
            raise RunError(f"{run_dir}: the model's weights changed since its predictions were made "
                           f"(revision {old} -> {revision}); use another --output or --run-name")
    return ident.model_copy(update={"model_revision": revision if revision is not None else old})
