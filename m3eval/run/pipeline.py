"""The whole job: tasks -> data -> model -> predictions -> scores -> results.json.

`evaluate` runs a model; re-scoring without one is scoring/rescore.py.
"""
from __future__ import annotations

import os
import re
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..data.sample_set import EMPTY, TaskData
from ..errors import RunError, UsageError
from ..models.base import GenerationConfig, ModelAdapter
from ..models.registry import check_backend, get_backend, load_model
from ..predictions import PredictionFile
from ..record import Invocation, Results, RunBlock, RunIdentity, SubmissionResult, TaskResult, Timings
from ..results import atomic_write_json, git_sha, now_iso, package_versions, public_args, read_results, run_name_checked
from ..tasks.registry import Registry
from ..tasks.schema import TaskSpec
from ..types import Prediction
from . import encode
from .chunks import Chunk
from .data_process import TaskReading
from .distributed import Dist, init_distributed
from .generate import GenStats, TaskPlan, consolidate, finished, generate_tasks, plan_task
from .heap import StartupHeap
from .lock import run_folder_lock
from .ray_engine import ChunkJob, RayEngine, RayOptions, TaskLoad, check_address, import_ray
from .relay import Logs
from .resume import check_model_revision, check_resume, identity

__all__ = ["RunConfig", "RunError", "evaluate"]


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
    stall_timeout: float | None = None  # torchrun: seconds a rank may show no heartbeat (None: env, else 300)
    ray: RayOptions | None = None  # --engine ray (None: this process, or the ranks of a torchrun launch)
    threads: int | None = None  # torch's CPU threads (--threads; None: torch's default)
    library_bars: bool = True  # the libraries' own progress bars (datasets', transformers'); the CLI's are off


def run_name_for(cfg: RunConfig) -> str:
    if cfg.run_name is not None:
        return run_name_checked(cfg.run_name)
    base = str(cfg.model_args.get("pretrained") or cfg.model_args.get("model") or cfg.model)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base.rstrip("/").split("/")[-1]) or cfg.model


def evaluate(cfg: RunConfig, dist: Dist | None = None, registry: Registry | None = None
             ) -> tuple[Results | None, list[str]]:
    """Run and score. Returns (results on rank 0 / None elsewhere, failures: tasks that could not run).
    The run folder is held (locked, so proven writable) from before the model loads to the end.
    `registry`: the tasks as the caller already discovered them (else discovered here)."""
    registry = registry or Registry.discover(cfg.include_paths)
    specs = registry.resolve_run(cfg.tasks, cfg.dataset_overrides, cfg.gen_kwargs)
    # the data is read from here on, in a data process where m3eval forks (run/data_process.py), while
    # this process imports the model's libraries: forked first, before torch is imported
    reading = TaskReading(specs, cfg.limit, cfg.instructions, cfg.dataset_overrides, cfg.library_bars)
    heap = StartupHeap()  # no collector passes until the model is loaded (run/heap.py)
    try:
        _libraries(cfg)
        check_backend(cfg.model, cfg.model_args)  # a missing package / GPU / model arg fails before the model loads
        heap.libraries_loaded()
        if cfg.ray is not None:
            import_ray()  # and a missing extra, and an --address nobody answers at
            if cfg.ray.address is not None:
                check_address(cfg.ray.address)
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise UsageError("--engine ray runs in one driver process, not under torchrun")
        dist = dist or init_distributed(cfg.stall_timeout)
        with run_folder_lock(cfg.output / run_name_for(cfg), dist):
            return _Job(cfg, dist, registry, cfg.output / run_name_for(cfg), reading, heap).run(specs)
    finally:
        reading.close()
        heap.close(unfreeze=cfg.free_model)


def _libraries(cfg: RunConfig) -> None:
    if not cfg.library_bars:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    if cfg.threads:
        import torch
        torch.set_num_threads(cfg.threads)


