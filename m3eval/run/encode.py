"""Running the encoder task types with a contrastive encoder (the `clip` backend).

    zero_shot_classification: each class's text embedding is the mean of its prompt templates'
        normalized embeddings, renormalized (CLIP's prompt-ensembling protocol); an image's
        prediction is its 10 best class indices, best first ("3 17 5 ..."); metrics top1/top5.
    retrieval: every image against every caption of the task; an image's prediction is
        {"i2t": rank of its best caption, "t2i": [rank of the image for each of its captions]}
        (0-based, ties counted against; m3eval/metrics/retrieval.py); metrics i2t_r*, t2i_r*,
        mean_recall.

The predictions go to predictions/<task>.jsonl like a generative task's, so scoring, CIs,
`m3eval score`, compare and the leaderboard work unchanged. Embeddings are cached in
<run>/embeddings/<task>/ in chunks named by a hash of their content and the model, so an
interrupted run resumes without re-encoding. Openness curves (zero-shot with
`encoder.openness`) go to <run>/encoders/<task>.json and into the task's results entry.
Encoder tasks run on rank 0 (no sharding yet).
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.media import VideoRule
from ..data.sample_set import SampleSet, TaskData
from ..models.base import ModelAdapter
from ..predictions import read_predictions
from ..record import SampleFailure
from ..results import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    encoder_extras_file,
    prediction_files,
)
from ..tasks.schema import TaskSpec
from ..types import Prediction, Sample
from .prefetch import prepare

CHUNK = 256  # images or texts per cached embedding file
TOP = 10  # class indices kept per zero-shot prediction


def model_fits(spec: TaskSpec, model: ModelAdapter) -> str | None:
    """Why this model cannot run this task, or None (`model.is_encoder`: the encoder task types)."""
    if spec.type == "generate" and model.is_encoder:
        return "type generate: the encoder backend cannot generate text (run it with --model hf / openai)"
    if spec.type != "generate" and not model.is_encoder:
        return f"type {spec.type}: needs a contrastive encoder backend (--model clip)"
    return None


def _finished(spec: TaskSpec, samples: SampleSet, run_dir: Path) -> list[Prediction] | None:
    """The task's predictions when an earlier run wrote them all (they are written at once)."""
    done = read_predictions(prediction_files(run_dir, spec.task)[:1])
    return [done[i] for i in samples.ids] if done and set(done) == set(samples.ids) else None


def pending(spec: TaskSpec, samples: SampleSet, run_dir: Path) -> int:
    """Samples this encoder task still has to predict (its embeddings cache keeps partial work)."""
    return 0 if _finished(spec, samples, run_dir) is not None else len(samples)


def run_encoder_task(spec: TaskSpec, data: TaskData, model: ModelAdapter | None, run_dir: Path
                     ) -> tuple[list[Prediction], float]:
    """Predictions for one encoder task (reused when the run folder already has them), seconds spent.
    `model` is None when no task is pending (the model was not loaded): every task is finished."""
    t0 = time.perf_counter()
    finished = _finished(spec, data.samples, run_dir)
    if finished is not None:
        return finished, 0.0
    samples = list(data.samples)  # held while the task runs: ranking reads them all more than once
    if model is None:
        raise RuntimeError(f"task {spec.task}: predictions to compute but no model loaded")
    cache = _Cache(run_dir / "embeddings" / spec.task, model)
    # images are decoded chunk by chunk (never a whole dataset in memory); a bad one fails alone
    img, errors = cache.embed("image", [s.id for s in samples], lambda idx: _image_chunk(samples, idx, model))
    img = np.nan_to_num(img)  # failed images: zero vectors (their samples score 0 as errors)
    if spec.type == "zero_shot_classification":
        preds, extra = _zero_shot(spec, data.class_names, samples, img, errors, cache, model)
    else:
        preds, extra = _retrieval(samples, img, errors, cache, model)
    seconds = time.perf_counter() - t0
    for p in preds:
        p.seconds = seconds / max(len(preds), 1)
    atomic_write_jsonl(prediction_files(run_dir, spec.task)[0], [p.to_json() for p in preds])
    if extra:
        atomic_write_json(encoder_extras_file(run_dir, spec.task), extra)
    return preds, seconds


