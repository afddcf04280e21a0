"""Resuming is safe: never mixes predictions of different data or weights, never
drops finished work, retries model failures, picks up other ranks' logs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from m3eval.demo.tiny_model import build_tiny_model
from m3eval.models.registry import register_backend
from m3eval.models.hf import HFAdapter
from m3eval.results import read_jsonl
from m3eval.run.pipeline import RunConfig, RunError, evaluate

ZH = Path(__file__).resolve().parents[1] / "tasks" / "demo" / "data" / "m3it_caption_zh.jsonl"


def cfg(model_dir: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(tasks=kw.pop("tasks", ["demo_m3it_zh"]), output=out, model=kw.pop("model", "hf"),
                     model_args={"pretrained": str(model_dir)}, run_name="r", progress=False, **kw)


def rows(n: int, **change) -> list[dict]:
    out = [json.loads(line) for line in ZH.read_text(encoding="utf-8").splitlines()[:n]]
    return [{**r, **change} for r in out]


def write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    return path


def test_changed_override_data_is_not_resumed_silently(tiny_model, tmp_path):
    data = write(tmp_path / "a.jsonl", rows(4))
    evaluate(cfg(tiny_model, tmp_path, dataset_overrides={"demo_m3it_zh": str(data)}))
    write(data, rows(4, outputs="全新的参考答案"))  # same file, new references
    with pytest.raises(RunError, match="task demo_m3it_zh's data changed .*the content of .*a.jsonl differs"):
        evaluate(cfg(tiny_model, tmp_path, dataset_overrides={"demo_m3it_zh": str(data)}))


def test_new_weights_in_the_same_folder_are_noticed(tiny_model, tmp_path):
    model = tmp_path / "ckpt"
    shutil.copytree(tiny_model, model)
    evaluate(cfg(model, tmp_path, limit=4))
    shutil.rmtree(model)
    build_tiny_model(model, seed=1)  # "trained again" into the same checkpoint folder
    with pytest.raises(RunError, match="the model's weights changed"):
        evaluate(cfg(model, tmp_path, limit=4))


def test_a_smaller_limit_keeps_the_predictions_already_made(tiny_model, tmp_path):
    evaluate(cfg(tiny_model, tmp_path, limit=8))
    results, _ = evaluate(cfg(tiny_model, tmp_path, limit=4))
    assert results.timings.samples == 0 and results.tasks["demo_m3it_zh"].n_samples == 4
    assert len(read_jsonl(tmp_path / "r" / "predictions" / "demo_m3it_zh.jsonl")) == 8


def test_one_task_failing_to_score_keeps_the_others(tiny_model, tmp_path):
    import datasets
    ds = datasets.load_dataset("parquet", data_files=str(ZH.parent / "vqa.parquet"), split="train").select(range(4))
    ds = ds.map(lambda r: {"answers": r["answers"][:1]})  # one answer: the VQA metric refuses to score it
    ds.to_parquet(str(tmp_path / "one_answer.parquet"))
    results, failures = evaluate(cfg(tiny_model, tmp_path, tasks=["demo_vqa", "demo_mc"], limit=4,
                                     dataset_overrides={"demo_vqa": str(tmp_path / "one_answer.parquet")}))
    assert list(results.tasks) == ["demo_mc"]
    assert len(failures) == 1 and failures[0].startswith("demo_vqa: scoring failed") and "vqa_accuracy" in failures[0]
    assert json.loads((tmp_path / "r" / "results.json").read_text())["tasks"].keys() == {"demo_mc"}


class FlakyAdapter(HFAdapter):
    """A real adapter whose device fails (like an out-of-memory) while `failing` is set."""

    failing = True

    def generate(self, batch, gen):
        if FlakyAdapter.failing:
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().generate(batch, gen)


def test_model_failures_are_recorded_then_retried_on_resume(tiny_model, tmp_path):
    register_backend("flaky-hf", FlakyAdapter)
    results, _ = evaluate(cfg(tiny_model, tmp_path, model="flaky-hf", limit=4))
    entry = results.tasks["demo_m3it_zh"]
    assert entry.n_errors == 4 and entry.n_generate_errors == 4
    FlakyAdapter.failing = False
    results, _ = evaluate(cfg(tiny_model, tmp_path, model="flaky-hf", limit=4))
    assert results.timings.samples == 4 and results.tasks["demo_m3it_zh"].n_errors == 0


class ShortAdapter(HFAdapter):
    def generate(self, batch, gen):
        return super().generate(batch, gen)[:-1]


def test_a_backend_returning_too_few_outputs_is_an_error_not_an_empty_answer(tiny_model, tmp_path):
    register_backend("short-hf", ShortAdapter)
    results, _ = evaluate(cfg(tiny_model, tmp_path, model="short-hf", limit=3, batch_size=3))
    recs = read_jsonl(tmp_path / "r" / "samples" / "demo_m3it_zh.jsonl")
    # the batch is retried one by one; alone, each sample gets no output at all
    assert all("returned 0 outputs for 1 inputs" in r["error"] for r in recs)


def test_logs_of_a_crashed_two_rank_run_are_resumed_by_one_process(tiny_model, tmp_path):
    full, _ = evaluate(cfg(tiny_model, tmp_path / "full", limit=8))
    made = read_jsonl(tmp_path / "full" / "r" / "predictions" / "demo_m3it_zh.jsonl")
    pred_dir = tmp_path / "resumed" / "r" / "predictions"
    pred_dir.mkdir(parents=True)
    write(pred_dir / "demo_m3it_zh.rank0.jsonl", made[0:8:2][:3])  # rank 0 had finished 3 of its 4
    write(pred_dir / "demo_m3it_zh.rank1.jsonl", made[1:8:2])  # rank 1 had finished all of its 4
    results, _ = evaluate(cfg(tiny_model, tmp_path / "resumed", limit=8))
    assert results.timings.samples == 1
    def untimed(preds):
        return [{k: v for k, v in p.items() if k != "seconds"} for p in preds]
    assert untimed(read_jsonl(pred_dir / "demo_m3it_zh.jsonl")) == untimed(made)
    assert not list(pred_dir.glob("*.rank*.jsonl"))
    def scores(tasks):  # the invocation record (time, config) is provenance, not a score
        return {t: {k: v for k, v in e.dump().items() if k != "invocation"} for t, e in tasks.items()}
    assert scores(results.tasks) == scores(full.tasks)


def test_task_names_are_matched_literally_in_the_run_folder(tmp_path):
    """Issue 20, case 9: a task named `t?` adopted task t1's leftover rank log (a glob match)."""
    from m3eval.results import predicted_tasks, prediction_files
    preds = tmp_path / "predictions"
    preds.mkdir()
    for name in ("t1.rank0.jsonl", "t?.rank1.jsonl", "a.b.jsonl", "t[1].jsonl"):
        (preds / name).write_text("")
    assert [f.name for f in prediction_files(tmp_path, "t?")] == ["t?.jsonl", "t?.rank1.jsonl"]
    assert [f.name for f in prediction_files(tmp_path, "t[1]")] == ["t[1].jsonl"]
    assert predicted_tasks(tmp_path) == ["a.b", "t1", "t?", "t[1]"]
