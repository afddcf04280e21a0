"""A tiny contrastive encoder built offline: a real CLIPModel + CLIPProcessor, seeded weights.

For the demo, the tests and the retrieval benchmark: `AutoModel` / `AutoProcessor` load it
like any hub CLIP, so the `clip` backend runs its real code path. The tokenizer is a BPE
trained here (English and Chinese colour/shape words, as the tiny VLM's); texts end with
</s>, where CLIP's text tower pools.

Random weights by default (~0.1 s); `train_steps=N` runs N steps of CLIP's symmetric
contrastive loss on drawn shapes captioned "a red circle" / "红色的圆形" (m3eval/demo/
encoder_data.py), after which it matches colours and shapes well above chance.
Same seed -> byte-identical files.
"""
from __future__ import annotations

from pathlib import Path

from m3eval.resources import cache_dir as m3eval_cache

TINY_CLIP_VERSION = "tiny-clip-v3"  # bump with the tiny LLaVA's corpus: it feeds this tokenizer too
DEMO_CLIP_TRAIN_STEPS = 150
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>"]  # </s> is not id 2: CLIP's legacy argmax pooling is off
IMAGE_SIZE, PATCH_SIZE, VOCAB_SIZE, MAX_TEXT = 32, 8, 1024, 32


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from m3eval.demo.encoder_data import caption_corpus
    from m3eval.demo.tiny_model import training_corpus

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(training_corpus() + caption_corpus(),
                            trainer=trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                                        show_progress=False))
    ids = {t: tok.token_to_id(t) for t in ("<s>", "</s>")}
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=list(ids.items()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", padding_side="right", model_max_length=MAX_TEXT)


def _build_model(tokenizer, seed: int):
    import torch
    from transformers import CLIPConfig, CLIPModel

    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": MAX_TEXT, "projection_dim": 32,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE, "projection_dim": 32}
    torch.manual_seed(seed)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).eval()


def _train(model, processor, steps: int, seed: int, batch_size: int = 32, lr: float = 3e-3) -> None:
    import random

    from m3eval.demo.encoder_data import training_pair
    from m3eval.demo.training import deterministic_training

    rnd = random.Random(seed)
    with deterministic_training(model, seed, lr) as opt:
        for _ in range(steps):
            pairs = [training_pair(rnd) for _ in range(batch_size)]
            inputs = processor(text=[c for _, c in pairs], images=[im for im, _ in pairs], padding=True,
                               return_tensors="pt")
            model(**inputs, return_loss=True).loss.backward()
            opt.step()
            opt.zero_grad()


def build_tiny_clip(out_dir: Path, seed: int = 0, train_steps: int = 0) -> Path:
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                                            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model = _build_model(tokenizer, seed)
    if train_steps > 0:
        _train(model, processor, train_steps, seed)
    processor.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def ensure_tiny_clip(cache_dir: Path | None = None, train_steps: int = 0) -> Path:
    """The cached tiny encoder, built once (atomically: built beside the target, then renamed)."""
    if cache_dir is None:
        cache_dir = m3eval_cache() / (TINY_CLIP_VERSION + (f"-trained{train_steps}" if train_steps else ""))
    from m3eval.demo.tiny_model import build_once
    return build_once(Path(cache_dir), lambda out: build_tiny_clip(out, train_steps=train_steps))
