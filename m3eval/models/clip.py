"""Backend `clip`: contrastive image-text encoders through transformers.

    m3eval run --model clip --model-args pretrained=openai/clip-vit-base-patch32 --tasks encoders

Any model AutoModel loads that exposes get_image_features / get_text_features: CLIPModel,
ChineseCLIPModel, SiglipModel, AltCLIP, ... with its AutoProcessor. Embeddings are
L2-normalized float32 numpy arrays; batched; dtype float16/bfloat16 on GPU. It cannot
generate text: it runs the encoder task types (m3eval/run/encode.py), not generative tasks.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from m3eval.errors import ModelLoadError
from m3eval.models.base import GenerationConfig, ModelAdapter
from m3eval.models.weights import (
    as_bool,
    display_name,
    local_folder,
    local_revision,
    resolve_device,
    resolve_dtype,
    revision_of,
)
from m3eval.types import Message

# SigLIP was trained on texts padded to the full length: its text tower expects that padding.
_PAD_TO_MAX = ("siglip", "siglip2")


class CLIPAdapter(ModelAdapter):
    """`load_model("clip", {"pretrained": PATH_OR_HUB_ID, ...})`.

    dtype: auto | float32 | bfloat16 | float16 (auto: float16 on GPU, float32 on CPU).
    device: cpu | cuda | cuda:N. batch_size: images / texts per forward pass.
    """

    backend = "clip"
    is_encoder = True  # encode_images / encode_texts: the encoder task types, not generation

    @staticmethod
    def revision_without_loading(model_args: dict[str, Any]) -> str | None:
        """A local folder's fingerprint (or a hub snapshot's commit), as a loaded model records it."""
        return local_revision(model_args)

    def __init__(self, pretrained: str | None = None, dtype: str | None = "auto", device: str | None = None,
                 revision: str | None = None, batch_size: int = 64, trust_remote_code: bool = False,
                 local_files_only: bool = False):
        import torch
        from transformers import AutoConfig, AutoModel, AutoProcessor

        if not pretrained:
            raise ModelLoadError("clip backend: model arg 'pretrained' (a local folder or hub id) is required")
        self.pretrained = str(pretrained)
        local = local_folder(self.pretrained)
        source = str(local) if local is not None else self.pretrained
        common = {"revision": None if revision is None else str(revision),
                  "trust_remote_code": as_bool("trust_remote_code", trust_remote_code),
                  "local_files_only": as_bool("local_files_only", local_files_only)}
        self.device = resolve_device(device)
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = resolve_dtype(dtype)
        if torch_dtype == "auto":
            torch_dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            config = AutoConfig.from_pretrained(source, **common)
            self.processor = AutoProcessor.from_pretrained(source, **common)
            self.model = AutoModel.from_pretrained(source, dtype=torch_dtype, **common).to(self.device).eval()
        except Exception as e:
            raise ModelLoadError(f"{source}: cannot load a contrastive encoder: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''}") from e
        for fn in ("get_image_features", "get_text_features"):
            if not callable(getattr(self.model, fn, None)):
                raise ModelLoadError(f"{source}: {type(self.model).__name__} has no {fn}(): the clip backend needs "
                                     "a contrastive image-text model (CLIP, Chinese-CLIP, SigLIP, ...)")
        if int(batch_size) < 1:
            raise ModelLoadError(f"batch_size={batch_size!r}: expected a positive integer")
        self.batch_size = int(batch_size)
        self.pad_to_max = config.model_type in _PAD_TO_MAX
        self.name = display_name(self.pretrained, local)
        self._info = {"backend": "clip", "id": self.name, "revision": revision_of(local, config),
                      "class": type(self.model).__name__, "dtype": str(self.model.dtype).replace("torch.", ""),
                      "device": self.device}

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        raise NotImplementedError("the clip backend encodes; it cannot generate text. Run it on encoder tasks "
                                  "(type: zero_shot_classification or retrieval)")

    # ---- encoding ---------------------------------------------------------------

    @staticmethod
    def _features(out: Any) -> Any:
        # transformers 5 returns a model output whose pooler_output is the projected embedding
        return out if hasattr(out, "norm") else out.pooler_output

    def _normalized(self, feats: Any) -> np.ndarray:
        feats = feats.float()
        return (feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)).cpu().numpy()

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """PIL images -> (n, d) L2-normalized embeddings."""
        import torch

        out = []
        for s in range(0, len(images), self.batch_size):
            inputs = self.processor(images=[im.convert("RGB") for im in images[s:s + self.batch_size]],
                                    return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, self.model.dtype)
            with torch.inference_mode():
                out.append(self._normalized(self._features(self.model.get_image_features(pixel_values=pixel_values))))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Strings -> (n, d) L2-normalized embeddings (truncated to the model's text length)."""
        import torch

        out = []
        padding = "max_length" if self.pad_to_max else True
        for s in range(0, len(texts), self.batch_size):
            inputs = self.processor(text=texts[s:s + self.batch_size], padding=padding, truncation=True,
                                    return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask",
                                                                                "token_type_ids")}
            with torch.inference_mode():
                out.append(self._normalized(self._features(self.model.get_text_features(**inputs))))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def close(self) -> None:
        self.model = None


__all__ = ["CLIPAdapter"]
