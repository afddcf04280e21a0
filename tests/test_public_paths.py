"""No path of the recording machine in results (issue 23): the published results/ folder holds
none, a run records its model and data by name and fingerprint, and a results file written
before that rule never shows its paths on the export, `compare`, lm-eval's layout or W&B."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from m3eval.public_paths import is_machine_path, public_path, public_text
from m3eval.report.compare import run_compare
from m3eval.report.export import results_json, samples_jsonl
from m3eval.report.runs import load_run
from m3eval.run.pipeline import RunConfig, RunError, evaluate

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "results" / "demo" / "tiny-llava"
MARKERS = ("/root/", "/home/", "/tmp/", "/Users/", "C:\\")  # a home, root or temp directory
SECRET = "/home/alice/ckpts/llava-ft"  # a path an older file recorded


def _strings(value):
    """Every key and string value of a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _documents(file: Path):
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [json.loads(text)]


def _paths_in(folder: Path) -> list[str]:
    """'file: string' for each string of a json/jsonl file under `folder` that names a home, root or
    temp directory, and, in the run records (results.json, run.json), any absolute path at all."""
    found = []
    for file in sorted(folder.rglob("*")):
        if file.suffix not in (".json", ".jsonl"):
            continue
        record = file.name in ("results.json", "run.json")
        for doc in _documents(file):
            found += [f"{file.relative_to(folder)}: {s!r}" for s in _strings(doc)
                      if any(m in s for m in MARKERS) or (record and is_machine_path(s))]
    return found


def test_no_machine_path_anywhere_under_results():
    files = [f for f in (ROOT / "results").rglob("*") if f.suffix in (".json", ".jsonl")]
    assert any(f.name == "run.json" for f in files) and any(f.parent.name == "samples" for f in files)
    assert _paths_in(ROOT / "results") == []


def test_the_golden_run_names_its_model_and_data_by_name_and_fingerprint():
    results = json.loads((GOLDEN / "results.json").read_text())
    model = results["run"]["model"]
    assert model["id"] == model["args"]["pretrained"] == "tiny-llava-v4-trained400"
    assert model["revision"].startswith("local-sha256:")
    data = results["tasks"]["demo_vqa"]["invocation"]["data"]
    assert data["path"] == "vqa.parquet" and len(data["xxh3"]) == 32
    assert json.loads((GOLDEN / "run.json").read_text())["model"]["args"]["pretrained"] == model["id"]


@pytest.mark.parametrize("value, public", [
    ("/root/.cache/m3eval/tiny-llava-v4-trained400", "tiny-llava-v4-trained400"),
    ("/data/hub/models--Qwen--Qwen-VL-Chat/snapshots/" + "a" * 40, "Qwen/Qwen-VL-Chat"),
    ("~/data/okvqa/", "okvqa"), ("./runs/x.jsonl", "x.jsonl"), ("C:\\Users\\me\\model", "model"),
    ("Qwen/Qwen-VL-Chat", "Qwen/Qwen-VL-Chat"), ("gpt2", "gpt2"), ("https://host/v1", "https://host/v1"),
    ("/", "/"), ("~approx", "~approx"), ("", ""),
])
def test_public_path(value, public):
    assert public_path(value) == public


def test_public_text_keeps_words_ids_and_urls():
    assert public_text("dataset path /home/u/d/x.parquet does not exist.") == "dataset path x.parquet does not exist."
    assert public_text("demo_vqa (/work/m3eval/tasks/demo/vqa.yaml): No such file: '/tmp/p/a.jpg'") == \
        "demo_vqa (vqa.yaml): No such file: 'a.jpg'"
    assert public_text("openai:/tmp/x/tiny-llava") == "openai:tiny-llava"
    kept = "org/name at https://host:8000/v1/models, 1/2 and a / b"
    assert public_text(kept) == kept


def test_settings_lose_their_paths_but_generation_text_is_kept():
    from m3eval.record import RunBlock
    block = RunBlock(name="r", config={"gen_kwargs": {"stop": ["/n"]}, "tasks": ["/home/u/t.yaml"],
                                       "dataset_overrides": {"t": "/tmp/a/b.jsonl"}})
    assert block.config == {"gen_kwargs": {"stop": ["/n"]}, "tasks": ["t.yaml"], "dataset_overrides": {"t": "b.jsonl"}}


