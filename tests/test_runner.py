"""The spine end to end with the tiny real model: batch-size invariance, resume
after a crash, bad samples counted not fatal, re-scoring without a model."""
from __future__ import annotations

import base64
import json
import multiprocessing
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

from m3eval.models.registry import register_backend
from m3eval.models.hf import HFAdapter
from m3eval.record import Results
from m3eval.results import read_jsonl
from m3eval.run.pipeline import RunConfig, RunError, evaluate
from m3eval.scoring.rescore import rescore

TASKS = ["demo_vqa", "demo_mc", "demo_m3it_zh", "demo_video_frames", "demo_video_qa"]


def run(tiny_model: Path, out: Path, **kw) -> Results:
    cfg = RunConfig(tasks=kw.pop("tasks", TASKS), output=out, model_args={"pretrained": str(tiny_model)},
                    run_name="r", progress=False, **kw)
    results, failures = evaluate(cfg)
    assert failures == [] or kw.get("dataset_overrides")
    return results


def predictions(run_dir: Path) -> dict[str, str]:
    out = {}
    for f in sorted((run_dir / "predictions").glob("*.jsonl")):
        for row in read_jsonl(f):
            out[f"{f.stem}/{row['id']}"] = row["prediction"]
    return out


def metric_values(results: Results) -> dict:
    return {t: {m: (v.value, v.ci) for m, v in e.metrics.items()} for t, e in results.tasks.items()}


@pytest.fixture(scope="module")
def bs8(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bs8")
    return run(tiny_model, out, batch_size=8, limit=24), out / "r"


def test_predictions_identical_at_batch_size_1_and_8(tiny_model, tmp_path, bs8):
    results8, dir8 = bs8
    results1 = run(tiny_model, tmp_path, batch_size=1, limit=24)
    p1, p8 = predictions(tmp_path / "r"), predictions(dir8)
    assert len(p8) == 24 * 3 + 16 + 8 and p1 == p8
    assert len(set(p8.values())) > 10  # the model really answers differently per sample
    assert metric_values(results1) == metric_values(results8)
    # the consolidated file is in dataset order, whatever the batch order was
    ids = [r["id"] for r in read_jsonl(dir8 / "predictions" / "demo_vqa.jsonl")]
    assert ids == [str(1000 + i) for i in range(24)]


def test_results_file_has_scores_counts_provenance_and_timings(bs8):
    results, run_dir = bs8
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk == results.dump() and results.format == "m3eval.results/1"
    t = results.tasks["demo_vqa"]
    assert t.n_samples == 24 and t.n_errors == 0 and len(t.hash) == 64
    assert 0 <= t.metrics["vqa_accuracy"].value <= 1
    lo, hi = t.metrics["vqa_accuracy"].ci
    assert lo <= t.metrics["vqa_accuracy"].value <= hi
    run_info = results.run
    assert run_info.model["backend"] == "hf" and run_info.config["seed"] == 0
    assert run_info.versions["transformers"] and "git_sha" in run_info.dump()
    for k in ("load_s", "generate_s", "score_s", "total_s", "samples_per_s"):
        assert getattr(results.timings, k) >= 0
    assert results.tasks["demo_video_qa"].video["short"] == 1  # video0 has 6 frames < 8
    rec = read_jsonl(run_dir / "samples" / "demo_vqa.jsonl")[0]
    assert {"id", "prompt", "prediction", "references", "scores", "error", "media"} <= set(rec)
    assert (run_dir / rec["media"][0]).stat().st_size > 0
    assert "demo" not in results.groups  # only groups whose tasks all ran


class Crash(Exception):
    pass


class CrashingAdapter(HFAdapter):
    """A real HF adapter that dies on its third batch, like a preempted job."""

    calls = 0

    def generate_prepared(self, inputs, gen):  # the model thread's only call (see prefetch.Decoded)
        CrashingAdapter.calls += 1
        if CrashingAdapter.calls == 3:
            raise KeyboardInterrupt
        return super().generate_prepared(inputs, gen)


def test_crash_midway_loses_nothing_and_resume_generates_only_the_rest(tiny_model, tmp_path, bs8):
    register_backend("crashing-hf", CrashingAdapter)
    cfg = RunConfig(tasks=["demo_vqa"], output=tmp_path, model="crashing-hf",
                    model_args={"pretrained": str(tiny_model)}, run_name="r", batch_size=8, limit=24,
                    progress=False)
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg)
    assert not multiprocessing.active_children()  # the decoding worker stopped with the run
    log = tmp_path / "r" / "predictions" / "demo_vqa.rank0.jsonl"
    assert len(read_jsonl(log)) == 16  # two finished batches were on disk before the crash
    with open(log, "a") as f:
        f.write('{"id": "torn')  # and a torn half-line from the moment of death
    results, _ = evaluate(cfg)
    assert results.timings.samples == 8  # only the third batch was generated again
    assert not log.exists()
    assert predictions(tmp_path / "r") == {k: v for k, v in predictions(bs8[1]).items() if k.startswith("demo_vqa/")}


