"""`m3eval metrics` lists every metric and filter with its arguments, scale and source, without
importing torch, transformers or datasets."""
import json
import os
import subprocess
import sys
from pathlib import Path

from m3eval.scoring.filters import filter_names
from m3eval.metrics import metric_names

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    code = ("import sys; from m3eval.cli import main; rc = main(sys.argv[1:]); "
            "heavy = sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)); "
            "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, "metrics", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_metrics_command_lists_everything_light():
    r = _run()
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stderr
    for name in metric_names() + filter_names():
        assert f"\n  {name}  " in r.stdout, name
    assert "vqa_accuracy  [0-1]  mean  args: -" in r.stdout
    assert "aokvqa_da  [0-1]  mean  args: normalize=False" in r.stdout
    assert "[0-100]  corpus" in r.stdout and "coco_cider  [0-10 (CIDEr-D x10" in r.stdout
    assert "GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py @ a013f00" in r.stdout
    assert "allenai/aokvqa evaluation/eval_predictions.py @ 42e8c44ff40d13cf272776a3197365f582137772" in r.stdout


def test_metrics_command_json():
    r = _run("--format", "json")
    assert r.returncode == 0, r.stderr
    cat = json.loads(r.stdout)
    metrics = {m["name"]: m for m in cat["metrics"]}
    assert set(metrics) == set(metric_names()) and {f["name"] for f in cat["filters"]} == set(filter_names())
    assert metrics["rouge_l"]["args"] == {"use_stemmer": False} and metrics["bleu"]["scale"] == "0-100"
    assert all(m["source"] for m in cat["metrics"])
    first_line = next(f for f in cat["filters"] if f["name"] == "first_line")
    assert first_line["args"] == {"skip_empty": True} and "YING-VLM" in first_line["source"]
    regex = next(f for f in cat["filters"] if f["name"] == "regex")
    assert regex["args"]["pattern"] == "required"
