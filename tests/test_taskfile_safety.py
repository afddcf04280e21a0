"""Hostile or broken task files: a YAML alias bomb, a group that includes itself, a
template that does not compile, a template that expands without bound. Each gets a
clear error naming its file (or row), and never takes down work on other tasks
(issues 8.11, 10.1, 10.2, 10.9)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m3eval.data.samples import build_samples
from m3eval.data.sources import load_dataset_rows
from m3eval.run.pipeline import RunConfig, evaluate
from m3eval.prompts import MAX_PROMPT_CHARS, TemplateLimitError, render
from m3eval.run.prefetch import prepare
from m3eval.data.media import VideoRule
from m3eval.tasks.loader import TaskError, load_file
from m3eval.tasks.registry import Registry
from test_tasks import BASE, write  # the same minimal task file

ROOT = Path(__file__).resolve().parents[1]


def alias_bomb(levels: int = 9) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\ntask: bomb\n"


def m3eval(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m3eval", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_alias_bomb_is_refused_fast_and_other_tasks_load(tmp_path):
    write(tmp_path, "t1.yaml", BASE)
    bomb = write(tmp_path, "bomb.yaml", alias_bomb())
    t = time.perf_counter()
    with pytest.raises(TaskError, match=r"bomb\.yaml: the YAML expands to more than"):
        load_file(bomb)
    reg = Registry.discover([tmp_path], builtin=False)
    assert time.perf_counter() - t < 10  # it hung for ~50 s and took 1.6 GB before
    assert "t1" in reg.tasks and len(reg.errors) == 1 and "bomb.yaml" in reg.errors[0]


def test_alias_bomb_on_the_include_path_does_not_hang_the_commands(tmp_path):
    write(tmp_path, "bomb.yaml", alias_bomb())
    r = m3eval("validate", str(tmp_path))
    assert r.returncode == 1 and "bomb.yaml: the YAML expands" in r.stderr and "Traceback" not in r.stderr
    r = m3eval("tasks", env={"M3EVAL_INCLUDE_PATH": str(tmp_path)})
    assert "demo_vqa" in r.stdout and "bomb.yaml" in r.stderr and "Traceback" not in r.stderr


def test_a_group_including_itself_is_set_aside_at_discovery(tmp_path):
    write(tmp_path, "t1.yaml", BASE)
    write(tmp_path, "loop.yaml", "group: loop\ntasks: [t1, loop]\n")
    write(tmp_path, "a.yaml", "group: a\ntasks: [b]\n")
    write(tmp_path, "b.yaml", "group: b\ntasks: [a]\n")
    write(tmp_path, "ok.yaml", "group: ok\ntasks: [t1]\n")
    reg = Registry.discover([tmp_path], builtin=False)
    assert sorted(reg.broken) == ["a", "b", "loop"] and any("loop.yaml: group cycle: loop -> loop" in e
                                                            for e in reg.errors)
    assert [g.group for g in reg.groups_within(["t1"])] == ["ok"]  # aggregation never meets the loop
    assert [s.task for s in reg.resolve(["ok"])] == ["t1"]
    with pytest.raises(TaskError, match="group cycle"):
        reg.resolve(["loop"])  # a run that names it fails here, before any model loads


def test_an_unrelated_run_survives_a_self_including_group(tiny_model, tmp_path, capsys):
    write(tmp_path / "inc", "loop.yaml", "group: loop\ntasks: [demo_vqa, loop]\n")
    write(tmp_path / "inc", "bomb.yaml", alias_bomb())
    cfg = RunConfig(tasks=["demo_vqa"], output=tmp_path / "out", model_args={"pretrained": str(tiny_model)},
                    run_name="r", limit=2, include_paths=[tmp_path / "inc"], progress=False)
    results, failures = evaluate(cfg)
    assert results.tasks["demo_vqa"].n_samples == 2 and failures == []
    assert (tmp_path / "out" / "r" / "results.json").exists()
    err = capsys.readouterr().err  # both problems reported as warnings, the run unharmed
    assert "warning: " in err and "loop.yaml: group cycle" in err and "bomb.yaml: the YAML expands" in err


@pytest.mark.parametrize("field,text", [("doc.prompt", "{{ q }"), ("doc.prompt", "{{ q | no_such_filter }}"),
                                        ("doc.references", "{% if a %}{{ a }}"), ("doc.id", "{{ id + }}")])
def test_template_syntax_errors_show_at_load_time(tmp_path, field, text):
    key = field.split(".")[1]
    doc = {"prompt": "{{ q }}", "references": "a", key: text}
    body = "task: t1\ndataset: {path: data.jsonl}\ndoc:\n" + "".join(f"  {k}: {v!r}\n" for k, v in doc.items()) \
        + "metrics: [{name: exact_match}]\n"
    p = write(tmp_path, "t1.yaml", body)
    with pytest.raises(TaskError, match=rf"t1\.yaml: {field}: template Template"):
        load_file(p)


def test_instruction_variants_are_compiled_too(tmp_path):
    p = write(tmp_path, "t1.yaml", BASE + "instructions: ['fine', 'broken {{ x ']\n")
    with pytest.raises(TaskError, match=r"instructions\[1\]: template"):
        load_file(p)


def test_validate_counts_every_file_and_reports_template_errors(tmp_path):
    write(tmp_path, "good.yaml", BASE)
    write(tmp_path, "schema.yaml", BASE.replace("task: t1", "task: t2").replace("prompt:", "promt:"))
    write(tmp_path, "jinja.yaml", BASE.replace("task: t1", "task: t3").replace('"{{ q }}"', '"{{ q }"'))
    r = m3eval("validate", str(tmp_path))
    assert r.returncode == 1 and "3 files, 1 definitions checked, 2 problems" in r.stdout
    assert "jinja.yaml: doc.prompt: template TemplateSyntaxError" in r.stderr


@pytest.mark.parametrize("template", [
    "{{ question * 100000000000 }}", "{{ 100000000000 * question }}", "{{ (question * 1000) * 1000 }}",
    "{{ question.center(10**10) }}", "{{ question | center(10**10) }}", "{{ question | indent(10**10) }}",
    "{{ '%*s' | format(10**10, question) }}", "{{ '{:>10000000000}'.format(question) }}",
    "{{ '{:>{w}}'.format(question, w=10**10) }}", "{{ 7 ** 10000000 }}",
    "{{ ([question * 90000] * 1000000) | join }}", "{{ (question * 90000) | replace('w', question * 1000) }}",
    "{{ (question * 90000).replace('w', question * 1000) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ question }}{% endfor %}{% endfor %}"])
def test_template_bombs_are_refused_before_they_allocate(template):
    t = time.perf_counter()
    with pytest.raises(TemplateLimitError, match=f"beyond {MAX_PROMPT_CHARS:,} characters"):
        render(template, {"question": "what is it?"})
    assert time.perf_counter() - t < 5


@pytest.mark.parametrize("template, says", [
    # CPU (issue 20, case 15): loops that print nothing, a macro calling itself twice per level
    ("{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}", "more than 1,000,000 steps"),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(22) }}",
     "more than 20,000 steps"),  # calls count as steps (MAX_STEPS lowered for this case: 1M calls take 4 s)
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursion too deep"),
    # memory (issue 20, case 16): a value doubled in a loop, printed only by its length
    ("{% set ns = namespace(s=question) %}{% for i in range(25) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
     "{{ ns.s | length }}", "beyond 1,000,000 characters (~)"),
    ("{% set ns = namespace(s=question) %}{% for i in range(25) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
     "{{ ns.s | length }}", "beyond 1,000,000 characters (str + str)"),
    ("{% set ns = namespace(l=[question]) %}{% for i in range(25) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"
     "{{ ns.l | length }}", "beyond 1,000,000 characters (list + list)"),
])
def test_template_work_and_memory_are_bounded_per_sample(template, says, monkeypatch):
    """A render has a budget of steps (loop iterations, calls, operators) and each value it builds
    is bounded: these rendered for seconds to hours, or grew to GBs, with no error."""
    if "20,000" in says:
        monkeypatch.setattr("m3eval.prompt_limits.MAX_STEPS", 20_000)
    t = time.perf_counter()
    with pytest.raises(TemplateLimitError, match=re.escape(says)):
        render(template, {"question": "what is it?"})
    assert time.perf_counter() - t < 30  # MAX_RENDER_SECONDS (10) is the backstop; a loaded machine is slower


def test_templates_cannot_grow_a_list_in_place():
    """The sandbox is the immutable one: `append` on a namespace list (issue 20, case 16) is a
    template error naming the attribute, not memory growing with every loop iteration."""
    with pytest.raises(KeyError, match="access to attribute 'append' of 'list' object is unsafe"):
        render("{% set ns = namespace(l=[]) %}{% for i in range(10) %}{{ ns.l.append(question) }}{% endfor %}",
               {"question": "q"})


def test_ordinary_templates_are_untouched():
    row = {"question": "q?", "qid": 262148000}
    assert render("{{ '%d' | format(qid) }} {{ '{:05d}'.format(qid) }} {{ question * 2 }} {{ 2 ** 10 }} "
                  "{{ question | center(7) }}", row) == "262148000 262148000 q?q? 1024 " + "q?".center(7)


def test_a_template_bomb_fails_its_samples_not_the_run(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"q": "short", "a": "x"}\n{"q": "' + "y" * 600_000 + '", "a": "y"}\n')
    (spec,) = load_file(write(tmp_path, "t1.yaml", BASE.replace('"{{ q }}"', '"{{ q * 2 }}"')))
    samples, _ = build_samples(spec, load_dataset_rows(spec.dataset, tmp_path, "t1")[0])
    assert samples[0].prompt == "shortshort" and samples[0].failure is None
    failure = samples[1].failure
    assert failure is not None and failure.type == "TemplateLimitError" and samples[1].prompt == ""
    assert failure.message.startswith("prompt of row 1 (id '1'): template expands beyond")
    prepared = prepare(samples[1], VideoRule(), None)  # recorded with its error, never sent to the model
    assert prepared.message is None and "beyond 1,000,000 characters" in str(prepared.error)