def test_resume_refuses_a_different_model(tiny_model, tmp_path):
    run(tiny_model, tmp_path, tasks=["demo_mc"], limit=4)
    cfg = RunConfig(tasks=["demo_mc"], output=tmp_path, model_args={"pretrained": str(tiny_model), "dtype": "float32"},
                    run_name="r", progress=False)
    with pytest.raises(RunError, match="different model"):
        evaluate(cfg)


def test_corrupt_image_is_a_counted_sample_error(tiny_model, tmp_path):
    rows = [json.loads(line) for line in (Path("tasks/demo/data/m3it_caption_zh.jsonl")).read_text().splitlines()][:6]
    rows[2]["image_base64_str"] = [base64.b64encode(b"not an image at all").decode()]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    results = run(tiny_model, tmp_path, tasks=["demo_m3it_zh"], dataset_overrides={"demo_m3it_zh": str(bad)})
    t = results.tasks["demo_m3it_zh"]
    assert t.n_samples == 6 and t.n_errors == 1
    rec = {r["id"]: r for r in read_jsonl(tmp_path / "r" / "samples" / "demo_m3it_zh.jsonl")}
    assert "image" in rec["2"]["error"] and rec["2"]["scores"]["rouge_l"] == 0
    assert all(rec[i]["error"] is None for i in "01345")


def test_rescore_without_a_model_reproduces_the_scores(bs8, tmp_path):
    results, run_dir = bs8
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    again = rescore(copy)
    assert metric_values(again) == metric_values(results)
    assert again.run.rescored and again.timings.generate_s == results.timings.generate_s


def test_missing_data_file_fails_that_task_only(tiny_model, tmp_path):
    cfg = RunConfig(tasks=["demo_mc", "demo_vqa"], output=tmp_path, model_args={"pretrained": str(tiny_model)},
                    run_name="r", limit=4, progress=False, dataset_overrides={"demo_vqa": str(tmp_path / "gone.parquet")})
    results, failures = evaluate(cfg)
    assert list(results.tasks) == ["demo_mc"]
    assert len(failures) == 1 and "demo_vqa" in failures[0] and "gone.parquet" in failures[0]


class WhereRecordingAdapter(HFAdapter):
    """Records which process and thread build inputs (processor: chat template + images) and
    which generate, in a file: the processor may run in a worker process."""

    log: Path

    def _record(self, kind: str) -> None:
        with open(WhereRecordingAdapter.log, "a") as f:
            f.write(f"{kind} {os.getpid()} {threading.current_thread() is threading.main_thread()}\n")

    def _prepare(self, batch):
        self._record("processor")
        return super()._prepare(batch)

    def generate_prepared(self, inputs, gen):
        self._record("generate")
        return super().generate_prepared(inputs, gen)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_processor_runs_off_the_model_thread_and_predictions_stay_identical(tiny_model, tmp_path, bs8, mode,
                                                                            monkeypatch):
    monkeypatch.setenv("M3EVAL_PREFETCH", mode)
    register_backend("where-recording-hf", WhereRecordingAdapter)
    WhereRecordingAdapter.log = tmp_path / "where.log"
    cfg = RunConfig(tasks=["demo_vqa", "demo_mc"], output=tmp_path, model="where-recording-hf",
                    model_args={"pretrained": str(tiny_model)}, run_name="r", batch_size=8, limit=24,
                    progress=False)
    evaluate(cfg)
    assert not multiprocessing.active_children()
    seen = [line.split() for line in WhereRecordingAdapter.log.read_text().splitlines()]
    me = str(os.getpid())
    where = {(kind, pid == me, on_main) for kind, pid, on_main in seen}
    # the model thread never runs the processor: a forked worker does (or, as threads, a prefetch thread)
    processor = ("processor", False, "True") if mode == "process" else ("processor", True, "False")
    assert where == {processor, ("generate", True, "True")}
    assert sum(kind == "generate" for kind, _, _ in seen) == 6  # 2 tasks x 3 batches
    assert sum(kind == "processor" for kind, _, _ in seen) == 6
    assert predictions(tmp_path / "r") == {k: v for k, v in predictions(bs8[1]).items()
                                           if k.startswith(("demo_vqa/", "demo_mc/"))}


