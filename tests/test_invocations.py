"""results.json of a run folder filled by several invocations; --instructions all beside tasks without
variants (issue 8.8, issue 11.7). Real runs of the tiny model."""
from __future__ import annotations

import json
from pathlib import Path

from m3eval.report.runs import load_run
from m3eval.report.tables import format_results
from m3eval.run.pipeline import RunConfig, evaluate
from m3eval.scoring.rescore import rescore


def cfg(model_dir: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(tasks=kw.pop("tasks"), output=out, model_args={"pretrained": str(model_dir)},
                     run_name="r", progress=False, **kw)


def test_each_task_keeps_its_own_invocation(tiny_model, tmp_path):
    evaluate(cfg(tiny_model, tmp_path, tasks=["demo_vqa"], limit=4))
    results, failures = evaluate(cfg(tiny_model, tmp_path, tasks=["demo_mc"], limit=6, batch_size=1))
    assert not failures
    a, b = results.tasks["demo_vqa"], results.tasks["demo_mc"]
    assert (a.n_samples, b.n_samples) == (4, 6)
    assert a.invocation.config["limit"] == 4 and a.invocation.config["batch_size"] == 8
    assert b.invocation.config["limit"] == 6 and b.invocation.config["batch_size"] == 1
    assert b.invocation.config["resolved_tasks"] == ["demo_mc"]
    for entry in (a, b):
        inv = entry.invocation
        # the model folder by its name (its content: the revision beside it), never its path
        assert inv.model["args"] == {"pretrained": tiny_model.name} and inv.versions["numpy"]
        assert inv.model["id"] == tiny_model.name and inv.model["revision"].startswith("local-sha256:")
        assert inv.created and "git_sha" in inv.dump() and len(entry.references_sha256) == 64
    run = results.run
    assert run.merged is True and run.config["limit"] == 6  # the run block: the latest invocation
    assert [(i.tasks, i.limit, i.batch_size) for i in run.invocations] == [
        (["demo_vqa"], 4, 8), (["demo_mc"], 6, 1)]
    on_disk = json.loads((tmp_path / "r" / "results.json").read_text())
    assert on_disk["tasks"]["demo_vqa"]["invocation"] == a.invocation.dump()
    again = rescore(tmp_path / "r")  # re-scoring keeps which invocation generated each task
    assert again.tasks["demo_vqa"].invocation == a.invocation and again.run.merged is True
    load_run(tmp_path / "r")  # still a valid results file


def test_instructions_all_mixes_tasks_with_and_without_variants(tiny_model, tmp_path):
    results, failures = evaluate(cfg(tiny_model, tmp_path, tasks=["demo_vqa", "demo_m3it_caption"], limit=3,
                                     instructions="all"))
    assert not failures and set(results.tasks) == {"demo_vqa", "demo_m3it_caption"}
    single = results.tasks["demo_vqa"]
    assert single.instructions.dump() == {"n": 1, "mode": "single (task has no variants)"}
    assert single.n_samples == 3
    varied = results.tasks["demo_m3it_caption"].instructions
    assert varied.n > 1 and len(varied.per_instruction) == varied.n
    assert results.tasks["demo_m3it_caption"].clusters.dump() == {
        "key": "sample id without its #i<k> instruction suffix", "n": 3}
    table = format_results(results)
    assert "instructions: single (task has no variants)" in table
    assert f"rouge_l over {varied.n} instructions" in table and "min-max" in table and " ± " in table
