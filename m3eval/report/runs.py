"""Read run directories and reference rows (docs/FORMATS.md) for `compare`, `export` and the page.

Read-only: nothing here needs a model or a dataset. The shape of a file is checked by the
typed models of m3eval/record.py (every reader shares them); this module adds what makes a
file unusable rather than malformed (empty, half-written, no tasks). Every error names the
file and the field, so a user can fix a hand-edited or half-written results file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ResultsError
from ..line_record import SampleRecord
from ..record import (
    GroupResult,
    Invocation,
    MetricEntry,
    Results,
    TaskResult,
)
from ..reference_record import ReferenceFile, ReferenceTask
from ..results import field_path, parse_reference, parse_results, sample_record

__all__ = ["Reference", "ResultsError", "Run", "display_ci", "display_value", "find_runs", "load_reference",
           "load_references", "load_run", "load_samples"]


@dataclass(frozen=True)
class Run:
    """A finished run: its folder and its results.json as the typed record."""

    path: Path  # the run directory
    results: Results

    @property
    def name(self) -> str:
        return self.results.run.name

    @property
    def model_id(self) -> str:
        model = self.results.run.model or {}
        return str(model.get("id") or (model.get("args") or {}).get("pretrained") or self.name)

    @property
    def tasks(self) -> dict[str, TaskResult]:
        return self.results.tasks

    @property
    def groups(self) -> dict[str, GroupResult]:
        return self.results.groups

    def invocation(self, task: str) -> Invocation:
        """The `m3eval run` call that produced a task: its own record (tasks.<t>.invocation, when
        several calls filled the folder), each part it lacks taken from the run block."""
        block = self.results.run
        entry = self.results.tasks.get(task)
        own = entry.invocation if entry is not None and entry.invocation is not None else Invocation()
        return Invocation(config=own.config or block.config or {}, model=own.model or block.model or {},
                          created=own.created or block.created)

    def samples_path(self, task: str) -> Path:
        return self.path / "samples" / f"{task}.jsonl"

    def load_samples(self, task: str) -> tuple[list[SampleRecord], list[str]]:
        """Per-sample records of one task, and warnings for lines that could not be read."""
        return load_samples(self.samples_path(task))


@dataclass(frozen=True)
class Reference:
    """Scores reported in a paper (results/reference/*.json): shown beside runs, never measured here."""

    path: Path
    file: ReferenceFile

    @property
    def model(self) -> str:
        return self.file.model

    @property
    def source(self) -> str:
        return self.file.source

    @property
    def tasks(self) -> dict[str, ReferenceTask]:
        return self.file.tasks


def _read_json(file: Path) -> Any:
    """A results or reference file as the page and `compare` find it: an unreadable, empty or
    half-written file is a ResultsError saying which (results.read_results serves the writers)."""
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


def load_run(path: str | Path) -> Run:
    """A run from its directory or its results.json; ResultsError if it cannot be used."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such run directory or results file")
    file = path / "results.json" if path.is_dir() else path
    if path.is_dir() and not file.exists():
        raise ResultsError(f"{path}: not a run directory (no results.json in it)")
    results = parse_results(_read_json(file), file)
    if not results.tasks and results.submissions:  # answers withheld: a file for a server, no score
        names = ", ".join(sorted(results.submissions))
        raise ResultsError(f"{file}: only submission-only tasks ({names}): no score to show or compare; their "
                           "files are under submissions/")
    if not results.tasks:  # valid, but nothing to show or compare
        raise ResultsError(f"{file}: field 'tasks' is empty (a partial run?)")
    return Run(path=file.parent, results=results)


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
    return Reference(path=file, file=parse_reference(_read_json(file), file))


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


def load_samples(file: Path) -> tuple[list[SampleRecord], list[str]]:
    """Records of a samples/<task>.jsonl; a bad line is skipped and reported, not fatal (a page
    over a damaged file still shows the rest)."""
    if not file.exists():
        return [], [f"{file}: no such file (the run has no per-sample records for this task)"]
    records: list[SampleRecord] = []
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
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), (str, int)) or isinstance(rec["id"], bool):
                warnings.append(f"{file}:{lineno}: record without an 'id' skipped")
                continue
            rec["id"] = str(rec["id"])
            if not isinstance(rec.get("scores"), dict):
                warnings.append(f"{file}:{lineno}: sample {rec['id']!r} has no 'scores' object; skipped")
                continue
            try:
                records.append(sample_record(rec))
            except ValidationError as e:
                warnings.append(f"{file}:{lineno}: sample {rec['id']!r} skipped: {field_path(e)}")
    return records, warnings


def display_value(metric: MetricEntry) -> float:
    """A metric's value on the page's 0..100 scale."""
    return float(metric.value) * (100.0 / float(metric.scale))


def display_ci(metric: MetricEntry) -> tuple[float, float] | None:
    if not metric.ci:
        return None
    k = 100.0 / float(metric.scale)
    return float(metric.ci[0]) * k, float(metric.ci[1]) * k