@pytest.fixture()
def older_run(tmp_path) -> Path:
    """The golden run as an older m3eval wrote it: the model folder, an override file, a task's data
    and a failed sample's message under a home directory."""
    run = tmp_path / "old" / "tiny-llava"
    shutil.copytree(GOLDEN, run)
    results = json.loads((run / "results.json").read_text())
    blocks = [results["run"], *(e["invocation"] for e in results["tasks"].values())]
    for block in blocks:
        block["model"]["id"] = block["model"]["args"]["pretrained"] = SECRET
        block["config"]["dataset_overrides"] = {"demo_vqa": f"{SECRET}/../data/vqa.parquet"}
    for entry in results["tasks"].values():
        entry["invocation"]["data"]["path"] = f"{SECRET}/data/{entry['invocation']['data']['path']}"
    results["run"]["failures"] = [f"demo_x ({SECRET}/tasks/x.yaml): dataset path {SECRET}/x.jsonl does not exist"]
    (run / "results.json").write_text(json.dumps(results, indent=2))
    samples = run / "samples" / "demo_vqa.jsonl"
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    rows[0]["error"] = f"MediaError: cannot open {SECRET}/images/0.png"
    samples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert SECRET in (run / "results.json").read_text() and SECRET in samples.read_text()
    return run


def test_an_older_files_paths_never_reach_the_readers(older_run, tmp_path, capsys):
    run = load_run(older_run)
    assert run.model_id == "llava-ft" and SECRET not in json.dumps(run.results.dump())
    assert run.results.run.failures == ["demo_x (x.yaml): dataset path x.jsonl does not exist"]
    records, _ = run.load_samples("demo_vqa")
    assert records[0].error == "MediaError: cannot open 0.png"
    lm_eval = json.dumps([results_json(run), *(samples_jsonl(run, t) for t in run.tasks)])
    assert SECRET not in lm_eval and "pretrained=llava-ft" in lm_eval
    assert run_compare(GOLDEN, older_run, fmt="markdown") == 0
    assert SECRET not in capsys.readouterr().out
    from m3eval.cli import main
    assert main(["leaderboard", "--results", str(older_run.parent), "--export", str(tmp_path / "board.html")]) == 0
    assert "/home/alice" not in (tmp_path / "board.html").read_text(encoding="utf-8")


def test_wandb_never_gets_an_older_files_paths(older_run, tmp_path):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'm3eval[wandb]')")
    from tests.test_export import m3eval, wandb_records
    r = m3eval("export", str(older_run), "--wandb-project", "m3eval-test",
               env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb"), "WANDB_SILENT": "true"})
    assert r.returncode == 0, r.stderr
    (run_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    config = {item.key: json.loads(item.value_json) for rec in wandb_records(run_file)
              if rec.WhichOneof("record_type") == "run" for item in rec.run.config.update}
    assert config["model"]["id"] == "llava-ft" and "/home/alice" not in json.dumps(config)
    tables = [f.read_text() for f in run_file.parent.glob("files/media/table/*/*.table.json")]
    assert tables and not any("/home/alice" in t for t in tables)


def _cfg(model: Path, out: Path, limit: int, data: Path) -> RunConfig:
    return RunConfig(tasks=["demo_vqa"], output=out, model_args={"pretrained": str(model)}, run_name="r",
                     limit=limit, dataset_overrides={"demo_vqa": str(data)}, progress=False)


def test_a_run_records_no_path_and_resumes_from_the_fingerprint(tiny_model, tmp_path):
    data = tmp_path / "mine" / "vqa_copy.parquet"
    data.parent.mkdir()
    shutil.copy(ROOT / "tasks" / "demo" / "data" / "vqa.parquet", data)
    model = tmp_path / "a" / "ckpt"
    shutil.copytree(tiny_model, model)
    results, failures = evaluate(_cfg(model, tmp_path / "out", 3, data))
    assert failures == [] and results is not None
    assert results.run.model["id"] == results.run.model["args"]["pretrained"] == "ckpt"
    assert results.run.config["dataset_overrides"] == {"demo_vqa": "vqa_copy.parquet"}
    ident = json.loads((tmp_path / "out" / "r" / "run.json").read_text())
    assert ident["model"]["args"]["pretrained"] == "ckpt" and ident["data"]["demo_vqa"]["path"] == "vqa_copy.parquet"
    assert ident["model_revision"] == results.run.model["revision"]
    found = _paths_in(tmp_path / "out")
    assert found == [] and str(tmp_path) not in "".join(f.read_text(errors="replace")
                                                        for f in (tmp_path / "out").rglob("*.json*"))
    # the same weights moved elsewhere: the same run, resumed (the 3 predictions kept)
    moved = tmp_path / "b" / "ckpt"
    shutil.move(model.parent, moved.parent)
    again, _ = evaluate(_cfg(moved, tmp_path / "out", 5, data))
    assert again.timings.samples == 2 and again.tasks["demo_vqa"].n_samples == 5
    # other weights under the same folder name: refused, the fingerprint tells them apart
    from m3eval.demo.tiny_model import build_tiny_model
    other = tmp_path / "c" / "ckpt"
    build_tiny_model(other, seed=1)
    with pytest.raises(RunError, match="the model's weights changed"):
        evaluate(_cfg(other, tmp_path / "out", 6, data))
