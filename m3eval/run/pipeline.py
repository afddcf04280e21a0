"""The whole job: tasks -> data -> model -> predictions -> scores -> results.json.

`evaluate` runs a model; `rescore` re-scores a finished run without one.
"""
from __future__ import annotations

import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import encode
from ..data.task_samples import load_task_samples
from .distributed import Dist, init_distributed
from ..models.base import GenerationConfig, check_backend, get_backend, load_model
from ..results import (RESULTS_FORMAT, atomic_write_json, git_sha, now_iso, package_versions, public_args,
                      prediction_files, read_json, read_predictions)
from ..lm_eval_compat import apply_gen_kwargs
from .resume import RunError, check_model_revision, check_resume, identity
from .lock import run_folder_lock
from .prefetch import worker_process_ok
from .generate import GenStats, TaskPlan, consolidate, generate_tasks, plan_task
from ..scoring.groups import group_errors, group_scores
from .invocations import (SINGLE_INSTRUCTION, inferred_invocation, invocation_record, merge_tasks,
                          run_invocations)
from ..scoring.run import consistency, recorded_exclusion, score_one
from ..scoring.task import check_scoring
from ..tasks.registry import Registry
from ..tasks.schema import TaskSpec
from ..types import Sample

__all__ = ["RunConfig", "RunError", "evaluate", "rescore"]


@dataclass
class RunConfig:
    tasks: list[str]
    output: Path
    model: str = "hf"
    model_args: dict[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    batch_size: int = 8
    limit: int | float | None = None  # a count, or a fraction 0 < x < 1 of each task
    seed: int = 0
    instructions: str = "default"
    include_paths: list[Path] = field(default_factory=list)
    dataset_overrides: dict[str, str] = field(default_factory=dict)
    max_new_tokens: int | None = None
    save_media: bool = True
    progress: bool = True
    free_model: bool = True  # False when the process exits right after (the CLI): freeing is wasted time
    gen_kwargs: dict[str, Any] = field(default_factory=dict)  # --gen_kwargs: overrides every task's generation


def run_name_for(cfg: RunConfig) -> str:
    if cfg.run_name:
        return cfg.run_name
    base = str(cfg.model_args.get("pretrained") or cfg.model_args.get("model") or cfg.model)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base.rstrip("/").split("/")[-1]) or cfg.model


def evaluate(cfg: RunConfig, dist: Dist | None = None, registry: Registry | None = None
             ) -> tuple[dict[str, Any] | None, list[str]]:
    """Run and score. Returns (results on rank 0 / None elsewhere, failures: tasks that could not run).
    The run folder is held (locked, so proven writable) from before the model loads to the end.
    `registry`: the tasks as the caller already discovered them (else discovered here)."""
    check_backend(cfg.model, cfg.model_args)  # a missing package / GPU / model arg fails before any data loads
    worker_process_ok()  # and so does a bad M3EVAL_PREFETCH
    dist = dist or init_distributed()
    with run_folder_lock(cfg.output / run_name_for(cfg), dist):
        return _evaluate(cfg, dist, registry or Registry.discover(cfg.include_paths))


