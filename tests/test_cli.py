"""The `m3eval` command as a user runs it: exit codes and messages that name the cause."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m3eval.results import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def m3eval(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "m3eval", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_unknown_task_suggests_near_names(tiny_model, tmp_path):
    r = m3eval("run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_vqq", "--output", str(tmp_path))
    assert r.returncode == 2 and "unknown task or group 'demo_vqq'" in r.stderr and "demo_vqa" in r.stderr


def test_missing_model_path_is_a_clear_error(tmp_path):
    r = m3eval("run", "--model-args", f"pretrained={tmp_path}/nope", "--tasks", "demo_mc", "--output", str(tmp_path))
    assert r.returncode == 1 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_text_only_model_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(tmp_path / "llama")
    r = m3eval("run", "--model-args", f"pretrained={tmp_path / 'llama'}", "--tasks", "demo_mc",
               "--output", str(tmp_path))
    assert r.returncode == 1 and "image-text-to-text" in r.stderr


def test_bad_model_args_and_usage(tmp_path):
    r = m3eval("run", "--model-args", "pretrained", "--tasks", "demo_mc")
    assert r.returncode == 2 and "not key=value" in r.stderr
    assert m3eval("run", "--tasks", "demo_mc", "--instructions", "some").returncode == 2


def test_run_where_every_sample_fails_exits_nonzero(tiny_model, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "?", "inputs": "", "outputs": "x", "image_base64_str": ["!!"]}) + "\n")
    r = m3eval("run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_m3it_zh", "--output",
               str(tmp_path), "--dataset-override", f"demo_m3it_zh={bad}")
    assert r.returncode == 1 and "scored nothing" in r.stderr


def test_tasks_and_validate(tmp_path):
    r = m3eval("tasks")
    assert r.returncode == 0 and "demo_vqa" in r.stdout and "m3it_heldout" in r.stdout
    assert m3eval("validate").returncode == 0
    (tmp_path / "t.yaml").write_text("task: t\ndataset: {path: x.jsonl}\ndoc: {prompt: p, references: a}\n"
                                     "metrics: [{name: vqa_acc}]\n")
    r = m3eval("validate", str(tmp_path))
    assert r.returncode == 1 and "unknown metric 'vqa_acc'" in r.stderr and "t.yaml" in r.stderr


def test_validate_a_folder_of_the_suite_reads_each_file_once(tmp_path):
    """tasks/demo is part of the suite already loaded for the cross-file checks: no false
    'already defined' problems; a user's file that reuses a suite name still is one."""
    r = m3eval("validate", "tasks/demo")
    assert r.returncode == 0 and " 0 problems" in r.stdout, r.stderr
    (tmp_path / "dup.yaml").write_text("task: demo_vqa\ndataset: {path: x.jsonl}\n"
                                       "doc: {prompt: p, references: a}\nmetrics: [{name: exact_match}]\n")
    r = m3eval("validate", str(tmp_path))
    assert r.returncode == 1 and "'demo_vqa' is already defined in" in r.stderr and "1 files" in r.stdout


def test_score_predictions_made_elsewhere_reports_missing_and_unknown_ids(tmp_path):
    rows = [{"id": "mc000", "prediction": "A"}, {"id": "mc001", "prediction": "(F) black"},
            {"id": "zzz", "prediction": "A"}]
    f = tmp_path / "preds.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = m3eval("score", "--task", "demo_mc", "--predictions", str(f), "--output", str(tmp_path / "out"),
               "--allow-missing")
    assert r.returncode == 0, r.stderr
    assert "1 ids in" in r.stderr and "zzz" in r.stderr
    assert "30 of 32 samples of task demo_mc have no prediction" in r.stderr
    res = json.loads((tmp_path / "out" / "preds" / "results.json").read_text())["tasks"]["demo_mc"]
    assert res["n_samples"] == 32 and res["missing_ids"] == 30 and res["unknown_ids"] == 1
    assert res["metrics"]["choice_accuracy"]["value"] == pytest.approx(2 / 32)  # both given answers are right


def test_score_predictions_never_writes_into_an_existing_folder(tmp_path, cli):
    """Issue 20, case 5: `score --predictions F --output DIR` used to overwrite the run DIR/<stem of F>
    (its other tasks vanished, and a later `run` resumed with the external answers)."""
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"id": "mc000", "prediction": "A"}) + "\n")
    run = tmp_path / "out" / "r"
    (run / "predictions").mkdir(parents=True)
    (run / "results.json").write_text('{"format": "m3eval.results/1"}')
    (run / "predictions" / "demo_mc.jsonl").write_text('{"id": "mc000", "prediction": "B"}\n')
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = cli("score", "--task", "demo_mc", "--predictions", str(f), "--output", str(tmp_path / "out"),
            "--allow-missing")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{run} already exists" in r.stderr and "another --output" in r.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".m3eval.lock"} == before
    fresh = cli("score", "--task", "demo_mc", "--predictions", str(f), "--output", str(tmp_path / "new"),
                "--allow-missing")
    assert fresh.returncode == 0, fresh.stderr
    assert (tmp_path / "new" / "r" / "results.json").is_file()


