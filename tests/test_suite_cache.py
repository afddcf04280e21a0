"""The suite's registry is kept between processes (tasks/suite_cache.py) and read afresh
whenever anything it was made from changed."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from m3eval import file_keys
from m3eval.tasks import loader, registry
from m3eval.tasks.registry import Registry

TASK = """include: ../shared/_base.yaml
task: {name}
dataset: {{path: d.jsonl}}
doc: {{prompt: "{{{{ q }}}}", references: a}}
metrics: [{{name: vqa_accuracy}}]
"""


@pytest.fixture
def suite(tmp_path: Path, monkeypatch) -> Path:
    """A suite of two tasks, one including a file from outside the suite's folder, as the
    builtin suite, with its own cache."""
    root = tmp_path / "suite"
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "_base.yaml").write_text("generation: {max_new_tokens: 5}\n")
    root.mkdir()
    for name in ("alpha", "beta"):
        (root / f"{name}.yaml").write_text(TASK.format(name=name))
    monkeypatch.setattr(registry, "BUILTIN_TASKS", root)
    monkeypatch.setenv("M3EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(file_keys, "_SETTLED_NS", 0)  # the files were written a moment ago
    return root


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """The task files discovery parses (none when the kept registry is used)."""
    seen: list[Path] = []
    real = loader.load_file

    def counted(path: Path, read: loader.Reads | None = None) -> list:
        seen.append(path)
        return real(path, read)

    monkeypatch.setattr(registry, "load_file", counted)
    return seen


def dump(reg: Registry) -> tuple:
    return ({k: v.model_dump() for k, v in reg.tasks.items()}, {k: v.model_dump() for k, v in reg.groups.items()},
            reg.errors, {str(p): [s.model_dump() for s in specs] for p, specs in reg.files.items()})


def edit(path: Path, text: str) -> None:
    """A new content with the old size and mtime (as `cp -p` leaves it): only the ctime tells."""
    st = path.stat()
    assert len(text.encode()) == st.st_size
    time.sleep(0.01)
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_the_second_discovery_reads_no_file_and_gives_the_same_registry(suite: Path, reads: list[Path]):
    first = Registry.discover()
    assert len(reads) == 2 and (suite.parent / "cache" / "suite.pickle").is_file()
    again = Registry.discover()
    assert len(reads) == 2  # nothing parsed: kept
    assert dump(again) == dump(first) and sorted(again.tasks) == ["alpha", "beta"]


def test_the_real_suite_kept_equals_the_suite_read(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("M3EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(file_keys, "_SETTLED_NS", 0)  # a checkout made a moment ago is kept too
    read = Registry.discover()
    kept = Registry.discover()
    assert (tmp_path / "cache" / "suite.pickle").is_file()
    assert dump(kept) == dump(read) and len(kept.tasks) > 100


@pytest.mark.parametrize("change", ["edit a task", "edit an include outside the suite", "add a task",
                                    "remove a task", "edit m3eval's code"])
def test_any_change_reads_the_suite_afresh(suite: Path, reads: list[Path], change: str, monkeypatch, tmp_path):
    Registry.discover()
    if change == "edit a task":
        edit(suite / "alpha.yaml", (suite / "alpha.yaml").read_text().replace("task: alpha", "task: alphX"))
    elif change == "edit an include outside the suite":
        edit(suite.parent / "shared" / "_base.yaml", "generation: {max_new_tokens: X}\n")
    elif change == "add a task":
        (suite / "gamma.yaml").write_text(TASK.format(name="gamma"))
    elif change == "remove a task":
        (suite / "beta.yaml").unlink()
    else:  # a module of m3eval's (its loader, say) edited: the package is this test's copy of it
        package = tmp_path / "package"
        package.mkdir()
        (package / "loader.py").write_text("x = 1\n")
        monkeypatch.setattr("m3eval.tasks.suite_cache.PACKAGE", package)
        Registry.discover()  # kept under the copy's key
        edit(package / "loader.py", "x = 2\n")
    n = len(reads)
    fresh = Registry.discover()
    assert len(reads) > n
    want = {"edit a task": ({"alphX", "beta"}, 0), "edit an include outside the suite": (set(), 2),
            "add a task": ({"alpha", "beta", "gamma"}, 0), "remove a task": ({"alpha"}, 0),
            "edit m3eval's code": ({"alpha", "beta"}, 0)}[change]
    assert (set(fresh.tasks), len(fresh.errors)) == want, fresh.errors


def test_a_damaged_cache_is_read_afresh_and_replaced(suite: Path, reads: list[Path]):
    Registry.discover()
    store = suite.parent / "cache" / "suite.pickle"
    store.write_bytes(store.read_bytes()[:100])
    assert sorted(Registry.discover().tasks) == ["alpha", "beta"] and len(reads) == 4
    Registry.discover()
    assert len(reads) == 4  # kept again


def test_files_changed_a_moment_ago_are_not_kept(suite: Path, reads: list[Path], monkeypatch):
    monkeypatch.setattr(file_keys, "_SETTLED_NS", 10**18)
    Registry.discover()
    Registry.discover()
    assert len(reads) == 4 and not (suite.parent / "cache" / "suite.pickle").exists()


def test_include_path_tasks_are_read_each_time_beside_the_kept_suite(suite: Path, reads: list[Path], tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "delta.yaml").write_text(TASK.format(name="delta"))
    Registry.discover([extra])
    reg = Registry.discover([extra])
    assert sorted(reg.tasks) == ["alpha", "beta", "delta"] and len(reads) == 4  # the suite once, delta twice
    (extra / "alpha.yaml").write_text(TASK.format(name="alpha"))
    assert any("already defined" in e for e in Registry.discover([extra]).errors)
