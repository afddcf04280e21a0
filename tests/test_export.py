"""`m3eval export`: lm-eval's results schema and samples files, and W&B logging (offline)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from m3eval.report.export import Z95, sanitize
from m3eval.results import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "demo" / "tiny-llava"


def m3eval(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m3eval", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_export_writes_lm_eval_results_and_samples(tmp_path):
    r = m3eval("export", str(RUN), "--format", "lm-eval", "--output", str(tmp_path))
    assert r.returncode == 0, r.stderr
    ours = json.loads((RUN / "results.json").read_text())
    (folder,) = tmp_path.iterdir()
    assert folder.name == sanitize(ours["run"]["model"]["id"]) and "/" not in folder.name
    (results_file,) = folder.glob("results_*.json")
    res = json.loads(results_file.read_text())
    assert set(res["results"]) == set(ours["tasks"])
    for task, entry in ours["tasks"].items():
        row = res["results"][task]
        assert row["alias"] == task
        for name, metric in entry["metrics"].items():
            assert row[f"{name},none"] == metric["value"]
            lo, hi = metric["ci"]
            assert row[f"{name}_stderr,none"] == pytest.approx((hi - lo) / (2 * Z95))
        assert res["versions"][task] == entry["version"]
        assert res["n-samples"][task] == {"original": entry["n_samples"], "effective": entry["n_samples"]}
        assert res["configs"][task]["test_split"] == entry["dataset"]["split"]
        assert res["higher_is_better"][task] == {n: True for n in entry["metrics"]}
        assert res["task_hashes"][task] == entry["hash"]

        samples = read_jsonl(next(folder.glob(f"samples_{task}_*.jsonl")))
        ours_samples = read_jsonl(RUN / "samples" / f"{task}.jsonl")
        assert len(samples) == len(ours_samples) == entry["n_samples"]
        for s, o in zip(samples, ours_samples):
            assert s["resps"] == [[o["prediction"]]] and s["doc"]["id"] == o["id"]
            assert s["filtered_resps"] == ["" if o["extracted"] is None else o["extracted"]]
            assert s["metrics"] == list(o["scores"]) and all(s[m] == v for m, v in o["scores"].items())
            assert len(s["doc_hash"]) == len(s["prompt_hash"]) == len(s["target_hash"]) == 64
    assert res["config"]["model"] == "hf" and res["groups"]["demo"]


def test_export_needs_something_to_do():
    r = m3eval("export", str(RUN))
    assert r.returncode == 2 and "--format lm-eval" in r.stderr  # a usage error


def wandb_records(path: Path) -> list:
    """The records of an offline W&B run file, decoded with W&B's own protobuf classes: the
    file is a LevelDB-style log (a 7-byte W&B header, then 32 KiB blocks of records, each
    with a 7-byte header: crc32, length, type 1 full / 2 first / 3 middle / 4 last)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, pos, block, chunks, buf = path.read_bytes(), 7, 32768, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 2):
            buf = chunk
        elif kind in (3, 4):
            buf += chunk
        if kind in (1, 4):
            chunks.append(buf)
    records = []
    for c in chunks:
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(c)
        records.append(rec)
    return records


def test_wandb_logging_offline(tmp_path):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'm3eval[wandb]')")
    r = m3eval("export", str(RUN), "--wandb-project", "m3eval-test",
               env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"})
    assert r.returncode == 0, r.stderr
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    # The run's summary: the last value of each logged key, nested keys as tuples.
    logged = {tuple(item.nested_key) or (item.key,): json.loads(item.value_json)
              for rec in records if rec.WhichOneof("record_type") == "summary" for item in rec.summary.update}
    config = {item.key: json.loads(item.value_json)
              for rec in records if rec.WhichOneof("record_type") == "run" for item in rec.run.config.update}
    ours = json.loads((RUN / "results.json").read_text())
    for task, entry in ours["tasks"].items():
        for name, metric in entry["metrics"].items():
            assert logged[(f"{task}/{name}",)] == pytest.approx(metric["value"])
        assert logged[(f"{task}/samples", "_type")] == "table-file"
        assert logged[(f"{task}/samples", "nrows")] == entry["n_samples"]
        (table_file,) = run_file.parent.glob(f"files/media/table/{task}/samples_*.table.json")
        table = json.loads(table_file.read_text())
        samples = read_jsonl(RUN / "samples" / f"{task}.jsonl")
        assert [row[table["columns"].index("prediction")] for row in table["data"]] == \
            [s["prediction"] for s in samples]
    assert config["m3eval_run"] == "tiny-llava"
    assert config["config"]["seed"] == ours["run"]["config"]["seed"]
