"""Decoding ahead of the model: samples -> media decoded -> (for hf) the model's inputs built.

The batches of every task form one stream, decoded PREFETCH batches ahead of the one
generating, across task boundaries. For a backend that splits its work (hf: `preprocess`
= chat template + processor, `generate_prepared` = the model) the decoding and the
processor run in a forked worker process (torch's DataLoader), so they take no GIL time
from the model thread: on a small model, threads doing that work slowed `generate` by a
third. Other backends (openai, vllm, plugins) decode in threads: they need the decoded
messages themselves, and their model does not hold this process's GIL.
"""
from __future__ import annotations

import os
import pickle
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Sequence

from ..data.media import VideoRule, decode_media, thumbnail_jpeg
from ..data.sample_set import EMPTY, SampleSet
from ..errors import MediaError
from ..forks import die_with_parent, may_fork
from ..models.base import ModelAdapter
from ..record import SampleFailure
from ..results import atomic_write_bytes, media_filename
from ..types import LazySource, Media, Message, Sample
from .claims import Claims

PREFETCH = 2  # batches decoded ahead of the one generating (per worker)
_ABSENT = object()  # an image field a row leaves null (one of several: MMMU's image_3..image_7 of a 2-image row)


@dataclass
class Prepared:
    """One sample ready for the model (or already failed). `message` is None in the model's
    process when a worker process built the model's inputs instead."""

    sample: Sample
    message: Message | None
    info: dict[str, Any] = field(default_factory=dict)
    error: SampleFailure | None = None


@dataclass
class Decoded:
    """One batch after decoding: its samples, and (for a backend with `preprocess`) the
    model inputs already built, so the model thread only generates. `plan` is the runner's
    TaskPlan (it carries the samples' video rule, media folder and generation config). After
    a plan's last batch for this rank comes one item with `end` set."""

    plan: Any
    prepared: list[Prepared]
    inputs: Any = None
    end: bool = False  # no batch of the plan is left for this rank (an empty item)


def prepare(sample: Sample, rule: VideoRule, media_dir: Path | None, max_images: int | None = None) -> Prepared:
    """Decode a sample's media into one Message; a bad image or video fails only this sample, and so
    does one with more images than the model takes (`max_images`, the backend's: the counts recorded).
    Images go before the text, or with `sample.image_markers` at their markers in it (place_images)."""
    info: dict[str, Any] = {}
    if sample.failure is not None:  # a bad row (no references, prompt too large): recorded, not generated
        return Prepared(sample, None, info, sample.failure)
    try:
        slots: list[Any] = []  # the image sources in order; _ABSENT: an image field this row leaves null
        others: list[Media] = []
        for m in sample.media:
            value = m.source.get() if isinstance(m.source, LazySource) else m.source
            if m.kind != "image":
                others.append(Media(m.kind, value))
            elif value is None and isinstance(m.source, LazySource) and m.source.optional:
                slots.append(_ABSENT)
            else:
                slots.extend(value if isinstance(value, list) else [value])
        n_images = sum(s is not _ABSENT for s in slots)
        if max_images is not None and n_images > max_images:
            return Prepared(sample, None, {"images": n_images}, SampleFailure(
                stage="data", type="TooManyImages", message=f"the sample has {n_images} images; the model takes "
                f"at most {max_images} in one message (its backend's max_images)"))
        images: list[dict[str, Any] | None] = []
        for source in slots:
            part = None
            if source is not _ABSENT:
                part, part_info = decode_media(Media("image", source), rule)
                info["images"] = info.get("images", 0) + 1
                info.setdefault("image_size", part_info["size"])  # grounding scales boxes by it
            images.append(part)
        videos = []
        for m in others:
            part, part_info = decode_media(m, rule)
            videos.append(part)
            info.update(part_info)  # one video a sample: keep its sampling record (rule, frames, indices)
    except (MediaError, OSError, KeyError, ValueError) as e:
        return Prepared(sample, None, info, SampleFailure.of("data", e))
    if sample.image_markers is None:
        unplaced, text_parts = [p for p in images if p is not None], [{"type": "text", "text": sample.prompt}]
    else:
        unplaced, text_parts = place_images(sample.prompt, images, sample.image_markers)
    shown = [p for p in images if p is not None] + videos
    if media_dir is not None and shown:
        try:
            _save_thumbnail(media_dir / media_filename(sample.id), shown)
        except (OSError, ValueError) as e:  # the page shows no picture; the sample still runs
            info["thumbnail_error"] = str(e)
    return Prepared(sample, unplaced + videos + text_parts, info)