def test_killed_run_resumes_where_it_stopped(tiny_model, tmp_path):
    """SIGKILL a real `m3eval run` midway; the re-run finishes only what was missing."""
    args = ["run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_m3it_caption", "--instructions",
            "all", "--batch-size", "1", "--max-new-tokens", "24", "--output", str(tmp_path), "--run-name", "r",
            "--threads", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "m3eval", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    log = tmp_path / "r" / "predictions" / "demo_m3it_caption.rank0.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= 20:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(read_jsonl(log))
    assert 20 <= done_before < 128, "the run should have been killed midway"
    r = m3eval(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["timings"]["samples"] == 128 - done_before
    preds = read_jsonl(tmp_path / "r" / "predictions" / "demo_m3it_caption.jsonl")
    assert len(preds) == 128 and len({p["id"] for p in preds}) == 128
    assert results["tasks"]["demo_m3it_caption"]["instructions"]["n"] == 4


def test_demo_command_prints_the_table(tmp_path):
    r = m3eval("demo", "--output", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "demo_vqa" in r.stdout and "vqa_accuracy" in r.stdout and "[group] demo" in r.stdout
    # issue 23: each step prints its own tasks once; a group of mixed metrics is a named mean of normalized
    # scores (CIDEr clipped as the board clips it), never a plain mean under a long label
    words = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    assert words.count("demo_vqa") == words.count("demo_grounding") == words.count("demo_retrieval") == 1
    groups = [line for line in r.stdout.splitlines() if line.startswith("[group] ") and ":" not in line.split()[1]]
    assert len(groups) == 2 and all("macro mean of normalized scores" in line for line in groups)
    assert "coco_cider as min(value / scale / 2, 1)" in r.stdout and "primary / scale" not in r.stdout
    header = r.stdout.splitlines()[0]
    assert header.index("score") - header.index("metric") <= 42  # the metric column: labels of 40 characters


def test_lm_eval_spellings_of_the_run_flags(tiny_model, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    r = m3eval("run", "--model_args", f"pretrained={tiny_model}", "--tasks", "demo_mc", "--limit", "0.2",
               "--batch_size", "4", "--output_path", str(tmp_path / "out"), "--include_path", str(extra),
               "--log_samples", "--gen_kwargs", "max_new_tokens=3,temperature=0,until=###", "--run-name", "lm")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "lm" / "results.json").read_text())
    cfg = res["run"]["config"]
    assert cfg["limit"] == 0.2 and cfg["batch_size"] == 4
    assert cfg["gen_kwargs"] == {"max_new_tokens": 3, "temperature": 0, "stop": ["###"], "do_sample": False}
    assert res["tasks"]["demo_mc"]["n_samples"] == 7  # ceil(32 * 0.2), as lm-eval rounds a fraction
    # The override reaches the task definition, so a resume with other settings is refused.
    r = m3eval("run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_mc", "--limit", "0.2",
               "--output", str(tmp_path / "out"), "--run-name", "lm")
    assert r.returncode == 1 and "generation settings changed" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--limit", "0"], "--limit: expected a whole number >= 1 or a fraction"),
    (["--limit", "2.5"], "--limit: expected a whole number >= 1 or a fraction"),
    (["--gen_kwargs", "top_k=5"], "--gen_kwargs: unknown key 'top_k'"),
    (["--gen_kwargs", "top_p=2"], "--gen_kwargs: top_p"),
])
def test_bad_lm_eval_flags_are_usage_errors(args, message):
    r = m3eval("run", "--tasks", "demo_mc", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_resume_says_so_and_does_not_load_a_model_with_nothing_left(tiny_model, tmp_path):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    args = ["run", "--model-args", f"pretrained={model}", "--tasks", "demo_mc", "--limit", "4",
            "--output", str(tmp_path / "out")]
    first = m3eval(*args)
    assert first.returncode == 0 and f"loading {model}" in first.stderr and "resuming" not in first.stderr
    shutil.rmtree(model)  # loading it again would fail
    again = m3eval(*args)
    assert again.returncode == 0, again.stderr
    assert "resuming: 4 of 4 samples already done" in again.stderr and "the model is not loaded" in again.stderr
    assert "loading" not in again.stderr.replace("not loaded", "")
    res = json.loads((tmp_path / "out" / "model" / "results.json").read_text())
    assert res["run"]["model"]["class"] == "LlavaForConditionalGeneration"  # described from the first run


def test_leaderboard_takes_an_address():
    from m3eval.cli import build_parser
    a = build_parser().parse_args(["leaderboard", "--address", "0.0.0.0", "--port", "8600"])
    assert (a.address, a.port) == ("0.0.0.0", 8600)


def test_a_run_takes_arrows_buffers_from_the_system_allocator_unless_the_user_chose(monkeypatch, tmp_path):
    """Arrow's mimalloc pool keeps what datasets frees converting a new file: it stays in the run's peak
    (benchmarks/bench_memory.py). `m3eval run` sets ARROW_DEFAULT_MEMORY_POOL before it loads data, and
    pyarrow takes it when its pool is first made (a fresh process)."""
    from m3eval import cli
    from m3eval.run import pipeline

    seen = []

    def evaluate(cfg, registry=None):
        seen.append(os.environ.get("ARROW_DEFAULT_MEMORY_POOL"))
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    for chosen in (None, "jemalloc"):
        if chosen is None:
            monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
        else:
            monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", chosen)
        cli.main(["run", "--model-args", "pretrained=x", "--tasks", "demo_vqa", "--output", str(tmp_path)])
    assert seen == ["system", "jemalloc"]
    code = "import pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "system"