# ---- images and the embedding cache ---------------------------------------------------------

def _image_chunk(samples: list[Sample], idx: list[int], model: ModelAdapter) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings of these samples' images (NaN rows where a sample failed) and the errors. The
    images are decoded as for generation (prefetch.prepare): a bad row or image fails that sample."""
    images, ok, errors = [], [], {}
    for j, i in enumerate(idx):
        p = prepare(samples[i], VideoRule(), None)
        image = next((part["image"] for part in p.message or [] if part["type"] == "image"), None)
        if p.error or image is None:
            errors[j] = str(p.error or "ValueError: the sample has no image (doc.images)")  # cached as text
            continue
        images.append(image)
        ok.append(j)
    emb = np.asarray(model.encode_images(images), np.float32) if images else np.zeros((0, 0), np.float32)
    out = np.full((len(idx), emb.shape[1]), np.nan, np.float32)
    out[ok] = emb
    return out, errors


class _Cache:
    def __init__(self, folder: Path, model: ModelAdapter):
        self.folder = folder
        info = model.info()
        self.model_key = json.dumps([info.get("id"), info.get("revision"), info.get("dtype")])

    def embed(self, kind: str, keys: list[str],
              encode: Callable[[list[int]], tuple[np.ndarray, dict[int, str]]]) -> tuple[np.ndarray, list[str | None]]:
        """(embeddings of all keys, per key the error or None), CHUNK at a time; each chunk is
        cached under a hash of the model and the chunk's keys (sample ids or texts)."""
        parts, errors = [], []
        for s in range(0, len(keys), CHUNK):
            n = len(keys[s:s + CHUNK])
            h = hashlib.sha256("\n".join([self.model_key, kind, *keys[s:s + CHUNK]]).encode()).hexdigest()[:24]
            path, err_path = self.folder / f"{kind}-{h}.npy", self.folder / f"{kind}-{h}.errors.json"
            if path.exists():
                emb = np.load(path)
                errs = {int(k): v for k, v in json.loads(err_path.read_text()).items()} if err_path.exists() else {}
            else:
                emb, errs = encode(list(range(s, s + n)))
                if errs:
                    atomic_write_json(err_path, errs)
                buf = io.BytesIO()
                np.save(buf, emb)
                atomic_write_bytes(path, buf.getvalue())
            parts.append(emb)
            errors += [errs.get(j) for j in range(n)]
        width = max((p.shape[1] for p in parts), default=0)
        parts = [p if p.shape[1] == width else np.full((len(p), width), np.nan, np.float32) for p in parts]
        return (np.concatenate(parts) if parts else np.zeros((0, width), np.float32)), errors


def _pred(s: Sample, text: str, error: str | None, prompt: str = "") -> Prediction:
    failure = None if error is None else SampleFailure.parse(error)  # a data failure: the embedding cache keeps text
    return Prediction.for_sample(s, text, error=failure, prompt=prompt)


# ---- zero-shot classification ---------------------------------------------------------------

