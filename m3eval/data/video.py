"""Video frame sampling with PyAV: seek to each target, decode only what is needed.

Which frames (the documented rule, also recorded in every result):

* The video has T frames (the stream's frame count; when the container does
  not store one, round(duration_s * average_rate), marked as estimated).
* `uniform` (frames=N): n = min(N, max_frames, T) frames, the centres of n
  equal segments: index_k = floor((2k + 1) * T / (2n)), k = 0..n-1.
  E.g. T=16, n=8 -> 1, 3, 5, ..., 15; T=960, n=8 -> 60, 180, ..., 900.
* `fps` (fps=F, takes precedence over frames): n = max(1, round(duration_s * F)),
  capped at max_frames and at T, then the same segment centres. Uncapped this is
  one frame every ~1/F seconds; capped, the n frames still span the whole video.
* A video with fewer frames than n gives all of its frames (info["frames"] < requested).

Indices live on the nominal grid of the average frame rate: target k is shown at
pts = start + index_k / rate. The sampler seeks to the keyframe before each
target and decodes forward to the first frame whose pts reaches the target
(minus half a frame, so rounding of millisecond time bases does not matter).
For constant-frame-rate video this is exactly frame index_k, pixel-identical
to decoding everything; for variable frame rate it is the first frame at (or
just after) that time, so frames stay evenly spread in time and `indices` are
positions on the average-rate grid, not counts of frames.

When the container lies (no timestamps, fewer frames than it claims, corrupt
packets) the sampler falls back to decoding every frame and picks by index
among the frames that decoded; the info dict then says so in "fallback". A
seek that lands past its target is retried further back. MPEG-PS/TS and raw
elementary streams, whose seeks are byte-based and whose timestamps are
interpolated (off by a fraction of a frame), are decoded in order from the start
and picked by position.
info["method"] says which path ran: seek | sequential | decode_all.
"""
from __future__ import annotations

import bisect
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av
from PIL import Image

from m3eval.errors import MediaError

__all__ = ["sample_video", "plan_indices", "frame_count_for"]

# MPEG program/transport streams and raw elementary streams seek by byte position and
# re-derive timestamps afterwards, off by a fraction of a frame: decode those in order.
_UNRELIABLE_SEEK = {"mpeg", "mpegts", "mpegvideo", "h264", "hevc", "m4v"}


def plan_indices(total: int, n: int) -> list[int]:
    """Centres of n equal segments of range(total); all frames when total <= n."""
    if total <= 0 or n <= 0:
        return []
    if total <= n:
        return list(range(total))
    return [((2 * k + 1) * total) // (2 * n) for k in range(n)]


def frame_count_for(
    *, frames: int | None, fps: float | None, max_frames: int | None, duration_s: float | None
) -> tuple[str, int]:
    """(rule, n) before clamping to the video's length; see the module docstring."""
    if fps is not None:
        if duration_s is None:
            raise MediaError("video: fps sampling needs a duration, and this video has none")
        n = max(1, round(duration_s * fps))
        rule = "fps"
    else:
        assert frames is not None
        n, rule = frames, "uniform"
    if max_frames is not None:
        n = min(n, max_frames)
    return rule, n


def _check_args(frames: int | None, fps: float | None, max_frames: int | None) -> None:
    if frames is None and fps is None:
        raise ValueError("sample_video needs frames=N or fps=F")
    if frames is not None and (not isinstance(frames, int) or frames < 1):
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive integer, got {max_frames!r}")


def sample_video(
    path: str | Path,
    *,
    frames: int | None = 8,
    fps: float | None = None,
    max_frames: int | None = None,
) -> tuple[list[Image.Image], dict[str, Any]]:
    """Sample RGB frames of the video at `path`; returns (frames, info).

    info: rule ("uniform" | "fps"), frames_requested, fps_requested, max_frames,
    frames (how many were returned), short (frames < frames_requested), indices,
    fps (effective sampling rate, frames / duration), video_fps, duration_s,
    total_frames, total_frames_estimated, method (seek | sequential | decode_all),
    and "fallback" (a reason) when the fast path could not be used.
    Missing or undecodable video -> MediaError naming the path.
    """
    _check_args(frames, fps, max_frames)
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"video: file not found: {p}")
    try:
        with av.open(str(p)) as container:
            return _sample(container, p, frames, fps, max_frames)
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, EOFError, ValueError, RuntimeError) as e:
        # FFmpeg's message repeats the path; keep just its reason
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise MediaError(f"video: cannot decode {p}: {reason}") from e


