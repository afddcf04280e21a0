"""--engine ray: one Ray actor per model replica, chunks handed out as actors finish.

The driver (the `m3eval run` process) cuts each task into chunks (chunks.py) and keeps every
actor two chunks deep. An actor reads the task's data itself (checked against the driver's
fingerprint), generates the chunk with the same loop as a local run (generate.py, batches within
the chunk, so the same samples share a batch) and returns the chunk's records and thumbnails.
The driver writes each returned chunk once, atomically, as `predictions/<task>.chunk-<id>.jsonl`
in the run folder, which lives only where the driver runs: workers need no shared filesystem.
From there the run goes on as a local one does: a task's chunk files are merged in dataset order
and scored, and a re-run resumes from them (a chunk with every sample written is not sent again).

An actor whose process dies (kill -9, out of memory) is restarted by Ray and reloads its model;
the chunks it held are handed out again. Ray is an optional extra: `pip install 'm3eval[ray]'`.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..data.sample_set import SampleSet
from ..errors import RunError, UsageError
from ..models.base import GenerationConfig, ModelAdapter
from ..results import atomic_write_bytes, atomic_write_jsonl, media_filename, read_jsonl
from ..tasks.schema import TaskSpec
from .chunks import Chunk, batches_of
from .generate import GenStats, TaskPlan, generate_tasks, progress_bar

RAY_MISSING = "--engine ray needs Ray: pip install 'm3eval[ray]'"
CONNECT_S = 10.0  # a TCP connection to --address: an unreachable one fails in this time, not in minutes
IN_FLIGHT = 2  # chunks per actor: one generating, the next already queued on it
LOSSES = 3  # a chunk whose worker died this often stops the run (it may be what kills them)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: the cluster, the actors, each actor's resources."""

    address: str | None = None  # None: start a local cluster; "auto", "host:port" or "ray://host:port"
    num_workers: int = 1
    worker_gpus: float = 0.0
    worker_cpus: float = 1.0


@dataclass(frozen=True)
class TaskLoad:
    """What an actor needs to read a task's samples as the driver did."""

    spec: TaskSpec
    limit: int | float | None
    instructions: str
    override: str | None
    fingerprint: dict[str, Any]  # the driver's: an actor that reads other data stops the run


@dataclass(frozen=True)
class ChunkJob:
    load: TaskLoad
    sample_ids: list[str]  # the chunk's pending samples, in chunk order
    gen: GenerationConfig
    batch_size: int
    save_media: bool


@dataclass(frozen=True)
class ChunkDone:
    rows: list[dict[str, Any]]  # prediction records
    media: dict[str, bytes]  # thumbnail file name -> JPEG


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def check_address(address: str) -> None:
    """An --address of host:port (or ray://host:port) that no one listens on fails now, naming it."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_S).close()
    except OSError as e:
        raise RunError(f"--address {address}: cannot reach a Ray cluster there ({e.strerror or e})") from None


class ChunkWorker:
    """An actor's state: one model replica and the samples of the tasks it has been given."""

    def __init__(self, backend: str, model_args: dict[str, Any]) -> None:
        os.environ["M3EVAL_PREFETCH"] = "thread"  # no fork inside a Ray worker (its threads hold locks)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from ..models.registry import load_model
        self.model: ModelAdapter = load_model(backend, model_args)
        self.samples: dict[str, SampleSet] = {}

    def info(self) -> dict[str, Any]:
        return self.model.info()

    def _task(self, load: TaskLoad) -> SampleSet:
        task = load.spec.task
        if task not in self.samples:
            from ..data.fingerprint import data_changed
            from ..data.task_samples import load_task_data
            data = load_task_data(load.spec, load.limit, load.instructions, load.override)
            why = data_changed(load.fingerprint, data.fingerprint)
            if why:
                raise RunError(f"task {task}: the worker on {socket.gethostname()} read other data than the "
                               f"driver: {why}")
            self.samples[task] = data.samples
        return self.samples[task]

    def run_chunk(self, job: ChunkJob) -> ChunkDone:
        from ..data.media import VideoRule
        spec = job.load.spec
        samples = self._task(job.load).with_ids(job.sample_ids)
        with tempfile.TemporaryDirectory(prefix="m3eval-chunk-") as tmp:
            media_dir = Path(tmp) / "media" if job.save_media else None
            plan = TaskPlan(spec, samples, job.gen, batches_of(samples, job.batch_size), Path(tmp) / "log.jsonl",
                            VideoRule(frames=spec.video.frames, fps=spec.video.fps, max_frames=spec.video.max_frames),
                            media_dir)
            generate_tasks([plan], self.model, lambda _plan, _stats: None, progress=False)
            media = {f.name: f.read_bytes() for f in media_dir.iterdir()} if media_dir and media_dir.is_dir() else {}
            return ChunkDone(read_jsonl(plan.log), media)


