"""Read run directories and reference rows (docs/FORMATS.md) for `compare` and the page.

Read-only: nothing here needs a model or a dataset. Every error names the file and
the field, so a user can fix a hand-edited or half-written results file.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FORMAT = "m3eval.results/1"
REFERENCE_FORMAT = "m3eval.reference/1"


class ResultsError(ValueError):
    """A results or reference file that cannot be used (malformed, partial, older format)."""


@dataclass
class Run:
    path: Path  # the run directory
    results: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.results["run"]["name"])

    @property
    def model_id(self) -> str:
        model = self.results["run"].get("model") or {}
        return str(model.get("id") or model.get("args", {}).get("pretrained") or self.name)

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return self.results["tasks"]

    @property
    def groups(self) -> dict[str, dict[str, Any]]:
        return self.results.get("groups") or {}

    def invocation(self, task: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(config, model, created) of the `m3eval run` call that produced a task: its own
        record (tasks.<t>.invocation, when several calls filled the folder), else the run block."""
        block = self.results["run"]
        inv = self.tasks.get(task, {}).get("invocation")
        inv = inv if isinstance(inv, dict) else {}
        return (inv.get("config") or block.get("config") or {}, inv.get("model") or block.get("model") or {},
                str(inv.get("created") or block.get("created") or ""))

    def samples_path(self, task: str) -> Path:
        return self.path / "samples" / f"{task}.jsonl"

    def load_samples(self, task: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Per-sample records of one task, and warnings for lines that could not be read."""
        return load_samples(self.samples_path(task))


@dataclass
class Reference:
    """Scores reported in a paper: shown beside runs, never measured here."""

    path: Path
    model: str
    source: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)


def _require(obj: Any, key: str, kind: type | tuple[type, ...], where: str, file: Path) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ResultsError(f"{file}: missing field '{where}{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
        raise ResultsError(f"{file}: field '{where}{key}' should be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def _read_json(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{file}: cannot read: {e}") from None
    if not text.strip():
        raise ResultsError(f"{file}: empty file (a run that never finished scoring?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{file}: malformed or partial JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def _check_format(data: Any, expected: str, file: Path) -> None:
    if not isinstance(data, dict):
        raise ResultsError(f"{file}: top level should be a JSON object, got {type(data).__name__}")
    found = data.get("format")
    if found == expected:
        return
    family = expected.split("/")[0]
    if found is None:
        raise ResultsError(f"{file}: missing field 'format' (expected {expected!r}); "
                           "an older results format? re-score the run with `m3eval score RUN_DIR`")
    if isinstance(found, str) and found.startswith(family + "/"):
        raise ResultsError(f"{file}: field 'format' is {found!r}, this m3eval reads {expected!r}; "
                           "re-score the run with `m3eval score RUN_DIR`")
    raise ResultsError(f"{file}: field 'format' is {found!r}, not an m3eval file of kind {expected!r}")


def _check_metric(metric: Any, where: str, file: Path) -> None:
    value = _require(metric, "value", (int, float), where, file)
    if not math.isfinite(value):
        raise ResultsError(f"{file}: field '{where}value' is {value}, not a finite number")
    ci = metric.get("ci")
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2
                               and all(isinstance(x, (int, float)) for x in ci)):
        raise ResultsError(f"{file}: field '{where}ci' should be [low, high], got {ci!r}")
    scale = metric.get("scale", 1)  # 1 or 100 for m3eval's metrics; a plugin may use another full scale
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
        raise ResultsError(f"{file}: field '{where}scale' should be a positive number (1 or 100), got {scale!r}")


def validate_results(data: Any, file: Path) -> dict[str, Any]:
    """Check what compare and the page rely on; raise ResultsError naming file and field."""
    _check_format(data, RESULTS_FORMAT, file)
    run = _require(data, "run", dict, "", file)
    _require(run, "name", str, "run.", file)
    tasks = _require(data, "tasks", dict, "", file)
    if not tasks:
        raise ResultsError(f"{file}: field 'tasks' is empty (a partial run?)")
    for name, task in tasks.items():
        where = f"tasks.{name}."
        if not isinstance(task, dict):
            raise ResultsError(f"{file}: field 'tasks.{name}' should be an object")
        _require(task, "hash", str, where, file)
        _require(task, "version", (int, str), where, file)
        metrics = _require(task, "metrics", dict, where, file)
        if not metrics:
            raise ResultsError(f"{file}: field '{where}metrics' is empty")
        for mname, metric in metrics.items():
            if not isinstance(metric, dict):
                raise ResultsError(f"{file}: field '{where}metrics.{mname}' should be an object")
            _check_metric(metric, f"{where}metrics.{mname}.", file)
        primary = _require(task, "primary_metric", str, where, file)
        if primary not in metrics:
            raise ResultsError(f"{file}: field '{where}primary_metric' is {primary!r}, "
                               f"not one of its metrics ({', '.join(metrics)})")
        _check_optional(task, where, file)
    for key in ("model", "config", "versions"):
        _optional_kind(run.get(key), dict, f"run.{key}", file)
    _optional_kind(data.get("timings"), dict, "timings", file)
    groups = data.get("groups") or {}
    _optional_kind(groups, dict, "groups", file)
    for g, group in groups.items():
        _optional_kind(group, dict, f"groups.{g}", file)
        members = _require(group, "tasks", list, f"groups.{g}.", file)
        if not all(isinstance(t, str) for t in members):
            raise ResultsError(f"{file}: field 'groups.{g}.tasks' should be a list of task names")
        _require(group, "value", (int, float, type(None)), f"groups.{g}.", file)  # None: not computable
    return data


def _optional_kind(value: Any, kind: type, where: str, file: Path) -> None:
    if value is not None and not isinstance(value, kind):
        raise ResultsError(f"{file}: field '{where}' should be {_kind_name(kind)}, got {type(value).__name__}")


def _check_optional(task: dict[str, Any], where: str, file: Path) -> None:
    """Optional task fields the page draws from: wrong shapes are errors, not crashes later."""
    _optional_kind(task.get("dataset"), dict, f"{where}dataset", file)
    langs = task.get("languages")
    _optional_kind(langs, dict, f"{where}languages", file)
    for lang, metrics in (langs or {}).items():
        _optional_kind(metrics, dict, f"{where}languages.{lang}", file)
    inst = task.get("instructions")
    _optional_kind(inst, dict, f"{where}instructions", file)
    per = (inst or {}).get("per_instruction")
    if per is not None and not (isinstance(per, list) and all(isinstance(v, (int, float)) for v in per)):
        raise ResultsError(f"{file}: field '{where}instructions.per_instruction' should be a list of numbers")


def load_run(path: str | Path) -> Run:
    """A run from its directory or its results.json; ResultsError if it cannot be used."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such run directory or results file")
    file = path / "results.json" if path.is_dir() else path
    if path.is_dir() and not file.exists():
        raise ResultsError(f"{path}: not a run directory (no results.json in it)")
    data = validate_results(_read_json(file), file)
    return Run(path=file.parent, results=data)


