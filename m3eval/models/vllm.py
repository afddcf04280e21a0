"""Backend `vllm`: vLLM's offline engine (`vllm.LLM`), for throughput and tensor parallelism.

Prompts are rendered with the model's own processor chat template (the same text the
`hf` backend builds) and go to `LLM.generate` with `multi_modal_data`, many requests per
call so vLLM's continuous batching fills the GPU: the runner streams every task's
samples in and this adapter submits them in chunks of `chunk` requests. A video goes
as its frames (several images) unless `video=native` (the model's video input, as a
T x H x W x 3 array). Greedy by default. vLLM publishes CUDA builds only, so this module
imports it lazily: `get_backend("vllm")` works without it, and a run without it (or
without a GPU) stops with one clear error before any task data loads.

The message -> request and output -> text steps are pure functions (`to_request`,
`sampling_kwargs`, `output_texts`), tested without vLLM.
"""
from __future__ import annotations

import importlib.util
import json
from typing import Any, Callable, Iterable, Iterator

from m3eval.errors import BadMessageError, ModelLoadError
from m3eval.models.base import GenerationConfig, ModelAdapter, truncate_at_stop
from m3eval.models.chat import conversation, placeholder_tokens
from m3eval.models.weights import as_bool, display_name, local_folder, local_revision, revision_of
from m3eval.types import Message

INSTALL = "pip install vllm (CUDA builds only; see https://docs.vllm.ai)"


def to_request(index: int, message: Message, render: Callable[[list[dict]], str],
               native_video: bool = False, placeholders: list[str] | tuple = ()) -> dict[str, Any]:
    """One Message -> a vLLM prompt dict {"prompt", "multi_modal_data"}: the conversation the
    hf backend builds too (chat.py); `render` turns it into the prompt text."""
    import numpy as np

    chat, images, frame_lists = conversation(index, message, native_video, placeholders)
    videos = [np.stack([np.asarray(f) for f in frames]) for frames in frame_lists]  # T x H x W x 3, uint8
    try:
        prompt = render(chat)
    except Exception as e:
        raise BadMessageError(index, f"chat template failed: {e}") from e
    request: dict[str, Any] = {"prompt": prompt}
    mm: dict[str, Any] = {}
    if images:
        mm["image"] = images[0] if len(images) == 1 else images
    if videos:
        mm["video"] = videos[0] if len(videos) == 1 else videos
    if mm:
        request["multi_modal_data"] = mm
    return request


def sampling_kwargs(gen: GenerationConfig) -> dict[str, Any]:
    """`vllm.SamplingParams(**kwargs)` for one task's generation settings (greedy unless sampling)."""
    if gen.num_beams != 1:
        raise ValueError(f"num_beams={gen.num_beams}: the vllm backend decodes greedily or samples; "
                         "beam search is not supported (use the hf backend)")
    kwargs: dict[str, Any] = {"max_tokens": gen.max_new_tokens, "seed": gen.seed,
                              "temperature": (gen.temperature or 1.0) if gen.do_sample else 0.0,
                              "top_p": gen.top_p if gen.do_sample else 1.0}
    stop = [s for s in gen.stop if s]
    if stop:
        kwargs["stop"] = stop
    return kwargs


def output_texts(outputs: list[Any], gens: list[GenerationConfig]) -> list[str]:
    """vLLM RequestOutputs (in request order) -> one stripped text each, cut at the stop strings."""
    if len(outputs) != len(gens):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(gens)} requests")
    return [truncate_at_stop(o.outputs[0].text if o.outputs else "", g.stop).strip() for o, g in zip(outputs, gens)]


