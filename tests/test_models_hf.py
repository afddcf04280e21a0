"""The `hf` backend and the adapter registry, on the real tiny LLaVA (no mocks)."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from m3eval.demo.tiny_model import build_tiny_model
from m3eval.models import (
    BadMessageError, GenerationConfig, ModelLoadError, backend_names, get_backend, load_model,
    parse_model_args, truncate_at_stop,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(tiny_dir: Path):
    return load_model("hf", {"pretrained": str(tiny_dir), "device": "cpu", "dtype": "float32"})


def img(i: int, size=(48, 40)) -> Image.Image:
    im = Image.new("RGB", size, ["white", "gray", "black"][i % 3])
    d = ImageDraw.Draw(im)
    box = [2 + i % 9, 3 + i % 5, 25 + i % 13, 30 + i % 7]
    (d.ellipse if i % 2 else d.rectangle)(box, fill=["red", "blue", "green", "yellow"][i % 4])
    return im


def varied_messages() -> list:
    """8 messages of different lengths, 1-3 images each, one Chinese prompt."""
    prompts = ["What color?", "What shape is shown in the picture? Answer with one word.",
               "图片中的形状是什么颜色？请用一个词回答。", "Count the shapes.",
               "Describe the image in one sentence, mentioning every shape and its color, please.",
               "Is there a red circle?", "Which shape is largest and which is smallest here?", "Shape?"]
    msgs = []
    for i, p in enumerate(prompts):
        images = [{"type": "image", "image": img(i * 3 + k, (40 + 9 * k, 32 + 5 * i))} for k in range(1 + i % 3)]
        msgs.append(images + [{"type": "text", "text": p}])
    return msgs


# ---- generation --------------------------------------------------------------

def test_batch_size_1_and_8_identical(model):
    msgs, gen = varied_messages(), GenerationConfig(max_new_tokens=24)
    batched = model.generate(msgs, gen)
    single = [model.generate([m], gen)[0] for m in msgs]
    assert batched == single
    assert all(batched) and len(set(batched)) == len(msgs)
    # A different grouping (as a length-sorted runner would make) changes nothing either.
    assert model.generate(msgs[4:], gen) + model.generate(msgs[:4], gen) == batched[4:] + batched[:4]


def test_text_only_and_image_messages_mix_in_one_batch(model):
    gen = GenerationConfig(max_new_tokens=6)
    text_only = [{"type": "text", "text": "hello there"}]
    with_image = [{"type": "image", "image": img(1)}, {"type": "text", "text": "hello there"}]
    both = model.generate([text_only, with_image], gen)
    assert both == [model.generate([text_only], gen)[0], model.generate([with_image], gen)[0]]


def test_video_frames_fall_back_to_consecutive_images(model):
    assert model.info()["video"] == "frames-as-images"  # no torchvision here
    frames = [img(i) for i in range(3)]
    q = {"type": "text", "text": "What happens in the video?"}
    gen = GenerationConfig(max_new_tokens=10)
    as_video = model.generate([[{"type": "video", "frames": frames, "fps": 1.0}, q]], gen)
    as_frames = model.generate([[{"type": "frames", "frames": frames}, q]], gen)
    as_images = model.generate([[*({"type": "image", "image": f} for f in frames), q]], gen)
    assert as_video == as_frames == as_images
    assert as_video != model.generate([[{"type": "image", "image": frames[0]}, q]], gen)


def test_max_new_tokens_is_honoured(model, tiny_dir: Path):
    msg = varied_messages()[0]
    outs = {n: model.generate([msg], GenerationConfig(max_new_tokens=n))[0] for n in (1, 4, 16)}
    tok = model.tokenizer
    assert outs[1] in {tok.decode([i]).strip() for i in range(len(tok))}  # exactly one token
    # Greedy: a shorter budget yields a prefix of the longer answer (modulo a cut UTF-8 byte).
    assert outs[4].rstrip("\ufffd") and outs[16].startswith(outs[4].rstrip("\ufffd"))
    assert len(outs[16]) > len(outs[4]) > len(outs[1])


def test_stop_strings_cut_after_decode(model):
    msg = varied_messages()[1]
    full = model.generate([msg], GenerationConfig(max_new_tokens=16))[0]
    stop = full[len(full) // 2: len(full) // 2 + 2]
    cut = model.generate([msg], GenerationConfig(max_new_tokens=16, stop=["@@never@@", stop]))[0]
    assert cut == full[: full.index(stop)].strip() and len(cut) < len(full)
    assert truncate_at_stop("a. b\nc", ["\n", ". "]) == "a"
    assert truncate_at_stop("abc", ["", "zz"]) == "abc"


def test_sampling_is_seeded(model):
    msg = varied_messages()[2]
    gen = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=1.0, seed=3)
    assert model.generate([msg], gen) == model.generate([msg], gen)


def test_info_names_backend_and_revision(model, tiny_dir: Path):
    info = model.info()
    assert info["backend"] == "hf" and info["id"] == tiny_dir.name  # a local folder by its name, never its path
    assert info["revision"].startswith("local-sha256:") and info["dtype"] == "float32"
    assert model.name == tiny_dir.name
    again = load_model("hf", {"pretrained": str(tiny_dir)})
    assert again.info()["revision"] == info["revision"]


def test_hub_snapshot_folder_gives_commit_and_repo_name(tiny_dir: Path, tmp_path: Path):
    import shutil

    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "models--org--tiny-vlm" / "snapshots" / sha
    shutil.copytree(tiny_dir, snap)
    m = load_model("hf", {"pretrained": str(snap)})
    assert m.info()["revision"] == sha and m.name == "org/tiny-vlm"


# ---- bad input ---------------------------------------------------------------

def corrupt_image() -> Image.Image:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buf, "PNG")
    return Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) // 2]))  # lazy: fails on load


@pytest.mark.parametrize("bad, needle", [
    ([{"type": "image", "image": None}], "part 0 (image): expected a PIL.Image, got NoneType"),
    ([{"type": "text", "text": "x"}, {"type": "audio", "audio": b""}], "part 1: unknown part type 'audio'"),
    ([{"type": "video", "frames": []}], "part 0: video part needs a non-empty list under 'frames'"),
    ([{"type": "text"}], "part 0: text part needs a string"),
    ([], "the message has no parts"),
    ("just a string", "expected a list of parts, got str"),
])
def test_malformed_message_names_index_and_part(model, bad, needle):
    good = [{"type": "text", "text": "fine"}]
    with pytest.raises(BadMessageError) as e:
        model.generate([good, good, bad], GenerationConfig(max_new_tokens=2))
    assert e.value.index == 2 and needle in str(e.value) and str(e.value).startswith("message 2:")


def test_corrupt_image_is_a_bad_message(model):
    with pytest.raises(BadMessageError, match=r"message 0: part 1 \(image\): cannot decode image"):
        model.generate([[{"type": "text", "text": "x"}, {"type": "image", "image": corrupt_image()}]],
                       GenerationConfig(max_new_tokens=2))


def test_placeholder_token_in_text_is_a_bad_message(model):
    msg = [{"type": "image", "image": img(0)}, {"type": "text", "text": "see <image> here"}]
    with pytest.raises(BadMessageError, match=r"message 1: text contains the model's placeholder token '<image>'"):
        model.generate([[{"type": "text", "text": "fine"}], msg], GenerationConfig(max_new_tokens=2))


def test_processor_failure_is_pinned_on_one_message(tiny_dir: Path):
    # Without the up-front placeholder check (a processor that does not name its
    # image token), a stray "<image>" makes the processor itself fail.
    m = load_model("hf", {"pretrained": str(tiny_dir)})
    m._placeholders = []
    batch = [[{"type": "image", "image": img(0)}, {"type": "text", "text": "ok"}],
             [{"type": "image", "image": img(1)}, {"type": "text", "text": "two <image> slots"}],
             [{"type": "text", "text": "fine"}]]
    with pytest.raises(BadMessageError, match=r"message 1: the processor failed on this message"):
        m.generate(batch, GenerationConfig(max_new_tokens=2))


def test_missing_path(tmp_path: Path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="does not exist and is not a hub id reachable offline"):
        load_model("hf", {"pretrained": str(missing)})
    with pytest.raises(ModelLoadError, match="'org/not-cached' does not exist and is not a hub id reachable"):
        load_model("hf", {"pretrained": "org/not-cached", "local_files_only": True})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a model folder"):
        load_model("hf", {"pretrained": str(tmp_path / "empty")})


def test_text_only_model_is_refused_by_name(tmp_path: Path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "llama")
    with pytest.raises(ModelLoadError, match=r"LlamaConfig \(model_type 'llama'\).*not an image-text-to-text"):
        load_model("hf", {"pretrained": str(tmp_path / "llama")})


def test_processor_without_chat_template(tmp_path: Path):
    path = build_tiny_model(tmp_path / "m")
    (path / "chat_template.jinja").unlink()
    with pytest.raises(ModelLoadError, match="no chat template"):
        load_model("hf", {"pretrained": str(path)})
    # A template supplied as a file makes it usable again.
    tpl = tmp_path / "t.jinja"
    tpl.write_text("{% for m in messages %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>"
                   "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endfor %} A:")
    m = load_model("hf", {"pretrained": str(path), "chat_template": str(tpl)})
    assert m.generate([[{"type": "image", "image": img(0)}, {"type": "text", "text": "Q"}]],
                      GenerationConfig(max_new_tokens=3))[0]


def test_bad_device_and_dtype(tiny_dir: Path):
    with pytest.raises(ModelLoadError, match="dtype='int7'"):
        load_model("hf", {"pretrained": str(tiny_dir), "dtype": "int7"})
    with pytest.raises(ModelLoadError, match="device='tpu'"):
        load_model("hf", {"pretrained": str(tiny_dir), "device": "tpu"})
    with pytest.raises(ModelLoadError, match="trust_remote_code='yes': expected true or false"):
        load_model("hf", {"pretrained": str(tiny_dir), "trust_remote_code": "yes"})
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            load_model("hf", {"pretrained": str(tiny_dir), "device": "cuda"})


# ---- registry and --model-args -------------------------------------------------

def test_parse_model_args_types_values():
    assert parse_model_args("pretrained=/m/x,dtype=bfloat16,device=cuda:1,n=8,t=0.5,trust_remote_code=True,"
                            "rev=none,name='a,b',num='12'") == {
        "pretrained": "/m/x", "dtype": "bfloat16", "device": "cuda:1", "n": 8, "t": 0.5,
        "trust_remote_code": True, "rev": None, "name": "a,b", "num": "12"}
    assert parse_model_args("") == {}
    for bad, msg in [("pretrained", "not key=value"), ("a=1,a=2", "given twice"), ("a='x", "unclosed quote")]:
        with pytest.raises(ValueError, match=msg):
            parse_model_args(bad)


def test_unknown_backend_and_unknown_arg(tiny_dir: Path):
    with pytest.raises(ModelLoadError, match=r"unknown model backend 'hff' \(did you mean 'hf'\?\); known backends: clip, hf, openai, (.+, )?vllm"):  # tests may register more
        get_backend("hff")
    with pytest.raises(ModelLoadError, match=r"unknown model arg\(s\) 'batch_size'; accepted: pretrained"):
        load_model("hf", {"pretrained": str(tiny_dir), "batch_size": 8})


def test_plugin_backend_through_entry_point(tmp_path: Path, monkeypatch):
    # A real installed-distribution layout (dist-info + entry_points.txt) on sys.path.
    (tmp_path / "echo_plugin.py").write_text(
        "class Echo:\n"
        "    name = 'echo'\n"
        "    def __init__(self, prefix=''): self.prefix = prefix\n"
        "    def info(self): return {'backend': 'echo', 'id': 'echo', 'revision': None}\n"
        "    def generate(self, batch, gen):\n"
        "        return [self.prefix + ' '.join(p['text'] for p in m if p['type'] == 'text') for m in batch]\n")
    dist = tmp_path / "echo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[m3eval.models]\necho = echo_plugin:Echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "echo" in backend_names()
    m = load_model("echo", parse_model_args("prefix=>"))
    assert m.generate([[{"type": "text", "text": "hi"}]], GenerationConfig()) == [">hi"]
    sys.modules.pop("echo_plugin", None)


# ---- a second architecture ------------------------------------------------------

def build_tiny_idefics3(out: Path) -> Path:
    """A tiny Idefics3 (another processor layout: nested, padded image batches)."""
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor,
                              Idefics3VisionConfig, LlamaConfig)
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    from m3eval.demo.tiny_model import _build_tokenizer

    tok = _build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [
        "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]})
    template = ("{{ bos_token }}{% for m in messages %}{{ m['role'] | capitalize }}:{% for p in m['content'] %}"
                "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}"
                "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 32},
                                                  max_image_size={"longest_edge": 32}),
        tokenizer=tok, image_seq_len=4, chat_template=template)
    ids = {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=2, image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(processor.tokenizer), hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                initializer_range=0.25, **ids),
        image_token_id=processor.image_token_id, scale_factor=2, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    processor.save_pretrained(out)
    model.save_pretrained(out)
    return out


def test_second_architecture_idefics3_is_batch_invariant(tmp_path: Path):
    m = load_model("hf", {"pretrained": str(build_tiny_idefics3(tmp_path / "idefics3"))})
    assert m.info()["class"] == "Idefics3ForConditionalGeneration"
    msgs = varied_messages() + [[{"type": "text", "text": "no image here"}]]
    gen = GenerationConfig(max_new_tokens=12)
    batched = m.generate(msgs, gen)
    assert batched == [m.generate([x], gen)[0] for x in msgs]
    assert all(batched) and len(set(batched)) == len(msgs)


def test_preprocess_then_generate_prepared_equals_generate(model):
    """The runner builds inputs ahead of the model (`preprocess`) and the model
    thread only calls `generate_prepared`: the split changes no prediction."""
    msgs, gen = varied_messages(), GenerationConfig(max_new_tokens=16)
    inputs = model.preprocess(msgs, gen)
    assert set(inputs) >= {"input_ids", "attention_mask", "pixel_values"}
    assert model.generate_prepared(inputs, gen) == model.generate(msgs, gen)


def test_a_prompt_over_the_context_fails_its_own_sample_only(model, tmp_path):
    """Issue 20, case 17: prompts many times the model's context (512 tokens here) ran with no
    warning, and a 1 MB question hung. Prompt tokens + max_new_tokens over the context is that
    sample's error, in a real run at any batch size; the batch's other samples run as alone."""
    assert model.context == 512
    gen = GenerationConfig(max_new_tokens=24)
    long = [{"type": "text", "text": "why " * 600}]
    with pytest.raises(BadMessageError, match="over the model's context of 512 tokens"):
        model.preprocess([varied_messages()[0], long], gen)
    import json

    from m3eval.results import read_jsonl
    from m3eval.run.pipeline import RunConfig, evaluate
    rows = [{"id": "long", "q": "why " * 600, "a": "x"}] + [{"id": f"s{i}", "q": f"what is {i}?", "a": "x"}
                                                            for i in range(5)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text("task: t\ndataset: {path: rows.jsonl}\n"
                                     "doc: {prompt: '{{ q }}', references: a, id: id}\nmetrics: [{name: exact_match}]\n")
    preds = {}
    for batch_size in (1, 4):
        results, failures = evaluate(RunConfig(tasks=["t"], output=tmp_path / "out", run_name=f"b{batch_size}",
                                               progress=False, batch_size=batch_size, include_paths=[tmp_path],
                                               model_args={"pretrained": str(model.pretrained)}))
        assert failures == [] and results.tasks["t"].n_errors == 1
        got = {p["id"]: p for p in read_jsonl(tmp_path / "out" / f"b{batch_size}" / "predictions" / "t.jsonl")}
        assert "over the model's context of 512 tokens" in got["long"]["error"]["message"]
        preds[batch_size] = {i: p["prediction"] for i, p in got.items()}
    assert preds[1] == preds[4]
