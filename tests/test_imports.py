"""Imports run one way (DESIGN.md, "Layout" and "Imports run one way"; issue 19).

The test reads every module of m3eval/ with `ast` (nothing is imported) and builds the graph of
its imports of m3eval modules, then fails, naming the modules and lines, on

(a) any cycle, and
(b) any import that goes up or sideways in LAYERS: a module may import a module of its own
    part (the same subpackage, or itself) or of a part of a strictly lower rank.

What counts as an import (the deliberate choices):

- `import` and `from ... import` statements anywhere in a module: at the top level, and also
  inside functions and methods. A function-level ("lazy") import runs later, so it cannot
  fail at import time, but it is a dependency all the same: every cycle this test was written
  against (data.m3it <-> data.sources, data.media <-> data.video, metrics.base <->
  metrics.hf_evaluate, the demo's tiny_model <-> training) had a lazy import as one of its
  sides. So lazy imports count for both checks, (a) and (b).
- Not imports under `if TYPE_CHECKING:`: they never run.
- Not `importlib.import_module("...")` with a string: that is a registry naming a module by
  name, like an entry point (metrics/base.py LAZY_METRICS: the judge metric, defined in
  scoring/, is imported when first looked up, so metrics/ never imports scoring/).
- `from P import x` is an import of module P.x when P/x.py exists, else of P (a name of P).
- The implicit imports of parent packages: importing a.b.c first imports the packages a and
  a.b (their __init__.py run). So an import of a.b.c by module X also adds X -> a.b, except
  for the packages X itself is inside: those have started importing before X runs, so a
  package's __init__ importing its own submodules is no cycle, while an __init__ that imports
  a module that imports back into the package (metrics/__init__ -> scoring.judge ->
  metrics.base, before the judge was registered lazily) is one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "m3eval"

# The intended architecture, highest rank first. A part is a subpackage of m3eval (all its
# modules) or a top-level module. "Everything may import types, record and errors."
LAYERS: list[tuple[int, list[str], str]] = [
    (12, ["__main__"], "python -m m3eval"),
    (11, ["cli"], "the command line: parse"),
    (10, ["commands", "lm_eval_compat"], "... delegate and print; lm-eval flag spellings"),
    (9, ["demo"], "the offline demo: builds tiny models and data, drives runs"),
    (8, ["run", "report", "catalog", "leaderboard"], "run a model / read, compare, list, show results"),
    (7, ["scoring"], "predictions -> scores (filters, metrics, groups, judge)"),
    (6, ["data", "models", "metrics"], "dataset rows -> samples / model backends / metric functions"),
    (5, ["tasks", "predictions"], "task and group definitions / a task's prediction files, a line at a time"),
    (4, ["results", "prompts"], "run-folder file helpers / prompt templates"),
    (3, ["types", "reference_record"], "Sample, Message, Prediction, sample ids / scores a paper reported"),
    (2, ["line_record"], "the lines of the predictions/ and samples/ files"),
    (1, ["record", "prompt_limits"], "the typed run record / template size bounds"),
    (0, ["errors", "resources", "plugins", "public_paths", "forks", "file_keys", ""],
     "errors, where data lives, plugin registries, what a record may say of paths, cache keys of files; "
     "m3eval/__init__"),
]
RANK = {part: rank for rank, parts, _ in LAYERS for part in parts}

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every import statement, at any depth, except the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The m3eval modules one import statement imports (explicitly)."""
    def known(name: str) -> str | None:  # the module itself, or its closest package that exists
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name if name.split(".")[0] == "m3eval" else None

    out: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "m3eval":
                out.add(known(alias.name) or "m3eval")
        return out
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != "m3eval":
        return out
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.add(sub if sub in modules else known(source) or "m3eval")
    return out


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


Graph = dict[str, dict[str, tuple[int, str]]]


def import_graph() -> Graph:
    """module -> {imported module: (line, "" or how it is imported implicitly)}."""
    modules = _modules()
    graph: Graph = {}
    for module, path in modules.items():
        edges: dict[str, tuple[int, str]] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            for target in _targets(module, path.name == "__init__.py", node, modules):
                if target != module:
                    edges[target] = (node.lineno, "")
                for package in _parents(target):  # run first, unless `module` is inside them
                    if package not in _parents(module) and package != module:
                        edges.setdefault(package, (node.lineno, f"implicit: the package of {target}"))
        graph[module] = edges
    return graph


def part(module: str) -> str:
    """The part of LAYERS a module belongs to: m3eval.data.media -> data, m3eval.cli -> cli."""
    return module.split(".")[1] if "." in module else ""


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(component: list[str], graph: Graph) -> str:
    members = set(component)
    edges = [f"    {a} -> {b} (line {line}{', ' + note if note else ''})"
             for a in component for b, (line, note) in sorted(graph[a].items()) if b in members]
    return "  " + ", ".join(component) + ":\n" + "\n".join(edges)


def test_the_graph_sees_the_imports():
    """The walk itself: relative, absolute, lazy and package imports resolve to modules."""
    graph = import_graph()
    assert "m3eval.cli" in graph["m3eval.__main__"]
    assert "m3eval.metrics.base" in graph["m3eval.metrics.caption"]  # from m3eval.metrics.base import ...
    assert "m3eval.data.samples" in graph["m3eval.data.task_samples"]  # from .samples import ...
    assert "m3eval.data.video" in graph["m3eval.data.media"]  # a lazy import inside a function
    assert "m3eval.scoring" in graph["m3eval.run.pipeline"]  # the implicit import of a parent package
    assert "m3eval.metrics" not in graph["m3eval.metrics.caption"]  # its own package: already importing


def test_every_module_has_a_layer():
    missing = sorted({part(m) for m in _modules()} - set(RANK))
    assert not missing, f"add these parts of m3eval to LAYERS in {__file__}: {missing}"


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles (move the shared code down to where both sides can import it):\n" + \
        "\n".join(_describe(c, graph) for c in found)


def test_imports_run_one_way():
    graph = import_graph()
    upward = []
    for module, edges in sorted(graph.items()):
        for target, (line, note) in sorted(edges.items()):
            a, b = part(module), part(target)
            if not note and a != b and a in RANK and b in RANK and RANK[b] >= RANK[a]:
                upward.append(f"  {module} (line {line}) imports {target}: {a} (rank {RANK[a]}) may not "
                              f"import {b} (rank {RANK[b]})")
    assert not upward, "imports against LAYERS (move the code to where it belongs):\n" + "\n".join(upward)


def test_no_module_imports_another_modules_private_names():
    """A file that needs a private name of another file belongs with it (or the name is public)."""
    found = []
    for module, path in _modules().items():
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("m3eval")):
                found += [f"{module} (line {node.lineno}): {a.name} from {'.' * node.level}{node.module or ''}"
                          for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_a_cycle_is_caught():
    """The check is not vacuous: a lazy import of data.sources from types closes a cycle."""
    graph = import_graph()
    graph["m3eval.types"] = {**graph["m3eval.types"], "m3eval.data.sources": (1, "")}
    assert any({"m3eval.types", "m3eval.data.sources"} <= set(c) for c in cycles(graph))


@pytest.mark.parametrize("module", ["m3eval.metrics", "m3eval.metrics.base"])
def test_metrics_never_import_scoring(module):
    """The judge metric is registered on first lookup; importing metrics imports no scoring."""
    import subprocess
    import sys

    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('m3eval.scoring')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
