"""The tiny LLaVA's optional short training (`build_tiny_model(train_steps=N)`): what it
learns from, and the loop. A third of the steps on large single shapes
(`training_example`), the rest on examples drawn like the demo tasks' rows
(`demo_example`), so the demo's model answers them well above chance."""
from __future__ import annotations

from contextlib import contextmanager

from .shapes import SHAPE_COLORS, TRAINED_SHAPES, color_zh, draw_shape, shape_zh


def demo_lines() -> list[str]:
    """The demo tasks' answers and prompts (option letters, captions), so the model can
    write them: without these lines a bare "B" is not even a token."""
    from .data import (
        COLORS,
        FRAMES_INSTRUCTION,
        M3IT_EN_INSTRUCTIONS,
        M3IT_ZH_INSTRUCTIONS,
        SHAPES,
        VIDEO_QUESTIONS,
        caption_en,
    )
    lines = [letter for letter in "ABCDEF" for _ in range(8)]
    lines += [f"{letter}. {c}" for letter in "ABCDEF" for c in COLORS]
    lines += [f"{c} {s}" for c in COLORS for s in SHAPES]
    for bg in ("white", "black"):
        for c in COLORS:
            for s in SHAPES:
                for n in (1, 2, 3):
                    f = {"background": bg, "color": c, "shape": s, "count": n}
                    lines.append(caption_en(f))  # not Chinese ones: unspaced, each would become one token
    lines += [f"[{k}, {k + 1}, {k + 2}, {k + 3}]" for k in range(0, 62)]  # demo_grounding's pixel boxes
    return lines + [MC_PROMPT, VQA_SUFFIX.strip(), CAPTION_PROMPT, FRAMES_INSTRUCTION, *VIDEO_QUESTIONS.values(),
                    *M3IT_EN_INSTRUCTIONS, *M3IT_ZH_INSTRUCTIONS]


TRAINED_QUESTIONS = {  # question kind -> phrasings the trained variant has seen
    "color": ["What color is the shape?", "What color is the shape in the image?",
              "What is the color of the shape? Answer with one word."],
    "shape": ["What shape is shown?", "What shape is shown in the picture?",
              "Which shape is this? Answer with one word."],
    "color_zh": ["图片中的形状是什么颜色？", "这个形状是什么颜色？"],
    "shape_zh": ["图片里有什么形状？", "这是什么形状？"],
}


def training_example(rnd) -> tuple[object, str, str]:
    """(image, question, answer) from the distribution the trained variant learns.
    Only this distribution: smaller or several shapes (e.g. the demo tasks' scenes)
    are read far worse by a 32-pixel, 16-patch model."""
    color, shape = rnd.choice(list(SHAPE_COLORS)), rnd.choice(TRAINED_SHAPES)
    kind = rnd.choice(list(TRAINED_QUESTIONS))
    answer = {"color": color, "shape": shape, "color_zh": color_zh(color), "shape_zh": shape_zh(shape)}[kind]
    return draw_shape(rnd, color, shape), rnd.choice(TRAINED_QUESTIONS[kind]), answer


# The demo tasks' prompts (tasks/demo/*.yaml render these).
VQA_SUFFIX = "\nAnswer the question using a single word or phrase."
MC_PROMPT = "Answer with the option's letter from the given choices directly."
CAPTION_PROMPT = "Write a short caption for this image."
# Kinds of training batch, with weights: the demo tasks' distributions, plus the single
# large shapes of `training_example`.
DEMO_KINDS = {"shapes": 2, "vqa": 3, "mc": 6, "caption": 2, "m3it_en": 1, "m3it_zh": 2, "frames": 1, "video_qa": 1,
              "grounding": 3}


def demo_example(rnd, kind: str) -> tuple[list, str, str]:
    """(images, prompt, answer) drawn like the demo tasks' rows (m3eval/demo/data.py), from
    this generator's own random state, so not the committed rows themselves."""
    from ..prompts import LETTERS, format_options
    from .data import (
        FRAMES_INSTRUCTION,
        M3IT_EN_INSTRUCTIONS,
        M3IT_ZH_INSTRUCTIONS,
        VIDEO_QUESTIONS,
        caption_en,
        caption_zh,
        draw_scene,
        mc_choices,
        moving_frames,
        vqa_question,
    )
    if kind == "shapes":
        img, q, a = training_example(rnd)
        return [img], q, a
    if kind == "grounding":  # like demo_grounding's rows (m3eval/demo/encoder_data.py)
        from .encoder_data import GROUNDING_PROMPT, grounding_scene
        img, color, (x, y, w, h) = grounding_scene(rnd)
        return [img], GROUNDING_PROMPT.format(f"the {color} square"), f"[{x}, {y}, {x + w}, {y + h}]"
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


def train(model, processor, steps: int, seed: int, batch_size: int = 16, lr: float = 3e-3) -> None:
    import random

    tok = processor.tokenizer
    rnd = random.Random(seed)
    with deterministic_training(model, seed, lr) as opt:
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


@contextmanager
def deterministic_training(model, seed: int, lr: float):
    """Train mode on one thread (the same float reductions in every process: byte-identical
    weights), seeded; yields the optimizer. Restores eval mode and the thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        model.train()
        yield opt
    finally:
        model.eval()
        torch.set_num_threads(threads)
