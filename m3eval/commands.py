"""What each `m3eval` subcommand does (the parser lives in cli.py)."""
from __future__ import annotations

import argparse
import sys

from .data.samples import SampleError
from .data.sources import DataError
from .models.base import ModelLoadError, parse_model_args
from .pipeline import RunConfig, RunError, evaluate, rescore
from .report import format_results
from .tasks.loader import TaskError, iter_task_files, load_file
from .tasks.registry import BUILTIN_TASKS, Registry
from .tasks.schema import TaskSpec

USER_ERRORS = (TaskError, DataError, SampleError, RunError, ModelLoadError, FileNotFoundError, ValueError, KeyError)


def _outcome(results: dict | None, failures: list[str]) -> int:
    """Non-zero when any task failed to run or nothing was scored."""
    for f in failures:
        print(f"m3eval: task failed: {f}", file=sys.stderr)
    if results is None:
        return 1 if failures else 0
    print(format_results(results))
    tasks = results.get("tasks", {})
    for t, e in tasks.items():
        if e.get("n_empty"):
            print(f"m3eval: warning: task {t}: the model returned empty text for {e['n_empty']} of "
                  f"{e['n_samples']} samples (scored 0; check max_new_tokens, stop strings, chat template)",
                  file=sys.stderr)
    retry = {t: e["n_generate_errors"] for t, e in tasks.items() if e.get("n_generate_errors")}
    for t, n in retry.items():
        print(f"m3eval: task {t}: the model failed on {n} samples (see the `error` field of its samples file); "
              "re-run the same command to retry them", file=sys.stderr)
    dead = [t for t, e in tasks.items() if e["n_samples"] == 0 or e["n_errors"] == e["n_samples"]]
    for t in dead:
        print(f"m3eval: task {t} scored nothing ({tasks[t]['n_errors']} of {tasks[t]['n_samples']} "
              "samples failed; see its samples file)", file=sys.stderr)
    return 1 if failures or dead or retry or not tasks else 0


def _quiet_libraries() -> None:
    """One progress bar (ours, per task); the libraries' own per-file bars are noise here."""
    import datasets
    from transformers.utils import logging as hf_logging
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def _threads(n: int | None) -> None:
    _quiet_libraries()
    if n:
        import torch
        torch.set_num_threads(n)


def cmd_run(a: argparse.Namespace) -> int:
    _threads(a.threads)
    cfg = RunConfig(tasks=[t for t in a.tasks.split(",") if t], output=a.output, model=a.model,
                    model_args=parse_model_args(a.model_args), run_name=a.run_name, batch_size=a.batch_size,
                    limit=a.limit, seed=a.seed, instructions=a.instructions, include_paths=a.include_path,
                    dataset_overrides=dict(a.dataset_override), max_new_tokens=a.max_new_tokens,
                    save_media=not a.no_media, gen_kwargs=a.gen_kwargs)
    results, failures = evaluate(cfg)
    if results is not None:
        print(f"results: {cfg.output / results['run']['name'] / 'results.json'}", file=sys.stderr)
    code = _outcome(results, failures)
    if results is not None and a.wandb_project:
        from .wandb_log import log_run
        print(f"W&B: {log_run(cfg.output / results['run']['name'], a.wandb_project)}", file=sys.stderr)
    return code


def cmd_score(a: argparse.Namespace) -> int:
    if a.predictions is None:
        if a.run_dir is None:
            raise RunError("give a run directory, or --task T --predictions FILE.jsonl")
        return _outcome(rescore(a.run_dir, a.include_path, a.seed), [])
    if not a.task:
        raise RunError("--predictions needs --task")
    from .score_external import score_external
    return score_external(a.task, a.predictions, a.output, a.include_path, dict(a.dataset_override),
                          a.seed or 0)