def _probe(container: Any, stream: Any) -> dict[str, Any]:
    """Rate, start, duration and frame count from the container, without decoding."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate = Fraction(rate) if rate else None
    tb = Fraction(stream.time_base) if stream.time_base else None
    start = stream.start_time if stream.start_time is not None else 0
    duration_s: float | None = None
    if stream.duration and tb:
        duration_s = float(stream.duration * tb)
    elif container.duration:
        duration_s = container.duration / av.time_base
    total, estimated = stream.frames or 0, False
    if total <= 0 and duration_s and rate:
        total, estimated = round(duration_s * rate), True
    if duration_s is None and total > 0 and rate:
        duration_s = float(total / rate)
    return {"rate": rate, "tb": tb, "start": start, "duration_s": duration_s, "total": total, "estimated": estimated}


def _sample(container: Any, p: Path, frames: int | None, fps: float | None, max_frames: int | None):
    if not container.streams.video:
        raise MediaError(f"video: no video stream in {p}")
    stream = container.streams.video[0]
    meta = _probe(container, stream)
    seekable = not (set(container.format.name.split(",")) & _UNRELIABLE_SEEK)
    fallback, method = None, "seek" if seekable else "sequential"
    picked: list[Image.Image] | None = None
    if meta["total"] > 0 and meta["duration_s"] and (not seekable or (meta["rate"] and meta["tb"])):
        rule, n = frame_count_for(frames=frames, fps=fps, max_frames=max_frames, duration_s=meta["duration_s"])
        indices = plan_indices(meta["total"], n)
        try:
            if seekable:
                picked = _decode_by_seeking(container, stream, indices, meta)
            else:  # by position: timestamps of these formats are not exact even in order
                picked = _decode_in_order(container, p, indices, [0], rewind=False)
                picked = picked if len(picked) == len(indices) else None
        except av.error.FFmpegError as e:  # a corrupt packet: retry frame by frame below
            fallback = f"decode error: {getattr(e, 'strerror', None) or e}"
        except _NoTimestamps:
            fallback = "frames without timestamps"
        if picked is None and fallback is None:
            fallback = "fewer frames than the container claims"
    else:
        fallback = "container has no usable rate/duration/frame count"
    if picked is None:
        assert fallback is not None  # every path above that leaves picked None gives a reason
        method = "decode_all"
        bad = [0]
        total = sum(1 for _ in _decoded_frames(container, p, bad, rewind=True))  # count pass
        if total == 0:
            raise MediaError(f"video: no decodable frames in {p}")
        meta["total"], meta["estimated"] = total, False
        if meta["duration_s"] is None and meta["rate"]:
            meta["duration_s"] = float(total / meta["rate"])
        rule, n = frame_count_for(frames=frames, fps=fps, max_frames=max_frames, duration_s=meta["duration_s"])
        indices = plan_indices(total, n)
        picked = _decode_in_order(container, p, indices, [0], rewind=True)
        if bad[0]:
            fallback += f"; {bad[0]} undecodable packets skipped"
    duration_s = meta["duration_s"]
    info: dict[str, Any] = {
        "rule": rule,
        "frames_requested": n,  # what the rule asked for (after max_frames), before the video's length
        "fps_requested": fps,
        "max_frames": max_frames,
        "frames": len(picked),
        "short": len(picked) < n,  # the video had fewer frames than the rule asked for
        "indices": indices,
        "fps": round(len(picked) / duration_s, 6) if duration_s else None,
        "video_fps": round(float(meta["rate"]), 6) if meta["rate"] else None,
        "duration_s": round(duration_s, 6) if duration_s else None,
        "total_frames": meta["total"],
        "total_frames_estimated": meta["estimated"],
        "method": method,  # seek | sequential (format without reliable seeks) | decode_all (fallback)
    }
    if fallback:
        info["fallback"] = fallback
    return picked, info


def _decode_by_seeking(
    container: Any, stream: Any, indices: list[int], meta: dict[str, Any]
) -> list[Image.Image] | None:
    """Frames at the nominal pts of `indices`, or None when the container is inconsistent."""
    frame_dur = 1 / (meta["rate"] * meta["tb"])  # one frame, in pts units
    half = frame_dur / 2
    keys = _keyframe_pts(stream)
    state = _Cursor()
    out: list[Image.Image] = []
    for index in indices:
        target = meta["start"] + index * frame_dur
        if not _can_continue(target, state.last_pts, state.last_key, keys, state.gop_seen):
            # land on the keyframe at or before the target frame (which may be a keyframe itself)
            if not _seek_before(container, stream, state, math.floor(target + half), target + half, meta["start"]):
                return None
        found = state.advance_to(target - half)
        if found is None:
            return None  # end of stream before the target: fewer frames than claimed
        out.append(found.to_image())
    return out


class _Cursor:
    """The decoder's position: a frame iterator plus what it has seen (for seek decisions)."""

    def __init__(self) -> None:
        self.frames: Iterator[Any] | None = None
        self.pending: Any = None  # a frame decoded but not consumed yet (peeked after a seek)
        self.last_pts: int | None = None
        self.last_key: int | None = None  # pts of the last keyframe decoded
        self.gop_seen = Fraction(0)  # longest keyframe interval seen (for containers without an index)

    def reset(self, frames: Iterator[Any]) -> None:
        self.frames, self.pending, self.last_pts = frames, None, None

    def next(self) -> Any:
        """The next decoded frame, or None at the end of the stream."""
        if self.pending is not None:
            frame, self.pending = self.pending, None
            return frame
        assert self.frames is not None
        frame = next(self.frames, None)
        if frame is None:
            return None
        if frame.pts is None:
            raise _NoTimestamps
        if frame.key_frame:
            if self.last_key is not None and frame.pts > self.last_key:
                self.gop_seen = max(self.gop_seen, Fraction(frame.pts - self.last_key))
            self.last_key = frame.pts
        self.last_pts = frame.pts
        return frame

    def advance_to(self, min_pts: Fraction) -> Any:
        """The first frame with pts >= min_pts (None at the end of the stream)."""
        while (frame := self.next()) is not None:
            if frame.pts >= min_pts:
                return frame
        return None