def place_images(prompt: str, images: list[dict[str, Any] | None], markers: str
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the images no marker names, the prompt as parts): image k (images[k - 1], an image part or
    None for a null field) takes the place of the first marker `markers` with {k} = k, e.g.
    "<image 2>"; the text between markers stays as it is. A later marker of the same image, or one
    naming no image, stays text. MMMU's "<image 1>" in a question and "<image 2>" in an option."""
    before, after = markers.split("{k}")
    pattern = re.compile(re.escape(before) + r"(\d{1,9})" + re.escape(after))
    parts: list[dict[str, Any]] = []
    placed: set[int] = set()
    text, start = "", 0
    for m in pattern.finditer(prompt):
        k = int(m.group(1)) - 1
        text += prompt[start:m.start()]
        start = m.end()
        image = images[k] if 0 <= k < len(images) and k not in placed else None
        if image is not None:
            if text:
                parts.append({"type": "text", "text": text})
            parts.append(image)
            placed.add(k)
            text = ""
        else:
            text += m.group(0)
    text += prompt[start:]
    if text or not parts:
        parts.append({"type": "text", "text": text})
    return [p for k, p in enumerate(images) if p is not None and k not in placed], parts


def _save_thumbnail(path: Path, parts: list[dict[str, Any]]) -> None:
    if not path.exists():
        images = [p["image"] for p in parts if p["type"] == "image"] + \
                 [f for p in parts if p["type"] == "video" for f in p["frames"]]
        atomic_write_bytes(path, thumbnail_jpeg(images), durable=False)


def decode_batch(plan: Any, batch: Sequence[Sample], preprocess: Callable | None, max_images: int | None = None
                 ) -> Decoded:
    prepared = [prepare(s, plan.rule, plan.media_dir, max_images) for s in batch]
    inputs = None
    ready = [p.message for p in prepared if p.error is None]
    if preprocess is not None and ready:
        try:
            inputs = preprocess(ready, plan.gen)
        except Exception:  # noqa: BLE001 - the model thread retries and blames one sample
            inputs = None
    return Decoded(plan, prepared, inputs)


def with_messages(decoded: Decoded) -> list[Prepared]:
    """The batch's samples, each that decoded with its message: decoded again here when a
    worker process built the inputs (only on the rare path where those inputs failed)."""
    if all(p.message is not None for p in decoded.prepared if p.error is None):
        return decoded.prepared
    out = []
    for p in decoded.prepared:
        again = p if p.error else prepare(p.sample, decoded.plan.rule, None)
        if again is not p and again.error is None:
            again.info = p.info  # the worker's record (a thumbnail error, say) stays
        out.append(again)
    return out


def decoded_stream(plans: list[Any], model: ModelAdapter | None, pool: ThreadPoolExecutor,
                   claims: Claims | None = None) -> Generator[Decoded, None, None]:
    """The batches this rank takes (`claims`: from the launch's shared counter, else all of them), plan
    by plan, each plan closed by an `end` item, decoded ahead of the model (see the module doc).
    `model` is None when nothing is left to generate (the stream holds only the end items)."""
    claims = claims or Claims()
    limit = None if model is None else model.max_images()  # more images than this: the sample fails
    if model is None or not model.splits_preprocessing:
        return _in_threads(plans, claims, None, pool, limit)
    # a streaming backend takes the decoded messages themselves: those stay in this process
    if any(plan.batches for plan in plans) and may_fork() and not model.streams:
        return _in_process(plans, claims, model.preprocess, limit)
    return _in_threads(plans, claims, model.preprocess, pool, limit)


def _claimed(plans: list[Any], claims: Claims) -> Iterator[tuple[int, int | None]]:
    """(plan index, batch index) of each batch this rank takes, and (plan index, None) once the plan
    has none left for it. A plan with no batch asks no one."""
    for i, plan in enumerate(plans):
        while plan.batches and (k := claims.next(plan.spec.task)) < len(plan.batches):
            yield i, k
        yield i, None


def _take(plan: Any, k: int) -> SampleSet:
    """Batch k, let go by the plan once handed over (a finished task's samples are not held to the end)."""
    batch, plan.batches[k] = plan.batches[k], EMPTY
    return batch


# what a worker returns for a batch: its samples, each one's media record and error, and the pickled inputs
_WorkerBatch = tuple[list[Sample], list[dict[str, Any]], list[SampleFailure | None], bytes]


