"""Backend `hf`: any transformers image-text-to-text model.

Loads with `AutoProcessor` + `AutoModelForImageTextToText`, builds prompts with
the processor's chat template, pads on the left and decodes greedily by
default. Predictions do not depend on the batch size: each row is attended
only through its attention mask, and only its own new tokens are decoded.
"""
from __future__ import annotations

import copy
import gc
import threading
from pathlib import Path
from typing import Any

from m3eval.errors import BadMessageError, ModelLoadError
from m3eval.models.base import GenerationConfig, ModelAdapter, truncate_at_stop
from m3eval.models.chat import conversation, placeholder_tokens
from m3eval.models.weights import (
    as_bool,
    display_name,
    image_limit,
    local_folder,
    local_revision,
    resolve_device,
    resolve_dtype,
    revision_of,
)
from m3eval.types import Message


class HFAdapter(ModelAdapter):
    """`load_model("hf", {"pretrained": PATH_OR_HUB_ID, ...})`.

    dtype: auto | float32 | bfloat16 | float16. device: cpu | cuda | cuda:N | auto
    (default cuda when available). chat_template: a .jinja file or template text,
    for processors that ship none. local_files_only: never ask the hub. max_images: the most
    images the model takes in one message (e.g. 1 for a model trained on single images); a
    sample with more fails alone, recorded (default: no limit, as the chat template places each).
    """

    backend = "hf"

    @staticmethod
    def preflight(model_args: dict[str, Any]) -> None:
        """transformers' Auto classes import (a broken install fails here, before the model loads);
        a run's start-up keeps what they import apart from the model's load (run/heap.py)."""
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor  # noqa: F401

    @staticmethod
    def revision_without_loading(model_args: dict[str, Any]) -> str | None:
        """A local folder's fingerprint (or a hub snapshot's commit), as a loaded model records it."""
        return local_revision(model_args)

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
        max_images: int | None = None,
    ):
        if not pretrained:
            raise ModelLoadError("hf backend: model arg 'pretrained' (a local folder or hub id) is required")
        self._max_images = image_limit(max_images)
        self.pretrained = str(pretrained)
        local = local_folder(self.pretrained)
        source = str(local) if local is not None else self.pretrained
        trust_remote_code = as_bool("trust_remote_code", trust_remote_code)
        common = {"revision": None if revision is None else str(revision),  # "1234567" was parsed as int
                  "trust_remote_code": trust_remote_code,
                  "local_files_only": as_bool("local_files_only", local_files_only)}
        config = self._load_config(source, local, common)
        self._check_image_text_to_text(config, trust_remote_code)
        self.processor = self._load_processor(source, common)
        self.chat_template = self._resolve_chat_template(chat_template)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = resolve_device(device)
        self.model = self._load_model(source, common, dtype, attn_implementation)
        self.native_video = self._can_run_native_video()
        self._placeholders = placeholder_tokens(self.processor)
        self.name = display_name(self.pretrained, local)
        self.context = _context_length(config, self.tokenizer)
        self._preprocess_lock = threading.Lock()
        # preprocess + generate_prepared instead of generate: not for a subclass that overrides
        # generate (a plugin, a test double), whose generate must run.
        self.splits_preprocessing = type(self).generate is HFAdapter.generate
        self._info = {
            "backend": "hf", "id": self.name, "revision": revision_of(local, config),
            "class": type(self.model).__name__, "dtype": str(self.model.dtype).replace("torch.", ""),
            "device": self.device, "video": "native" if self.native_video else "frames-as-images",
            **({"max_images": self._max_images} if self._max_images is not None else {}),
        }

    # ---- loading -------------------------------------------------------------

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

        kwargs: dict[str, Any] = {**common, "dtype": resolve_dtype(dtype)}
        if attn:
            kwargs["attn_implementation"] = attn
        if self.device == "auto":
            kwargs["device_map"] = "auto"
        try:
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        except Exception as e:
            raise ModelLoadError(f"{source}: cannot load the model weights: {e}") from e
        if self.device != "auto":
            # transformers wraps `to` in functools.wraps(nn.Module.to), which mypy does not bind to the instance
            model = model.to(self.device)  # type: ignore[arg-type]
        return model.eval()

    def _can_run_native_video(self) -> bool:
        # transformers' video processors run on torchvision; without it a
        # model gets a video's frames as consecutive images instead.
        from transformers.utils import is_torchvision_available

        return getattr(self.processor, "video_processor", None) is not None and is_torchvision_available()

    # ---- interface (m3eval/models/base.py) --------------------------------------

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def max_images(self) -> int | None:
        return self._max_images

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

    def preprocess(self, batch: list[Message], gen: GenerationConfig | None = None) -> Any:
        """Chat template + image processing for one batch, off the model thread (run/prefetch.py
        calls it in a worker process, or in threads). One tokenizer call at a time: padding
        mutates a fast tokenizer, which then fails in another thread with "Already borrowed"."""
        with self._preprocess_lock:
            inputs = self._prepare(batch)
        self._check_context(inputs, gen.max_new_tokens if gen is not None else 0)
        return inputs

    def _check_context(self, inputs: Any, max_new_tokens: int) -> None:
        """A prompt that leaves no room for the answer within the model's context fails its own
        sample (a BadMessageError: the runner retries the rest of the batch without it) rather
        than running far past the positions the model was trained on, or hanging on a 1 MB prompt."""
        if self.context is None or "attention_mask" not in inputs:
            return
        for i, n in enumerate(inputs["attention_mask"].sum(dim=1).tolist()):
            if n + max_new_tokens > self.context:
                raise BadMessageError(i, f"the prompt is {n} tokens; with max_new_tokens {max_new_tokens} it is over "
                                         f"the model's context of {self.context} tokens")

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


def _context_length(config: Any, tokenizer: Any) -> int | None:
    """The model's context in tokens: its text config's max_position_embeddings, else the
    tokenizer's model_max_length when it is a real bound (unset, transformers uses 1e30)."""
    for part in (getattr(config, "text_config", None), config):
        n = getattr(part, "max_position_embeddings", None)
        if isinstance(n, int) and n > 0:
            return n
    n = getattr(tokenizer, "model_max_length", None)
    return n if isinstance(n, int) and 0 < n < 10**8 else None
