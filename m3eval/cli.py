"""The `m3eval` command: parses, delegates, prints. Exit codes (README "Exit codes"): 0 ok,
1 failed (or a regression, for `compare`), 2 bad usage (or runs that cannot be compared),
130 interrupted."""
from __future__ import annotations

import argparse
import atexit
import errno
import math
import os
import sys
from pathlib import Path

from .errors import M3evalError, UsageError


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected TASK=PATH, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _number_in(low: float, high: float, what: str):
    """A finite number in [low, high]: NaN compares false with everything, so it would pass any gate."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


def _run_name(text: str) -> str:
    from .results import run_name_checked  # only when given: results imports pydantic
    try:
        return run_name_checked(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--run-name ")) from None


def _instructions(text: str) -> str:
    if text in ("default", "all") or (text.isdigit() and int(text) > 0):
        return text
    raise argparse.ArgumentTypeError("expected default, all, or a positive number K")


def _compat(name: str):
    """An argparse type from m3eval.lm_eval_compat: its ValueError message becomes the usage error."""
    def parse(text: str):
        from . import lm_eval_compat
        try:
            return getattr(lm_eval_compat, name)(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = name
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m3eval", description="Evaluate vision-language models on multimodal, "
                                "multilingual held-out benchmarks.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="evaluate a model on tasks")
    r.add_argument("--model", default="hf", help="backend: hf, vllm, openai, or a plugin's (default hf)")
    r.add_argument("--model-args", "--model_args", default="", help=(
        "comma-separated key=value. hf: pretrained=PATH_OR_HUB_ID[,dtype=bfloat16,device=cuda,revision=R,"
        "trust_remote_code=true,chat_template=FILE]. vllm: pretrained=...[,tensor_parallel_size=N,"
        "data_parallel_size=N,dtype=D,max_model_len=N,gpu_memory_utilization=0.9,limit_mm_per_prompt="
        "image:8;video:1,trust_remote_code=true,revision=R,video=frames|native,chunk=512]. openai: "
        "base_url=URL (required)[,model=NAME (default: the only one served),api_key_env=OPENAI_API_KEY,"
        "concurrency=16,timeout=120,connect_timeout=5,max_retries=5,image_format=png|jpeg,check_model=true,"
        "max_reply_bytes=N,server_down_after=N]"))
    r.add_argument("--tasks", required=True, help="comma-separated tasks or groups")
    r.add_argument("--output", "--output_path", type=Path, default=Path("runs"),
                   help="folder for run directories (default runs/)")
    r.add_argument("--run-name", type=_run_name, help="run directory name (default: the model's name)")
    r.add_argument("--batch-size", "--batch_size", type=_positive, default=8,
                   help="messages per generate call (default 8); greedy predictions do not depend on it")
    r.add_argument("--limit", type=_compat("parse_limit"),
                   help="first N samples of each task, or a fraction 0<x<1 of each (rounded up)")
    r.add_argument("--seed", type=int, default=0,
                   help="seed of sampling (when a task samples) and of the bootstrap intervals (default 0)")
    r.add_argument("--instructions", type=_instructions, default="default",
                   help="default | all | K: run each sample under every (or the first K) instruction variants")
    r.add_argument("--include-path", "--include_path", type=Path, action="append", default=[],
                   help="more task YAML folders")
    r.add_argument("--dataset-override", type=_kv, action="append", default=[], metavar="TASK=PATH",
                   help="load TASK's rows from a local file or save_to_disk folder")
    r.add_argument("--max-new-tokens", type=_positive, help="override every task's generation.max_new_tokens")
    r.add_argument("--no-media", action="store_true", help="do not save thumbnails for the sample browser")
    r.add_argument("--threads", type=_positive, help="torch CPU threads (1 is fastest for tiny models)")
    r.add_argument("--gen-kwargs", "--gen_kwargs", type=_compat("parse_gen_kwargs"), default={},
                   metavar="K=V,...", help="override every task's generation: max_new_tokens, temperature, top_p, "
                   "num_beams, do_sample, until/stop (recorded in results.json)")
    r.add_argument("--stall-timeout", type=_number_in(1, 604800, "a number of seconds from 1 to 604800"),
                   metavar="SECONDS", help="torchrun: stop the launch, naming the rank, when a rank shows no sign of "
                   "life (a heartbeat) for this long; a slow rank is waited for (default 300, or M3EVAL_STALL_TIMEOUT)")
    r.add_argument("--engine", choices=["torchrun", "ray"], default="torchrun",
                   help="torchrun (default): this process, or the ranks of a torchrun launch; ray: one Ray actor per "
                   "model replica, chunks handed out as they finish (pip install 'm3eval[ray]'; docs/SCALING.md)")
    r.add_argument("--address", help="--engine ray: the cluster, auto or HOST:PORT or ray://HOST:PORT "
                   "(default: start a local one)")
    r.add_argument("--num-workers", type=_positive, help="--engine ray: actors, one model replica each (default 1)")
    r.add_argument("--worker-gpus", type=_number_in(0, 1024, "a number of GPUs from 0 to 1024"),
                   help="--engine ray: GPUs per actor (default 0; 1 for a model on one GPU)")
    r.add_argument("--worker-cpus", type=_number_in(0, 4096, "a number of CPUs from 0 to 4096"),
                   help="--engine ray: CPUs per actor (default 1)")
    r.add_argument("--log-samples", "--log_samples", action="store_true",
                   help="accepted for lm-eval compatibility: per-sample records are always written")
    r.add_argument("--wandb-project", help="also log scores, per-sample tables and the config to this W&B "
                   "project (pip install 'm3eval[wandb]'; WANDB_MODE=offline works without an account)")

    s = sub.add_parser("score", help="re-score stored predictions without a model")
    s.add_argument("run_dir", nargs="?", type=Path, help="a run directory")
    s.add_argument("--task", help="with --predictions: the task the predictions are for")
    s.add_argument("--predictions", type=Path, help="JSONL of {id, prediction} made elsewhere")
    s.add_argument("--output", type=Path, help="with --predictions: write a run directory here")
    s.add_argument("--allow-missing", action="store_true",
                   help="with --predictions: exit 0 although some samples have no prediction (they score 0)")
    s.add_argument("--dataset-override", type=_kv, action="append", default=[], metavar="TASK=PATH")
    s.add_argument("--include-path", type=Path, action="append", default=[])
    s.add_argument("--seed", type=int)

    c = sub.add_parser("compare", help="regression gate between two runs (exit 1 on a regression)")
    c.add_argument("base", type=Path)
    c.add_argument("new", type=Path)
    c.add_argument("--tolerance", type=_number_in(0, 100, "a number of points from 0 to 100"), default=1.0,
                   help="points (0..100 scale) a task may drop (default 1)")
    c.add_argument("--alpha", type=_number_in(1e-12, 1, "a significance level above 0 and at most 1"), default=0.05)
    c.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    c.add_argument("--tasks", type=lambda s: [t for t in s.split(",") if t], default=None, metavar="T1,T2",
                   help="compare only these tasks (each must be in both runs)")
    c.add_argument("--shared", action="store_true", help="compare only the tasks both runs have")

    t = sub.add_parser("tasks", help="list tasks and groups")
    t.add_argument("--include-path", type=Path, action="append", default=[])

    v = sub.add_parser("validate", help="check task YAML files")
    v.add_argument("paths", nargs="*", type=Path)

    lb = sub.add_parser("leaderboard", help="start the leaderboard page")
    lb.add_argument("--results", type=Path, default=Path("results"))
    lb.add_argument("--port", type=int, default=8501)
    lb.add_argument("--address", default="127.0.0.1", help="0.0.0.0 to serve beyond this machine")
    lb.add_argument("--export", type=Path, metavar="FILE.html",
                    help="write the leaderboard as one self-contained HTML file instead of serving it")

    m = sub.add_parser("metrics", help="list metrics and filters: arguments, scale, source")
    m.add_argument("--format", choices=["text", "json"], default="text")

    d = sub.add_parser("demo", help="run the embedded demo: a tiny VLM on synthetic tasks, offline")
    d.add_argument("--output", type=Path, default=Path("runs"), help="folder for the run directory (default runs/)")
    d.add_argument("--batch-size", type=_positive, default=8, help="messages per generate call (default 8)")

    e = sub.add_parser("export", help="write a run in another tool's format (lm-eval), or log it to W&B")
    e.add_argument("run_dir", type=Path, help="a run directory")
    e.add_argument("--format", choices=["lm-eval"], help="lm-eval: results_<date>.json + samples_<task>_<date>.jsonl")
    e.add_argument("--output", type=Path, help="folder to write into (default: <run>/lm-eval/)")
    e.add_argument("--wandb-project", help="log the run to this W&B project (pip install 'm3eval[wandb]')")
    return p


_OS_HINTS = {errno.ENOSPC: "free some space and re-run the same command (finished predictions are kept)",
             errno.EROFS: "choose a writable --output", errno.EACCES: "choose a writable --output",
             errno.ENOTDIR: "a path on the way is a file, not a folder",
             errno.EEXIST: "a path on the way is a file, not a folder"}


def os_error_line(e: OSError) -> str:
    """One line naming the path and what to do, not a traceback."""
    where = f"{e.filename}: " if e.filename else ""
    hint = _OS_HINTS.get(e.errno) if e.errno is not None else None
    return f"{where}{e.strerror or e}" + (f"; {hint}" if hint else "")


def main(argv: list[str] | None = None) -> int:
    """argv None means the real command line: then the process ends with os._exit once
    every file is written, skipping interpreter teardown (freeing the model, module
    clean-up: ~0.5-1 s that only frees memory)."""
    args = build_parser().parse_args(argv)
    from . import commands  # heavy imports only inside the commands that need them
    code = _dispatch(commands, args)
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()  # e.g. the METEOR JVM's shutdown
        os._exit(code)
    return code


def _dispatch(commands, args: argparse.Namespace) -> int:
    try:
        return getattr(commands, f"cmd_{args.command}")(args)
    except KeyboardInterrupt:
        print("m3eval: interrupted; finished predictions are saved, re-run the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `m3eval tasks | head`: the reader left; not an error worth a line
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush must not fail
        return 141  # 128 + SIGPIPE, as a shell reports it
    except M3evalError as e:  # the user's to fix: one line, the class's exit code (UsageError: 2)
        print(f"m3eval: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"m3eval: error: {os_error_line(e)}", file=sys.stderr)
        return 1
    except (ValueError, KeyError) as e:  # bad input met by a library (json, pydantic, PIL) or raised as a builtin
        print(f"m3eval: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
