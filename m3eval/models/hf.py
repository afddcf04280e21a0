"""Backend `hf`: any transformers image-text-to-text model.

Loads with `AutoProcessor` + `AutoModelForImageTextToText`, builds prompts with
the processor's chat template, pads on the left and decodes greedily by
default. Predictions do not depend on the batch size: each row is attended
only through its attention mask, and only its own new tokens are decoded.
"""
from __future__ import annotations

import copy
import gc
import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any

from m3eval.models.base import (
    BadMessageError, GenerationConfig, ModelLoadError, check_message, truncate_at_stop,
)
from m3eval.types import Message

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _resolve_device(device: str | None) -> str:
    """cpu / cuda / cuda:N / auto. Under torchrun each rank takes cuda:LOCAL_RANK."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device == "auto":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device={device!r} but no CUDA GPU is available (use device=cpu)")
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        return device
    if device in ("cpu", "mps"):
        return device
    raise ModelLoadError(f"device={device!r}: expected cpu, cuda, cuda:N or auto")


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ModelLoadError(f"{name}={value!r}: expected true or false")


def _resolve_dtype(dtype: str | None) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        return "auto"
    if str(dtype) not in _DTYPES:
        raise ModelLoadError(f"dtype={dtype!r}: expected auto, float32, bfloat16 or float16")
    return getattr(torch, _DTYPES[str(dtype)])


def _fingerprint(folder: Path) -> str:
    """A cheap, copy-stable id of a local checkpoint: config bytes plus each
    weight file's size and first and last MiB (hashing many GB would be slow)."""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        if f.suffix in (".json", ".jinja", ".model", ".txt"):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            size = f.stat().st_size
            with open(f, "rb") as fh:
                head = fh.read(1 << 20)
                fh.seek(max(0, size - (1 << 20)))
                tail = fh.read()
            h.update(f.name.encode() + b"\0" + str(size).encode() + head + tail)
    return "local-sha256:" + h.hexdigest()[:16]


def _revision(pretrained: str, local: Path | None, config: Any) -> str | None:
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return commit
    if local is not None:
        # A hub cache snapshot folder is named by its commit sha.
        if local.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", local.name):
            return local.name
        return _fingerprint(local)
    return None


def local_revision(model_args: dict[str, Any]) -> str | None:
    """The revision a loaded model would record, read without loading it: for a local
    `pretrained` folder (a cheap fingerprint, or a hub snapshot's commit), else None."""
    path = Path(str(model_args.get("pretrained") or "")).expanduser()
    return _revision(str(path), path.resolve(), None) if path.is_dir() else None


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


def _display_name(pretrained: str, local: Path | None) -> str:
    if local is None:
        return pretrained  # a hub id
    # hub cache: .../models--org--name/snapshots/<sha> -> org/name
    if local.parent.name == "snapshots" and local.parent.parent.name.startswith("models--"):
        return local.parent.parent.name[len("models--"):].replace("--", "/")
    return local.name


