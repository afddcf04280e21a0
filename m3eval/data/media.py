"""Turning a sample's lazy Media into pixels: images, videos, extracted frames.

Everything undecodable raises MediaError (a ValueError) whose message names the
media kind and what was wrong, e.g. "image: cannot identify image file (base64
string of 1234 chars)"; the runner records it as the sample's error and goes on.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import MediaError

__all__ = ["MediaError", "VideoRule", "decode_image", "decode_media", "thumbnail_jpeg"]

# an absolute path string shorter than this that names a file is read as one; a relative one
# never is (a run resolves and confines its paths first: media_paths.py, not the current directory)
_MAX_PATH_LEN = 4096
# an encoded image is at most this many bytes per pixel (uncompressed 16-bit RGBA is 8; formats add headers)
_MAX_BYTES_PER_PIXEL = 10
# _open_bytes refuses every image Pillow would warn about (an error for that sample), so the warning is noise
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class VideoRule:
    """How to sample a video (mirrors the task schema's `video:` block).

    fps, when set, takes precedence over frames; max_frames caps either rule,
    and also caps the "frames" kind (already-extracted frames).
    """

    frames: int | None = 8
    fps: float | None = None
    max_frames: int | None = 32

    @classmethod
    def of(cls, spec: Any) -> "VideoRule":
        """From anything with frames/fps/max_frames attributes (e.g. the task's VideoSpec) or a dict."""
        if isinstance(spec, cls):
            return spec
        get = spec.get if isinstance(spec, dict) else lambda k, d: getattr(spec, k, d)
        return cls(frames=get("frames", 8), fps=get("fps", None), max_frames=get("max_frames", 32))


def _describe(source: Any) -> str:
    """A short description of a source for error messages (never the data itself)."""
    if isinstance(source, str):
        return f"base64 string of {len(source)} chars"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"{len(source)} bytes"
    return type(source).__name__


def _open_bytes(data: bytes | Path, what: str) -> Image.Image:
    """Decode an encoded image (bytes, or a file PIL reads as it decodes), refusing before any
    pixel is decoded one whose header declares more pixels than Pillow's own bomb warning
    threshold, `PIL.Image.MAX_IMAGE_PIXELS` (89.5 M, ~270 MB as RGB): Pillow itself refuses only
    at twice that, and a batch of such images (a 0.5 MB PNG of 13000 x 13000) filled the decoding
    worker's memory. Raise PIL.Image.MAX_IMAGE_PIXELS to accept larger images (None: no bound)."""
    try:
        img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        try:
            bound = Image.MAX_IMAGE_PIXELS
            if bound is not None and img.width * img.height > bound:
                raise MediaError(f"image: {img.width} x {img.height} = {img.width * img.height:,} pixels is over "
                                 f"the bound of {bound:,} (PIL.Image.MAX_IMAGE_PIXELS) ({what})")
            img.load()  # PIL decodes lazily: force it here so truncation is caught here
        except BaseException:
            img.close()
            raise
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        raise MediaError(f"image: too large to decode safely ({what}): {e}") from e
    except (OSError, ValueError, SyntaxError, EOFError, TypeError) as e:
        # UnidentifiedImageError is an OSError; drop PIL's own repr of the buffer
        msg = "cannot identify image file" if isinstance(e, Image.UnidentifiedImageError) else str(e)
        raise MediaError(f"image: {msg} ({what})") from e
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white (not black) so alpha images stay legible."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":  # Pillow's convert would clip these to white or black
        img = _to_8_bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")


def _to_8_bit(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float grey image scaled to 8 bits as image libraries do: 16-bit samples
    divided by 257 (65535 -> 255), floats in [0, 1] times 255; other ranges are clipped."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or img.mode == "I" and arr.size and arr.max() > 255:
        arr = arr / 257.0
    elif img.mode == "F" and arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
        arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def _from_path(path: Path) -> Image.Image:
    """PIL reads the file as far as it decodes (a multi-GB file named .png is never read whole),
    and a file larger than any image within the pixel bound could be is refused unread."""
    try:
        st = path.stat()
    except OSError:
        st = None
    if st is None or not path.is_file():
        raise MediaError(f"image: file not found: {path}")
    bound = Image.MAX_IMAGE_PIXELS
    if bound is not None and st.st_size > _MAX_BYTES_PER_PIXEL * bound:
        raise MediaError(f"image: file {path} is {st.st_size:,} bytes, more than an image of at most {bound:,} "
                         "pixels (PIL.Image.MAX_IMAGE_PIXELS) takes; not read")
    return _open_bytes(path, f"file {path}")


def _from_str(s: str) -> Image.Image:
    text = s.strip()
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or ";base64" not in head:
            raise MediaError(f"image: data URI without base64 payload ({_describe(s)})")
    elif len(text) < _MAX_PATH_LEN and os.path.isabs(text) and os.path.isfile(text):
        return _from_path(Path(text))
    try:
        # tolerate line breaks and missing padding, reject anything else
        compact = "".join(text.split())
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        if len(text) < 512 and ("/" in text or "\\" in text or "." in text[-6:]):
            raise MediaError(f"image: file not found: {text}") from e  # looks like a path, not base64
        raise MediaError(f"image: invalid base64 ({_describe(s)}): {e}") from e
    if not data:
        raise MediaError(f"image: empty image data ({_describe(s)})")
    return _open_bytes(data, _describe(s))


def decode_image(source: Any) -> Image.Image:
    """An RGB PIL image from a base64 string (optionally a data: URI), bytes, a path (a Path, or an
    absolute path string), a `datasets` Image dict {"bytes", "path"}, a numpy HxWxC uint8 array,
    or a PIL image.

    EXIF orientation is not applied, as in `datasets` and the peer harnesses.
    """
    if isinstance(source, Image.Image):
        try:
            source.load()
        except (OSError, ValueError) as e:
            raise MediaError(f"image: {e} (PIL image)") from e
        return _to_rgb(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise MediaError("image: empty image data (0 bytes)")
        return _to_rgb(_open_bytes(bytes(source), _describe(source)))
    if isinstance(source, Path):
        return _to_rgb(_from_path(source))
    if isinstance(source, str):
        return _to_rgb(_from_str(source))
    if isinstance(source, dict):
        if source.get("bytes"):
            return decode_image(source["bytes"])
        if source.get("path"):
            return _to_rgb(_from_path(Path(source["path"])))
        raise MediaError(f"image: dict with neither bytes nor path (keys: {sorted(source)})")
    if type(source).__module__ == "numpy" and hasattr(source, "shape"):
        try:
            return _to_rgb(Image.fromarray(source))
        except (TypeError, ValueError) as e:
            raise MediaError(f"image: array of shape {source.shape} / {source.dtype} is not an image: {e}") from e
    if source is None:
        raise MediaError("image: missing (None)")
    raise MediaError(f"image: unsupported source type {type(source).__name__}")


def _frames_part(sources: Any, rule: VideoRule) -> tuple[dict[str, Any], dict[str, Any]]:
    """Already-extracted frames (M3IT's 8 base64 frames) pass through as a video.

    They are decoded as they are; only when there are more than the rule allows
    (frames for the uniform rule, max_frames for either rule) are they
    subsampled with the same segment-centre rule as videos. They have no
    timestamps, so fps is None.
    """
    from m3eval.data.video import plan_indices  # video imports this module

    if isinstance(sources, (str, bytes, dict)) or not hasattr(sources, "__len__"):
        raise MediaError(f"frames: expected a list of images, got {type(sources).__name__}")
    stored = len(sources)
    if stored == 0:
        raise MediaError("frames: empty list of frames")
    requested = rule.frames if rule.fps is None else None  # fps means nothing without timestamps
    if rule.max_frames is not None:
        requested = rule.max_frames if requested is None else min(requested, rule.max_frames)
    indices = plan_indices(stored, stored if requested is None else requested)
    frames = []
    for i in indices:
        try:
            frames.append(decode_image(sources[i]))
        except MediaError as e:
            raise MediaError(f"frames: frame {i} of {stored}: {e}") from e
    info = {"rule": "frames", "frames_requested": requested, "frames_stored": stored, "frames": len(frames),
            "short": requested is not None and stored < requested, "indices": indices, "fps": None}
    return {"type": "video", "frames": frames, "fps": None}, info


def decode_media(media: Any, video: VideoRule | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One lazy m3eval.types.Media -> (one Message part, info for media_info).

    image  -> {"type": "image", "image": PIL}
    video  -> {"type": "video", "frames": [PIL, ...], "fps": effective sampling fps}
    frames -> {"type": "video", "frames": [PIL, ...], "fps": None}
    """
    rule = video or VideoRule()
    kind = getattr(media, "kind", None)
    if kind == "image":
        img = decode_image(media.source)
        return {"type": "image", "image": img}, {"kind": "image", "size": list(img.size)}
    if kind == "video":
        from m3eval.data.video import sample_video

        source = media.source
        if isinstance(source, dict) and source.get("path"):  # a `datasets` Video-like dict
            source = source["path"]
        if not isinstance(source, (str, Path)):
            raise MediaError(f"video: expected a path, got {type(source).__name__}")
        frames, info = sample_video(source, frames=rule.frames, fps=rule.fps, max_frames=rule.max_frames)
        return {"type": "video", "frames": frames, "fps": info["fps"]}, {"kind": "video", **info}
    if kind == "frames":
        part, info = _frames_part(media.source, rule)
        return part, {"kind": "frames", **info}
    raise MediaError(f"media: unknown kind {kind!r} (expected image, video or frames)")


def thumbnail_jpeg(images: list[Image.Image], max_side: int = 192, quality: int = 80) -> bytes:
    """One small JPEG for the sample browser: an image, or a strip of up to 4 frames.

    Each tile fits a max_side x max_side box; frames are picked at segment
    centres when there are more than 4.
    """
    if not images:
        raise ValueError("thumbnail_jpeg needs at least one image")
    if max_side < 8:
        raise ValueError(f"max_side must be >= 8, got {max_side}")
    n = len(images)
    chosen = images if n <= 4 else [images[((2 * k + 1) * n) // 8] for k in range(4)]
    tiles = []
    for img in chosen:
        tile = img if img.mode == "RGB" else img.convert("RGB")
        scale = max_side / max(tile.size)
        if scale < 1:  # resize returns a new image; the caller's frames stay untouched
            size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
            tile = tile.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        tiles.append(tile)
    strip = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)), (0, 0, 0))
    x = 0
    for t in tiles:
        strip.paste(t, (x, (strip.height - t.height) // 2))
        x += t.width
    buf = io.BytesIO()
    strip.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
