"""Generation: samples -> batches -> model -> predictions/<task>.jsonl.

A task's pending samples are batched within its chunks (chunks.py: fixed runs of whole
batches, longest prompt first), so a batch holds the same samples for one process, any number of
ranks and the Ray engine; ranks take batches as they finish (claims.py). The next batches' media are
decoded (and the model's inputs built, for a backend that splits that step out) ahead of the
model (prefetch.py), and every finished batch is appended to the rank's own log at once (or,
on a rank other than 0, sent to rank 0: relay.py).
A streaming backend (openai, vllm) gets all tasks' samples as one stream and each answer
is logged as it arrives; its `seconds` is the request's own latency.
Rank 0 writes predictions/<task>.jsonl in dataset order and removes the logs. A re-run
reads every log and regenerates nothing already finished.
"""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator

from tqdm import tqdm

from ..data.media import VideoRule
from ..data.sample_set import SampleSet
from ..errors import BadMessageError
from ..models.base import GenerationConfig, ModelAdapter
from ..predictions import PredictionFile, finished_ids, merge_predictions
from ..record import SampleFailure
from ..results import prediction_files
from ..tasks.schema import TaskSpec
from ..types import Message, Prediction
from .chunks import Chunk, batches_of, cut_chunks
from .claims import Claims
from .distributed import Dist
from .prefetch import Decoded, Prepared, decoded_stream, with_messages
from .relay import Logs, Write, append_log

if TYPE_CHECKING:
    from ..scoring.prescore import BatchScorer


@dataclass
class GenStats:
    generate_s: float = 0.0
    samples: int = 0


def _message(p: Prepared) -> Message:
    """The message of a sample that decoded (with_messages() gives each of them one)."""
    if p.message is None:
        raise RuntimeError(f"sample {p.sample.id}: no decoded message")
    return p.message


def _generate_batch(model: ModelAdapter, batch: list[Prepared], gen: GenerationConfig) -> list[str | Exception]:
    """Outputs aligned with batch; a malformed message or a failing batch is retried
    sample by sample, so one bad sample never costs the others."""
    try:
        outputs: list[str | Exception] = list(model.generate([_message(p) for p in batch], gen))
        if len(outputs) != len(batch):
            raise RuntimeError(f"the model returned {len(outputs)} outputs for {len(batch)} inputs")
        return outputs
    except BadMessageError as e:
        if len(batch) == 1:
            return [e]
    except Exception as e:  # e.g. out of memory on a long batch
        if len(batch) == 1:
            return [e]
    out: list[str | Exception] = []
    for p in batch:
        out += _generate_batch(model, [p], gen)
    return out


@dataclass
class TaskPlan:
    """What one rank still has to generate for one task."""

    spec: TaskSpec
    samples: SampleSet  # the whole task, in dataset order
    gen: GenerationConfig
    batches: list[SampleSet]  # the pending samples, chunk by chunk (chunks.py); a rank takes some (claims.py)
    log: Path  # this rank's append-only log
    rule: VideoRule
    media_dir: Path | None
    chunks: list[Chunk] = field(default_factory=list)  # the task's chunks with a sample pending (--engine ray)


def finished(run_dir: Path, specs: list[TaskSpec]) -> dict[str, set[str]]:
    """Each task's samples that earlier runs finished (a model failure, OOM or timeout, is not)."""
    return {s.task: finished_ids(prediction_files(run_dir, s.task)) for s in specs}


def plan_task(spec: TaskSpec, samples: SampleSet, gen: GenerationConfig, log: Path, batch_size: int,
              done: set[str] | frozenset[str] = frozenset(), media_dir: Path | None = None) -> TaskPlan:
    """Batch the samples not in `done` (the finished ids of earlier runs). Every rank plans every
    batch, from the finished set rank 0 read, and takes them as it goes (claims.py)."""
    chunks = cut_chunks(spec.task, samples, batch_size, done)
    batches = [b for c in chunks for b in batches_of(c.samples, batch_size)]
    return TaskPlan(spec, samples, gen, batches, log,
                    VideoRule(frames=spec.video.frames, fps=spec.video.fps, max_frames=spec.video.max_frames),
                    media_dir, chunks)