class BatchOOMAdapter(HFAdapter):
    """Fails every batch of more than one sample, like a GPU out of memory on long batches."""

    failed = 0

    def generate_prepared(self, inputs, gen):
        if inputs["input_ids"].shape[0] > 1:
            BatchOOMAdapter.failed += 1
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().generate_prepared(inputs, gen)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_a_failing_batch_is_generated_again_sample_by_sample(tiny_model, tmp_path, bs8, mode, monkeypatch):
    """The worker process sends no decoded images back: the fallback decodes them again here."""
    monkeypatch.setenv("M3EVAL_PREFETCH", mode)
    BatchOOMAdapter.failed = 0
    assert_16_vqa_as_bs8(BatchOOMAdapter, tiny_model, tmp_path, bs8)
    assert BatchOOMAdapter.failed == 2  # each of the 2 batches failed once, then went sample by sample


def assert_16_vqa_as_bs8(adapter: type, tiny_model, tmp_path, bs8) -> None:
    """16 demo_vqa samples through `adapter`: no errors, and the batch-size-8 run's predictions."""
    register_backend(adapter.__name__, adapter)
    cfg = RunConfig(tasks=["demo_vqa"], output=tmp_path, model=adapter.__name__,
                    model_args={"pretrained": str(tiny_model)}, run_name="r", batch_size=8, limit=16,
                    progress=False)
    results, failures = evaluate(cfg)
    assert not failures and results.tasks["demo_vqa"].n_errors == 0
    got = predictions(tmp_path / "r")
    assert len(got) == 16 and got == {k: v for k, v in predictions(bs8[1]).items() if k in got}


def test_prefetch_mode_is_process_or_thread(monkeypatch):
    from m3eval.forks import may_fork
    monkeypatch.setenv("M3EVAL_PREFETCH", "thread")
    assert not may_fork()
    monkeypatch.setenv("M3EVAL_PREFETCH", "process")
    assert may_fork() == sys.platform.startswith("linux")
    monkeypatch.setenv("M3EVAL_PREFETCH", "processes")
    with pytest.raises(ValueError, match="M3EVAL_PREFETCH='processes'"):
        may_fork()


class Unpicklable:
    """Inputs a remote-code processor might return: no pickling."""

    def __init__(self, inputs):
        self.inputs = inputs

    def __reduce__(self):
        raise TypeError("cannot pickle this processor output")


class UnpicklableInputsAdapter(HFAdapter):
    def preprocess(self, batch, gen=None):
        return Unpicklable(super().preprocess(batch, gen))

    def generate_prepared(self, inputs, gen):
        return super().generate_prepared(inputs.inputs, gen)


def test_inputs_that_cannot_be_pickled_are_built_again_in_the_models_process(tiny_model, tmp_path, bs8):
    assert_16_vqa_as_bs8(UnpicklableInputsAdapter, tiny_model, tmp_path, bs8)


def test_a_crash_inside_the_decoding_worker_stops_it_at_once(tiny_model, tmp_path, monkeypatch):
    """A bug in decoding is an error of the run, and the worker does not outlive it (even while
    the exception, whose traceback holds the loader, is still alive)."""
    from m3eval.run import prefetch

    def broken(sample, rule, media_dir, max_images=None):
        raise RuntimeError("a decoding bug")
    monkeypatch.setattr(prefetch, "prepare", broken)
    cfg = RunConfig(tasks=["demo_vqa"], output=tmp_path, model_args={"pretrained": str(tiny_model)},
                    run_name="r", batch_size=8, limit=16, progress=False)
    with pytest.raises(RuntimeError, match="a decoding bug"):
        evaluate(cfg)
    assert not multiprocessing.active_children()


def test_a_streaming_backend_keeps_its_decoding_in_process(monkeypatch):
    """A plugin with both `generate_stream` and `preprocess` is sent messages, so no worker
    process may take the decoded images away from it."""
    from concurrent.futures import ThreadPoolExecutor

    from m3eval.models.base import adapt
    from m3eval.run import prefetch

    class StreamingSplitter:
        splits_preprocessing = True

        def generate(self, batch, gen):
            raise AssertionError("a streaming backend is sent its samples through generate_stream")

        def preprocess(self, batch, gen):
            return batch

        def generate_stream(self, items):
            return iter(())

    def no_worker(*_):
        raise AssertionError("a worker process for a streaming backend")
    monkeypatch.setattr(prefetch, "_in_process", no_worker)
    monkeypatch.setenv("M3EVAL_PREFETCH", "process")
    plan = type("Plan", (), {"batches": [[]]})()
    with ThreadPoolExecutor(1) as pool:
        stream = prefetch.decoded_stream([plan], adapt(StreamingSplitter(), "splitter"), pool)
        assert stream.gi_code.co_name == "_in_threads"
