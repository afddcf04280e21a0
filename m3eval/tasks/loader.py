"""YAML task files -> validated TaskSpec / GroupSpec.

A file holds one task (`task:`), one group (`group:`), or, with `expand:`,
one task template expanded over values (e.g. 80 languages), which also makes
a group of the expanded tasks. Files whose name starts with `_` are only
included by others (`include:`), never loaded as tasks.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import TaskError
from ..prompts import check_template, is_template
from .schema import GroupSpec, TaskSpec

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster over a big suite
_LOADER_KEYS = ("include", "expand", "expand_group")
# YAML aliases share one object per anchor, so nine levels of `&a [*a, *a, ...]` load in
# microseconds and expand to 10^9 nodes the first time anything walks them. A task file
# has at most a few thousand nodes: beyond this budget the file is refused, unwalked.
MAX_YAML_NODES = 100_000


def _check_size(data: Any, path: Path) -> None:
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise TaskError(f"{path}: the YAML expands to more than {MAX_YAML_NODES:,} values (nested aliases "
                            "`*name` repeating anchors?); refusing to load it")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise TaskError(f"{path}: no such file") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise TaskError(f"{path}: invalid YAML: {str(e)[:500]}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TaskError(f"{path}: cannot read: {e}") from None
    _check_size(data, path)
    if not isinstance(data, dict):
        raise TaskError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


Reads = dict[Path, tuple[Path, dict[str, Any]]]  # the files a discovery has read: path -> (resolved path, mapping)


def _resolve_includes(path: Path, seen: tuple[Path, ...] = (), read: Reads | None = None) -> dict[str, Any]:
    """The file's mapping with its includes merged in. `read`: a suite's shared includes are resolved and
    parsed once a discovery, not once per file that includes them."""
    if read is not None and path in read:
        path, data = read[path]
        data = dict(data)  # the caller pops keys; nested values are shared: _merge and _substitute copy them
    else:
        real = path.resolve()
        data = _read_yaml(real)
        if read is not None:
            read[path] = (real, dict(data))
        path = real
    if path in seen:
        raise TaskError(f"{path}: include cycle: {' -> '.join(map(str, seen + (path,)))}")
    inc = data.pop("include", None)
    if inc is None:
        return data
    merged: dict[str, Any] = {}
    for item in [inc] if isinstance(inc, str) else inc or []:
        if not isinstance(item, str):
            raise TaskError(f"{path}: include: expected a file name, got {item!r}")
        target = (path.parent / item)
        if not target.exists():
            raise TaskError(f"{path}: include: no such file {target}")
        merged = _merge(merged, _resolve_includes(target, seen + (path,), read))
    return _merge(merged, data)


def _substitute(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, env) for k, v in value.items()}
    return value


def _explain(path: Path, err: ValidationError, model: type[BaseModel]) -> TaskError:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            known = _fields_at(model, e["loc"][:-1])
            near = difflib.get_close_matches(str(e["loc"][-1]), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
            lines.append(f"{loc}: unknown key{hint}")
        else:
            lines.append(f"{loc}: {e['msg']}")
    return TaskError(f"{path}: " + "; ".join(lines))


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return [k for k in model.model_fields if k != "source"]


def load_file(path: Path, read: Reads | None = None) -> list[TaskSpec | GroupSpec]:
    """All tasks and groups one YAML file defines (expanded templates give several). `read`: the
    files a discovery has read so far (_resolve_includes)."""
    data = _resolve_includes(path, read=read)
    src = str(path)
    if "group" in data and "task" not in data:
        try:
            return [GroupSpec(**data, source=src)]
        except ValidationError as e:
            raise _explain(path, e, GroupSpec) from None
    expand = data.pop("expand", None)
    expand_group = data.pop("expand_group", None)
    if expand is None:
        envs: list[dict[str, str]] = [{}]
    else:
        if not (isinstance(expand, dict) and len(expand) == 1):
            raise TaskError(f"{path}: expand: expected one key with a list of values, e.g. expand: {{lang: [en, zh]}}")
        (key, values), = expand.items()
        if not isinstance(values, list) or not values:
            raise TaskError(f"{path}: expand.{key}: expected a non-empty list")
        envs = [{key: str(v)} for v in values]
    tasks: list[TaskSpec] = []
    for env in envs:
        try:
            tasks.append(TaskSpec(**_substitute(data, env), source=src))
        except ValidationError as e:
            raise _explain(path, e, TaskSpec) from None
        except TypeError as e:
            raise TaskError(f"{path}: {e}") from None
        check_templates(tasks[-1], path)
    specs: list[TaskSpec | GroupSpec] = list(tasks)
    if expand is not None:
        if not isinstance(expand_group, str):
            raise TaskError(f"{path}: expand_group: name the group the expanded tasks form")
        specs.append(GroupSpec(group=expand_group, tasks=[s.task for s in tasks],
                               category=tasks[0].category, source=src))
    return specs


def check_templates(spec: TaskSpec, path: Path | str) -> None:
    """Compile every template of a task now, so a syntax error shows when the file loads
    (validate, tasks, before a run loads its model), not at the first row."""
    doc = spec.doc
    fields = {"doc.prompt": doc.prompt, **{f"doc.{k}": getattr(doc, k) for k in ("id", "references", "video",
                                                                              "images", "frames", "exclude_if")}}
    if isinstance(doc.images, list):  # several image fields (MMMU's image_1..image_7)
        del fields["doc.images"]
        fields.update({f"doc.images[{i}]": text for i, text in enumerate(doc.images)})
    fields.update({f"instructions[{i}]": text for i, text in enumerate(spec.instructions or [])})
    for name, text in fields.items():
        if text and (name == "doc.prompt" or is_template(text)):
            err = check_template(text)
            if err:
                raise TaskError(f"{path}: {name}: template {err}")


def iter_task_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.y*ml")
                  if p.suffix in (".yaml", ".yml") and not p.name.startswith("_"))