def _evaluate(cfg: RunConfig, dist: Dist, registry: Registry) -> tuple[dict[str, Any] | None, list[str]]:
    t_start = time.perf_counter()
    specs = [apply_gen_kwargs(s, cfg.gen_kwargs) for s in registry.resolve(cfg.tasks)]
    unknown = set(cfg.dataset_overrides) - {s.task for s in specs}
    if unknown:
        raise RunError(f"--dataset-override names tasks not in this run: {', '.join(sorted(unknown))}")
    run_dir = cfg.output / run_name_for(cfg)
    if dist.is_main:
        for err in registry.errors:  # files this run does not use: reported, never fatal
            print(f"m3eval: warning: {err}", file=sys.stderr)

    failures: list[str] = []
    samples: dict[str, list[Sample]] = {}
    data: dict[str, dict[str, Any]] = {}
    excluded: dict[str, dict[str, Any]] = {}  # rows doc.exclude_if dropped, for the results
    for spec in specs:  # every task's data and scoring set-up first: a mistake shows before the model loads
        try:
            check_scoring(spec.metrics, spec.filters)
            data[spec.task], excluded[spec.task] = {}, {}
            samples[spec.task] = load_task_samples(spec, cfg.limit, cfg.instructions,
                                                   cfg.dataset_overrides.get(spec.task), data[spec.task],
                                                   excluded[spec.task])
        except (ValueError, KeyError) as e:  # DataError, SampleError, an unknown metric or filter
            failures.append(f"{spec.task} ({spec.source}): {e}")
    runnable = [s for s in specs if s.task in samples]
    if not runnable:
        raise RunError("no task could be loaded:\n  " + "\n  ".join(failures))
    ident = check_resume(run_dir, identity(cfg.model, cfg.model_args, cfg.seed, cfg.instructions,
                                           cfg.max_new_tokens, runnable, {t: data[t] for t in samples}))

    plans = []
    for spec in runnable:
        if spec.type != "generate":  # encoder task types: m3eval/run/encode.py, below
            continue
        g = spec.generation
        gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens or g.max_new_tokens, do_sample=g.do_sample,
                               temperature=g.temperature, top_p=g.top_p, num_beams=g.num_beams,
                               stop=list(g.stop), seed=cfg.seed)
        plans.append(plan_task(spec, samples[spec.task], gen, run_dir, dist, cfg.batch_size, cfg.save_media))
    dist.barrier()  # every rank planned from the same finished set before any rank appends

    # Say what the wait is for; with nothing left to generate, do not load the model at all.
    encoder_tasks = [s for s in runnable if s.type != "generate"]  # rank 0 runs them, with their own cache
    pending = sum(len(b) for p in plans for b in p.batches) + \
        sum(encode.pending(s, samples[s.task], run_dir) for s in encoder_tasks if dist.is_main)
    left = dist.gather(pending)
    if dist.is_main and left is not None:
        total = sum(len(p.samples) for p in plans) + sum(len(samples[s.task]) for s in encoder_tasks)
        if total > sum(left):
            print(f"resuming: {total - sum(left)} of {total} samples already done", file=sys.stderr)
        if not sum(left):
            print("nothing left to generate: the model is not loaded, scores are recomputed from the stored "
                  "predictions", file=sys.stderr)
    earlier = (read_json(run_dir / "results.json", "move it aside to start the run's results afresh")
               if (run_dir / "results.json").exists() else None)  # an earlier invocation's tasks are kept
    t0 = time.perf_counter()
    if pending:
        if dist.is_main:
            name = cfg.model_args.get("pretrained") or cfg.model_args.get("model")
            print(f"loading {name} ({cfg.model} backend)" if name else f"loading the {cfg.model} model",
                  file=sys.stderr)
        model = load_model(cfg.model, cfg.model_args)
        info = model.info() if hasattr(model, "info") else {}
        ident = check_model_revision(run_dir, ident, info.get("revision"))
        unfit = {s.task: why for s in runnable if (why := encode.model_fits(s, model))}  # e.g. clip on VQA
        failures += [f"{task}: {why}" for task, why in unfit.items()]
        runnable = [s for s in runnable if s.task not in unfit]
        plans = [p for p in plans if p.spec.task not in unfit]
        if not runnable:
            _close(model, dist, cfg.free_model)
            raise RunError("no task can run with this model:\n  " + "\n  ".join(failures))
    else:
        model = None  # the model's description as the run that loaded it recorded it
        info = {k: v for k, v in ((earlier or {}).get("run", {}).get("model") or {}).items()
                if k not in ("backend", "args")}
        ident = check_model_revision(run_dir, ident, _revision_without_loading(cfg))  # retrained in place?
    load_s = time.perf_counter() - t0
    if dist.is_main:
        atomic_write_json(run_dir / "run.json", ident)
    generate_s, n_new = 0.0, 0

    # Rank 0 scores each task in a thread while the model generates the next. (A process
    # would not share the GIL, but costs seconds of start-up: more than it saves below a
    # few thousand samples.)
    with ThreadPoolExecutor(max_workers=1) as scorer:
        scoring = {}

        def task_done(plan: TaskPlan, stats: GenStats) -> None:
            nonlocal generate_s, n_new
            all_stats = dist.gather((stats.generate_s, stats.samples))
            got = consolidate(plan.spec, plan.samples, run_dir, dist)
            if dist.is_main:
                generate_s += max(t for t, _ in all_stats)  # ranks run side by side
                n_new += sum(n for _, n in all_stats)
                scoring[plan.spec.task] = scorer.submit(timed_score, plan.spec, got, run_dir, cfg.seed,
                                                         excluded.get(plan.spec.task))

        generate_tasks(plans, model, task_done, progress=cfg.progress and dist.is_main)
        for spec in (s for s in runnable if s.type != "generate" and dist.is_main):
            try:
                preds, seconds = encode.run_encoder_task(spec, samples[spec.task], model, run_dir)
            except (ValueError, KeyError) as e:  # a bad class list or file fails this task only
                failures.append(f"{spec.task} ({spec.source}): {e}")
                continue
            generate_s, n_new = generate_s + seconds, n_new + (len(preds) if seconds else 0)
            scoring[spec.task] = scorer.submit(timed_score, spec, preds, run_dir, cfg.seed,
                                             excluded.get(spec.task))
        scored = {task: f.result() for task, f in scoring.items()}
    if not dist.is_main:
        _close(model, dist, cfg.free_model)
        return None, failures

    failures += [f"{task}: scoring failed: {err}" for task, (_, _, err) in scored.items() if err]
    config = {"tasks": cfg.tasks, "resolved_tasks": [s.task for s in runnable],
              "batch_size": cfg.batch_size, "limit": cfg.limit, "seed": cfg.seed,
              "instructions": cfg.instructions, "world_size": dist.world_size,
              "max_new_tokens": cfg.max_new_tokens, "gen_kwargs": cfg.gen_kwargs,
              "dataset_overrides": cfg.dataset_overrides}
    model_block = {**info, "backend": cfg.model, "args": public_args(cfg.model_args)}
    created, sha, versions = now_iso(), git_sha(), package_versions()
    invocation = invocation_record(config, model_block, created, sha, versions)
    new_tasks = {task: entry for task, (entry, _, err) in scored.items() if not err}
    for task, entry in new_tasks.items():  # each task says which invocation (and data) produced it
        entry["invocation"] = {**invocation, "data": ident["data"].get(task)}
        if cfg.instructions != "default" and "instructions" not in entry:
            entry["instructions"] = {"n": 1, "mode": SINGLE_INSTRUCTION}
    tasks = merge_tasks(earlier, new_tasks)
    encode.add_extras(run_dir, tasks)
    groups = group_scores(registry, tasks, run_dir, cfg.seed)
    failures += group_errors(groups)
    total_s = time.perf_counter() - t_start
    results = {
        "format": RESULTS_FORMAT,
        "run": {"name": run_dir.name, "model": model_block,
                "config": config,  # this (the latest) invocation's; each task's own is tasks.<t>.invocation
                "created": created, "git_sha": sha, "versions": versions,
                "failures": failures, **run_invocations(tasks)},
        "timings": {"load_s": round(load_s, 3), "generate_s": round(generate_s, 3),
                    "score_s": round(sum(t for _, t, _ in scored.values()), 3),  # overlapped with generation
                    "total_s": round(total_s, 3), "samples": n_new,
                    "samples_per_s": round(n_new / max(total_s - load_s, 1e-9), 2)},
        "tasks": tasks,
        "groups": groups,
        "consistency": consistency(runnable, tasks, run_dir),
    }
    atomic_write_json(run_dir / "results.json", results)
    _close(model, dist, cfg.free_model)  # after the timings: freeing a model is not part of evaluating it
    return results, failures