class RayEngine:
    """The driver's side: the cluster connection, the actors, the chunk queue."""

    def __init__(self, opts: RayOptions, backend: str, model_args: dict[str, Any]) -> None:
        ray = self.ray = import_ray()
        self.actors: list[Any] = []
        try:
            # "local": a cluster of this machine's own, never one a `ray start` here left (maybe dead)
            ray.init(address=opts.address or "local", include_dashboard=False, logging_level="ERROR",
                     log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:  # "auto" with no cluster, a refused handshake
            raise RunError(f"--address {opts.address}: cannot connect to a Ray cluster: {_first_line(e)}") from None
        self._check_resources(opts)
        actor = ray.remote(ChunkWorker).options(num_cpus=opts.worker_cpus, num_gpus=opts.worker_gpus,
                                                max_restarts=-1, max_task_retries=0)
        self.actors = [actor.remote(backend, model_args) for _ in range(opts.num_workers)]
        try:
            self.info: dict[str, Any] = ray.get(self.actors[0].info.remote())  # the first model has loaded
        except ray.exceptions.RayError as e:
            self.close()
            raise RunError(f"--engine ray: the model did not load in a worker: {_cause(e, ray)}") from None

    def _check_resources(self, opts: RayOptions) -> None:
        have = self.ray.cluster_resources()
        for name, each in (("CPU", opts.worker_cpus), ("GPU", opts.worker_gpus)):
            if each and each * opts.num_workers > have.get(name, 0):
                self.close()
                raise UsageError(f"--num-workers {opts.num_workers} with {each:g} {name} each needs "
                                 f"{each * opts.num_workers:g} {name}s; the Ray cluster has {have.get(name, 0):g}")

    def generate_tasks(self, plans: list[TaskPlan], job: Callable[[TaskPlan, Chunk], ChunkJob], run_dir: Path,
                       on_done: Callable[[TaskPlan, GenStats], None], progress: bool) -> None:
        """Every plan's chunks through the actors; `on_done` for each task in plan order once its
        chunks are all written (as generate.generate_tasks does for a local run)."""
        queue = deque((i, c) for i, plan in enumerate(plans) for c in plan.chunks)
        left = [len(plan.chunks) for plan in plans]
        stats = [GenStats() for _ in plans]
        first: list[float | None] = [None] * len(plans)
        pool = _Pool(self.ray, self.actors)
        finished = 0

        def finish_ready() -> None:
            nonlocal finished
            while finished < len(plans) and left[finished] == 0:
                started = first[finished]
                stats[finished].generate_s = time.perf_counter() - started if started else 0.0
                on_done(plans[finished], stats[finished])
                finished += 1

        with progress_bar("generate", sum(len(c.samples) for plan in plans for c in plan.chunks), progress) as bar:
            finish_ready()
            while queue or pool.running:
                while queue and (actor := pool.free()) is not None:
                    i, chunk = queue.popleft()
                    first[i] = first[i] or time.perf_counter()
                    pool.submit(actor, i, chunk, job(plans[i], chunk))
                got = pool.next_done()
                if got is None:  # a restarted worker is back: it takes the next chunk
                    continue
                i, chunk, done = got
                if done is None:  # its worker was lost: the chunk goes again, first
                    queue.appendleft((i, chunk))
                    continue
                write_chunk(run_dir, chunk, done)
                stats[i].samples += len(done.rows)
                bar.update(len(done.rows))
                left[i] -= 1
                finish_ready()

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.ray.shutdown()  # a local cluster stops; a remote one only loses this driver


class _Pool:
    """The actors, the chunks in flight on each (with the index of their task's plan), and the
    actors Ray is restarting: one that died takes no chunk until it answers again (a call to a
    restarting actor fails at once)."""

    def __init__(self, ray: Any, actors: list[Any]) -> None:
        self.ray, self.actors = ray, list(actors)
        self.running: dict[Any, tuple[int, Chunk, Any]] = {}  # ObjectRef -> (plan index, chunk, actor)
        self.load = {a: 0 for a in self.actors}
        self.pings: dict[Any, Any] = {}  # ObjectRef of a readiness call -> a restarting actor
        self.lost: dict[str, int] = {}  # chunk id -> times its worker died under it

    def free(self) -> Any:
        """An actor that is up and has room for another chunk, or None."""
        resting = set(self.pings.values())
        return next((a for a in self.actors if a not in resting and self.load[a] < IN_FLIGHT), None)

    def submit(self, actor: Any, i: int, chunk: Chunk, job: ChunkJob) -> None:
        self.running[actor.run_chunk.remote(job)] = (i, chunk, actor)
        self.load[actor] += 1

    def next_done(self) -> tuple[int, Chunk, ChunkDone | None] | None:
        """The next chunk to finish: (plan index, chunk, its result, or None when its worker died);
        None when instead a restarted actor is up again."""
        if not self.running and not self.pings:
            raise RunError("every Ray worker died and none could be restarted; finished chunks are kept, "
                           "re-run to resume")
        ray = self.ray
        (ref,), _ = ray.wait([*self.running, *self.pings], num_returns=1)
        if ref in self.pings:
            self._pinged(ref)
            return None
        i, chunk, actor = self.running.pop(ref)
        self.load[actor] -= 1
        try:
            return i, chunk, ray.get(ref)
        except ray.exceptions.RayActorError as e:  # its process died: Ray restarts it
            self._lost(chunk, actor, e)
            return i, chunk, None
        except ray.exceptions.RayTaskError as e:
            raise RunError(f"task {chunk.task}, chunk {chunk.id}: {_cause(e, ray)}") from None

    def _lost(self, chunk: Chunk, actor: Any, e: BaseException) -> None:
        self.lost[chunk.id] = self.lost.get(chunk.id, 0) + 1
        if self.lost[chunk.id] >= LOSSES:  # a chunk that kills its worker
            raise RunError(f"task {chunk.task}, chunk {chunk.id}: its Ray worker died {LOSSES} times "
                           f"({type(e).__name__}); finished chunks are kept, re-run to resume")
        print(f"m3eval: a Ray worker was lost ({type(e).__name__}); chunk {chunk.task}/{chunk.id} is handed out "
              "again", file=sys.stderr)
        if actor in self.actors and actor not in self.pings.values():
            self.pings[actor.info.remote()] = actor

    def _pinged(self, ref: Any) -> None:
        actor = self.pings.pop(ref)
        try:
            self.ray.get(ref)  # up again (its model reloaded): it takes chunks
        except self.ray.exceptions.ActorUnavailableError:  # still restarting
            time.sleep(0.2)
            self.pings[actor.info.remote()] = actor
        except self.ray.exceptions.RayError:  # gone for good (it could not restart): the others go on
            self.actors.remove(actor)


def chunk_file(run_dir: Path, chunk: Chunk) -> Path:
    return run_dir / "predictions" / f"{chunk.task}.chunk-{chunk.id}.jsonl"


def write_chunk(run_dir: Path, chunk: Chunk, done: ChunkDone) -> None:
    """Thumbnails first, then the chunk's records in one atomic write: a chunk file on disk is
    complete. A chunk already written (handed out twice) is not written again."""
    path = chunk_file(run_dir, chunk)
    if path.exists():
        return
    media_dir = run_dir / "media" / chunk.task
    names = {media_filename(i) for i in chunk.samples.ids}  # only this chunk's samples' own names
    for name, data in done.media.items():
        if name in names and not (media_dir / name).exists():
            atomic_write_bytes(media_dir / name, data, durable=False)
    atomic_write_jsonl(path, done.rows)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _cause(e: BaseException, ray: Any) -> str:
    """The worker's own exception as one line: a RayTaskError carries it; an actor that died in its
    constructor (the model did not load) ends its message with the worker's traceback, whose last
    line is the exception."""
    if isinstance(e, ray.exceptions.RayTaskError) and isinstance(e.cause, BaseException):
        return f"{type(e.cause).__name__}: {_first_line(e.cause)}"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1].removeprefix("m3eval.errors.") if lines else type(e).__name__