def _in_threads(plans: list[Any], claims: Claims, preprocess: Callable | None, pool: ThreadPoolExecutor,
                max_images: int | None) -> Generator[Decoded, None, None]:
    def start(i: int, k: int | None) -> Future[Decoded]:
        if k is None:
            done: Future[Decoded] = Future()
            done.set_result(Decoded(plans[i], [], end=True))
            return done
        return pool.submit(decode_batch, plans[i], _take(plans[i], k), preprocess, max_images)

    items = _claimed(plans, claims)
    ahead = deque(start(i, k) for i, k in islice(items, PREFETCH))
    while ahead:
        decoded = ahead.popleft().result()
        for i, k in islice(items, 1):
            ahead.append(start(i, k))
        yield decoded


def _worker_batch(plan: Any, batch: Sequence[Sample], preprocess: Callable, max_images: int | None) -> _WorkerBatch:
    """One batch decoded in the worker process: its samples (read from the data process, whose media
    fields are references to it: a few hundred bytes a sample), each one's media record and error, and
    the inputs. The model's process does not read the samples again."""
    d = decode_batch(plan, batch, preprocess, max_images)
    # The inputs travel as plain pickled bytes (tensors by value), not as torch's shared-memory
    # handles: those need room in /dev/shm (64 MB in a default container) and a file-descriptor
    # server thread in this worker that prints tracebacks when the run is interrupted. The
    # copy costs ~50 ms for a 37 MB batch of high-resolution images; nothing for small ones.
    try:
        inputs = pickle.dumps(d.inputs)
    except Exception:  # noqa: BLE001 - e.g. a remote-code processor's object: the model's process decodes again
        inputs = pickle.dumps(None)
    return [p.sample for p in d.prepared], [p.info for p in d.prepared], [p.error for p in d.prepared], inputs


def _as_is(item: Any) -> Any:
    return item


def _in_process(plans: list[Any], claims: Claims, preprocess: Callable, max_images: int | None
                ) -> Generator[Decoded, None, None]:
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    class Batches(Dataset[tuple[int, int | None, _WorkerBatch]]):  # decoded in the worker
        def __getitem__(self, item: tuple[int, int | None]) -> tuple[int, int | None, _WorkerBatch]:
            i, k = item
            return i, k, ([], [], [], b"") if k is None else \
                _worker_batch(plans[i], plans[i].batches[k], preprocess, max_images)

    class Claimed(Sampler[tuple[int, int | None]]):  # which ones: claimed in this process as the loader
        # hands work to the worker (a worker that forked while the heartbeat thread held a lock of torch's
        # store client could hang making its own)
        def __iter__(self) -> Iterator[tuple[int, int | None]]:
            return _claimed(plans, claims)

    # The worker forks here, before this run's progress bars, writer and scorer threads start.
    # A fork copies only the calling thread; threads that may exist already (tqdm's monitor, the
    # heartbeat) hold nothing the worker uses, and the run folder's lock is closed in it (run/lock.py).
    # Its own generator: the worker's seed is not drawn from the global RNG that sampling uses.
    loader = iter(DataLoader(Batches(), sampler=Claimed(), batch_size=None, num_workers=1, collate_fn=_as_is,
                             prefetch_factor=PREFETCH, multiprocessing_context="fork",
                             generator=torch.Generator(), worker_init_fn=partial(_die_with_parent, os.getpid())))
    assert isinstance(loader, _MultiProcessingDataLoaderIter)  # num_workers=1: a multiprocessing iterator
    return _joined(plans, loader, loader._shutdown_workers)


def _die_with_parent(parent: int, _worker_id: int) -> None:
    """torch's own watchdog only looks between batches: the worker goes when the run's process does."""
    die_with_parent(parent)


def _joined(plans: list[Any], loader: Iterator[tuple[int, int | None, _WorkerBatch]],
            shutdown: Callable[[], None]) -> Generator[Decoded, None, None]:
    # The worker forked (when the loader was made) with its own copy of the plans: this process
    # lets each batch go once it is handed over, as _in_threads does
    try:
        for i, k, (batch, infos, errors, inputs) in loader:
            if k is None:
                yield Decoded(plans[i], [], end=True)
                continue
            _take(plans[i], k)
            yield Decoded(plans[i], [Prepared(s, None, info, err) for s, info, err in zip(batch, infos, errors)],
                          pickle.loads(inputs))  # noqa: S301 - bytes from our own worker process
    finally:  # the worker stops now, also when the run stops early (an exception's traceback
        # may still hold the iterator, so its last reference going away is not enough)
        shutdown()
