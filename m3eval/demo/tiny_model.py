"""A tiny LLaVA built offline: real transformers classes, seeded weights.

It exists so the demo and the tests run the real loading and generation code
(`AutoProcessor` + `AutoModelForImageTextToText`) with no model hub and no GPU.
The tokenizer is a BPE (SentencePiece-style pieces) trained here on the text below, so demo
answers (colours, shapes, counts, in English and Chinese) are single tokens.
Same seed -> byte-identical files, in any process.

Two variants: random weights (default; ~0.1 s to build, varied but meaningless
output that almost never matches a reference), or `train_steps=N`: N AdamW steps,
the first third on large single shapes, the rest on examples drawn like the demo
tasks' rows (m3eval/demo/training.py: scenes, option letters, captions,
Chinese captions, frames), each batch one kind. After DEMO_TRAIN_STEPS it answers
with a bare option letter, writes captions in the references' style and reads
colours, shapes and counts well above chance, so no demo metric is degenerate;
it remains a 2-MB toy (`TOY_NOTE`). Building is then ~70 ms a step on one
idle core; `ensure_tiny_model` caches either variant.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from m3eval.resources import cache_dir

from .shapes import COLOR_WORDS, COLOR_WORDS_ZH, SHAPE_WORDS, SHAPE_WORDS_ZH

TINY_MODEL_VERSION = "tiny-llava-v4"  # bump when the build changes, so caches rebuild
DEMO_TRAIN_STEPS = 400  # the demo's model: ~25 s of training once; every demo metric is then above 0
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN]
IMAGE_SIZE = 32
PATCH_SIZE = 8  # (32/8)^2 = 16 image tokens per image
VOCAB_SIZE = 1152  # room for the demo answers, box numbers and the Chinese words as whole tokens

# Words the demo tasks ask about; each should become one BPE token (colours and shapes: shapes.py).
_NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_NUMBERS_ZH = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]

_SENTENCES_EN = """\
What color is the shape in the image?
What shape is shown in the picture?
How many shapes are there?
Is there a red circle in the image?
Describe the image in one sentence.
Answer the question using a single word or phrase.
The image shows a small picture with simple shapes on a plain background.
A person is riding a bike down the street.
A dog is running on the grass in the park.
Two cats are sleeping on a sofa near the window.
A man is cooking food in the kitchen.
A woman is playing the piano on a stage.
The video shows people dancing at a party.
What is the man doing in the video?
What is the woman holding?
Where is this photo taken?
What kind of food is this?
Which animal is in the picture?
yes
no
""".splitlines()

_SENTENCES_ZH = """\
图片中的形状是什么颜色？
图片里有什么形状？
图片中有几个形状？
请用一句话描述这张图片。
请用一个词回答问题。
一个人在街上骑自行车。
一只狗在公园的草地上奔跑。
两只猫在窗边的沙发上睡觉。
一个男人在厨房里做饭。
一个女人在舞台上弹钢琴。
这是什么食物？
这张照片是在哪里拍的？
图片中是什么动物？
是
不是
""".splitlines()


def training_corpus() -> list[str]:
    """A few hundred deterministic lines of English and Chinese text."""
    lines = list(_SENTENCES_EN) + list(_SENTENCES_ZH)
    for i, color in enumerate(COLOR_WORDS):
        for j, shape in enumerate(SHAPE_WORDS):
            n = _NUMBERS[(i + j) % len(_NUMBERS)]
            lines.append(f"{color}")
            lines.append(f"{shape}")
            lines.append(f"There is {n} {color} {shape} in the image.")
            lines.append(f"The {shape} is {color}.")
            zc, zs, zn = COLOR_WORDS_ZH[i], SHAPE_WORDS_ZH[j], _NUMBERS_ZH[(i + j) % len(_NUMBERS_ZH)]
            lines.append(f"图片中有{zn}个{zc}的{zs}。")
            lines.append(f"{zs}是{zc}。")
    lines += _NUMBERS + [str(k) for k in range(11)] + COLOR_WORDS_ZH + SHAPE_WORDS_ZH + _NUMBERS_ZH
    from .training import demo_lines
    return lines + demo_lines()


# Vicuna-style prompt, as LLaVA-1.5 uses. Content may be a string or a list of
# text / image parts; each image part becomes one <image> placeholder that the
# processor expands to the image's patch tokens.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}SYSTEM: {% elif message['role'] == 'user' %}USER: "
    "{% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    # SentencePiece-style pieces (Metaspace), not byte-level: every token is whole
    # characters, so even a random model's output reads as words, never broken UTF-8.
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    bos_id = tok.token_to_id("<s>")
    # The tokenizer adds <s> itself; the adapter skips that when the chat
    # template already wrote it (as transformers' apply_chat_template does).
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _build_model(tokenizer, seed: int):
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        # A wider init than the default 0.02 so a random model's greedy output
        # depends on its input instead of repeating one token for everything.
        initializer_range=0.25,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="default", vision_feature_layer=-1,
        # extra keywords become attributes at runtime (huggingface_hub strict(accept_kwargs=True)),
        # but the dataclass signature mypy reads lists only LlavaConfig's own fields
        initializer_range=0.25,  # type: ignore[call-arg]
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id,
    )
    gen.do_sample, gen.max_new_tokens = False, 16
    return model


def build_tiny_model(out_dir: Path, seed: int = 0, train_steps: int = 0) -> Path:
    """Build the tiny LLaVA into `out_dir` (created) and return it.

    train_steps=0: random weights (~0.1 s). train_steps>0: that many AdamW steps
    on drawn colour/shape questions (~50 ms a step), so the model really answers
    some demo questions; see m3eval/demo/training.py.
    """
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer()
    # The Pil variant works without torchvision (not installed on CPU machines).
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE, image_token=IMAGE_TOKEN,
    )
    model = _build_model(tokenizer, seed)
    if train_steps > 0:
        from .training import train
        train(model, processor, steps=train_steps, seed=seed)
    processor.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


TOY_NOTE = ("note: the demo model is a 2-MB toy LLaVA trained for a few seconds on these synthetic shapes; "
            "its scores show the harness at work, not what a real VLM scores")


def is_built(path: Path) -> bool:
    return (Path(path) / "config.json").is_file() and (Path(path) / "model.safetensors").is_file()


def default_cache_dir(train_steps: int = 0) -> Path:
    suffix = f"-trained{train_steps}" if train_steps else ""
    return cache_dir() / f"{TINY_MODEL_VERSION}{suffix}"


def ensure_tiny_model(cache_dir: Path | None = None, train_steps: int = 0) -> Path:
    """Return the cached tiny model, building it once (atomically) if needed."""
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir(train_steps)
    return build_once(target, lambda out: build_tiny_model(out, train_steps=train_steps))


def build_once(target: Path, build) -> Path:
    """`build(folder)` into a folder beside `target`, then rename: a crash or a concurrent
    build never leaves a half-written model where readers look."""
    if is_built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first (target now exists): use theirs.
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def directory_digest(path: Path) -> str:
    """sha256 over every file's name and bytes (to check byte-identical builds)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()