def find_runs(results_dir: str | Path) -> tuple[list[Run], list[str]]:
    """Every run under results_dir (any depth), skipping unusable ones with a warning each.

    Raises ResultsError when results_dir does not exist; an empty list comes with a
    warning saying where we looked.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(f"{root}: results directory does not exist")
    runs: list[Run] = []
    warnings: list[str] = []
    for file in sorted(root.rglob("results.json")):
        if "reference" in file.relative_to(root).parts[:-1]:
            continue
        try:
            runs.append(load_run(file))
        except ResultsError as e:
            warnings.append(f"skipped: {e}")
    if not runs:
        warnings.append(f"no runs found in {root} (looked for <run>/results.json)")
    names = [r.name for r in runs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        paths = ", ".join(str(r.path) for r in runs if r.name == dup)
        warnings.append(f"several runs are named {dup!r} ({paths}); they are told apart by folder")
    return runs, warnings


def load_reference(file: Path) -> Reference:
    data = _read_json(file)
    _check_format(data, REFERENCE_FORMAT, file)
    model = _require(data, "model", str, "", file)
    tasks = _require(data, "tasks", dict, "", file)
    for name, task in tasks.items():
        metrics = _require(task, "metrics", dict, f"tasks.{name}.", file)
        for mname, metric in metrics.items():
            _check_metric(metric, f"tasks.{name}.metrics.{mname}.", file)
    return Reference(path=file, model=model, source=str(data.get("source", "")), tasks=tasks)


def load_references(results_dir: str | Path) -> tuple[list[Reference], list[str]]:
    """Reference rows from <results_dir>/reference/*.json; unusable files become warnings."""
    folder = Path(results_dir) / "reference"
    refs: list[Reference] = []
    warnings: list[str] = []
    if not folder.is_dir():
        return refs, warnings
    for file in sorted(folder.glob("*.json")):
        try:
            refs.append(load_reference(file))
        except ResultsError as e:
            warnings.append(f"skipped reference: {e}")
    return refs, warnings


def load_samples(file: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of a samples/<task>.jsonl; a bad line is skipped and reported, not fatal."""
    if not file.exists():
        return [], [f"{file}: no such file (the run has no per-sample records for this task)"]
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    with file.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                warnings.append(f"{file}:{lineno}: malformed JSON line skipped ({e.msg})")
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), (str, int)):
                warnings.append(f"{file}:{lineno}: record without an 'id' skipped")
                continue
            if not isinstance(rec.get("scores"), dict):
                warnings.append(f"{file}:{lineno}: sample {rec['id']!r} has no 'scores' object; skipped")
                continue
            rec["id"] = str(rec["id"])
            records.append(rec)
    return records, warnings


def display_value(metric: dict[str, Any]) -> float:
    """A metric's value on the page's 0..100 scale."""
    return float(metric["value"]) * (100.0 / float(metric.get("scale", 1)))


def display_ci(metric: dict[str, Any]) -> tuple[float, float] | None:
    ci = metric.get("ci")
    if not ci:
        return None
    k = 100.0 / float(metric.get("scale", 1))
    return float(ci[0]) * k, float(ci[1]) * k