def generate_tasks(plans: list[TaskPlan], model: ModelAdapter | None, on_done: Callable[[TaskPlan, GenStats], None],
                   progress: bool = True, claims: Claims | None = None, logs: Logs | None = None) -> None:
    """Run the batches this rank takes (`claims`: from the launch's shared counter; else every
    batch of every plan) as one stream. Media decoding (and the model's own pre-processing) runs
    ahead of the model, across task boundaries (prefetch.py: a worker process, or threads), and
    the logs are written behind it in a thread, so the model waits for neither. A streaming
    backend (`model.streams`: openai, vllm) gets all samples of all tasks as one lazy stream and
    each prediction is logged as it completes. A task's log is complete before `on_done` sees
    it, and tasks finish in plan order (so every rank meets the same collectives); leaving the
    `with` (also on a crash) waits for every queued write, so finished predictions are never
    lost. `logs`: where finished rows go (relay.py: the rank's log, or rank 0). `model` is None
    when no plan has a batch left (the model was not loaded): each task is only handed to
    `on_done`."""
    claims = claims or Claims()
    write = _scored(logs.write if logs is not None else append_log)
    # a progress bar's total: this rank's samples, unknown when ranks take batches as they go
    totals = {id(plan): None if claims.shared else sum(map(len, plan.batches)) for plan in plans}
    with ThreadPoolExecutor(max_workers=2) as pool, ThreadPoolExecutor(max_workers=1) as writer, \
            closing(decoded_stream(plans, model, pool, claims)) as decoded:  # closed first: a worker process stops
        if model is not None and model.streams:
            total = None if claims.shared else sum(t or 0 for t in totals.values())
            _stream_tasks(plans, model, decoded, _Writes(writer), write, on_done,
                          progress_bar("generate", total, progress))
            return
        writes = _Writes(writer)
        bar, stats = None, GenStats()  # the current plan's: a plan's items come together, its end item last
        try:
            for batch in decoded:
                plan = batch.plan
                if bar is None:  # not `bar or ...`: a tqdm with no total has no truth value
                    bar = progress_bar(plan.spec.task, totals[id(plan)], progress)
                if batch.end:
                    bar.close()
                    writes.wait()
                    on_done(plan, stats)
                    bar, stats = None, GenStats()
                    continue
                assert model is not None, "a batch to generate but no model"
                writes.check()  # the last write failed: no batch more for the model
                rows, dt = _run_batch(model, batch, plan.gen)
                stats.generate_s += dt
                stats.samples += len(rows)
                writes.submit(write, plan, rows)
                bar.update(len(rows))
        finally:  # closed on an error too: its line starts on a line of its own
            if bar is not None:
                bar.close()


def _scored(write: Write) -> Write:
    """`write`, each batch first given its per-sample scores (scoring/prescore.py), in the writer thread:
    behind the model, as the write itself (scoring's modules too: imported by the first batch's)."""
    scorers: list[BatchScorer] = []

    def scored(plan: TaskPlan, rows: list[dict]) -> None:
        if not scorers:
            from ..scoring.prescore import BatchScorer
            scorers.append(BatchScorer())
        scorers[0](plan.spec, rows)
        write(plan, rows)
    return scored


class _Writes:
    """The log writes queued behind the model. The first one that fails (disk full, read-only)
    is raised by the next `check`, made before every batch or request: the model then gets at
    most the batch (or the requests) already under way, instead of generating to the end of
    the task into writes that fail too. Rows appended before it stay on disk for the re-run."""

    def __init__(self, writer: ThreadPoolExecutor):
        self.writer = writer
        self.futures: list[Future[None]] = []
        self.failed: BaseException | None = None

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        future = self.writer.submit(fn, *args)
        future.add_done_callback(self._done)
        self.futures.append(future)

    def _done(self, future: Future[None]) -> None:
        if self.failed is None and not future.cancelled():
            self.failed = future.exception()

    def check(self) -> None:
        if self.failed is not None:
            raise self.failed

    def wait(self) -> None:
        for w in self.futures:
            w.result()  # a failed write (disk full) is an error, not a silent loss
        self.futures.clear()


class _Appender:
    """One log's rows appended behind the model, coalesced: each write takes every row queued
    by then, so a burst of answers costs one append + fsync, not one per row."""

    def __init__(self, writes: _Writes, write: Write, plan: TaskPlan):
        self.writes, self.write, self.plan = writes, write, plan
        self.rows: list[dict] = []
        self.lock = threading.Lock()

    def add(self, row: dict) -> None:
        with self.lock:
            self.rows.append(row)
            if len(self.rows) == 1:  # no write queued that will take this row: queue one
                self.writes.submit(self._write)

    def _write(self) -> None:
        with self.lock:
            rows, self.rows = self.rows, []
        if rows:
            self.write(self.plan, rows)


