"""`m3eval export RUN --format lm-eval`: a finished run in lm-evaluation-harness's output
layout, so tools that read lm-eval results (leaderboard parsers, notebooks, W&B reports)
read m3eval's.

The layout follows EleutherAI/lm-evaluation-harness, lm_eval/loggers/evaluation_tracker.py
(save_results_aggregated / save_results_samples) and lm_eval/evaluator.py at commit
5b321a1ad92f126671533121783340dc59e1b173:

    <output>/<model_name_sanitized>/results_<date>.json
    <output>/<model_name_sanitized>/samples_<task>_<date>.jsonl

results.<task> holds "<metric>,<filter>" and "<metric>_stderr,<filter>"; beside it
configs, versions, n-shot, higher-is-better, n-samples, config, task_hashes. m3eval's
extraction steps are already applied to each prediction, so the filter key is "none" and
`filtered_resps` holds the extracted answer. lm-eval reports a standard error where
m3eval reports a 95% bootstrap interval: the stderr written is its half-width / 1.96.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from ..record import MetricEntry
from ..results import atomic_write_json, atomic_write_jsonl
from .runs import Run, load_run

FILTER = "none"
Z95 = 1.959963984540054


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()  # lm-eval's hash_string


def _stderr(metric: MetricEntry) -> float | str:
    ci = metric.ci
    return (ci[1] - ci[0]) / (2 * Z95) if ci else "N/A"  # lm-eval writes "N/A" when it has none


def _model_args_string(args: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items())


def results_json(run: Run) -> dict[str, Any]:
    """lm-eval's aggregated results for a run (the per-sample files are `samples_jsonl`)."""
    block = run.results.run
    cfg, model = block.config or {}, block.model or {}
    results: dict[str, dict[str, Any]] = {}
    configs, versions, hib, n_samples = {}, {}, {}, {}
    for task, e in run.tasks.items():
        results[task] = {"alias": task}
        for name, m in e.metrics.items():
            results[task][f"{name},{FILTER}"] = m.value
            results[task][f"{name}_stderr,{FILTER}"] = _stderr(m)
        versions[task] = e.version
        hib[task] = {name: m.higher_is_better for name, m in e.metrics.items()}
        n_samples[task] = {"original": e.n_samples or 0, "effective": e.n_samples or 0}
        ds = e.dataset or {}
        configs[task] = {
            "task": task, "dataset_path": ds.get("path"), "dataset_name": ds.get("name"),
            "test_split": ds.get("split"), "output_type": "generate_until", "num_fewshot": 0,
            "description": e.description or "",
            "metric_list": [{"metric": name, "aggregation": m.kind, "higher_is_better": m.higher_is_better}
                            for name, m in e.metrics.items()],
            "metadata": {"version": e.version, "m3eval_primary_metric": e.primary_metric,
                         "m3eval_scales": {name: m.scale for name, m in e.metrics.items()}},
        }
    groups = {g: {"alias": g, f"{e.metric or 'mean'},{FILTER}": e.value} for g, e in run.groups.items()}
    name = str(model.get("id") or run.name)
    created = block.created
    return {
        "results": results,
        **({"groups": groups} if groups else {}),
        "group_subtasks": {**{g: list(e.tasks) for g, e in run.groups.items()},
                           **{t: [] for t in run.tasks if t not in run.groups}},
        "configs": configs, "versions": versions, "n-shot": {t: 0 for t in run.tasks},
        "higher_is_better": hib, "n-samples": n_samples,
        "config": {"model": model.get("backend"), "model_args": _model_args_string(model.get("args") or {}),
                   "batch_size": cfg.get("batch_size"), "limit": cfg.get("limit"), "random_seed": cfg.get("seed"),
                   "gen_kwargs": cfg.get("gen_kwargs"), "bootstrap_iters": None},
        "git_hash": block.git_sha,
        "date": _timestamp(created),
        "task_hashes": {t: e.hash for t, e in run.tasks.items()},
        "model_source": model.get("backend"), "model_name": name, "model_name_sanitized": sanitize(name),
        "m3eval": {"format": run.results.format, "run": run.name, "created": created},
    }


def samples_jsonl(run: Run, task: str) -> list[dict[str, Any]]:
    """lm-eval's per-sample records for one task, from the run's samples/<task>.jsonl."""
    records, _ = run.load_samples(task)
    out = []
    for i, rec in enumerate(records):
        fields = rec.dump()  # the record as written: a doc has the fields the file has
        doc = {k: fields[k] for k in ("id", "prompt", "references", "choices", "lang", "instruction", "media")
               if fields.get(k) is not None}
        refs = rec.references
        target = refs[0] if len(refs) == 1 else json.dumps(refs, ensure_ascii=False)
        out.append({
            "doc_id": i, "doc": doc, "target": target,
            "arguments": {"gen_args_0": {"arg_0": rec.prompt, "arg_1": {}}},
            "resps": [[rec.prediction]],
            "filtered_resps": ["" if rec.extracted is None else str(rec.extracted)],
            "filter": FILTER, "metrics": list(rec.scores),
            "doc_hash": _hash(json.dumps(doc, sort_keys=True, ensure_ascii=False)),
            "prompt_hash": _hash(rec.prompt), "target_hash": _hash(target),
            **rec.scores,
        })
    return out


def sanitize(name: str) -> str:
    """lm-eval's model_name_sanitized: path separators and other odd characters become '__'."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _timestamp(created: str | None) -> float | None:
    if not created:
        return None
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def export_lm_eval(run_dir: Path, output: Path) -> list[Path]:
    """Write the run in lm-eval's layout under `output`; return the files written."""
    run = load_run(run_dir)
    results = results_json(run)
    folder = Path(output) / results["model_name_sanitized"]
    folder.mkdir(parents=True, exist_ok=True)
    date_id = datetime.now().isoformat().replace(":", "-")
    written = [folder / f"results_{date_id}.json"]
    atomic_write_json(written[0], results)
    for task in run.tasks:
        written.append(folder / f"samples_{task}_{date_id}.jsonl")
        atomic_write_jsonl(written[-1], samples_jsonl(run, task))
    return written
