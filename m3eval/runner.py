"""Generation: samples -> batches -> model -> predictions/<task>.jsonl.

Each rank takes `rank::world_size` of a task's pending samples, sorts them by
prompt length, decodes the next batch's media in a background thread while the
model generates, and appends every finished batch to its own log at once.
Rank 0 gathers, writes predictions/<task>.jsonl in dataset order and removes
the logs. A re-run reads every log and regenerates nothing already finished.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.media import MediaError, VideoRule, decode_media, thumbnail_jpeg
from .data.samples import LazyField
from .distributed import Dist
from .models.base import BadMessageError, GenerationConfig
from .results import append_jsonl, atomic_write_bytes, atomic_write_jsonl, read_predictions
from .tasks.schema import TaskSpec
from .types import Media, Message, Prediction, Sample


PREFETCH = 2  # batches decoded ahead of the one generating


@dataclass
class Prepared:
    """One sample ready for the model (or already failed)."""

    sample: Sample
    message: Message | None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class GenStats:
    generate_s: float = 0.0
    samples: int = 0


def media_filename(sample_id: str) -> str:
    """A filesystem-safe, collision-free name for a sample's thumbnail."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", sample_id)[:80]
    return f"{safe}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}.jpg"


def prediction_files(run_dir: Path, task: str) -> list[Path]:
    pred_dir = run_dir / "predictions"
    return [pred_dir / f"{task}.jsonl", *sorted(pred_dir.glob(f"{task}.rank*.jsonl"))]


def prepare(sample: Sample, rule: VideoRule, media_dir: Path | None) -> Prepared:
    """Decode a sample's media into one Message; a bad image or video fails only this sample."""
    parts: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    try:
        for m in sample.media:
            value = m.source.get() if isinstance(m.source, LazyField) else m.source
            items = value if m.kind == "image" and isinstance(value, list) else [value]
            for item in items:
                part, part_info = decode_media(Media(m.kind, item), rule)
                parts.append(part)
                if m.kind == "image":
                    info["images"] = info.get("images", 0) + 1
                else:  # one video a sample: keep its sampling record (rule, frames, indices)
                    info.update(part_info)
    except (MediaError, OSError, KeyError) as e:
        return Prepared(sample, None, info, f"{type(e).__name__}: {e}")
    if media_dir is not None and parts:
        thumb = media_dir / media_filename(sample.id)
        if not thumb.exists():
            images = [p["image"] for p in parts if p["type"] == "image"] + \
                     [f for p in parts if p["type"] == "video" for f in p["frames"]]
            atomic_write_bytes(thumb, thumbnail_jpeg(images), durable=False)
    parts.append({"type": "text", "text": sample.prompt})
    return Prepared(sample, parts, info)


def _generate_batch(model: Any, batch: list[Prepared], gen: GenerationConfig) -> list[str | Exception]:
    """Outputs aligned with batch; a malformed message or a failing batch is retried
    sample by sample, so one bad sample never costs the others."""
    try:
        return list(model.generate([p.message for p in batch], gen))
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


def generate_task(spec: TaskSpec, samples: list[Sample], model: Any, gen: GenerationConfig, run_dir: Path,
                  dist: Dist, batch_size: int, save_media: bool = True, progress: bool = True) -> GenStats:
    stats = GenStats()
    done = read_predictions(prediction_files(run_dir, spec.task))
    dist.barrier()  # every rank sees the same finished set before any rank appends: same shards
    pending = [s for s in samples if s.id not in done][dist.rank::dist.world_size]
    pending.sort(key=lambda s: (-len(s.prompt) - 256 * len(s.media), s.id))  # longest first: OOM shows early
    batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
    log = run_dir / "predictions" / f"{spec.task}.rank{dist.rank}.jsonl"
    rule = VideoRule(frames=spec.video.frames, fps=spec.video.fps, max_frames=spec.video.max_frames)
    media_dir = run_dir / "media" / spec.task if save_media else None
    bar = _progress(spec.task, len(pending), progress and dist.is_main)
    writes = []
    # Decoding runs ahead of the model and the log is written behind it, each in its own
    # threads, so the model never waits for either; leaving the `with` (also on a crash)
    # waits for every queued write, so finished batches are never lost.
    with ThreadPoolExecutor(max_workers=2) as pool, ThreadPoolExecutor(max_workers=1) as writer:
        decode = lambda b: [prepare(s, rule, media_dir) for s in b]  # noqa: E731
        ahead = [pool.submit(decode, b) for b in batches[:PREFETCH]]
        for i in range(len(batches)):
            prepared = ahead.pop(0).result()
            if i + PREFETCH < len(batches):
                ahead.append(pool.submit(decode, batches[i + PREFETCH]))
            ready = [p for p in prepared if p.error is None]
            t0 = time.perf_counter()
            outputs = _generate_batch(model, ready, gen) if ready else []
            dt = time.perf_counter() - t0
            stats.generate_s += dt
            by_id = {p.sample.id: o for p, o in zip(ready, outputs)}
            rows = []
            for p in prepared:
                out = by_id.get(p.sample.id, "")
                error = p.error or (f"generate: {type(out).__name__}: {out}" if isinstance(out, Exception) else None)
                text = "" if isinstance(out, Exception) else out
                rows.append(_prediction(p, text, error, dt / max(len(ready), 1)).to_json())
            writes.append(writer.submit(append_jsonl, log, rows))
            stats.samples += len(rows)
            bar.update(len(rows))
    bar.close()
    for w in writes:
        w.result()  # a failed write (disk full) is an error, not a silent loss
    return stats


def _prediction(p: Prepared, text: str, error: str | None, seconds: float) -> Prediction:
    s = p.sample
    return Prediction(id=s.id, prediction=text, prompt=s.prompt, references=s.references, choices=s.choices,
                      lang=s.lang, instruction=s.instruction, error=error, seconds=round(seconds, 6),
                      media_info=p.info)


def consolidate(spec: TaskSpec, samples: list[Sample], run_dir: Path, dist: Dist) -> list[Prediction] | None:
    """After every rank has finished a task: rank 0 writes predictions/<task>.jsonl in
    dataset order and removes the per-rank logs. Returns the predictions on rank 0."""
    dist.barrier()  # all logs are complete and flushed
    preds: list[Prediction] | None = None
    if dist.is_main:
        files = prediction_files(run_dir, spec.task)
        done = read_predictions(files)
        preds = [done[s.id] for s in samples if s.id in done]
        atomic_write_jsonl(files[0], [p.to_json() for p in preds])
        for f in files[1:]:
            f.unlink(missing_ok=True)
    dist.barrier()  # nobody reads the logs while rank 0 rewrites
    return preds


def _progress(task: str, total: int, enabled: bool):
    try:
        from tqdm import tqdm
        return tqdm(total=total, desc=task, unit="sample", disable=not enabled or total == 0,
                    file=sys.stderr, dynamic_ncols=True)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        class _Null:
            def update(self, n: int) -> None: ...
            def close(self) -> None: ...
        return _Null()


def generation_key(spec: TaskSpec) -> str:
    """What predictions depend on (data, prompt, media rule, generation). A change to
    metrics or filters alone keeps the predictions valid: re-score instead."""
    parts = spec.model_dump(mode="json", include={"dataset", "doc", "instructions", "video", "generation"})
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
