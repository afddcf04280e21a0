"""Task YAML: schema errors name file and key, include:, expand:, groups, discovery."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from m3eval.tasks.loader import TaskError, load_file
from m3eval.tasks.registry import Registry

BASE = """
task: t1
dataset: {path: data.jsonl}
doc: {prompt: "{{ q }}", references: a}
metrics: [{name: exact_match}]
"""


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def test_valid_task_defaults(tmp_path):
    (spec,) = load_file(write(tmp_path, "t1.yaml", BASE))
    assert spec.task == "t1" and spec.primary == "exact_match"
    assert spec.generation.max_new_tokens == 32 and spec.video.frames == 8
    assert spec.source.endswith("t1.yaml")


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    p = write(tmp_path, "bad.yaml", BASE.replace("prompt:", "promt:"))
    with pytest.raises(TaskError) as e:
        load_file(p)
    msg = str(e.value)
    assert str(p) in msg and "doc.promt: unknown key" in msg and "did you mean 'prompt'" in msg


def test_wrong_type_names_key(tmp_path):
    p = write(tmp_path, "bad.yaml", BASE + "generation: {max_new_tokens: lots}\n")
    with pytest.raises(TaskError, match=r"generation\.max_new_tokens"):
        load_file(p)


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(TaskError, match="invalid YAML"):
        load_file(write(tmp_path, "x.yaml", "task: [unclosed\n"))
    with pytest.raises(TaskError, match="no such file"):
        load_file(tmp_path / "nope.yaml")


def test_include_merges_deeply_and_file_wins(tmp_path):
    write(tmp_path, "_defaults.yaml", """
        category: knowledge_vqa
        generation: {max_new_tokens: 5, stop: ["\\n"]}
        metrics: [{name: vqa_accuracy}]
    """)
    (spec,) = load_file(write(tmp_path, "t.yaml", """
        include: _defaults.yaml
        task: t
        generation: {max_new_tokens: 9}
        dataset: {path: d.jsonl}
        doc: {prompt: "{{ q }}", references: a}
    """))
    assert spec.category == "knowledge_vqa" and spec.metrics[0].name == "vqa_accuracy"
    assert spec.generation.max_new_tokens == 9 and spec.generation.stop == ["\n"]


def test_include_cycle_is_an_error(tmp_path):
    write(tmp_path, "_a.yaml", "include: _b.yaml\n")
    write(tmp_path, "_b.yaml", "include: _a.yaml\n")
    with pytest.raises(TaskError, match="include cycle"):
        load_file(write(tmp_path, "t.yaml", "include: _a.yaml\n" + BASE))


def test_expand_over_languages_makes_tasks_and_a_group(tmp_path):
    specs = load_file(write(tmp_path, "m.yaml", """
        task: m_${lang}
        expand: {lang: [en, zh]}
        expand_group: m_all
        language: ${lang}
        dataset: {path: hub/id, name: "vqa-${lang}"}
        doc: {prompt: "{{ q }}", references: a}
        metrics: [{name: rouge_l}]
    """))
    tasks, group = specs[:-1], specs[-1]
    assert [t.task for t in tasks] == ["m_en", "m_zh"]
    assert [t.dataset.name for t in tasks] == ["vqa-en", "vqa-zh"] and tasks[1].language == "zh"
    assert group.group == "m_all" and group.tasks == ["m_en", "m_zh"]
    assert tasks[0].content_hash() != tasks[1].content_hash()


def test_registry_groups_unknown_names_and_duplicates(tmp_path):
    write(tmp_path, "a/t1.yaml", BASE)
    write(tmp_path, "a/t2.yaml", BASE.replace("task: t1", "task: t2"))
    write(tmp_path, "g.yaml", "group: g\ntasks: [t1, t2]\n")
    write(tmp_path, "outer.yaml", "group: outer\ntasks: [g, t1]\n")
    reg = Registry.discover([tmp_path], builtin=False)
    assert reg.errors == []
    assert reg.expand("outer") == ["t1", "t2"]
    assert [s.task for s in reg.resolve(["t2", "g"])] == ["t2", "t1"]
    with pytest.raises(TaskError, match=r"unknown task or group 'tt1'.*did you mean t1"):
        reg.resolve(["tt1"])
    write(tmp_path, "dup.yaml", BASE)
    reg2 = Registry.discover([tmp_path], builtin=False)
    assert any("already defined" in e for e in reg2.errors)


def test_group_naming_a_missing_task_is_an_error(tmp_path):
    write(tmp_path, "t1.yaml", BASE)
    write(tmp_path, "g.yaml", "group: g\ntasks: [t1, ghost]\n")
    reg = Registry.discover([tmp_path], builtin=False)
    with pytest.raises(TaskError, match="unknown task 'ghost'"):
        reg.expand("g")


def test_builtin_suite_loads_without_errors():
    reg = Registry.discover()
    assert reg.errors == []
    assert "demo" in reg.groups and len(reg.expand("demo")) >= 6
    for g in reg.groups:
        reg.expand(g)  # every group resolves


@pytest.mark.parametrize("name, says", [
    ('"' + "x" * 201 + '"', "at most 200 bytes"),
    ('"t\\0nul"', "(found U+0000)"),
    ('"t\\u202e1"', "(found U+202E)"),  # right-to-left override: would forge the output lines it is printed on
    ('"t\\n1"', "(found U+000A)"),
])
def test_names_that_cannot_be_file_names_or_forge_output_fail_validate(tmp_path, name, says):
    """Issue 20, cases 20 and 21: such a name used to pass `validate`, and the run failed after
    generating (losing the predictions) or printed forged lines."""
    from m3eval.cli import main as cli_main
    write(tmp_path, "t.yaml", BASE.replace("task: t1", f"task: {name}"))
    with pytest.raises(TaskError, match=re.escape(says)):
        load_file(tmp_path / "t.yaml")
    assert cli_main(["validate", str(tmp_path)]) == 1
    group = write(tmp_path / "g", "g.yaml", f"group: {name}\ntasks: [t1]\n")
    with pytest.raises(TaskError, match="group"):
        load_file(group)