def timed_score(spec: TaskSpec, preds: list, run_dir: Path, seed: int,
                excluded: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, float, str | None]:
    """(results entry, seconds, error): one task's bad data fails that task, not the run."""
    t = time.perf_counter()
    try:
        return score_one(spec, preds, run_dir, seed, excluded), time.perf_counter() - t, None
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        return None, time.perf_counter() - t, f"{type(e).__name__}: {e}"


def _revision_without_loading(cfg: RunConfig) -> str | None:
    """The weights' revision where the backend can tell it without loading the model (its
    optional `revision_without_loading(model_args)`: hf, clip and vllm read a local folder)."""
    read = getattr(get_backend(cfg.model), "revision_without_loading", None)
    return read(cfg.model_args) if callable(read) else None


def _close(model: Any, dist: Dist, free: bool = True) -> None:
    if free and hasattr(model, "close"):
        model.close()
    dist.close()


def rescore(run_dir: Path, include_paths: list[Path] | None = None, seed: int | None = None) -> dict[str, Any]:
    """Re-score a run's stored predictions with the current task definitions (references
    are those stored with the predictions: a fixed reference set needs a new run)."""
    path = run_dir / "results.json"
    if not (run_dir / "predictions").is_dir():
        raise RunError(f"{run_dir}: not a run directory (no predictions/ folder)")
    old = {"format": RESULTS_FORMAT, "run": {}, "timings": {}}
    if path.exists():
        old = read_json(path, "move it aside: `m3eval score` then rebuilds it from the predictions (without "
                              "the run's timings and versions)")
    registry = Registry.discover(include_paths or [])
    names = sorted({f.name.split(".")[0] for f in (run_dir / "predictions").glob("*.jsonl")})
    missing = [n for n in names if n not in registry.tasks]
    if missing:
        raise RunError(f"{run_dir}: predictions for tasks with no definition: {', '.join(missing)} "
                       "(pass --include-path for tasks defined outside tasks/)")
    seed = old.get("run", {}).get("config", {}).get("seed", 0) if seed is None else seed
    t0 = time.perf_counter()
    tasks = {}
    for name in names:
        preds = list(read_predictions(prediction_files(run_dir, name)).values())
        before = old.get("tasks", {}).get(name, {})
        entry, _, err = timed_score(registry.tasks[name], preds, run_dir, seed,
                                    recorded_exclusion(registry.tasks[name], before))
        if err:
            raise RunError(f"task {name} ({registry.tasks[name].source}): scoring failed: {err}")
        # re-scoring does not change which invocation generated the task
        entry["invocation"] = before.get("invocation") or inferred_invocation(old)
        if "instructions" not in entry and "mode" in (before.get("instructions") or {}):
            entry["instructions"] = before["instructions"]
        tasks[name] = entry
    encode.add_extras(run_dir, tasks)
    specs = [registry.tasks[n] for n in names]
    results = {**old, "tasks": tasks, "groups": group_scores(registry, tasks, run_dir, seed),
               "consistency": consistency(specs, tasks, run_dir)}
    results["timings"] = {**old.get("timings", {}), "score_s": round(time.perf_counter() - t0, 3)}
    results["run"] = {**old.get("run", {}), "rescored": now_iso(), "rescored_git_sha": git_sha(),
                      **run_invocations(tasks)}
    atomic_write_json(path, results)
    return results
