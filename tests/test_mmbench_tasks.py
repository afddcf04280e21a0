"""MMBench dev, English and Chinese (tasks/instruction/mmbench_*_dev.yaml), end to end on a local dataset in the
hub's schema (lmms-lab/MMBench: every circular shift a row, index + k * 1e6; Pillow images, parquet), with one
question cut to 2 of its 4 shifts: the prompts and options the task files build, `m3eval run` on the tiny model
and `m3eval score --predictions` of chosen answers, each checked against the port of VLMEvalKit
(tests/reference/mmbench_circular.py); then the judged option (circular_accuracy_judged, tasks/judge/).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
from reference import mmbench_circular as ref
from test_mmbench import L2, L2_OF

from m3eval.data.synthetic import draw_image
from m3eval.metrics.base import MetricInput
from m3eval.tasks.registry import Registry


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.delenv("VERBOSE", raising=False)  # the port's can_infer_option reads it


QUESTIONS = [  # (index, options, gold, category, hint); question 4 keeps 2 of its 4 shifts (a cut file)
    (1, ["cat", "dog", "bird", "fish"], 1, "image_scene", "A photo of a park."),
    (2, ["red", "blue"], 0, "ocr", None),
    (3, ["left", "right", "middle"], 2, "image_scene", None),
    (4, ["one", "two", "three", "four"], 3, "future_prediction", None),
]


def write_mmbench(path: Path, cn: bool) -> Path:
    """A dev split in the hub's schema (lmms-lab/MMBench): config en stores index as a string and a missing
    option or hint as "nan" here, config cn as int64 and null."""
    rows = []
    for g, options, gold, category, hint in QUESTIONS:
        n = len(options)
        for k in range(n if g != 4 else 2):
            shifted = options[k:] + options[:k]
            index = g + k * 1_000_000
            missing: Any = None if cn else "nan"
            rows.append({
                "index": index if cn else str(index), "question": ("这是什么？" if cn else "What is it?") + f" {g}",
                "hint": hint if hint else missing, "answer": chr(65 + shifted.index(options[gold])),
                **{chr(65 + i): shifted[i] if i < n else missing for i in range(4)},
                "category": category, "image": draw_image(g, (32, 32)), "source": "test",
                "L2-category": L2_OF[category], "comment": missing, "split": "dev"})
    s = datasets.Value("string")
    feats = {"index": datasets.Value("int64") if cn else s, "question": s, "hint": s, "answer": s, "A": s, "B": s,
             "C": s, "D": s, "category": s, "image": datasets.Image(), "source": s, "L2-category": s, "comment": s,
             "split": s}
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(path))
    return path


def test_task_files_build_the_prompts_choices_and_questions(tmp_path):
    from m3eval.data.task_samples import load_task_data

    reg = Registry.discover()
    for task, cn in (("mmbench_en_dev", False), ("mmbench_cn_dev", True)):
        spec = reg.tasks[task]
        data = write_mmbench(tmp_path / task / "dev.parquet", cn)
        samples = load_task_data(spec, None, "default", str(data)).samples
        assert len(samples) == 11 and all(s.failure is None for s in samples)
        first = samples[0]
        suffix = "请直接回答选项字母。" if cn else "Answer with the option's letter from the given choices directly."
        question = "这是什么？ 1" if cn else "What is it? 1"
        assert first.prompt == f"A photo of a park.\n{question}\nA. cat\nB. dog\nC. bird\nD. fish\n{suffix}"
        two = next(s for s in samples if s.id == "1000002")  # question 2, shifted once; no hint, no C/D
        assert two.prompt.startswith(("这是什么？ 2" if cn else "What is it? 2") + "\nA. blue\nB. red\n")
        assert two.choices == ["blue", "red"] and two.references == ["B"] and two.cluster == "2"
        assert [s.category for s in samples[:4]] == ["image_scene"] * 4
        assert spec.language == ("zh" if cn else "en")
        assert spec.metrics[0].args["category_groups"] == L2 and spec.category_metrics == [m.name for m in spec.metrics]


def _check_results(task_entry: dict[str, Any], records: list[dict[str, Any]], dataset: Path) -> None:
    """results.json's numbers == VLMEvalKit's on the same predictions (question 4 left out: it is incomplete)."""
    circ = task_entry["metrics"]["circular_accuracy"]
    assert circ["details"]["n_excluded_questions"] == 1 and circ["details"]["excluded_questions"] == ["4"]
    assert circ["details"]["n_questions"] == 3
    table = datasets.Dataset.from_parquet(str(dataset)).remove_columns(["image"]).to_list()
    by_id = {str(r["id"]): r for r in records}
    every = [{**r, "index": int(r["index"]), "prediction": by_id[str(r["index"])]["prediction"],
              **{c: None if r[c] in (None, "nan") else r[c] for c in "ABCD"}} for r in table]
    rows = [r for r in every if r["index"] % 1_000_000 != 4]
    official = ref.evaluate_circular(rows).iloc[0]
    assert circ["value"] == official["Overall"]
    cats = task_entry["categories"]
    assert {k: v["n_samples"] for k, v in cats.items()} == {"image_scene": 7, "ocr": 2, "future_prediction": 2}
    assert cats["image_scene"]["metrics"]["circular_accuracy"]["value"] == official["image_scene"]
    assert cats["future_prediction"]["metrics"]["circular_accuracy"]["details"]["n_excluded_questions"] == 1
    assert set(cats["ocr"]["metrics"]) == {"circular_accuracy", "first_pass_accuracy"}
    first = task_entry["metrics"]["first_pass_accuracy"]  # question 4's original pass is there: scored
    assert first["details"]["n_questions"] == 4
    assert first["value"] == ref.evaluate_vanilla_circ0(every).iloc[0]["Overall"]
    groups = circ["details"]["category_groups"]
    assert set(groups) == {"coarse_perception", "finegrained_perception (instance-level)"}
    assert groups["coarse_perception"]["value"] == official["CP"]


def test_both_tasks_run_end_to_end_on_the_tiny_model(tiny_model, tmp_path):
    from m3eval.cli import main

    data = {"mmbench_en_dev": write_mmbench(tmp_path / "en" / "dev.parquet", cn=False),
            "mmbench_cn_dev": write_mmbench(tmp_path / "cn" / "dev.parquet", cn=True)}
    argv = ["run", "--model", "hf", "--model-args", f"pretrained={tiny_model}", "--tasks", ",".join(data),
            "--output", str(tmp_path / "runs"), "--run-name", "mmb", "--batch-size", "8", "--max-new-tokens", "4",
            "--threads", "1", "--no-media"]
    for task, path in data.items():
        argv += ["--dataset-override", f"{task}={path}"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "mmb"
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    for task, path in data.items():
        entry = results["tasks"][task]
        assert entry["n_samples"] == 11 and entry["n_errors"] == 0 and entry["primary_metric"] == "circular_accuracy"
        records = [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]
        _check_results(entry, records, path)
        assert entry["metrics"]["circular_accuracy"]["details"]["n_unparsed_answers"] == \
            sum(r["extracted"] is None for r in records if r["cluster"] != "4")


def test_chosen_answers_score_as_vlmevalkit_through_the_cli(tmp_path):
    """`m3eval score --predictions`: question 1 right in every shift, question 2 right in one of two, question 3
    right everywhere but in Chinese words the rules cannot read once."""
    from m3eval.cli import main

    data = write_mmbench(tmp_path / "en" / "dev.parquet", cn=False)
    table = datasets.Dataset.from_parquet(str(data)).remove_columns(["image"]).to_list()
    answers = {}
    for r in table:
        g, idx = int(r["index"]) % 1_000_000, r["index"]
        answers[idx] = {1: f"The answer is {r['answer']}.", 2: "A", 4: r["answer"]}.get(g, f"({r['answer']})")
    answers["3"] = f"答案是{next(r['answer'] for r in table if r['index'] == '3')}"  # unparsed: question 3 fails
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in answers.items()))
    assert main(["score", "--task", "mmbench_en_dev", "--predictions", str(preds), "--output", str(tmp_path / "out"),
                 "--dataset-override", f"mmbench_en_dev={data}"]) == 0
    results = json.loads((tmp_path / "out" / "preds" / "results.json").read_text(encoding="utf-8"))
    entry = results["tasks"]["mmbench_en_dev"]
    circ = entry["metrics"]["circular_accuracy"]
    assert circ["value"] == pytest.approx(1 / 3)  # question 1 only; 2 has a wrong shift, 3 an unparsed one
    assert circ["details"]["n_unparsed_answers"] == 1 and entry["n_extraction_failures"] == 1
    assert entry["categories"]["image_scene"]["metrics"]["circular_accuracy"]["value"] == 0.5
    assert entry["metrics"]["first_pass_accuracy"]["value"] == 0.75  # 1, 2 ("A" is right there), 4 right; 3 not
    records = [json.loads(line) for line in (tmp_path / "out" / "preds" / "samples" / "mmbench_en_dev.jsonl")
               .read_text().splitlines()]
    _check_results(entry, records, data)


# ---- the judged option ----------------------------------------------------------------------------------

class LetterJudge:
    """A judge backend that answers as the authors' extractor would on clear cases: the letter after "答案是" or
    "option", else "I cannot tell" (which the rules cannot read: unresolved)."""

    name = "mmb-letter-judge"
    prompts: list[str] = []

    def __init__(self, **_: Any):
        pass

    def info(self) -> dict:
        return {"backend": "rule", "id": "mmb-letter-judge", "revision": "r1"}

    def generate(self, batch, gen):
        out = []
        for msg in batch:
            text = msg[0]["text"]
            LetterJudge.prompts.append(text)
            answer = text.rsplit("Answer: ", 1)[-1] if "Your output" in text else text.rsplit("答案: ", 1)[-1]
            found = next((c for c in "ABCD" if f"答案是{c}" in answer or f"option{c}" in answer), None)
            out.append(found or "I cannot tell")
        return out


def test_judged_option_asks_the_llm_only_for_what_the_rules_leave(tmp_path, monkeypatch):
    from m3eval.metrics.base import get_metric
    from m3eval.models import registry
    from m3eval.scoring.judge import run_folder

    # registered for this test only: other tests list the known backends
    monkeypatch.setitem(registry._REGISTERED, "mmb-letter-judge", LetterJudge)
    LetterJudge.prompts.clear()
    q = lambda g, k, pred, gold, n=2: MetricInput(  # noqa: E731
        pred, [gold], ["猫", "狗", "鸟", "鱼"][:n], prompt=f"这是什么？{g}", id=str(g + k * 1_000_000), cluster=str(g))
    items = [q(1, 0, "答案是B", "B"), q(1, 1, "A", "A"),  # rules miss shift 0; the judge reads it: right
             q(2, 0, "答案是A", "B"), q(2, 1, "B", "A"),  # shift 1 is wrong by the rules: no call for shift 0
             q(3, 0, "hmm", "A"), q(3, 1, "B", "B"),  # the judge cannot tell: unresolved, the question fails
             q(4, 0, "optionC", "C", 3)]  # incomplete (1 of 3 shifts): excluded, but asked like any other
    m = get_metric("circular_accuracy_judged")
    with run_folder(tmp_path):
        r = m.compute(items, backend="mmb-letter-judge", model_args={})
    assert r.value == pytest.approx(1 / 3)
    assert len(LetterJudge.prompts) == 3 and all(p.startswith("你是一个帮助我匹配答案") for p in LetterJudge.prompts)
    assert r.details["n_judged"] == 3 and r.details["n_judge_unresolved"] == 1
    # unparsed among the scored: question 2's shift 0 (never asked: the question had failed) and question 3's
    assert r.details["n_excluded_questions"] == 1 and r.details["n_unparsed_answers"] == 2
    assert r.sample_details[0] == {"judge_output": "B", "judge_option": "B"}
    assert r.signature == "judge=mmb-letter-judge:mmb-letter-judge@r1|unresolved=1/3"
    with run_folder(tmp_path):  # re-scored from the cache
        again = m.compute(items, backend="mmb-letter-judge", model_args={})
    assert (again.value, again.details) == (r.value, r.details) and len(LetterJudge.prompts) == 3
    assert Registry.discover().tasks["mmbench_cn_dev_judged"].doc.prompt.endswith("请直接回答选项字母。")


def test_options_from_several_fields(tmp_path):
    """doc.choices as a list of fields (MMBench's A..D): trailing missing options drop, a gap fails the row."""
    from m3eval.data.task_samples import load_task_data
    from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec

    rows = [{"q": "x?", "A": "cat", "B": "dog", "C": None, "ans": "B"},
            {"q": "y?", "A": "cat", "B": None, "C": "bird", "ans": "A"},
            {"q": "z?", "A": "cat", "B": "dog", "C": "-", "ans": "A"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = TaskSpec(task="t", source=str(tmp_path / "t.yaml"), dataset=DatasetSpec(path="d.jsonl"),
                    metrics=[StepSpec(name="choice_accuracy")],
                    doc=DocSpec(prompt="{{ q }}\n{{ options }}", references="ans",
                                choices=["A", "B", "{{ C if C is not none and C != '-' else '' }}"]))
    samples = load_task_data(spec, None, "default").samples
    assert samples[0].choices == ["cat", "dog"] and samples[0].prompt == "x?\nA. cat\nB. dog"
    assert samples[1].failure is not None and "between options" in samples[1].failure.message
    assert samples[2].choices == ["cat", "dog"]
