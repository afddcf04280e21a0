"""What each `m3eval` subcommand does (the parser lives in cli.py)."""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

# Heavy modules (torch, transformers, datasets, pandas, nltk) are imported inside the commands
# that need them: `m3eval tasks`, `validate`, `compare` and `--help` start in a fraction of a second.
from .errors import UsageError
from .record import Results, SubmissionResult, TaskResult
from .report.tables import format_results
from .tasks.registry import BUILTIN_TASKS, Registry
from .tasks.schema import TaskSpec

if TYPE_CHECKING:
    from .run.ray_engine import RayOptions

# Errors: raise an m3eval.errors class (UsageError: exit 2); cli.py catches M3evalError.


def _outcome(results: Results | None, failures: list[str], run_dir: Path | None = None) -> int:
    """Non-zero when any task failed to run or nothing was scored (or written, for submission tasks)."""
    for f in failures:
        print(f"m3eval: task failed: {f}", file=sys.stderr)
    if results is None:
        return 1 if failures else 0
    print(format_results(results))
    subs = results.submissions
    for t, s in subs.items():  # never a score: where the file is, and where it goes
        print(f"m3eval: task {t}: submission only (answers withheld, no score): "
              f"{(run_dir / s.file) if run_dir is not None else s.file} -> {s.server}", file=sys.stderr)
        if s.n_errors or s.n_extraction_failures:
            print(f"m3eval: warning: task {t}: {s.n_errors + s.n_extraction_failures} of {s.n_samples} "
                  "answers are empty in the submission file (failed or unextracted samples)", file=sys.stderr)
    tasks = results.tasks
    for t, e in tasks.items():
        if e.n_empty:
            print(f"m3eval: warning: task {t}: the model returned empty text for {e.n_empty} of "
                  f"{e.n_samples} samples (scored 0; check max_new_tokens, stop strings, chat template)",
                  file=sys.stderr)
    every: dict[str, TaskResult | SubmissionResult] = {**tasks, **subs}
    retry = {t: e.n_generate_errors for t, e in every.items() if e.n_generate_errors}
    for t, n in retry.items():
        print(f"m3eval: task {t}: the model failed on {n} samples (see the `error` field of its samples file); "
              "re-run the same command to retry them", file=sys.stderr)
    dead = [t for t, e in every.items() if e.n_samples == 0 or e.n_errors == e.n_samples]
    for t in dead:
        print(f"m3eval: task {t} scored nothing ({every[t].n_errors} of {every[t].n_samples} "
              "samples failed; see its samples file)", file=sys.stderr)
    return 1 if failures or dead or retry or not every else 0


def _quiet_libraries() -> None:
    """The demo's: one progress bar (ours, per task); the libraries' own per-file bars are noise here
    (a run turns them off with RunConfig.library_bars, after its data process forks)."""
    import datasets
    from transformers.utils import logging as hf_logging
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def _arrow_allocator() -> None:
    """Arrow's buffers from the system allocator, unless the user chose (ARROW_DEFAULT_MEMORY_POOL): set
    before pyarrow is first used. Arrow's default, mimalloc, keeps the pages datasets frees while it
    converts a new data file into its cache, and they stay in the run's peak memory
    (benchmarks/bench_memory.py, first runs: +1.28 -> +0.87 KiB per sample, 2,000 samples 396 -> 384 MiB)."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _check_usage(tasks: list[str], include_paths: list, model_args: str, overrides: dict
                 ) -> tuple[dict, Registry]:
    """What argparse cannot check: known task names, overrides of tasks in the run, well-formed
    --model-args (exit 2, before anything heavy loads). Returns the parsed model args and the
    tasks discovered (the run uses them: task files are read once)."""
    from .models.registry import parse_model_args
    if not tasks:
        raise UsageError("--tasks names no task")
    registry = Registry.discover(include_paths)
    registry.resolve_run(tasks, overrides, {})
    try:
        return parse_model_args(model_args), registry
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_run(a: argparse.Namespace) -> int:
    tasks = [t for t in a.tasks.split(",") if t]
    model_args, registry = _check_usage(tasks, a.include_path, a.model_args, dict(a.dataset_override))
    _arrow_allocator()
    from .run.pipeline import RunConfig, evaluate
    cfg = RunConfig(tasks=tasks, output=a.output, model=a.model,
                    model_args=model_args, run_name=a.run_name, batch_size=a.batch_size,
                    limit=a.limit, seed=a.seed, instructions=a.instructions, include_paths=a.include_path,
                    dataset_overrides=dict(a.dataset_override), max_new_tokens=a.max_new_tokens,
                    save_media=not a.no_media, free_model=False,
                    gen_kwargs=a.gen_kwargs, stall_timeout=a.stall_timeout, ray=_ray_options(a),
                    threads=a.threads, library_bars=False)
    results, failures = evaluate(cfg, registry=registry)
    if results is not None:
        print(f"results: {cfg.output / results.run.name / 'results.json'}", file=sys.stderr)
    code = _outcome(results, failures, cfg.output / results.run.name if results is not None else None)
    if results is not None and a.wandb_project:
        from .report.wandb_log import log_run
        print(f"W&B: {log_run(cfg.output / results.run.name, a.wandb_project)}", file=sys.stderr)
    return code


def _ray_options(a: argparse.Namespace) -> RayOptions | None:
    """--engine ray's options, or None for torchrun, which takes none of them."""
    given = [f"--{k.replace('_', '-')}" for k in ("address", "num_workers", "worker_gpus", "worker_cpus")
             if getattr(a, k) is not None]
    if a.engine != "ray":
        if given:
            raise UsageError(f"{', '.join(given)}: only with --engine ray")
        return None
    from .run.ray_engine import RayOptions
    return RayOptions(address=a.address, num_workers=a.num_workers or 1,
                      worker_gpus=a.worker_gpus if a.worker_gpus is not None else 0.0,
                      worker_cpus=a.worker_cpus if a.worker_cpus is not None else 1.0)