class HFAdapter:
    """`load_model("hf", {"pretrained": PATH_OR_HUB_ID, ...})`.

    dtype: auto | float32 | bfloat16 | float16. device: cpu | cuda | cuda:N | auto
    (default cuda when available). chat_template: a .jinja file or template text,
    for processors that ship none. local_files_only: never ask the hub.
    """

    backend = "hf"
    revision_without_loading = staticmethod(local_revision)  # m3eval/run/pipeline.py: nothing left to generate

    def __init__(
        self,
        pretrained: str | None = None,
        dtype: str | None = "auto",
        device: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        chat_template: str | None = None,
        local_files_only: bool = False,
    ):
        if not pretrained:
            raise ModelLoadError("hf backend: model arg 'pretrained' (a local folder or hub id) is required")
        self.pretrained = str(pretrained)
        local = self._local_folder(self.pretrained)
        source = str(local) if local is not None else self.pretrained
        trust_remote_code = _as_bool("trust_remote_code", trust_remote_code)
        common = {"revision": None if revision is None else str(revision),  # "1234567" was parsed as int
                  "trust_remote_code": trust_remote_code,
                  "local_files_only": _as_bool("local_files_only", local_files_only)}
        config = self._load_config(source, local, common)
        self._check_image_text_to_text(config, trust_remote_code)
        self.processor = self._load_processor(source, common)
        self.chat_template = self._resolve_chat_template(chat_template)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = _resolve_device(device)
        self.model = self._load_model(source, common, dtype, attn_implementation)
        self.native_video = self._can_run_native_video()
        self._placeholders = placeholder_tokens(self.processor)
        self.name = _display_name(self.pretrained, local)
        self._preprocess_lock = threading.Lock()
        self._info = {
            "backend": "hf", "id": source, "revision": _revision(self.pretrained, local, config),
            "class": type(self.model).__name__, "dtype": str(self.model.dtype).replace("torch.", ""),
            "device": self.device, "video": "native" if self.native_video else "frames-as-images",
        }

    # ---- loading -------------------------------------------------------------

    @staticmethod
    def _local_folder(pretrained: str) -> Path | None:
        p = Path(pretrained).expanduser()
        if p.exists():
            if not p.is_dir() or not (p / "config.json").is_file():
                raise ModelLoadError(f"model path {pretrained!r} exists but is not a model folder (no config.json)")
            return p.resolve()
        looks_like_path = pretrained.startswith(("/", ".", "~")) or pretrained.count("/") > 1 or "\\" in pretrained
        if looks_like_path or not _HUB_ID.match(pretrained):
            raise ModelLoadError(f"model path {pretrained!r} does not exist and is not a hub id reachable offline")
        return None

    def _load_config(self, source: str, local: Path | None, common: dict) -> Any:
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(source, **common)
        except Exception as e:
            if local is None:
                raise ModelLoadError(
                    f"model path {self.pretrained!r} does not exist and is not a hub id reachable offline "
                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
            raise ModelLoadError(f"{source}: cannot read config.json: {e}") from e

    def _check_image_text_to_text(self, config: Any, trust_remote_code: bool) -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
            return
        auto_map = getattr(config, "auto_map", None) or {}
        if trust_remote_code and "AutoModelForImageTextToText" in auto_map:
            return
        raise ModelLoadError(
            f"{self.pretrained}: its config is {type(config).__name__} (model_type {config.model_type!r}), "
            "which is not an image-text-to-text model: AutoModelForImageTextToText has no class for it. "
            "The hf backend needs a vision-language model (e.g. llava, qwen2_vl, idefics3)."
        )

    def _load_processor(self, source: str, common: dict) -> Any:
        from transformers import AutoProcessor
        from transformers.processing_utils import ProcessorMixin

        try:
            processor = AutoProcessor.from_pretrained(source, **common)
        except Exception as e:
            hint = " (this processor may need torchvision, which is not installed)" \
                if "torchvision" in str(e).lower() or "video" in str(e).lower() else ""
            raise ModelLoadError(f"{source}: cannot load its processor{hint}: {e}") from e
        if not isinstance(processor, ProcessorMixin) or getattr(processor, "tokenizer", None) is None:
            raise ModelLoadError(
                f"{source}: AutoProcessor returned {type(processor).__name__}, not a multimodal processor "
                "with a tokenizer (is processor_config.json / preprocessor_config.json missing?)")
        return processor

    def _resolve_chat_template(self, chat_template: str | None) -> str:
        if chat_template:
            p = Path(chat_template).expanduser()
            if "{" not in chat_template and not p.is_file():
                raise ModelLoadError(f"chat_template={chat_template!r}: no such file")
            return p.read_text(encoding="utf-8") if "{" not in chat_template else chat_template
        template = self.processor.chat_template
        if isinstance(template, dict):
            template = template.get("default")
        if not template:
            raise ModelLoadError(
                f"{self.pretrained}: the processor has no chat template (no chat_template.jinja / "
                "chat_template.json), so prompts cannot be built; pass chat_template=FILE.jinja in --model-args")
        return template

    def _load_model(self, source: str, common: dict, dtype: str | None, attn: str | None) -> Any:
        from transformers import AutoModelForImageTextToText

        kwargs: dict[str, Any] = {**common, "dtype": _resolve_dtype(dtype)}
        if attn:
            kwargs["attn_implementation"] = attn
        if self.device == "auto":
            kwargs["device_map"] = "auto"
        try:
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        except Exception as e:
            raise ModelLoadError(f"{source}: cannot load the model weights: {e}") from e
        if self.device != "auto":
            model = model.to(self.device)
        return model.eval()

    def _can_run_native_video(self) -> bool:
        # transformers' video processors run on torchvision; without it a
        # model gets a video's frames as consecutive images instead.
        from transformers.utils import is_torchvision_available

        return getattr(self.processor, "video_processor", None) is not None and is_torchvision_available()

    # ---- protocol --------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def close(self) -> None:
        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _conversation(self, index: int, message: Message) -> tuple[list[dict], list, list]:
        return conversation(index, message, self.native_video, self._placeholders)

    def _prepare(self, batch: list[Message]) -> Any:
        prompts, images, videos = [], [], []
        for i, message in enumerate(batch):
            conversation, imgs, vids = self._conversation(i, message)
            try:
                prompts.append(self.processor.apply_chat_template(
                    conversation, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False))
            except Exception as e:
                raise BadMessageError(i, f"chat template failed: {e}") from e
            images.append(imgs)
            videos.append(vids)
        # padding_side here too: some processors' own defaults override the tokenizer's.
        kwargs: dict[str, Any] = {"text": prompts, "padding": True, "padding_side": "left", "return_tensors": "pt"}
        # Like apply_chat_template: do not add a second BOS when the template wrote one.
        bos = self.tokenizer.bos_token
        kwargs["add_special_tokens"] = not (bos and all(p.startswith(bos) for p in prompts))
        if any(images):
            kwargs["images"] = images  # nested per message: what every processor accepts
        if any(videos):
            kwargs["videos"] = videos
            kwargs["do_sample_frames"] = False  # the data layer already sampled the frames
        try:
            return self.processor(**kwargs)
        except Exception as e:
            raise self._blame(batch, kwargs, e) from e

    def _blame(self, batch: list[Message], kwargs: dict[str, Any], error: Exception) -> Exception:
        """Find which message makes the processor fail, so only that sample is lost."""
        for i in range(len(batch)):
            one = {k: (v[i:i + 1] if k in ("text", "images", "videos") else v) for k, v in kwargs.items()}
            try:
                self.processor(**one)
            except Exception as e:
                return BadMessageError(i, f"the processor failed on this message: {type(e).__name__}: {e}")
        return error

    def _generation_kwargs(self, gen: GenerationConfig) -> dict[str, Any]:
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = gen.max_new_tokens
        config.num_beams = gen.num_beams
        config.do_sample = gen.do_sample
        config.pad_token_id = self.tokenizer.pad_token_id
        if gen.do_sample:
            config.temperature, config.top_p = gen.temperature or 1.0, gen.top_p
        else:  # unset sampling knobs so greedy decoding is not second-guessed
            config.temperature = config.top_p = config.top_k = None
        return {"generation_config": config}

    @property
    def splits_preprocessing(self) -> bool:
        """Whether the runner may call preprocess + generate_prepared instead of generate: not
        for a subclass that overrides generate (a plugin, a test double), whose generate must run."""
        return type(self).generate is HFAdapter.generate

    def preprocess(self, batch: list[Message], gen: GenerationConfig | None = None) -> Any:
        """Chat template + image processing for one batch, off the model thread (run/prefetch.py
        calls it in a worker process, or in threads). One tokenizer call at a time: padding
        mutates a fast tokenizer, which then fails in another thread with "Already borrowed"."""
        with self._preprocess_lock:
            return self._prepare(batch)

    def generate_prepared(self, inputs: Any, gen: GenerationConfig) -> list[str]:
        """`generate` for inputs that `preprocess` built: the only work on the model thread."""
        import torch

        device = self.model.device
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        for key, value in inputs.items():  # pixels in the model's dtype (bf16 weights, fp32 processor output)
            if key.startswith("pixel_values") and hasattr(value, "is_floating_point") and value.is_floating_point():
                inputs[key] = value.to(self.model.dtype)
        if gen.do_sample:
            torch.manual_seed(gen.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **self._generation_kwargs(gen))
        if not self.model.config.is_encoder_decoder:
            out = out[:, inputs["input_ids"].shape[1]:]  # only the new tokens
        with self._preprocess_lock:  # the tokenizer again: not while a prefetch thread pads a batch
            texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [truncate_at_stop(t, gen.stop).strip() for t in texts]

    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        if not batch:
            return []
        return self.generate_prepared(self.preprocess(batch, gen), gen)
