"""Writing run files (docs/FORMATS.md): where they live in a run folder, atomic writes, the
append-only predictions log, and provenance."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from pydantic import ValidationError

from .errors import ResultsError, RunError, UsageError
from .line_record import SampleRecord
from .public_paths import public_paths
from .record import (
    RESULTS_FORMAT,
    Consistency,
    GroupResult,
    Results,
    RunBlock,
    SubmissionResult,
    TaskResult,
    Timings,
)
from .reference_record import REFERENCE_FORMAT, ReferenceFile
from .types import base_id

_PACKAGES = ("m3eval", "torch", "transformers", "datasets", "tokenizers", "av", "pillow", "numpy",
             "sacrebleu", "rouge_score", "pycocoevalcap", "jieba", "accelerate")


def prediction_files(run_dir: Path, task: str) -> list[Path]:
    """A task's predictions file, then what a run in progress writes: the per-rank logs it appends
    to, and (--engine ray) the chunk files (run/chunks.py)."""
    pred_dir = run_dir / "predictions"  # the name is matched literally: a task `t?` is not `t1`
    return [pred_dir / f"{task}.jsonl", *sorted(pred_dir.glob(f"{glob.escape(task)}.rank*.jsonl")),
            *sorted(pred_dir.glob(f"{glob.escape(task)}.chunk-*.jsonl"))]


def predicted_tasks(run_dir: Path) -> list[str]:
    """The tasks a run folder has predictions for (a finished file, a rank's log or a chunk file)."""
    names = (_PREDICTIONS_FILE.fullmatch(f.name) for f in (run_dir / "predictions").glob("*.jsonl"))
    return sorted({m.group(1) for m in names if m})


_PREDICTIONS_FILE = re.compile(r"(.+?)(?:\.rank\d+|\.chunk-\d+-[0-9a-f]+)?\.jsonl")


def run_name_checked(name: str) -> str:
    """A run name is one plain folder name inside --output: never `.`, `..`, a path or a control
    character (it would write outside --output, or into it directly)."""
    if name in ("", ".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in name) \
            or len(name.encode()) > 200:
        raise UsageError(f"--run-name {name!r}: expected one plain folder name (no '/', not '.' or '..')")
    return name


def require_run_dir(run_dir: Path) -> None:
    """A folder `m3eval run` made: it has predictions to score."""
    if not (run_dir / "predictions").is_dir():
        raise RunError(f"{run_dir}: not a run directory (no predictions/ folder)")


def encoder_extras_file(run_dir: Path, task: str) -> Path:
    """An encoder task's extra results (openness curves), merged into its results entry."""
    return run_dir / "encoders" / f"{task}.json"


def submission_file(run_dir: Path, task: str) -> Path:
    """A submission-only task's file for its evaluation server (scoring/submission.py)."""
    return run_dir / "submissions" / f"{task}.json"


def media_filename(sample_id: str) -> str:
    """A filesystem-safe, collision-free name for a sample's thumbnail (under media/<task>/)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", sample_id)[:80]
    return f"{safe}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}.jpg"


def _read_umask() -> int:
    mask = os.umask(0o022)  # os.umask only sets-and-returns: read it once, at import (one thread)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()  # what open() would give: mkstemp's 0600 would hide runs from others
TMP_PREFIX, TMP_SUFFIX = ".", ".tmp"  # temp names: .<name>.<8 random chars>.tmp (run/lock.py cleans stale ones)
LOCK_NAME = ".m3eval.lock"  # held by the one process writing a run folder (run/lock.py)


def _with_path(e: OSError, path: Path) -> OSError:
    """A failed write(2) names no file (e.g. errno 28, disk full): name it."""
    return e if e.filename else type(e)(e.errno, e.strerror, str(path))


def atomic_write_bytes(path: Path, data: bytes | Iterable[bytes], durable: bool = True) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers see the old
    file or the new one, never half of one. durable=False skips the fsync, for files
    that can be made again (thumbnails). `data` may come in chunks (an iterable of bytes):
    a large file is never held whole; a chunk that fails to come leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            for chunk in (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data:
                f.write(chunk)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _with_path(e, path) from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode())


def atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """rows may be a generator: lines are encoded and written about 1 MiB at a time, so a run's
    memory does not hold the whole file (twice: text, then bytes) beside its records."""
    atomic_write_bytes(path, _jsonl_chunks(rows))


def _jsonl_chunks(rows: Iterable[dict[str, Any]], size: int = 1 << 20) -> Iterator[bytes]:
    lines: list[str] = []
    n = 0
    for r in rows:
        lines.append(json.dumps(r, ensure_ascii=False) + "\n")
        n += len(lines[-1])
        if n >= size:
            yield "".join(lines).encode()
            lines, n = [], 0
    yield "".join(lines).encode()


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append finished predictions and make them durable at once (a crash loses nothing finished)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(path)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _with_path(e, path) from None


def _drop_torn_tail(path: Path) -> None:
    """A crash mid-append leaves a last line without its newline; cut it before
    appending, or it would end up in the middle of the file."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)


# A record line is KBs (a prediction is bounded by max_new_tokens or the server reply cap); a bound
# keeps a hostile or damaged file (one 200 MB line) from filling memory before anything is checked.
MAX_LINE_BYTES = 64 << 20


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a crash mid-append, possibly inside a
    multi-byte character) is dropped, any other bad line, or one over MAX_LINE_BYTES, is an
    error naming the file and line."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """read_jsonl's rows one at a time, for a reader that keeps less than the whole rows (a bad line is
    met, and raises, only when the rows before it were taken)."""
    return (row for _, row in iter_jsonl_at(path))


def iter_jsonl_at(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """iter_jsonl's rows with the byte offset each line starts at, to read it again by seeking."""
    n_rows, offset = 0, 0
    with path.open("rb") as f:
        for n, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            start, offset = offset, offset + len(raw)
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError(f"{path}:{n}: a line over {MAX_LINE_BYTES >> 20} MiB; not read (a record is KBs)")
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                if not raw.endswith(b"\n"):  # the last line, torn by a crash mid-append
                    print(f"m3eval: warning: {path}:{n}: last line is cut short (an interrupted write?); "
                          f"skipped it, read {n_rows} rows", file=sys.stderr)
                    break
                raise ValueError(f"{path}:{n}: not valid JSON: {e}") from None
            n_rows += 1
            yield start, row