def cmd_compare(a: argparse.Namespace) -> int:
    from .compare import run_compare
    try:
        return run_compare(a.base, a.new, a.tolerance, a.alpha, a.format)
    except Exception as e:  # a CI gate must tell "could not compare" (2) from "regressed" (1)
        print(f"m3eval: error: cannot compare: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


def cmd_tasks(a: argparse.Namespace) -> int:
    reg = Registry.discover(a.include_path)
    print(f"{'TASK':40} {'CATEGORY':15} {'PROTOCOL':9} {'LANG':5} METRICS")
    for name, s in sorted(reg.tasks.items()):
        print(f"{name:40} {s.category:15} {s.protocol:9} {s.language:5} {', '.join(m.name for m in s.metrics)}")
    print(f"\n{'GROUP':40} TASKS")
    for name, g in sorted(reg.groups.items()):
        print(f"{name:40} {len(reg.expand(name))}: {', '.join(g.tasks)}")
    for e in reg.errors:
        print(f"m3eval: warning: {e}", file=sys.stderr)
    return 1 if reg.errors else 0


def cmd_validate(a: argparse.Namespace) -> int:
    from .scoring import check_scoring
    paths = a.paths or [BUILTIN_TASKS]
    problems, n = [], 0
    for root in paths:
        if not root.exists():
            problems.append(f"{root}: no such file or folder")
            continue
        for path in iter_task_files(root):
            try:
                for spec in load_file(path):
                    n += 1
                    if isinstance(spec, TaskSpec):
                        check_scoring(spec.metrics, spec.filters)
            except TaskError as e:
                problems.append(str(e))
            except (KeyError, ValueError) as e:  # an unknown metric or filter, or args it does not take
                problems.append(f"{path}: {e.args[0]}")
    try:
        reg = Registry.discover([p for p in paths if p.resolve() != BUILTIN_TASKS])
        for g in reg.groups:
            reg.expand(g)
    except TaskError as e:
        problems.append(str(e))
    for p in dict.fromkeys(problems):
        print(p, file=sys.stderr)
    print(f"{n} definitions checked, {len(set(problems))} problems")
    return 1 if problems else 0


def cmd_leaderboard(a: argparse.Namespace) -> int:
    from .leaderboard import launch
    return launch(a.results, a.port, a.address)


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo.tiny_model import DEMO_TRAIN_STEPS, TOY_NOTE, default_cache_dir, ensure_tiny_model, is_built
    _threads(1)  # a few-hundred-thousand-parameter model: one thread is fastest
    if not is_built(default_cache_dir(DEMO_TRAIN_STEPS)):
        print(f"building the demo model (once, ~20 s; cached in {default_cache_dir(DEMO_TRAIN_STEPS)})",
              file=sys.stderr)
    model_dir = ensure_tiny_model(train_steps=DEMO_TRAIN_STEPS)  # built once, then cached
    print(TOY_NOTE, file=sys.stderr)
    cfg = RunConfig(tasks=["demo"], output=a.output, model="hf",
                    model_args={"pretrained": str(model_dir), "device": "cpu"}, run_name="tiny-llava",
                    batch_size=a.batch_size)
    results, failures = evaluate(cfg)
    code = _outcome(results, failures)
    if results is not None:
        run = cfg.output / results["run"]["name"]
        print(f"\nrun directory: {run}\nre-score: m3eval score {run}\n"
              f"leaderboard: m3eval leaderboard --results {cfg.output}")
    return code


def cmd_export(a: argparse.Namespace) -> int:
    if not a.format and not a.wandb_project:
        raise RunError("say what to export: --format lm-eval and/or --wandb-project NAME")
    if a.format == "lm-eval":
        from .export import export_lm_eval
        files = export_lm_eval(a.run_dir, a.output or a.run_dir / "lm-eval")
        print(f"{files[0]}\n{len(files) - 1} samples files beside it")
    if a.wandb_project:
        from .wandb_log import log_run
        print(f"W&B: {log_run(a.run_dir, a.wandb_project)}")
    return 0