def _stream_tasks(plans: list[TaskPlan], model: ModelAdapter, decoded: Iterator[Decoded], writes: _Writes, write: Write,
                  on_done: Callable[[TaskPlan, GenStats], None], bar: tqdm) -> None:
    """Continuous submission: the backend pulls samples as its slots free, across batch and
    task boundaries. A failed request is that sample's error once: no retry round here
    (the backend's client already retried). A task's generate_s is its wall time from its
    first submitted sample to its last answer (tasks overlap). A task is done when its end
    item has come (no sample of it is left for this rank) and every request of it is answered."""
    index = {id(p): i for i, p in enumerate(plans)}
    ended = [False] * len(plans)
    waiting = [0] * len(plans)  # requests sent, not answered (the backend pulls them in its own thread)
    lock = threading.Lock()
    stats = [GenStats() for _ in plans]
    logs = [_Appender(writes, write, p) for p in plans]
    first: list[float | None] = [None] * len(plans)
    last = [0.0] * len(plans)
    finished = 0

    def log(i: int, row: dict) -> None:
        logs[i].add(row)
        stats[i].samples += 1
        bar.update(1)

    def requests() -> Iterator[tuple[tuple[int, Prepared], Message, GenerationConfig]]:
        for d in decoded:
            i = index[id(d.plan)]
            if d.end:
                ended[i] = True  # after every request of the plan counted in `waiting`
                continue
            for p in d.prepared:
                writes.check()  # a log write failed: no request more (the backend cancels what waits)
                if p.error is not None:  # bad media: logged now, never sent
                    log(i, _prediction(p, "", p.error, 0.0).to_json())
                else:
                    first[i] = first[i] or time.perf_counter()
                    with lock:
                        waiting[i] += 1
                    yield (i, p), _message(p), d.plan.gen

    def finish_ready() -> None:
        nonlocal finished
        while finished < len(plans) and ended[finished] and waiting[finished] == 0:
            i = finished
            writes.wait()
            started = first[i]
            stats[i].generate_s = max(0.0, last[i] - started) if started else 0.0
            finished += 1
            on_done(plans[i], stats[i])

    stream = model.generate_stream(requests())
    try:
        for (i, p), out, seconds in stream:
            last[i] = time.perf_counter()
            with lock:
                waiting[i] -= 1
            if isinstance(out, Exception):
                log(i, _prediction(p, "", SampleFailure.of("generate", out), seconds).to_json())
            else:
                log(i, _prediction(p, out, None, seconds).to_json())
            writes.check()  # stop waiting for the answers in flight: they could not be kept
            finish_ready()
    finally:  # closed now, not when collected: the backend drops the requests not yet started
        if isinstance(stream, Generator):
            stream.close()
        bar.close()  # an error's line starts on a line of its own
    finish_ready()
    if finished < len(plans):  # never a task left unfinished in silence
        raise RuntimeError(f"the {type(model).__name__} backend stopped before taking every sample of "
                           f"{plans[finished].spec.task}")


def _run_batch(model: ModelAdapter, batch: Decoded, gen: GenerationConfig) -> tuple[list[dict], float]:
    """Generate for the samples that decoded; every sample gets a row, failed ones with their error."""
    prepared = batch.prepared
    ready = [p for p in prepared if p.error is None]
    t0 = time.perf_counter()
    outputs: list[str | Exception] | None = None
    if batch.inputs is not None:
        try:
            outputs = list(model.generate_prepared(batch.inputs, gen))
        except Exception:  # noqa: BLE001 - e.g. out of memory: fall back to the splitting path
            outputs = None
    if outputs is None or len(outputs) != len(ready):
        prepared = with_messages(batch)
        ready = [p for p in prepared if p.error is None]
        if batch.inputs is not None:  # the whole batch already failed on the model: one sample at a time
            outputs = [o for p in ready for o in _generate_batch(model, [p], gen)]
        else:
            outputs = _generate_batch(model, ready, gen) if ready else []
    dt = time.perf_counter() - t0
    by_id = {p.sample.id: o for p, o in zip(ready, outputs)}
    rows = []
    for p in prepared:
        out = by_id.get(p.sample.id, "")
        error = p.error or (SampleFailure.of("generate", out) if isinstance(out, Exception) else None)
        text = "" if isinstance(out, Exception) else out
        rows.append(_prediction(p, text, error, dt / max(len(ready), 1)).to_json())
    return rows, dt


def _prediction(p: Prepared, text: str, error: SampleFailure | None, seconds: float) -> Prediction:
    return Prediction.for_sample(p.sample, text, error=error, seconds=seconds, media_info=p.info)


def consolidate(spec: TaskSpec, ids: list[str], run_dir: Path, dist: Dist, logs: Logs | None = None
                ) -> PredictionFile | None:
    """After every rank has finished a task: rank 0 takes what the other ranks sent (relay.py),
    writes predictions/<task>.jsonl (this run's samples, whose `ids` are given in dataset order,
    then any others an earlier run made, e.g. with a larger --limit) and removes the per-rank
    logs. Returns this run's predictions on rank 0, read from that file as scoring asks: neither
    the merge nor the caller holds them all. Only the ids: the samples themselves may be freed
    before their predictions are read."""
    dist.barrier()  # every rank has sent (or appended and flushed) all its batches of the task
    preds: PredictionFile | None = None
    if dist.is_main:
        if logs is not None:
            logs.drain()
        files = prediction_files(run_dir, spec.task)
        missing = merge_predictions(files, ids)
        if missing:
            raise RuntimeError(f"task {spec.task}: {len(missing)} predictions are missing after generation "
                               f"(e.g. {missing[:3]})")
        preds = PredictionFile(files[0], len(ids))
    dist.barrier()  # nobody reads the logs while rank 0 rewrites
    return preds


def progress_bar(task: str, total: int | None, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=task, unit="sample", disable=not enabled or total == 0, file=sys.stderr,
                dynamic_ncols=True)