_SECRET_KEY = re.compile(r"key|token|secret|passw|auth|credential", re.IGNORECASE)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def secret_arg(key: str) -> bool:
    """A model arg whose value is never written nor digested (api_key, token, password, ...;
    api_key_env names a variable: not a secret)."""
    return bool(_SECRET_KEY.search(key)) and not key.endswith("_env")


def public_args(args: dict[str, Any]) -> dict[str, Any]:
    """Model args as stored in run.json / results.json (and all that is made from them): values
    of secret-looking keys (api_key, token, password, ...) are never written, nor the credentials
    of a URL (user:password@, the query), nor a path of this machine (a local model folder, a
    chat template file: their names only; their content is told by the model's revision and
    run.json's model_files)."""
    return {k: "<redacted>" if secret_arg(k) else
            public_url(v) if isinstance(v, str) and _URL.match(v) else public_paths(v) for k, v in args.items()}


def public_url(url: str) -> str:
    """A URL as it may be written or shown: without user:password@, query or fragment, where
    credentials ride (`?key=...`); a URL without them is unchanged."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return url
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (its password, its query values): to redact them wherever a
    server or a library echoes the URL back."""
    parts = urllib.parse.urlsplit(url)
    return [s for s in (parts.password, *(v for _, v in urllib.parse.parse_qsl(parts.query))) if s]