@dataclass
class _Job:
    """One invocation's state as it moves through the stages of `run`."""

    cfg: RunConfig
    dist: Dist
    registry: Registry
    run_dir: Path
    reading: TaskReading
    heap: StartupHeap
    data: dict[str, TaskData] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    t_start: float = field(default_factory=time.perf_counter)
    logs: Logs = field(init=False)  # where this rank's finished batches go (relay.py)

    def run(self, specs: list[TaskSpec]) -> tuple[Results | None, list[str]]:
        if self.dist.is_main:
            for err in self.registry.errors:  # files this run does not use: reported, never fatal
                print(f"m3eval: warning: {err}", file=sys.stderr)
        self.data, self.failures = self.reading.result()
        runnable = [s for s in specs if s.task in self.data]
        if not runnable:
            raise RunError("no task could be loaded:\n  " + "\n  ".join(self.failures))
        ident = check_resume(self.run_dir, identity(self.cfg.model, self.cfg.model_args, self.cfg.seed,
                                                    self.cfg.instructions, self.cfg.max_new_tokens, runnable,
                                                    {t: d.fingerprint for t, d in self.data.items()}))
        generated = [s for s in runnable if s.type == "generate"]  # encoder tasks: run/encode.py
        self.logs = self.dist.relay(self.run_dir, {s.task for s in generated})
        try:
            return self.run_tasks(runnable, generated, ident)
        finally:
            self.logs.close()

    def run_tasks(self, runnable: list[TaskSpec], generated: list[TaskSpec], ident: RunIdentity
                  ) -> tuple[Results | None, list[str]]:
        # every rank plans from rank 0's finished set: the ranks need not share the run folder
        done = self.dist.broadcast(finished(self.run_dir, generated) if self.dist.is_main else None)
        plans = [self.plan(s, done[s.task]) for s in generated]
        pending = self.count_pending(plans, [s for s in runnable if s.type != "generate"])
        earlier = read_results(self.run_dir, "move it aside to start the run's results afresh")  # its tasks are kept
        t0 = time.perf_counter()
        model: ModelAdapter | RayEngine | None = None
        try:
            model, info, ident = self.load_model(ident) if pending else self.without_model(ident, earlier)
            self.heap.model_loaded()
            if model is not None:
                runnable = self.fitting(runnable, model)
                plans = [p for p in plans if p.spec.task in {s.task for s in runnable}]
            load_s = time.perf_counter() - t0
            if self.dist.is_main:
                atomic_write_json(self.run_dir / "run.json", ident.dump())
            scored, generate_s, score_s, n_new = self.generate_and_score(runnable, plans, model)
            if not self.dist.is_main:
                return None, self.failures

            def timings() -> Timings:  # asked last: the invocation's time includes its groups
                total_s = time.perf_counter() - self.t_start
                return Timings(load_s=round(load_s, 3), generate_s=round(generate_s, 3),
                               score_s=round(score_s, 3),  # overlapped with generation
                               total_s=round(total_s, 3), samples=n_new,
                               samples_per_s=round(n_new / max(total_s - load_s, 1e-9), 2))

            results = self.record_results(runnable, scored, earlier, info, ident, timings)
            # the record's failures name files by name (record.py); the terminal gets the full
            # messages, then the groups' errors that scoring added after them
            return results, self.failures + list(results.run.failures or [])[len(self.failures):]
        finally:  # after the timings: freeing a model is not part of evaluating it
            if self.cfg.free_model and model is not None:
                self.heap.close(unfreeze=True)  # its cycles are the collector's again
                model.close()
            self.dist.close()

    # ---- stages ------------------------------------------------------------------------------

    def plan(self, spec: TaskSpec, done: set[str]) -> TaskPlan:
        g, cfg, task = spec.generation, self.cfg, spec.task
        gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens or g.max_new_tokens, do_sample=g.do_sample,
                               temperature=g.temperature, top_p=g.top_p, num_beams=g.num_beams,
                               stop=list(g.stop), seed=cfg.seed)
        return plan_task(spec, self.data[task].samples, gen,
                         self.run_dir / "predictions" / f"{task}.rank{self.dist.rank}.jsonl", cfg.batch_size, done,
                         self.logs.media_root / task if cfg.save_media else None)

    def count_pending(self, plans: list[TaskPlan], encoder_tasks: list[TaskSpec]) -> int:
        """The samples left to predict that this rank may take; rank 0 says what the wait is for."""
        generate = sum(len(b) for p in plans for b in p.batches)  # every rank plans them all and takes as it goes
        encode_left = sum(encode.pending(s, self.data[s.task].samples, self.run_dir) for s in encoder_tasks
                          if self.dist.is_main)  # rank 0 runs encoder tasks, with their own cache
        if self.dist.is_main:
            left = generate + encode_left
            total = sum(len(p.samples) for p in plans) + sum(len(self.data[s.task].samples) for s in encoder_tasks)
            if total > left:
                print(f"resuming: {total - left} of {total} samples already done", file=sys.stderr)
            if not left:
                print("nothing left to generate: the model is not loaded, scores are recomputed from the stored "
                      "predictions", file=sys.stderr)
        return generate + encode_left

    def load_model(self, ident: RunIdentity) -> tuple[ModelAdapter | RayEngine, dict[str, Any], RunIdentity]:
        cfg = self.cfg
        if self.dist.is_main:
            name = cfg.model_args.get("pretrained") or cfg.model_args.get("model")
            where = f" in {cfg.ray.num_workers} Ray worker(s)" if cfg.ray else ""
            print(f"loading {name} ({cfg.model} backend){where}" if name else f"loading the {cfg.model} model{where}",
                  file=sys.stderr)
        model: ModelAdapter | RayEngine
        if cfg.ray is not None:
            model = RayEngine(cfg.ray, cfg.model, cfg.model_args)
            info = model.info
        else:
            model = load_model(cfg.model, cfg.model_args)
            info = model.info()
        return model, info, check_model_revision(self.run_dir, ident, info.get("revision"))

    def without_model(self, ident: RunIdentity, earlier: Results | None
                      ) -> tuple[None, dict[str, Any], RunIdentity]:
        """Nothing to generate: the model as the run that loaded it recorded it, and a check that
        its weights were not retrained in place (where the backend can tell without loading)."""
        recorded = (earlier.run.model if earlier is not None else None) or {}
        info = {k: v for k, v in recorded.items() if k not in ("backend", "args")}
        revision = get_backend(self.cfg.model).revision_without_loading(self.cfg.model_args)
        return None, info, check_model_revision(self.run_dir, ident, revision)

    def fitting(self, runnable: list[TaskSpec], model: ModelAdapter | RayEngine) -> list[TaskSpec]:
        """The tasks this model can run (an encoder cannot generate; a VLM cannot embed; Ray
        workers only generate)."""
        def why_not(spec: TaskSpec) -> str | None:
            if isinstance(model, RayEngine):
                return None if spec.type == "generate" else "encoder tasks run without --engine ray"
            return encode.model_fits(spec, model)

        unfit = {s.task: why for s in runnable if (why := why_not(s))}
        self.failures += [f"{task}: {why}" for task, why in unfit.items()]
        fit = [s for s in runnable if s.task not in unfit]
        if not fit:
            raise RunError("no task can run with this model:\n  " + "\n  ".join(self.failures))
        return fit

    def generate_and_score(self, runnable: list[TaskSpec], plans: list[TaskPlan],
                           model: ModelAdapter | RayEngine | None
                           ) -> tuple[dict[str, TaskResult | SubmissionResult], float, float, int]:
        """Rank 0 scores each task in a thread while the model generates the next (a process would
        not share the GIL, but costs seconds of start-up: more than it saves below a few thousand
        samples). Returns (the scored tasks, generate seconds, scoring seconds, samples generated)."""
        generate_s, n_new = 0.0, 0
        scoring: dict[str, Future[tuple[TaskResult | SubmissionResult | None, float, str | None]]] = {}
        with ThreadPoolExecutor(max_workers=1) as scorer:
            def score(spec: TaskSpec, preds: list[Prediction] | PredictionFile) -> None:
                scoring[spec.task] = scorer.submit(_timed_score, spec, preds, self.run_dir, self.cfg.seed,
                                                   self.data[spec.task].n_excluded)

            def task_done(plan: TaskPlan, stats: GenStats) -> None:
                nonlocal generate_s, n_new
                all_stats = self.dist.gather((stats.generate_s, stats.samples))
                ids = plan.samples.ids
                self.release(plan)  # before the predictions are read: their memory takes the samples'
                got = consolidate(plan.spec, ids, self.run_dir, self.dist, self.logs)
                if self.dist.is_main and all_stats is not None and got is not None:
                    generate_s += max(t for t, _ in all_stats)  # ranks run side by side
                    n_new += sum(n for _, n in all_stats)
                    score(plan.spec, got)

            progress = self.cfg.progress and self.dist.is_main
            if isinstance(model, RayEngine):
                model.generate_tasks(plans, self.chunk_job, self.run_dir, task_done, progress)
            else:
                generate_tasks(plans, model, task_done, progress, self.dist.claims(), self.logs)
            encoder = None if isinstance(model, RayEngine) else model  # under Ray no encoder task is runnable (fitting)
            for spec in (s for s in runnable if s.type != "generate" and self.dist.is_main):
                try:
                    preds, seconds = encode.run_encoder_task(spec, self.data[spec.task], encoder, self.run_dir)
                    self.reading.release(spec.task)
                except (ValueError, KeyError) as e:  # a bad class list or file fails this task only
                    self.failures.append(f"{spec.task} ({spec.source}): {e}")
                    continue
                generate_s, n_new = generate_s + seconds, n_new + (len(preds) if seconds else 0)
                score(spec, preds)
            done = {task: f.result() for task, f in scoring.items()}
        self.failures += [f"{task}: scoring failed: {err}" for task, (_, _, err) in done.items() if err]
        scored = {task: entry for task, (entry, _, _) in done.items() if entry is not None}
        return scored, generate_s, sum(s for _, s, _ in done.values()), n_new

    def chunk_job(self, plan: TaskPlan, chunk: Chunk) -> ChunkJob:
        """What a Ray worker needs to generate one chunk: how to read the task's data as this
        process did, and which samples."""
        cfg, task = self.cfg, plan.spec.task
        load = TaskLoad(plan.spec, cfg.limit, cfg.instructions, cfg.dataset_overrides.get(task),
                        self.data[task].fingerprint)
        return ChunkJob(load, chunk.samples.ids, plan.gen, cfg.batch_size, cfg.save_media)

    def release(self, plan: TaskPlan) -> None:
        """A generated task's samples are not read again: dropped before its predictions are read and
        scored, which reuse their memory, and not held while the later tasks generate."""
        plan.samples, plan.batches, plan.chunks = EMPTY, [], []
        self.data[plan.spec.task] = replace(self.data[plan.spec.task], samples=EMPTY)
        self.reading.release(plan.spec.task)

    def record_results(self, runnable: list[TaskSpec], scored: dict[str, TaskResult | SubmissionResult],
                       earlier: Results | None,
                       info: dict[str, Any], ident: RunIdentity, timings: Callable[[], Timings]) -> Results:
        """This invocation's record on each task it scored, the earlier invocations' tasks kept,
        and results.json written."""
        from ..scoring.invocations import invocation_record, merge_tasks, single_instruction
        from ..scoring.run import conclude
        from ..scoring.submission import merge_submissions
        cfg = self.cfg
        config = {"tasks": cfg.tasks, "resolved_tasks": [s.task for s in runnable],
                  "batch_size": cfg.batch_size, "limit": cfg.limit, "seed": cfg.seed,
                  "instructions": cfg.instructions, "world_size": self.dist.world_size,
                  "max_new_tokens": cfg.max_new_tokens, "gen_kwargs": cfg.gen_kwargs,
                  "dataset_overrides": cfg.dataset_overrides}
        if cfg.ray is not None:  # the address is left out: it names a machine
            config["engine"] = {"name": "ray", "num_workers": cfg.ray.num_workers, "worker_gpus": cfg.ray.worker_gpus,
                                "worker_cpus": cfg.ray.worker_cpus}
        model_block = {**info, "backend": cfg.model, "args": public_args(cfg.model_args)}
        created, sha, versions = now_iso(), git_sha(), package_versions()
        invocation = invocation_record(config, model_block, created, sha, versions)
        new: dict[str, TaskResult] = {}
        submitted: dict[str, SubmissionResult] = {}
        for task, entry in scored.items():  # each task says which invocation (and data) produced it
            own: Invocation = invocation.model_copy(update={"data": ident.data.get(task)})
            if isinstance(entry, SubmissionResult):
                submitted[task] = entry.model_copy(update={"invocation": own})
                continue
            entry = entry.model_copy(update={"invocation": own})
            new[task] = single_instruction(entry) if cfg.instructions != "default" else entry
        run = RunBlock(name=self.run_dir.name, model=model_block,
                       config=config,  # this (the latest) invocation's; each task's own is tasks.<t>.invocation
                       created=created, git_sha=sha, versions=versions)
        tasks = {t: e for t, e in merge_tasks(earlier, new).items() if t not in submitted}
        return conclude(self.registry, runnable, tasks, self.run_dir, cfg.seed, run, timings,
                        failures=self.failures, submissions=merge_submissions(earlier, submitted, set(new)))


def _timed_score(spec: TaskSpec, preds: list[Prediction] | PredictionFile, run_dir: Path, seed: int,
                 n_excluded: int | None) -> tuple[TaskResult | SubmissionResult | None, float, str | None]:
    """(results entry, seconds, error): one task's bad data fails that task, not the run. A
    submission-only task writes its server file instead of a score. Scoring's modules (every
    metric's) are imported here, behind the model, not while the run starts."""
    from ..scoring.run import score_one
    from ..scoring.submission import write_submission
    from ..scoring.task import SCORING_ERRORS
    t = time.perf_counter()
    try:
        if spec.submission is not None:
            return write_submission(spec, list(preds), run_dir), time.perf_counter() - t, None
        return score_one(spec, preds, run_dir, seed, n_excluded, prescored=True), time.perf_counter() - t, None
    except SCORING_ERRORS as e:
        return None, time.perf_counter() - t, f"{type(e).__name__}: {e}"