def _lines(value: list[str] | str, spec: TaskSpec, class_names: dict[str, list[str]], what: str) -> list[str]:
    """A list, a file (one item a line, relative to the YAML) or feature:<column> (ClassLabel names)."""
    if isinstance(value, list):
        return value
    if value.startswith("feature:"):
        col = value[len("feature:"):]
        names = class_names.get(col)  # the rows' own schema
        if not names:
            raise ValueError(f"task {spec.task}: encoder.{what}: column {col!r} is not a ClassLabel with names")
        return [n.split(",")[0].strip() for n in names]  # ImageNet's "tench, Tinca tinca": the first synonym
    path = Path(spec.source).parent / value
    if not path.is_file():
        raise ValueError(f"task {spec.task}: encoder.{what}: no such file {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def class_embeddings(spec: TaskSpec, lang: str, class_names: dict[str, list[str]], cache: _Cache,
                     model: ModelAdapter) -> np.ndarray:
    enc = spec.encoder
    if enc is None or enc.classes is None or enc.templates is None:  # the task schema requires them
        raise ValueError(f"task {spec.task}: zero_shot_classification needs encoder.classes and encoder.templates")
    if lang not in enc.classes:
        raise ValueError(f"task {spec.task}: samples in language {lang!r} "
                         f"but encoder.classes has {sorted(enc.classes)}")
    names = _lines(enc.classes[lang], spec, class_names, f"classes.{lang}")
    templates = _lines(enc.templates[lang], spec, class_names, f"templates.{lang}")
    texts = [t.replace("{}", n) for n in names for t in templates]
    emb, _ = cache.embed("text", texts, lambda i: (model.encode_texts([texts[k] for k in i]), {}))
    emb = emb.reshape(len(names), len(templates), -1).mean(axis=1)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _zero_shot(spec: TaskSpec, class_names: dict[str, list[str]], samples: list[Sample], img: np.ndarray,
               errors: list[str | None], cache: _Cache, model: ModelAdapter) -> tuple[list[Prediction], dict[str, Any]]:
    from ..metrics.openness import openness_curve  # metrics/ (every metric's module): when an encoder task scores
    preds: list[Prediction | None] = [None] * len(samples)
    extra: dict[str, Any] = {}
    for lang in sorted({s.lang for s in samples}):
        cls = class_embeddings(spec, lang, class_names, cache, model)
        idx = [i for i, s in enumerate(samples) if s.lang == lang]
        logits = img[idx] @ cls.T if img.shape[1] else np.zeros((len(idx), len(cls)))
        top = np.argsort(-logits, axis=1, kind="stable")[:, :TOP]
        for row, i in enumerate(idx):
            ref = samples[i].references[0] if samples[i].references else ""
            if errors[i] is None and not (ref.isdigit() and int(ref) < len(cls)):  # a bad row fails alone
                errors[i] = f"label {ref!r} is not a class index 0..{len(cls) - 1}"
            preds[i] = _pred(samples[i], " ".join(map(str, top[row])), errors[i], f"{len(cls)} classes")
        ok = [r for r, i in enumerate(idx) if errors[i] is None]
        o = spec.encoder.openness if spec.encoder is not None else None
        if o and ok:
            labels = [int(samples[idx[r]].references[0]) for r in ok]
            curve = openness_curve(logits[ok], labels, o.step, o.trials, o.seed)
            extra.setdefault("openness", {})[lang] = curve
    return preds, extra  # type: ignore[return-value]


# ---- retrieval ------------------------------------------------------------------------------

def _retrieval(samples: list[Sample], img: np.ndarray, errors: list[str | None], cache: _Cache,
               model: ModelAdapter) -> tuple[list[Prediction], dict[str, Any]]:
    from ..metrics.retrieval import retrieval_ranks
    texts, owner = [], []
    for i, s in enumerate(samples):
        if not s.references:
            errors[i] = errors[i] or "the image has no captions"
        texts += s.references
        owner += [i] * len(s.references)
    txt, _ = cache.embed("text", texts, lambda i: (model.encode_texts([texts[k] for k in i]), {}))
    if img.shape[1] != txt.shape[1]:  # no image could be decoded
        img = np.zeros((len(samples), txt.shape[1]), np.float32)
    caps: list[list[int]] = [[] for _ in samples]
    for j, i in enumerate(owner):
        caps[i].append(j)
    i2t, t2i = retrieval_ranks(img, txt, owner)
    preds = [_pred(s, json.dumps({"i2t": int(i2t[i]), "t2i": [int(t2i[j]) for j in caps[i]]}), errors[i],
                   f"{len(samples)} images x {len(texts)} captions") for i, s in enumerate(samples)]
    return preds, {}