def cmd_score(a: argparse.Namespace) -> int:
    if a.predictions is None:
        if a.run_dir is None:
            raise UsageError("give a run directory, or --task T --predictions FILE.jsonl")
        if a.task or a.allow_missing:
            raise UsageError("--task and --allow-missing go with --predictions")
        from .results import require_run_dir
        from .run.distributed import Dist
        from .run.lock import run_folder_lock
        from .scoring.rescore import rescore
        require_run_dir(a.run_dir)  # before the lock, which would make the folder
        with run_folder_lock(a.run_dir, Dist()):  # no run may write the folder meanwhile
            results = rescore(a.run_dir, a.include_path, a.seed)
        for task, n in [*((t, e.n_samples) for t, e in results.tasks.items()),
                        *((t, e.n_samples) for t, e in results.submissions.items())]:
            print(f"m3eval score: task {task}: {n} predictions read", file=sys.stderr)
        return _outcome(results, [], a.run_dir)
    if not a.task:
        raise UsageError("--predictions needs --task")
    if a.run_dir is not None:
        raise UsageError("give a run directory or --predictions, not both")
    registry = Registry.discover(a.include_path)
    if a.task not in registry.tasks:
        raise UsageError(str(registry.unknown(a.task)))
    from .scoring.external import score_external
    score = partial(score_external, registry.tasks[a.task], a.predictions, a.output,
                    dict(a.dataset_override).get(a.task), a.seed or 0, allow_missing=a.allow_missing)
    if a.output is None:
        results, code = score()
    else:
        from .run.distributed import Dist
        from .run.lock import run_folder_lock
        with run_folder_lock(a.output / a.predictions.stem, Dist()):  # no run may write the folder meanwhile
            results, code = score()
    print(format_results(results))
    return code