def read_json(path: Path, fix: str) -> Any:
    """A JSON file m3eval wrote; a corrupt one is an error naming it and saying what to do."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" (line {e.lineno} column {e.colno}: {e.msg})" if isinstance(e, json.JSONDecodeError) else ""
        raise ResultsError(f"{path}: not valid JSON{where}; {fix}") from None


def read_results(run_dir: Path, fix: str) -> Results | None:
    """The results.json an earlier invocation wrote into a run folder (None when there is none);
    a file that cannot be used is an error naming it, the field, and `fix`."""
    path = run_dir / "results.json"
    return parse_results(read_json(path, fix), path, fix) if path.exists() else None


def sample_record(row: dict[str, Any]) -> SampleRecord:
    """A samples/<task>.jsonl line as the typed record. Lines written before samples carried their
    cluster get the key the bootstrap used then (the id without its #i<k> suffix)."""
    if row.get("cluster") is None and isinstance(row.get("id"), (str, int)):
        row = {**row, "cluster": base_id(str(row["id"]))}
    return SampleRecord.model_validate(row)


def read_samples(run_dir: Path, task: str) -> list[SampleRecord]:
    """A task's scored samples; a record that is not one is an error naming the file and record."""
    path = run_dir / "samples" / f"{task}.jsonl"
    out = []
    for n, row in enumerate(read_jsonl(path), 1):
        try:
            out.append(sample_record(row if isinstance(row, dict) else {}))
        except ValidationError as e:
            raise ResultsError(f"{path}: record {n}: {field_path(e)}") from None
    return out


def package_versions() -> dict[str, str | None]:
    return {name: package_version(name) for name in _PACKAGES}


def package_version(name: str) -> str | None:
    """An installed package's version; None when it is not installed (a checkout on the path)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_sha() -> str | None:
    """The m3eval checkout's commit (with '-dirty' for local changes), when it is one."""
    here = Path(__file__).resolve().parent
    try:
        proc = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5)
        sha = proc.stdout.strip()
        if proc.returncode != 0 or not sha:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def finalize(path: Path | None, run: RunBlock, tasks: dict[str, TaskResult], groups: dict[str, GroupResult],
             consistency: dict[str, Consistency], timings: Timings | None = None,
             submissions: dict[str, SubmissionResult] | None = None) -> Results:
    """The one way results.json is made: validated as a whole, then written atomically
    (when `path` is given). `submissions` appear only when there are some: older files unchanged."""
    extra = {"submissions": submissions} if submissions else {}
    results = Results(format=RESULTS_FORMAT, run=run, timings=timings or Timings(), tasks=tasks,
                      groups=groups, consistency=consistency, **extra)
    if path is not None:
        atomic_write_json(path, results.dump())
    return results


# pydantic names union members and validators in an error's location: not fields of the file
_NOT_A_FIELD = re.compile(r"^(int|float|str|bool|none|list|dict|tuple|function-.*|.*\[.*)$")


def field_path(error: ValidationError) -> str:
    """The first failing field of a validation error, as a user reads it: "missing field
    'tasks.t.hash'", "field 'tasks.t.metrics.m.value': input should be a valid number (got str)"."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if not _NOT_A_FIELD.match(str(p)))
    if first["type"] == "missing":
        return f"missing field '{where}'"
    if first["type"] == "extra_forbidden":
        return f"unknown field '{where}'"
    msg = str(first["msg"]).removeprefix("Value error, ")
    got = "" if first["type"].startswith("value_error") else f" (got {type(first.get('input')).__name__})"
    return f"{f'field {where!r}' if where else 'the record'}: {msg[:1].lower()}{msg[1:]}{got}"


def parse_results(data: Any, file: Path, fix: str | None = None) -> Results:
    """A results.json object as the typed record; ResultsError names the file and the field.
    `fix`: what to tell the user to do about any problem (default: re-score a file written in
    another format; `m3eval score` itself says to move the file aside)."""
    return _parse(Results, RESULTS_FORMAT, data, file, fix)


def parse_reference(data: Any, file: Path) -> ReferenceFile:
    """A reference file as the typed record; ResultsError names the file and the field."""
    return _parse(ReferenceFile, REFERENCE_FORMAT, data, file, None)


_File = TypeVar("_File", Results, ReferenceFile)


def _parse(model: type[_File], expected: str, data: Any, file: Path, fix: str | None) -> _File:
    if not isinstance(data, dict):
        raise ResultsError(f"{file}: top level should be a JSON object, got {type(data).__name__}")
    problem, older = _format_problem(data.get("format"), expected)
    if problem is None:
        try:
            return model.model_validate(data)
        except ValidationError as e:
            problem = field_path(e)
    advice = fix or ("re-score the run with `m3eval score RUN_DIR`" if older else None)
    raise ResultsError(f"{file}: {problem}" + (f"; {advice}" if advice else ""))


def _format_problem(found: Any, expected: str) -> tuple[str | None, bool]:
    """What is wrong with a file's `format`, and whether it is an m3eval file of another version."""
    if found == expected:
        return None, False
    if found is None:
        return f"missing field 'format' (expected {expected!r}); an older results format?", True
    if isinstance(found, str) and found.startswith(expected.split("/")[0] + "/"):
        return f"field 'format' is {found!r}, this m3eval reads {expected!r}", True
    return f"field 'format' is {found!r}, not an m3eval file of kind {expected!r}", False
