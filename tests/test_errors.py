"""One exception tree (issue 19): every error class of m3eval lives in m3eval/errors.py under
M3evalError, the modules that raise them re-export them, and the command line turns any of
them, raised however deep, into one line and an exit code, never a traceback."""
from __future__ import annotations

import ast
import builtins
import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from m3eval import errors
from m3eval.errors import M3evalError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "m3eval"
GOLDEN = ROOT / "results" / "demo" / "tiny-llava"  # a finished run, checked in


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _base_name(node.value)
    return node.id if isinstance(node, ast.Name) else ""


def _is_builtin_error(name: str) -> bool:
    cls = getattr(builtins, name, None)
    return isinstance(cls, type) and issubclass(cls, BaseException) and not issubclass(cls, Warning)


def error_classes(package: Path = PACKAGE) -> dict[str, list[str]]:
    """Public error classes defined anywhere in m3eval/: class name -> the files defining it.
    An error class is one named ...Error, or one with an error base (a builtin exception,
    a name ending in Error or Exception, or another error class found here)."""
    defs: list[tuple[str, list[str], str]] = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                defs.append((node.name, [_base_name(b) for b in node.bases], str(path.relative_to(package.parent))))
    found: dict[str, list[str]] = {}
    grew = True
    while grew:  # to a fixed point: a subclass of a subclass of an error is an error
        grew = False
        for name, bases, where in defs:
            if name.startswith("_") or where in found.get(name, []):
                continue
            if name.endswith("Error") or any(
                    b.endswith(("Error", "Exception")) or _is_builtin_error(b) or b in found for b in bases):
                found.setdefault(name, []).append(where)
                grew = True
    return found


def test_every_error_class_is_defined_in_errors_py_under_the_base():
    found = error_classes()
    assert {"DataError", "UsageError", "MissingFile", "BadMessageError", "M3evalError"} <= set(found), found
    elsewhere = {name: files for name, files in found.items() if files != ["m3eval/errors.py"]}
    assert not elsewhere, f"define error classes in m3eval/errors.py (subclasses of M3evalError): {elsewhere}"
    for name in found:
        assert issubclass(getattr(errors, name), M3evalError), name
    assert set(errors.__all__) == set(found)


def test_the_walk_finds_an_error_class_defined_elsewhere(tmp_path):
    """The check above is not vacuous: a module that defines its own error class again is caught."""
    fake = tmp_path / "m3eval"
    fake.mkdir()
    (fake / "errors.py").write_text((PACKAGE / "errors.py").read_text())
    (fake / "stray.py").write_text("from .errors import DataError\n\n"
                                   "class ShardError(RuntimeError):\n    pass\n\n"
                                   "class Unreadable(DataError):\n    pass\n\n"
                                   "class _Private(Exception):\n    pass\n\n"
                                   "class Plain:\n    pass\n")
    found = error_classes(fake)
    assert found["ShardError"] == ["m3eval/stray.py"] and found["Unreadable"] == ["m3eval/stray.py"]
    assert "_Private" not in found and "Plain" not in found


# Where each class was defined before the tree, and the builtin it was: both still hold.
HOMES = {
    "m3eval.tasks.loader": {"TaskError": ValueError},
    "m3eval.prompt_limits": {"TemplateLimitError": KeyError},
    "m3eval.prompts": {"TemplateLimitError": KeyError},
    "m3eval.report.runs": {"ResultsError": ValueError},
    "m3eval.commands": {"UsageError": ValueError},
    "m3eval.models.base": {"ModelLoadError": RuntimeError, "BadMessageError": ValueError},
    "m3eval.models": {"ModelLoadError": RuntimeError, "BadMessageError": ValueError},
    "m3eval.models.openai_compat": {"RequestError": RuntimeError},
    "m3eval.data.samples": {"SampleError": ValueError},
    "m3eval.data.sources": {"DataError": ValueError},
    "m3eval.data.m3it": {"MissingFile": ValueError, "HubUnreachable": ValueError},
    "m3eval.data.media": {"MediaError": ValueError},
    "m3eval.run.resume": {"RunError": RuntimeError},
}


