"""Write realistic run directories (docs/FORMATS.md) for the compare and dashboard tests.

Every run answers the same fixed questions; whether a run gets sample i right is
`u_i < accuracy` for one seeded uniform draw per sample, so two runs with the same seed
and accuracies 0.7 / 0.5 differ only by samples the better run got right (a clean,
known paired difference). Aggregates and CIs are computed from the per-sample scores
written, so results.json agrees with samples/ as the runner's output would.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from m3eval.metrics import stats
from m3eval.metrics.base import MetricInput, get_metric

XSS = "<script>alert('x')</script><b>bold</b>"

# name -> (category, protocol, language, primary metric, metrics {name: kind}, media frames)
TASKS: dict[str, dict[str, Any]] = {
    "okvqa": dict(category="knowledge_vqa", protocol="official", language="en",
                  primary="vqa_accuracy", metrics={"vqa_accuracy": "mean"}, frames=1),
    "m3it_okvqa": dict(category="knowledge_vqa", protocol="paper", language="en",
                       primary="rouge_l", metrics={"rouge_l": "mean"}, frames=1),
    "msrvtt_qa": dict(category="video", protocol="official", language="en",
                      primary="exact_match", metrics={"exact_match": "mean"}, frames=4),
    "flickr8k_cn": dict(category="chinese", protocol="paper", language="zh",
                        primary="rouge_l", metrics={"rouge_l": "mean", "bleu": "corpus"}, frames=1),
    "m3it80_vqa": dict(category="multilingual", protocol="paper", language="multi",
                       primary="rouge_l", metrics={"rouge_l": "mean"}, frames=1),
}
DEFAULT_TASKS = list(TASKS)
# M3IT-80 as the real suite has it: one task per language, <base>_<lang> (not in the default runs)
for _lang in ("fr", "zh", "sw"):
    TASKS[f"m3it80_msrvtt_{_lang}"] = dict(category="multilingual", protocol="paper", language=_lang,
                                           primary="rouge_l", metrics={"rouge_l": "mean"}, frames=4)
GROUPS = {"knowledge_vqa": ["okvqa", "m3it_okvqa"], "video": ["msrvtt_qa"],
          "m3it_heldout": ["m3it_okvqa", "flickr8k_cn"]}
LANGS = ["en", "zh", "fr", "sw"]
EN_WORDS = ["dog", "cat", "red bus", "pizza", "tennis", "river", "two", "kitchen", "snow", "bicycle"]
ZH_WORDS = ["一只狗在草地上奔跑", "两个孩子在海边玩耍", "一个男人在骑自行车", "桌子上有一碗面条", "红色的公共汽车停在路边"]


def _thumb(path: Path, text: str, hue: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (96, 72), ((hue * 53) % 256, (hue * 97) % 256, 160))
    draw = ImageDraw.Draw(img)
    draw.rectangle([8, 8, 88, 64], outline=(255, 255, 255), width=2)
    draw.text((14, 28), text[:12], fill=(255, 255, 255))
    img.save(path, format="JPEG", quality=80)
    return path.as_posix()


def _records(task: str, spec: dict, run_dir: Path, accuracy: float, seed: int, n: int,
             overrides: dict[str, str]) -> list[dict[str, Any]]:
    u = np.random.default_rng(seed + sum(map(ord, task))).random(n)
    partial = np.random.default_rng(1000 + seed).random(n)
    records = []
    for i in range(n):
        sid = f"{task}-{i}"
        lang = LANGS[i % len(LANGS)] if spec["language"] == "multi" else spec["language"]
        words = ZH_WORDS if lang == "zh" else EN_WORDS
        gold = words[i % len(words)]
        right = bool(u[i] < accuracy)
        pred = gold if right else words[(i + 3) % len(words)]
        pred = overrides.get(sid, pred)
        scores: dict[str, float] = {}
        for m in spec["metrics"]:
            if m == "exact_match":
                scores[m] = float(right)
            elif m == "vqa_accuracy":  # VQA's min(#humans/3, 1): partial credit happens
                scores[m] = 1.0 if right else (0.6 if partial[i] < 0.3 else 0.0)
            elif m == "rouge_l":
                scores[m] = 1.0 if right else round(0.4 * partial[i], 4)
        media_dir = run_dir / "media" / task
        media = [_thumb(media_dir / (f"{sid}.jpg" if spec["frames"] == 1 else f"{sid}_f{f}.jpg"),
                        f"{sid} f{f}", i + f) for f in range(spec["frames"])]
        records.append({
            "id": sid, "prompt": f"Question {i}: what is shown? Answer briefly." if lang != "zh" else f"问题{i}：图中是什么？",
            "prediction": pred, "extracted": pred, "references": [gold, gold.upper()], "choices": None,
            "lang": lang, "instruction": (i % 3) if task == "m3it80_vqa" else None, "cluster": sid, "error": None,
            "scores": scores, "media": [str(Path(p).relative_to(run_dir).as_posix()) for p in media],
        })
    return records


def _ci(values: np.ndarray) -> list[float]:
    idx = np.random.default_rng(0).integers(0, len(values), size=(1000, len(values)))
    lo, hi = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    return [round(float(lo), 6), round(float(hi), 6)]


def _task_result(task: str, spec: dict, records: list[dict], version: int) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for m, kind in spec["metrics"].items():
        if kind == "corpus":
            items = [MetricInput(r["extracted"], r["references"], r["choices"], r["lang"]) for r in records]
            res = get_metric(m).compute(items)
            for r, s in zip(records, res.per_sample or []):
                r["scores"][m] = s
            ci = stats.corpus_bootstrap_ci(res.rescore, len(items), n=200)
            metrics[m] = {"value": res.value, "ci": list(ci), "scale": 100,
                          "higher_is_better": True, "kind": "corpus", "signature": res.signature,
                          "resamples": 200}
        else:
            v = np.array([r["scores"][m] for r in records])
            metrics[m] = {"value": float(v.mean()), "ci": _ci(v), "scale": 1,
                          "higher_is_better": True, "kind": "mean"}
    out = {"hash": f"sha256:{task}-v{version}", "version": version, "category": spec["category"],
           "protocol": spec["protocol"], "language": spec["language"],
           "dataset": {"path": f"fixture/{task}", "name": None, "split": "test", "revision": None},
           "n_samples": len(records), "n_errors": 0, "n_extraction_failures": 0,
           "primary_metric": spec["primary"], "metrics": metrics}
    if spec["frames"] > 1:
        out["video"] = {"rule": "uniform", "frames": spec["frames"]}
    if task == "m3it80_vqa":
        per_lang = {lang: {"rouge_l": {"value": float(np.mean([r["scores"]["rouge_l"] for r in records
                                                               if r["lang"] == lang])), "scale": 1}}
                    for lang in LANGS}
        out["languages"] = per_lang
        per_inst = [float(np.mean([r["scores"]["rouge_l"] for r in records if r["instruction"] == k]))
                    for k in range(3)]
        out["instructions"] = {"n": 3, "metric": "rouge_l", "per_instruction": per_inst,
                               "mean": float(np.mean(per_inst)), "std": float(np.std(per_inst)),
                               "min": min(per_inst), "max": max(per_inst)}
    return out


def write_run(root: Path, name: str, *, accuracy: float = 0.6, seed: int = 0, n: int = 24,
              tasks: list[str] | None = None, versions: dict[str, int] | None = None,
              drop: dict[str, int] | None = None, overrides: dict[str, str] | None = None,
              config: dict[str, Any] | None = None, invocation: dict[str, dict] | None = None) -> Path:
    """One run directory root/name; `drop` removes the last k samples of a task; `config`
    updates run.config (limit, dataset_overrides); `invocation` adds tasks.<t>.invocation."""
    run_dir = Path(root) / name
    results_tasks: dict[str, Any] = {}
    for task in tasks or DEFAULT_TASKS:
        spec = TASKS[task]
        records = _records(task, spec, run_dir, accuracy, seed, n - (drop or {}).get(task, 0), overrides or {})
        results_tasks[task] = _task_result(task, spec, records, (versions or {}).get(task, 1))
        if task in (invocation or {}):
            results_tasks[task]["invocation"] = invocation[task]
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
        with open(run_dir / "samples" / f"{task}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(run_dir / "predictions" / f"{task}.jsonl", "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({k: r[k] for k in ("id", "prediction", "prompt", "references", "choices",
                                                      "lang", "instruction", "error")}
                                   | {"seconds": 0.01, "media_info": {}}, ensure_ascii=False) + "\n")
    groups = {}
    for g, members in GROUPS.items():
        members = [t for t in members if t in results_tasks]
        if members:
            vals = [results_tasks[t]["metrics"][results_tasks[t]["primary_metric"]]["value"] for t in members]
            groups[g] = {"tasks": members, "metric": "primary", "value": float(np.mean(vals)),
                         "n_tasks": len(members), "category": TASKS[members[0]]["category"]}
    results = {
        "format": "m3eval.results/1",
        "run": {"name": name, "model": {"backend": "hf", "args": {"pretrained": f"/models/{name}"},
                                         "id": f"fixture/{name}", "revision": None},
                "config": {"tasks": list(results_tasks), "batch_size": 8, "limit": None, "seed": 0,
                           "instructions": "default", "world_size": 1, "dataset_overrides": {}} | (config or {}),
                "created": "2026-11-21T23:59:00Z", "git_sha": "abc123",
                "versions": {"m3eval": "0.1.0", "torch": "2.13.0", "transformers": "5.23.0"}},
        "timings": {"load_s": 1.2, "generate_s": 10.0, "score_s": 0.4, "total_s": 11.6,
                    "samples": n * len(results_tasks), "samples_per_s": 10.3},
        "tasks": results_tasks, "groups": groups, "consistency": {},
    }
    (run_dir / "run.json").write_text(json.dumps(results["run"], indent=2))
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return run_dir


def write_reference(root: Path) -> Path:
    path = Path(root) / "reference" / "ying_vlm.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "format": "m3eval.reference/1", "model": "Ying-VLM", "source": "M3IT paper, arXiv 2306.04387 (fixture)",
        "reported": True, "tasks": {"m3it_okvqa": {"metrics": {"rouge_l": {"value": 0.44, "scale": 1}}},
                                    "flickr8k_cn": {"metrics": {"rouge_l": {"value": 0.31, "scale": 1}}}}}))
    return path


def write_broken(root: Path) -> None:
    """A half-written results file and one in an older format, both to be skipped with a warning."""
    (Path(root) / "crashed").mkdir(parents=True, exist_ok=True)
    (Path(root) / "crashed" / "results.json").write_text('{"format": "m3eval.results/1", "run": {"na')
    (Path(root) / "old").mkdir(parents=True, exist_ok=True)
    (Path(root) / "old" / "results.json").write_text(json.dumps({"format": "m3eval.results/0", "run": {}}))


# The hierarchy of the fixture tasks (a results folder may carry its own leaderboard.yaml)
HIERARCHY = """
normalization: {vqa_accuracy: linear, exact_match: linear, rouge_l: linear, bleu: linear}
capabilities:
  knowledge_vqa:
    title: Knowledge VQA
    tasks:
      okvqa: {title: OK-VQA, leaves: [{task: okvqa}, {task: m3it_okvqa}]}
  video:
    title: Video understanding
    tasks:
      msrvtt_qa: {title: MSRVTT-QA, leaves: [{task: msrvtt_qa}]}
  chinese:
    title: Chinese
    tasks:
      flickr8k_cn: {title: Flickr8k-CN 中文, leaves: [{task: flickr8k_cn}]}
  multilingual:
    title: Multilingual (M3IT-80)
    tasks:
      vqa_80: {title: VQA in many languages, leaves: [{task: m3it80_vqa}]}
      msrvtt_80: {title: MSRVTT in 80 languages, leaves: [{task: "m3it80_msrvtt_{lang}"}]}
languages:
  en: [English, Germanic, Latin]
  fr: [French, Romance, Latin]
  zh: [Chinese, Sino-Tibetan, Han]
  sw: [Swahili, Niger-Congo, Latin]
"""


def write_leaderboard(root: Path, n: int = 24, partial_run: bool = False) -> Path:
    """A results/ folder as the page reads it: two full runs, the reference row, two broken
    files, its leaderboard.yaml; with `partial_run`, also a --limit 8 run of the model the
    reference row reports on (ying-vlm)."""
    root = Path(root)
    write_run(root, "tiny-llava", accuracy=0.7, seed=0, n=n, overrides={"okvqa-0": XSS})
    write_run(root, "tiny-qwen", accuracy=0.45, seed=0, n=n)
    if partial_run:
        write_run(root, "ying-vlm", accuracy=0.5, seed=1, n=8, tasks=["m3it_okvqa", "flickr8k_cn"],
                  config={"limit": 8})
    write_reference(root)
    write_broken(root)
    (root / "leaderboard.yaml").write_text(HIERARCHY, encoding="utf-8")
    return root
