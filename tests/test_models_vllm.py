"""The `vllm` backend. vLLM ships CUDA builds only: here its pure parts run for real
(message -> request with the tiny LLaVA's own processor, settings -> SamplingParams
kwargs, outputs -> texts) and the engine call runs only where vllm imports."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from m3eval.models import BadMessageError, GenerationConfig, ModelLoadError, check_backend, get_backend, load_model
from m3eval.models.vllm import output_texts, parse_mm_limit, sampling_kwargs, to_request

ROOT = Path(__file__).resolve().parents[1]
HAVE_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module")
def hf(tiny_model):
    return load_model("hf", {"pretrained": str(tiny_model), "device": "cpu", "dtype": "float32"})


def render_with(hf):
    return lambda conv: hf.processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False,
                                                         chat_template=hf.chat_template)


def test_registered_without_vllm_installed():
    factory = get_backend("vllm")
    assert factory.__name__ == "VLLMAdapter"


@pytest.mark.skipif(HAVE_VLLM, reason="vllm is installed here: the missing-package error cannot show")
def test_missing_vllm_is_one_clear_error_before_any_task_loads(tmp_path):
    with pytest.raises(ModelLoadError, match=r"pip install vllm"):
        check_backend("vllm", {"pretrained": "Qwen/Qwen2-VL-2B-Instruct"})
    # Through the CLI: okvqa's data is on the hub (unreachable here), so loading it would fail;
    # the vllm error comes first, so no task data was touched.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "m3eval", "run", "--model", "vllm", "--model-args",
                        "pretrained=Qwen/Qwen2-VL-2B-Instruct", "--tasks", "okvqa", "--output",
                        str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("m3eval: error: vllm backend: the `vllm` package is not "
                                                         "installed: pip install vllm")
    assert "Traceback" not in r.stderr and "okvqa" not in r.stderr and not any(tmp_path.iterdir())


def test_bad_args_are_refused_before_loading():
    with pytest.raises(ModelLoadError, match="'pretrained'.*required"):
        check_backend("vllm", {})
    with pytest.raises(ModelLoadError, match="video='both'"):
        check_backend("vllm", {"pretrained": "m", "video": "both"})
    with pytest.raises(ModelLoadError, match="unknown model arg.*'device'"):
        check_backend("vllm", {"pretrained": "m", "device": "cuda"})


def test_request_prompt_is_the_hf_backends_prompt(hf):
    """The same chat template, placeholders in message order, images as multi-modal data."""
    red, blue = Image.new("RGB", (30, 20), (255, 0, 0)), Image.new("L", (12, 10), 5)
    msg = [{"type": "image", "image": red}, {"type": "text", "text": "Which color?"},
           {"type": "image", "image": blue}]
    req = to_request(0, msg, render_with(hf))
    conv, images, _ = hf._conversation(0, msg)
    assert req["prompt"] == render_with(hf)(conv)
    assert req["prompt"].count(hf.processor.image_token) == 2
    assert [im.size for im in req["multi_modal_data"]["image"]] == [(30, 20), (12, 10)]
    assert req["multi_modal_data"]["image"][1].mode == "RGB"  # decoded like every backend's input
    one = to_request(0, [{"type": "image", "image": red}, {"type": "text", "text": "x"}], render_with(hf))
    assert one["multi_modal_data"] == {"image": red}  # a single image, as vLLM's docs pass it
    assert "multi_modal_data" not in to_request(0, [{"type": "text", "text": "hi"}], render_with(hf))


def test_video_goes_as_frames_or_as_one_native_array(hf):
    frames = [Image.new("RGB", (8, 6), (0, 10 * i, 0)) for i in range(3)]
    msg = [{"type": "video", "frames": frames, "fps": 1.0}, {"type": "text", "text": "what happens?"}]
    as_frames = to_request(0, msg, render_with(hf))
    assert as_frames["prompt"].count(hf.processor.image_token) == 3 and len(as_frames["multi_modal_data"]["image"]) == 3
    seen = []
    native = to_request(0, msg, lambda conv: seen.append(conv) or "P", native_video=True)
    video = native["multi_modal_data"]["video"]
    assert isinstance(video, np.ndarray) and video.shape == (3, 6, 8, 3) and video[2, 0, 0, 1] == 20
    assert [p["type"] for p in seen[0][0]["content"]] == ["video", "text"]


def test_bad_message_names_its_index(hf):
    with pytest.raises(BadMessageError, match=r"message 4: part 0 \(image\): expected a PIL.Image"):
        to_request(4, [{"type": "image", "image": "x.jpg"}], render_with(hf))
    token = hf.processor.image_token  # as in the hf backend: a literal placeholder would be an image slot
    with pytest.raises(BadMessageError, match="placeholder token"):
        to_request(2, [{"type": "text", "text": f"what is {token}?"}], render_with(hf), placeholders=[token])


def test_sampling_kwargs_greedy_by_default_and_stop():
    assert sampling_kwargs(GenerationConfig(max_new_tokens=9, stop=["\n", ""])) == \
        {"max_tokens": 9, "seed": 0, "temperature": 0.0, "top_p": 1.0, "stop": ["\n"]}
    assert sampling_kwargs(GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, seed=3)) == \
        {"max_tokens": 32, "seed": 3, "temperature": 0.7, "top_p": 0.9}
    with pytest.raises(ValueError, match="beam search"):
        sampling_kwargs(GenerationConfig(num_beams=4))


def test_output_texts_in_request_order_cut_and_stripped():
    # The shape of vllm.RequestOutput: .outputs[0].text (vLLM cannot be imported here).
    outs = [SimpleNamespace(outputs=[SimpleNamespace(text=" red\nmore")]), SimpleNamespace(outputs=[]),
            SimpleNamespace(outputs=[SimpleNamespace(text="blue ")])]
    gens = [GenerationConfig(stop=["\n"]), GenerationConfig(), GenerationConfig()]
    assert output_texts(outs, gens) == ["red", "", "blue"]
    with pytest.raises(RuntimeError, match="2 outputs for 3 requests"):
        output_texts(outs[:2], gens)


def test_limit_mm_per_prompt_forms():
    assert parse_mm_limit(4) == {"image": 4}
    assert parse_mm_limit("image:8;video:1") == {"image": 8, "video": 1}
    assert parse_mm_limit('{"image": 2}') == {"image": 2}
    with pytest.raises(ModelLoadError, match="limit_mm_per_prompt"):
        parse_mm_limit("lots")


@pytest.mark.skipif(not HAVE_VLLM, reason="vllm is not installed (CUDA builds only): the engine call runs "
                                           "on GPU machines, see benchmarks/gpu_check.sh")
def test_engine_call_matches_hf_on_the_tiny_model(tiny_model, hf):
    import torch
    if not torch.cuda.is_available():
        pytest.skip("vllm is installed but no CUDA GPU is visible")
    m = load_model("vllm", {"pretrained": str(tiny_model), "gpu_memory_utilization": 0.2, "max_model_len": 512})
    msgs = [[{"type": "image", "image": Image.new("RGB", (32, 32), c)}, {"type": "text", "text": f"color {c}?"}]
            for c in ("red", "green", "blue")]
    gen = GenerationConfig(max_new_tokens=8)
    got = dict((k, t) for k, t, _ in m.generate_stream((i, msg, gen) for i, msg in enumerate(msgs)))
    assert [got[i] for i in range(3)] == hf.generate(msgs, gen)
    assert m.info()["vllm"]


def test_revision_without_loading_is_what_the_engine_would_record(tmp_path):
    """A run with nothing left to generate still notices weights retrained in place."""
    from m3eval.models.weights import local_revision
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights v1")
    read = get_backend("vllm").revision_without_loading
    before = read({"pretrained": str(tmp_path)})
    assert before == local_revision({"pretrained": str(tmp_path)}) and before.startswith("local-sha256:")
    (tmp_path / "model.safetensors").write_bytes(b"weights v2")
    assert read({"pretrained": str(tmp_path)}) != before
    assert read({"pretrained": str(tmp_path), "revision": "abc123"}) == "abc123"
    assert read({"pretrained": "org/not-a-folder"}) is None
