"""Checking a Message (every backend) and building a model's chat conversation from it (the
backends that render the model's own chat template: hf, vllm). No torch or transformers here."""
from __future__ import annotations

from typing import Any

from m3eval.errors import BadMessageError
from m3eval.types import Message


def placeholder_tokens(processor: Any) -> list[str]:
    """The processor's image / video placeholder tokens: a message's text must not contain them."""
    return [t for t in (getattr(processor, "image_token", None), getattr(processor, "video_token", None))
            if isinstance(t, str) and t]


def conversation(index: int, message: Message, native_video: bool, placeholders: list[str] | tuple = ()
                 ) -> tuple[list[dict], list, list]:
    """One message -> (chat conversation, its images, its videos as frame lists): what every
    backend that renders the model's own chat template sends (hf, vllm)."""
    content: list[dict[str, Any]] = []
    images: list[Any] = []
    videos: list[Any] = []
    for part in check_message(index, message):
        if part["type"] == "text":
            # A literal placeholder in the text would be read as an image slot.
            for token in placeholders:
                if token in part["text"]:
                    raise BadMessageError(index, f"text contains the model's placeholder token {token!r}")
            content.append({"type": "text", "text": part["text"]})
        elif part["type"] == "image":
            content.append({"type": "image"})
            images.append(part["image"])
        elif part["type"] == "video" and native_video:
            content.append({"type": "video"})
            videos.append(part["frames"])
        else:  # "frames", or a video the processor cannot take natively
            content.extend({"type": "image"} for _ in part["frames"])
            images.extend(part["frames"])
    return [{"role": "user", "content": content}], images, videos


def check_message(index: int, message: Message) -> list[dict[str, Any]]:
    """Validate one message and return its parts with images decoded to RGB.

    Parts: {"type": "text", "text": str} | {"type": "image", "image": PIL.Image}
    | {"type": "video", "frames": [PIL.Image, ...], "fps": float | None}
    | {"type": "frames", "frames": [PIL.Image, ...]}.
    Raises BadMessageError naming the message and part.
    """
    from PIL import Image

    def rgb(img: Any, where: str) -> Any:
        if not isinstance(img, Image.Image):
            raise BadMessageError(index, f"{where}: expected a PIL.Image, got {type(img).__name__}")
        try:
            img.load()  # a lazily opened, truncated file fails here, not inside the model
        except Exception as e:
            raise BadMessageError(index, f"{where}: cannot decode image: {e}") from e
        return img if img.mode == "RGB" else img.convert("RGB")

    if not isinstance(message, list):
        raise BadMessageError(index, f"expected a list of parts, got {type(message).__name__}")
    if not message:
        raise BadMessageError(index, "the message has no parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message):
        where = f"part {j}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadMessageError(index, f"{where}: text part needs a string under 'text'")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image":
            parts.append({"type": "image", "image": rgb(part.get("image"), f"{where} (image)")})
        elif kind in ("video", "frames"):
            frames = part.get("frames")
            if not isinstance(frames, list) or not frames:
                raise BadMessageError(index, f"{where}: {kind} part needs a non-empty list under 'frames'")
            decoded = [rgb(f, f"{where} ({kind} frame {k})") for k, f in enumerate(frames)]
            fps = part.get("fps")
            if fps is not None and not isinstance(fps, (int, float)):
                raise BadMessageError(index, f"{where}: fps must be a number or None, got {fps!r}")
            parts.append({"type": kind, "frames": decoded, "fps": fps})
        else:
            shown = kind if isinstance(part, dict) else type(part).__name__
            raise BadMessageError(index, f"{where}: unknown part type {shown!r} "
                                         "(expected text, image, video or frames)")
    return parts