def parse_mm_limit(value: Any) -> dict[str, int] | None:
    """limit_mm_per_prompt: an int (images), "image:8;video:1", or a JSON object."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return {"image": value}
    text = str(value).strip()
    try:
        if text.startswith("{"):
            out = json.loads(text)
        else:
            out = {k.strip(): int(v) for k, v in (item.split(":") for item in text.split(";") if item.strip())}
    except ValueError:
        out = None
    if not isinstance(out, dict) or not all(isinstance(v, int) for v in out.values()):
        raise ModelLoadError(f"limit_mm_per_prompt={value!r}: expected an int, 'image:8;video:1' or a JSON object")
    return out


class VLLMAdapter(ModelAdapter):
    """`load_model("vllm", {"pretrained": PATH_OR_HUB_ID, ...})`."""

    backend = "vllm"
    streams = True  # the runner sends every task's samples through generate_stream

    def __init__(
        self,
        pretrained: str | None = None,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        limit_mm_per_prompt: Any = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        video: str = "frames",
        chunk: int = 512,
    ):
        self.preflight({"pretrained": pretrained, "video": video, "limit_mm_per_prompt": limit_mm_per_prompt})
        import vllm
        from transformers import AutoProcessor


        revision = None if revision is None else str(revision)
        trust_remote_code = as_bool("trust_remote_code", trust_remote_code)
        local = local_folder(str(pretrained))  # a model folder, or None for a hub id
        engine: dict[str, Any] = {"model": str(pretrained), "tensor_parallel_size": int(tensor_parallel_size),
                                  "dtype": dtype, "gpu_memory_utilization": float(gpu_memory_utilization),
                                  "trust_remote_code": trust_remote_code, "revision": revision}
        if int(data_parallel_size) > 1:  # passed only when asked: older vLLM has no such engine arg
            engine["data_parallel_size"] = int(data_parallel_size)
        if max_model_len:
            engine["max_model_len"] = int(max_model_len)
        limits = parse_mm_limit(limit_mm_per_prompt)
        if limits:
            engine["limit_mm_per_prompt"] = limits
        self._max_images = (limits or {}).get("image")  # vLLM refuses a prompt with more: fail the sample first
        try:
            self.processor = AutoProcessor.from_pretrained(str(pretrained), revision=revision,
                                                           trust_remote_code=trust_remote_code)
            self.llm = vllm.LLM(**engine)
        except Exception as e:
            raise ModelLoadError(f"vllm backend: cannot load {pretrained}: {type(e).__name__}: {e}") from e
        self._vllm = vllm
        self.native_video = video == "native"
        self._placeholders = placeholder_tokens(self.processor)
        self.chunk = max(1, int(chunk))
        self.name = display_name(str(pretrained), local)
        self._info = {"backend": "vllm", "id": self.name,
                      "revision": revision or revision_of(local, None),
                      "vllm": vllm.__version__, "dtype": str(dtype), "tensor_parallel_size": int(tensor_parallel_size),
                      "data_parallel_size": int(data_parallel_size), "video": video}

    @staticmethod
    def revision_without_loading(model_args: dict[str, Any]) -> str | None:
        """As a loaded engine records it: a `revision` arg as given, else the local folder's."""
        if model_args.get("revision") is not None:
            return str(model_args["revision"])
        return local_revision(model_args)

    @staticmethod
    def preflight(model_args: dict[str, Any]) -> None:
        """Before any task data loads: vLLM installed, a GPU present, args sane."""
        if not model_args.get("pretrained"):
            raise ModelLoadError("vllm backend: model arg 'pretrained' (a local folder or hub id) is required")
        if model_args.get("video", "frames") not in ("frames", "native"):
            raise ModelLoadError(f"vllm backend: video={model_args['video']!r}: expected frames or native")
        parse_mm_limit(model_args.get("limit_mm_per_prompt"))
        if importlib.util.find_spec("vllm") is None:
            raise ModelLoadError(f"vllm backend: the `vllm` package is not installed: {INSTALL}")
        import torch

        if not torch.cuda.is_available():
            raise ModelLoadError("vllm backend: no CUDA GPU is visible (vLLM needs one); use --model hf on CPU")

    def _render(self, conversation: list[dict]) -> str:
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    # ---- interface (m3eval/models/base.py) --------------------------------------

    def max_images(self) -> int | None:
        return self._max_images

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def _run(self, requests: list[dict], gens: list[GenerationConfig]) -> list[str | Exception]:
        """One engine call for many requests; if it fails (e.g. one prompt longer than
        max_model_len), each request alone, so only the bad one is lost."""
        params = [self._vllm.SamplingParams(**sampling_kwargs(g)) for g in gens]
        try:
            return list(output_texts(self.llm.generate(requests, params, use_tqdm=False), gens))
        except Exception as e:  # noqa: BLE001
            if len(requests) == 1:
                return [e]
        return [self._run([r], [g])[0] for r, g in zip(requests, gens)]

    def generate_stream(self, items: Iterable[tuple[Any, Message, GenerationConfig]]
                        ) -> Iterator[tuple[Any, str | Exception, float]]:
        import time

        source = iter(items)
        while True:
            keys, requests, gens = [], [], []
            for key, message, gen in source:
                try:
                    sampling_kwargs(gen)
                    requests.append(to_request(0, message, self._render, self.native_video, self._placeholders))
                except (BadMessageError, ValueError) as e:
                    yield key, e, 0.0
                    continue
                keys.append(key)
                gens.append(gen)
                if len(keys) >= self.chunk:
                    break
            if not keys:
                return
            t0 = time.perf_counter()
            outs = self._run(requests, gens)
            share = (time.perf_counter() - t0) / len(keys)
            for key, out in zip(keys, outs):
                yield key, out, share

    def generate(self, batch: list[Message], gen: GenerationConfig) -> list[str]:
        requests = [to_request(i, m, self._render, self.native_video, self._placeholders) for i, m in enumerate(batch)]
        outs = self._run(requests, [gen] * len(batch))
        for out in outs:
            if isinstance(out, Exception):
                raise out
        return outs  # type: ignore[return-value]