class _NoTimestamps(Exception):
    """A decoded frame without pts: the seek path cannot place it."""


def _seek_before(container: Any, stream: Any, state: _Cursor, seek_pts: int, latest: Fraction, start: int) -> bool:
    """Seek so that decoding resumes at a keyframe at or before `latest` pts.

    Frames decoded before the first keyframe (a seek that landed mid-GOP, open-GOP
    leading frames) reference data we skipped: they are dropped. Some indexes land a
    seek past the requested time; then step back further (doubling), down to the
    stream's start. False when even that fails.
    """
    step = max(1, seek_pts - start) / 8
    pts = seek_pts
    while True:
        container.seek(int(pts), backward=True, any_frame=False, stream=stream)
        state.reset(container.decode(stream))
        first = state.next()
        while first is not None and not first.key_frame:
            first = state.next()
        if first is None:
            return False
        if first.pts <= latest:
            state.pending = first
            return True
        if pts <= start:
            return False
        pts, step = max(start, math.floor(pts - step)), step * 2


def _keyframe_pts(stream: Any) -> list[int]:
    """Keyframe timestamps from the container's index (empty when it has none worth using)."""
    try:
        keys = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe)
    except (AttributeError, av.error.FFmpegError):
        return []
    return keys if len(keys) > 1 else []


def _can_continue(
    target: Fraction, last_pts: int | None, last_key: int | None, keys: list[int], gop_seen: Fraction
) -> bool:
    """Decode forward instead of seeking when a seek would not skip any decoding."""
    if last_pts is None or last_key is None or target <= last_pts:
        return False
    if keys:
        # the keyframe a seek would land on; index timestamps may be DTS, close enough for a cost decision
        at = bisect.bisect_right(keys, target)
        return at == 0 or keys[at - 1] <= last_pts
    # no index: continue when the target is within the longest keyframe interval seen
    return target - last_key <= gop_seen


def _decoded_frames(container: Any, p: Path, bad: list[int], rewind: bool) -> Iterator[Any]:
    """Every decodable frame in order, skipping (and counting in bad[0]) packets the decoder rejects."""
    if rewind:
        try:
            container.seek(0)
        except av.error.FFmpegError:  # raw elementary streams cannot rewind: read the file again
            with av.open(str(p)) as again:
                yield from _decoded_frames(again, p, bad, rewind=False)
            return
    for packet in container.demux(container.streams.video[0]):
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            bad[0] += 1


def _decode_in_order(container: Any, p: Path, indices: list[int], bad: list[int], rewind: bool) -> list[Image.Image]:
    """The frames at positions `indices` of the decodable frames, converting only those."""
    wanted, out = set(indices), []
    for position, frame in enumerate(_decoded_frames(container, p, bad, rewind)):
        if position in wanted:
            out.append(frame.to_image())
            if len(out) == len(wanted):
                break
    return out
