"""Discovery of tasks and groups (tasks/ plus --include-path) and name resolution."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TaskError, UsageError
from ..resources import TASKS_DIR
from .loader import Reads, iter_task_files, load_file
from .schema import GroupSpec, TaskSpec, apply_gen_kwargs
from .suite_cache import kept_suite

# The suite shipped with m3eval: the repository's top-level tasks/ folder (or its copy in a wheel).
BUILTIN_TASKS = TASKS_DIR


def roots(include_paths: list[Path] | tuple = (), builtin: bool = True, env: bool = True) -> list[Path]:
    """Where task files come from: the suite, M3EVAL_INCLUDE_PATH (unless `env` is False), then
    --include-path."""
    named = [(Path(p), "M3EVAL_INCLUDE_PATH names") for p in os.environ.get("M3EVAL_INCLUDE_PATH", "").split(os.pathsep)
             if p and env] + [(Path(p), "--include-path") for p in include_paths]
    for root, by in named:
        if not root.exists():  # a usage error (exit 2), blamed on what named it
            raise UsageError(f"{by} {root}: no such file or folder")
    return ([BUILTIN_TASKS] if builtin and BUILTIN_TASKS.exists() else []) + [root for root, _ in named]


@dataclass
class Registry:
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    groups: dict[str, GroupSpec] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # files that failed to load, groups that cannot expand
    broken: dict[str, str] = field(default_factory=dict)  # group -> why it cannot expand (cycle, unknown member)
    files: dict[Path, list[TaskSpec | GroupSpec]] = field(default_factory=dict)  # each file read, as parsed

    @classmethod
    def discover(cls, include_paths: list[Path] | tuple = (), builtin: bool = True, env: bool = True) -> "Registry":
        reg = cls()
        read: Reads = {}  # every YAML file read once, a suite's shared includes too
        for root in roots(include_paths, builtin, env):
            if root == BUILTIN_TASKS and not reg.files:  # the suite: kept between processes (suite_cache.py)
                reg = kept_suite(root, lambda: reg.add_root(root, read), read)
            else:
                reg.add_root(root, read)
        reg.set_aside_broken_groups()
        return reg

    def add_root(self, root: Path, read: Reads) -> "Registry":
        for path in iter_task_files(root):
            self.add_file(path, read)
        return self

    def add_file(self, path: Path, read: Reads | None = None) -> list[TaskSpec | GroupSpec]:
        """Load one task file and register its definitions; returns them as parsed. A problem
        (a bad file, a name already taken) is recorded in `errors`, and the file's definitions
        from there on are left out."""
        specs: list[TaskSpec | GroupSpec] = []
        try:
            specs = load_file(path, read)
            for spec in specs:
                self._add(spec)
        except TaskError as e:
            self.errors.append(str(e))
        self.files[path] = specs
        return specs

    def set_aside_broken_groups(self) -> None:
        """A group that includes itself or names a missing task is reported and set aside
        here, at discovery: a run that does not use it goes on, one that does fails before
        its model loads, and aggregation after generation never meets it."""
        for name in list(self.groups):
            try:
                self.expand(name)
            except TaskError as e:
                self.broken[name] = str(e)
                self.errors.append(str(e))
        for name in self.broken:
            del self.groups[name]

    def _add(self, spec: TaskSpec | GroupSpec) -> None:
        name = spec.task if isinstance(spec, TaskSpec) else spec.group
        other = self.tasks.get(name) or self.groups.get(name)
        if other is not None:
            raise TaskError(f"{spec.source}: {name!r} is already defined in {other.source}")
        if isinstance(spec, TaskSpec):
            self.tasks[name] = spec
        else:
            self.groups[name] = spec

    def names(self) -> list[str]:
        return sorted([*self.tasks, *self.groups])

    def unknown(self, name: str) -> TaskError:
        near = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else "; `m3eval tasks` lists them"
        broken = f" ({len(self.errors)} task files or groups failed to load: run `m3eval validate`)" \
            if self.errors else ""
        return TaskError(f"unknown task or group {name!r}{hint}{broken}")

    def expand(self, name: str, _stack: tuple[str, ...] = ()) -> list[str]:
        """Leaf task names of a task or group, in order."""
        if name in self.tasks:
            return [name]
        if name in self.broken:
            raise TaskError(self.broken[name])
        if name not in self.groups:
            raise self.unknown(name)
        if name in _stack:
            raise TaskError(f"{self.groups[name].source}: group cycle: {' -> '.join(_stack + (name,))}")
        out: list[str] = []
        for member in self.groups[name].tasks:
            if member not in self.tasks and member not in self.groups:
                raise TaskError(f"{self.groups[name].source}: group {name!r} names unknown task {member!r}")
            out += [t for t in self.expand(member, _stack + (name,)) if t not in out]
        return out

    def resolve(self, names: list[str]) -> list[TaskSpec]:
        out: list[str] = []
        for n in names:
            out += [t for t in self.expand(n) if t not in out]
        return [self.tasks[t] for t in out]

    def resolve_run(self, names: list[str], overrides: dict[str, str], gen_kwargs: dict[str, Any]) -> list[TaskSpec]:
        """A run's tasks with --gen_kwargs applied. An unknown name, or a --dataset-override of a
        task not in the run, is a usage error (exit 2, before anything heavy loads)."""
        try:  # an unknown name, or a group set aside as broken (with its reason)
            specs = [apply_gen_kwargs(s, gen_kwargs) for s in self.resolve(names)]
        except TaskError as e:
            raise UsageError(str(e)) from None
        stray = set(overrides) - {s.task for s in specs}
        if stray:
            raise UsageError(f"--dataset-override names tasks not in this run: {', '.join(sorted(stray))}")
        return specs

    def groups_within(self, task_names: list[str]) -> list[GroupSpec]:
        """Groups all of whose leaf tasks are among task_names (their aggregate can be reported)."""
        have = set(task_names)
        return [g for g in self.groups.values() if set(self.expand(g.group)) <= have]