@pytest.mark.parametrize("module", sorted(HOMES))
def test_old_import_paths_give_the_same_classes_with_their_builtin_bases(module):
    mod = importlib.import_module(module)
    for name, builtin in HOMES[module].items():
        cls = getattr(mod, name)
        assert cls is getattr(errors, name) and issubclass(cls, M3evalError) and issubclass(cls, builtin)


def test_messages_attributes_and_pickling_are_kept():
    e = errors.BadMessageError(3, "the message has no parts")
    assert (str(e), e.index, e.reason) == ("message 3: the message has no parts", 3, "the message has no parts")
    r = errors.RequestError("HTTP 503: busy", 503)
    assert (str(r), r.status) == ("HTTP 503: busy", 503)
    for err in (e, r, errors.DataError("task t: no rows"), errors.MissingFile("missing file x")):
        back = pickle.loads(pickle.dumps(err))  # crosses process boundaries (Ray workers)
        assert type(back) is type(err) and str(back) == str(err) and back.__dict__ == err.__dict__
    assert str(errors.TemplateLimitError("too long")) == "'too long'"  # a KeyError, as before
    assert errors.UsageError.exit_code == 2
    assert {c.exit_code for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, M3evalError) and c is not errors.UsageError} == {1}


def test_errors_py_is_the_bottom_layer():
    tree = ast.parse((PACKAGE / "errors.py").read_text())
    imported = {n.module if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert imported <= {"__future__", "typing"}, imported
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import m3eval.errors"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    names = {ln.split("|")[-1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")}
    assert "m3eval.errors" in names
    assert {n for n in names if n.startswith("m3eval")} == {"m3eval", "m3eval.errors"}, names


# --- the command line: the base class is the user-error path ----------------------------------

def _m3eval(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "m3eval", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _one_error_line(r: subprocess.CompletedProcess, prefix: str = "m3eval:") -> str:
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_a_data_error_raised_deep_inside_is_one_line(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "mc000", "prediction": "A"}\n')
    missing = tmp_path / "nothere.jsonl"
    args = ["score", "--task", "demo_mc", "--predictions", str(preds), "--dataset-override", f"demo_mc={missing}"]
    from m3eval import commands
    from m3eval.cli import build_parser
    with pytest.raises(M3evalError):  # raised by m3eval/data/sources.py, as a DataError
        commands.cmd_score(build_parser().parse_args(args))
    r = _m3eval(*args)
    assert r.returncode == 1 and str(missing) in _one_error_line(r)


def test_a_usage_error_and_a_malformed_results_file_are_one_line(tmp_path):
    r = _m3eval("tasks", "--include-path", str(tmp_path / "none"))
    assert r.returncode == 2 and _one_error_line(r).startswith(f"m3eval: error: --include-path {tmp_path / 'none'}")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text('{"format": "m3eval.results/1", "tasks": {')
    r = _m3eval("compare", str(GOLDEN), str(run))
    # report/compare.py words its own line ("m3eval compare: cannot compare: ..."), exit 2
    assert r.returncode == 2 and str(run / "results.json") in _one_error_line(r, "m3eval")


def test_dispatch_catches_the_base_and_uses_its_exit_code(monkeypatch, capsys):
    from m3eval import cli, commands

    class Odd(M3evalError):  # neither a ValueError nor a KeyError: only the base class catches it
        exit_code = 3

    def boom(_):
        raise Odd("deep down, a user error")

    monkeypatch.setattr(commands, "cmd_tasks", boom)
    assert cli.main(["tasks"]) == 3
    err = capsys.readouterr().err
    assert err == "m3eval: error: deep down, a user error\n"

    def bug(_):
        raise RuntimeError("a bug keeps its traceback")

    monkeypatch.setattr(commands, "cmd_tasks", bug)
    with pytest.raises(RuntimeError):
        cli.main(["tasks"])