def cmd_compare(a: argparse.Namespace) -> int:
    from .report.compare import run_compare
    try:
        return run_compare(a.base, a.new, a.tolerance, a.alpha, a.format, tasks=a.tasks, shared=a.shared)
    except Exception as e:  # a CI gate must tell "could not compare" (2) from "regressed" (1)
        print(f"m3eval: error: cannot compare: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


def cmd_tasks(a: argparse.Namespace) -> int:
    reg = Registry.discover(a.include_path)
    print(f"{'TASK':40} {'CATEGORY':15} {'PROTOCOL':9} {'LANG':5} METRICS")
    for name, s in sorted(reg.tasks.items()):
        metrics = f"submission: {s.submission.format}" if s.submission else ", ".join(m.name for m in s.metrics)
        print(f"{name:40} {s.category:15} {s.protocol:9} {s.language:5} {metrics}")
    print(f"\n{'GROUP':40} TASKS")
    for name, g in sorted(reg.groups.items()):
        print(f"{name:40} {len(reg.expand(name))}: {', '.join(g.tasks)}")
    for e in reg.errors:
        print(f"m3eval: warning: {e}", file=sys.stderr)
    return 1 if reg.errors else 0


def cmd_validate(a: argparse.Namespace) -> int:
    from .scoring.submission import check_submission
    from .scoring.task import check_scoring
    from .tasks.registry import roots
    paths = a.paths or [BUILTIN_TASKS]
    problems = [f"{p}: no such file or folder" for p in paths if not p.exists()]
    given = [p for p in paths if p.exists()]
    env = True
    try:  # the suite and M3EVAL_INCLUDE_PATH too: names and groups are checked across all files
        sources = roots()
    except UsageError as e:  # M3EVAL_INCLUDE_PATH names a folder that is not there
        problems.append(str(e))
        sources, env = roots(env=False), False
    # schema, YAML size, every template compiled, each file read once; problems: reg.errors
    reg = Registry.discover([g for g in given if not any(_inside(g, r) for r in sources)], env=env)
    checked = {path: specs for path, specs in reg.files.items() if any(_inside(path, g) for g in given)}
    for path, specs in checked.items():  # every file counts, also one that fails (its problem is listed)
        try:
            for spec in specs:
                if isinstance(spec, TaskSpec):
                    check_scoring(spec.metrics, spec.filters)
                    check_submission(spec)
        except (KeyError, ValueError) as e:  # an unknown metric or filter, or args it does not take
            problems.append(f"{path}: {e.args[0]}")
    files, n = len(checked), sum(len(specs) for specs in checked.values())
    problems += reg.errors  # bad files, groups that include themselves or name missing tasks, duplicate names
    for p in dict.fromkeys(problems):
        print(p, file=sys.stderr)
    print(f"{files} files, {n} definitions checked, {len(set(problems))} problems")
    return 1 if problems else 0


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def cmd_metrics(a: argparse.Namespace) -> int:
    from .catalog import cmd_metrics
    return cmd_metrics(a)


def cmd_leaderboard(a: argparse.Namespace) -> int:
    if a.export:
        from .leaderboard import export_html
        return export_html(a.results, a.export)
    from .leaderboard import launch
    return launch(a.results, a.port, a.address)


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo.tiny_model import DEMO_TRAIN_STEPS, TOY_NOTE, default_cache_dir, ensure_tiny_model, is_built
    from .run.pipeline import RunConfig, evaluate
    _quiet_libraries()
    if not is_built(default_cache_dir(DEMO_TRAIN_STEPS)):
        print(f"building the demo model (once, ~25 s; cached in {default_cache_dir(DEMO_TRAIN_STEPS)})",
              file=sys.stderr)
    model_dir = ensure_tiny_model(train_steps=DEMO_TRAIN_STEPS)  # built once, then cached
    print(TOY_NOTE, file=sys.stderr)
    cfg = RunConfig(tasks=["demo"], output=a.output, model="hf",
                    model_args={"pretrained": str(model_dir), "device": "cpu"}, run_name="tiny-llava",
                    batch_size=a.batch_size, free_model=False,
                    threads=1, library_bars=False)  # a few-hundred-thousand-parameter model: one thread is fastest
    results, failures = evaluate(cfg)
    code = _outcome(results, failures)
    from .demo.encoders import run_encoder_demo  # grounding, then the tiny contrastive encoder
    enc_code, enc_run = run_encoder_demo(cfg, _outcome)
    code = max(code, enc_code)
    if results is not None:
        run = cfg.output / results.run.name
        print(f"\nrun directories: {run} {enc_run or ''}\nre-score: m3eval score {run}\n"
              f"leaderboard: m3eval leaderboard --results {cfg.output}")
    return code


def cmd_export(a: argparse.Namespace) -> int:
    if not a.format and not a.wandb_project:
        raise UsageError("say what to export: --format lm-eval and/or --wandb-project NAME")
    if a.format == "lm-eval":
        from .report.export import export_lm_eval
        files = export_lm_eval(a.run_dir, a.output or a.run_dir / "lm-eval")
        print(f"{files[0]}\n{len(files) - 1} samples files beside it")
    if a.wandb_project:
        from .report.wandb_log import log_run
        print(f"W&B: {log_run(a.run_dir, a.wandb_project)}")
    return 0
