"""A tiny LLaVA built offline: real transformers classes, seeded weights.

It exists so the demo and the tests run the real loading and generation code
(`AutoProcessor` + `AutoModelForImageTextToText`) with no model hub and no GPU.
The tokenizer is a BPE (SentencePiece-style pieces) trained here on the text below, so demo
answers (colours, shapes, counts, in English and Chinese) are single tokens.
Same seed -> byte-identical files, in any process.

Two variants: random weights (default; ~0.1 s to build, varied but meaningless
output that almost never matches a reference), or `train_steps=N`: N AdamW steps,
the first third on large single shapes (`training_example`), the rest on examples
drawn like the demo tasks' rows (`demo_example`: scenes, option letters, captions,
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

TINY_MODEL_VERSION = "tiny-llava-v3"  # bump when the build changes, so caches rebuild
DEMO_TRAIN_STEPS = 300  # the demo's model: ~15 s of training once; every demo metric is then above 0
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN]
IMAGE_SIZE = 32
PATCH_SIZE = 8  # (32/8)^2 = 16 image tokens per image
VOCAB_SIZE = 1024

# Words the demo tasks ask about; each should become one BPE token.
_COLORS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
_SHAPES = ["circle", "square", "triangle", "star", "line", "dot"]
_NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_COLORS_ZH = ["红色", "绿色", "蓝色", "黄色", "黑色", "白色", "橙色", "紫色"]
_SHAPES_ZH = ["圆形", "正方形", "三角形", "星形", "线", "点"]
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
    for i, color in enumerate(_COLORS):
        for j, shape in enumerate(_SHAPES):
            n = _NUMBERS[(i + j) % len(_NUMBERS)]
            lines.append(f"{color}")
            lines.append(f"{shape}")
            lines.append(f"There is {n} {color} {shape} in the image.")
            lines.append(f"The {shape} is {color}.")
            zc, zs, zn = _COLORS_ZH[i], _SHAPES_ZH[j], _NUMBERS_ZH[(i + j) % len(_NUMBERS_ZH)]
            lines.append(f"图片中有{zn}个{zc}的{zs}。")
            lines.append(f"{zs}是{zc}。")
    lines += _NUMBERS + [str(k) for k in range(11)] + _COLORS_ZH + _SHAPES_ZH + _NUMBERS_ZH
    return lines + _demo_lines()


def _demo_lines() -> list[str]:
    """The demo tasks' answers and prompts (option letters, captions), so the model can
    write them: without these lines a bare "B" is not even a token."""
    from .data import (COLORS, FRAMES_INSTRUCTION, M3IT_EN_INSTRUCTIONS, M3IT_ZH_INSTRUCTIONS, SHAPES,
                       VIDEO_QUESTIONS, caption_en)
    lines = [letter for letter in "ABCDEF" for _ in range(8)]
    lines += [f"{letter}. {c}" for letter in "ABCDEF" for c in COLORS]
    lines += [f"{c} {s}" for c in COLORS for s in SHAPES]
    for bg in ("white", "black"):
        for c in COLORS:
            for s in SHAPES:
                for n in (1, 2, 3):
                    f = {"background": bg, "color": c, "shape": s, "count": n}
                    lines.append(caption_en(f))  # not Chinese ones: unspaced, each would become one token
    return lines + [MC_PROMPT, VQA_SUFFIX.strip(), CAPTION_PROMPT, FRAMES_INSTRUCTION, *VIDEO_QUESTIONS.values(),
                    *M3IT_EN_INSTRUCTIONS, *M3IT_ZH_INSTRUCTIONS]


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
        initializer_range=0.25,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id,
    )
    gen.do_sample, gen.max_new_tokens = False, 16
    return model


# ---- optional short training: a model that really answers demo questions ----

SHAPE_COLORS = {"red": (220, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 220),
                "yellow": (240, 220, 30), "black": (15, 15, 15), "white": (250, 250, 250),
                "orange": (250, 140, 20), "purple": (140, 40, 170)}
TRAINED_SHAPES = ["circle", "square", "triangle"]
TRAINED_QUESTIONS = {  # question kind -> phrasings the trained variant has seen
    "color": ["What color is the shape?", "What color is the shape in the image?",
              "What is the color of the shape? Answer with one word."],
    "shape": ["What shape is shown?", "What shape is shown in the picture?",
              "Which shape is this? Answer with one word."],
    "color_zh": ["图片中的形状是什么颜色？", "这个形状是什么颜色？"],
    "shape_zh": ["图片里有什么形状？", "这是什么形状？"],
}
_BACKGROUNDS = [(128, 128, 128), (255, 255, 255), (200, 200, 200), (70, 70, 70)]


def draw_shape(rnd, color: str, shape: str, size: int = 64):
    """One large filled shape of a named colour on a plain background (Pillow)."""
    from PIL import Image, ImageDraw

    fill = SHAPE_COLORS[color]
    bg = rnd.choice([b for b in _BACKGROUNDS if max(abs(x - y) for x, y in zip(b, fill)) > 60])
    img = Image.new("RGB", (size, size), bg)
    w = rnd.randint(size * 2 // 5, size * 3 // 4)
    x, y = rnd.randint(0, size - w), rnd.randint(0, size - w)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([x, y, x + w, y + w], fill=fill)
    elif shape == "square":
        draw.rectangle([x, y, x + w, y + w], fill=fill)
    else:
        draw.polygon([(x, y + w), (x + w, y + w), (x + w // 2, y)], fill=fill)
    return img


def training_example(rnd) -> tuple[object, str, str]:
    """(image, question, answer) from the distribution the trained variant learns.
    Only this distribution: smaller or several shapes (e.g. the demo tasks' scenes)
    are read far worse by a 32-pixel, 16-patch model."""
    color, shape = rnd.choice(list(SHAPE_COLORS)), rnd.choice(TRAINED_SHAPES)
    kind = rnd.choice(list(TRAINED_QUESTIONS))
    answer = {"color": color, "shape": shape, "color_zh": _COLORS_ZH[_COLORS.index(color)],
              "shape_zh": _SHAPES_ZH[_SHAPES.index(shape)]}[kind]
    return draw_shape(rnd, color, shape), rnd.choice(TRAINED_QUESTIONS[kind]), answer


# The demo tasks' prompts (tasks/demo/*.yaml render these).
VQA_SUFFIX = "\nAnswer the question using a single word or phrase."
MC_PROMPT = "Answer with the option's letter from the given choices directly."
CAPTION_PROMPT = "Write a short caption for this image."
# Kinds of training batch, with weights: the demo tasks' distributions, plus the single
# large shapes of `training_example`.
DEMO_KINDS = {"shapes": 2, "vqa": 3, "mc": 6, "caption": 2, "m3it_en": 1, "m3it_zh": 2, "frames": 1, "video_qa": 1}


def demo_example(rnd, kind: str) -> tuple[list, str, str]:
    """(images, prompt, answer) drawn like the demo tasks' rows (m3eval/demo/data.py), from
    this generator's own random state, so not the committed rows themselves."""
    from ..prompts import LETTERS, format_options
    from .data import (FRAMES_INSTRUCTION, M3IT_EN_INSTRUCTIONS, M3IT_ZH_INSTRUCTIONS, VIDEO_QUESTIONS, caption_en,
                       caption_zh, draw_scene, mc_choices, moving_frames, vqa_question)
    if kind == "shapes":
        img, q, a = training_example(rnd)
        return [img], q, a
    img, f = draw_scene(rnd)
    if kind == "vqa":
        q, a, _ = vqa_question(f, rnd.randrange(3))
        return [img], q + VQA_SUFFIX, a
    if kind == "mc":
        choices = mc_choices()
        prompt = f"Which color are the shapes in the picture?\n{format_options(choices)}\n{MC_PROMPT}"
        return [img], prompt, LETTERS[choices.index(f["color"])]
    if kind == "caption":
        return [img], CAPTION_PROMPT, caption_en(f)
    if kind == "m3it_en":
        return [img], rnd.choice(M3IT_EN_INSTRUCTIONS), caption_en(f)
    if kind == "m3it_zh":
        return [img], rnd.choice(M3IT_ZH_INSTRUCTIONS), caption_zh(f)
    if kind == "frames":
        return moving_frames(f, 4), FRAMES_INSTRUCTION, f["color"]
    q = rnd.choice(list(VIDEO_QUESTIONS))
    return moving_frames(f, 8), VIDEO_QUESTIONS[q] + VQA_SUFFIX, f[q]


def _train(model, processor, steps: int, seed: int, batch_size: int = 16, lr: float = 3e-3) -> None:
    import random

    import torch

    tok = processor.tokenizer
    rnd = random.Random(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same float reductions in every process: byte-identical weights
    try:
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        model.train()
        kinds = list(DEMO_KINDS)
        for step in range(steps):
            # First colours and shapes on large single shapes (easy, and what every task
            # builds on), then the demo tasks' mixture. One kind a batch: similar lengths,
            # little padding (video batches are long).
            kind = "shapes" if step < steps // 3 else rnd.choices(kinds, weights=list(DEMO_KINDS.values()))[0]
            batch = [demo_example(rnd, kind) for _ in range(batch_size)]
            texts = [processor.apply_chat_template(
                [{"role": "user", "content": [*({"type": "image"} for _ in ims), {"type": "text", "text": q}]}],
                add_generation_prompt=True) + f" {a}{tok.eos_token}" for ims, q, a in batch]
            inputs = processor(text=texts, images=[ims for ims, _, _ in batch], padding=True,
                               return_tensors="pt", add_special_tokens=False)
            labels = inputs["input_ids"].clone()
            # Left padding puts every answer at the end: learn only " answer</s>".
            for i, (_, _, a) in enumerate(batch):
                n = len(tok.encode(f" {a}{tok.eos_token}", add_special_tokens=False))
                labels[i, : labels.shape[1] - n] = -100
            model(**inputs, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
    finally:
        model.eval()
        torch.set_num_threads(threads)


def build_tiny_model(out_dir: Path, seed: int = 0, train_steps: int = 0) -> Path:
    """Build the tiny LLaVA into `out_dir` (created) and return it.

    train_steps=0: random weights (~0.1 s). train_steps>0: that many AdamW steps
    on drawn colour/shape questions (~50 ms a step), so the model really answers
    some demo questions; see `training_example`.
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
        _train(model, processor, steps=train_steps, seed=seed)
    processor.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


TOY_NOTE = ("note: the demo model is a 2-MB toy LLaVA trained for a few seconds on these synthetic shapes; "
            "its scores show the harness at work, not what a real VLM scores")


def is_built(path: Path) -> bool:
    return (Path(path) / "config.json").is_file() and (Path(path) / "model.safetensors").is_file()


def default_cache_dir(train_steps: int = 0) -> Path:
    base = os.environ.get("M3EVAL_CACHE") or Path.home() / ".cache" / "m3eval"
    suffix = f"-trained{train_steps}" if train_steps else ""
    return Path(base) / f"{TINY_MODEL_VERSION}{suffix}"


def ensure_tiny_model(cache_dir: Path | None = None, train_steps: int = 0) -> Path:
    """Return the cached tiny model, building it once (atomically) if needed."""
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir(train_steps)
    if is_built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then rename: a crash or a concurrent build
    # never leaves a half-written model where readers look.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build_tiny_model(tmp, train_steps=train_steps)
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
