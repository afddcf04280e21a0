"""The command line under bad usage and bad files (issue 10: 13, 14, 6, 8, 11, 12; issue 9.5):
exit codes as the README's table says, one line naming the file, nothing heavy imported
by the commands that need no model."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m3eval.record import MAX_PREDICTION_CHARS

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "results" / "demo" / "tiny-llava"  # a finished run, checked in
HEAVY = ("torch", "transformers", "datasets", "pandas", "nltk")


def m3eval(*args: str, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "m3eval", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("m3eval")]
    assert lines, r.stderr
    return lines[-1]


# --- 10.13: usage errors exit 2 everywhere -------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["run", "--tasks", "demo_vqq"], "unknown task or group 'demo_vqq'"),
    (["run", "--tasks", "demo_mc", "--model-args", "pretrained"], "not key=value"),
    (["run", "--tasks", ","], "names no task"),
    (["tasks", "--include-path", "/no/such/folder"], "--include-path /no/such/folder: no such"),
    (["run", "--tasks", "demo_mc", "--include-path", "/no/such/folder"], "--include-path /no/such/folder: no such"),
    (["run", "--tasks", "demo_mc", "--dataset-override", "demo_vqa=x.jsonl"], "names tasks not in this run: demo_vqa"),
    (["score"], "give a run directory"),
    (["score", "--predictions", "p.jsonl"], "--predictions needs --task"),
    (["score", "--task", "nope_task", "--predictions", "p.jsonl"], "unknown task or group 'nope_task'"),
    (["score", str(GOLDEN), "--task", "demo_mc"], "--task and --allow-missing go with --predictions"),
    (["run", "--tasks", "demo_mc", "--batch-size", "0"], "positive whole number"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2(args, says):
    r = m3eval(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert says in r.stderr and "Traceback" not in r.stderr


def test_usage_is_checked_before_anything_heavy_loads():
    """An unknown task fails in well under the time importing torch + transformers takes."""
    code = ("import sys; from m3eval.cli import main; rc = main(['run', '--tasks', 'demo_vqq']); "
            f"print(rc, [m for m in {HEAVY!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "2 []", r.stdout + r.stderr


# --- issue 9.5: light commands import nothing heavy -------------------------------------------

@pytest.mark.parametrize("argv", [["tasks"], ["validate"], ["--help"], ["compare", str(GOLDEN), str(GOLDEN)],
                                  ["run", "--help"]])
def test_light_commands_import_no_heavy_module(argv):
    code = ("import sys\nfrom m3eval.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("HEAVY")]
    assert line == ["HEAVY []"], r.stderr[-2000:]


def test_importtime_of_m3eval_tasks_lists_no_heavy_module():
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "m3eval", "tasks"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "demo_vqa" in r.stdout
    imported = {ln.split("|")[-1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")}
    assert "m3eval.tasks.registry" in imported  # the report is real
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_a_closed_output_pipe_is_quiet():
    # `true` has exited long before m3eval (0.3 s to start) writes: the write meets a closed pipe
    r = subprocess.run(f"{sys.executable} -m m3eval tasks | true; echo rc=${{PIPESTATUS[0]}} >&2", shell=True,
                       executable="/bin/bash", cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stderr.strip() == "rc=141", r.stderr


# --- 10.14: external predictions are checked strictly --------------------------------------------

def _preds(tmp_path: Path, rows: list[dict]) -> Path:
    f = tmp_path / "preds.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_duplicated_ids_are_an_error_naming_both_lines(tmp_path):
    f = _preds(tmp_path, [{"id": "mc000", "prediction": "B"}, {"id": "mc001", "prediction": "A"},
                          {"id": "mc000", "prediction": "C"}])
    r = m3eval("score", "--task", "demo_mc", "--predictions", str(f))
    assert r.returncode == 1
    assert f"{f}:3: id 'mc000' again (first on line 1)" in one_line_error(r)


def test_missing_predictions_fail_unless_allowed(tmp_path):
    f = _preds(tmp_path, [{"id": f"mc{i:03d}", "prediction": "A"} for i in range(5)])
    r = m3eval("score", "--task", "demo_mc", "--predictions", str(f))
    assert r.returncode == 1 and "27 of 32 samples of task demo_mc have no prediction" in r.stderr
    assert "5 predictions read" in r.stderr and "--allow-missing" in r.stderr
    r = m3eval("score", "--task", "demo_mc", "--predictions", str(f), "--allow-missing")
    assert r.returncode == 0, r.stderr


# --- 10.6 and 10.8: torn and corrupt files are named ---------------------------------------------

@pytest.fixture
def run_copy(tmp_path) -> Path:
    run = tmp_path / "tiny-llava"
    shutil.copytree(GOLDEN, run)
    return run


def test_score_warns_about_a_torn_last_prediction_line(run_copy):
    log = run_copy / "predictions" / "demo_mc.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]) + lines[-1][:40])  # the last line cut short, no newline
    r = m3eval("score", str(run_copy))
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{log}:{len(lines)}: last line is cut short" in r.stderr
    assert f"task demo_mc: {len(lines) - 1} predictions read" in r.stderr


@pytest.mark.parametrize("damage, says", [
    (lambda row: 5, "the record: input should be a valid dictionary"),
    (lambda row: None, "the record: input should be a valid dictionary"),
    (lambda row: {k: v for k, v in row.items() if k != "prediction"}, "missing field 'prediction'"),
    (lambda row: {**row, "prediction": 7}, "field 'prediction': input should be a valid string"),
    (lambda row: {**row, "references": "red"}, "field 'references': input should be a valid list"),
    (lambda row: {**row, "prediction": "x" * (MAX_PREDICTION_CHARS + 1)}, "field 'prediction': string should have "
     f"at most {MAX_PREDICTION_CHARS} characters"),  # issue 20, case 19
])
def test_a_damaged_prediction_line_is_an_error_naming_file_and_line(run_copy, damage, says, cli):
    """Issue 20, cases 11 and 18: `score RUN` split `"references": "red"` into letters (a wrong
    score) or crashed with a traceback on `5`, `null`, a missing or non-string prediction."""
    log = run_copy / "predictions" / "demo_mc.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    rows[2] = damage(rows[2])
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli("score", str(run_copy))
    assert r.returncode == 1
    line = one_line_error(r)
    assert f"{log}: prediction 3: {says}" in line, line


@pytest.mark.parametrize("name", ["results.json", "run.json"])
def test_corrupt_json_names_the_file_and_what_to_do(run_copy, tiny_model, name):
    (run_copy / name).write_text('{"format": "m3eval.results/1", "tasks": {')
    if name == "results.json":
        r = m3eval("score", str(run_copy))
        fix = "move it aside"
    else:  # run.json is read when a run resumes the folder
        r = m3eval("run", "--model-args", f"pretrained={tiny_model}", "--tasks", "demo_mc", "--limit", "2",
                   "--output", str(run_copy.parent), "--run-name", run_copy.name)
        fix = "restore it"
    line = one_line_error(r)
    assert r.returncode == 1 and f"{run_copy / name}: not valid JSON (line 1" in line and fix in line


def test_compare_names_a_corrupt_results_file(run_copy):
    (run_copy / "results.json").write_text("")
    r = m3eval("compare", str(GOLDEN), str(run_copy))
    assert r.returncode == 2 and str(run_copy / "results.json") in one_line_error(r)


# --- 10.11 (command-line part): markdown from run names is escaped --------------------------------

def test_compare_markdown_escapes_run_names(run_copy):
    evil = "x` ![p](http://e.invalid/p.png) [c](javascript:alert(1)) <b>|"
    res = json.loads((run_copy / "results.json").read_text())
    res["run"]["name"] = evil
    (run_copy / "results.json").write_text(json.dumps(res))
    r = m3eval("compare", str(GOLDEN), str(run_copy), "--format", "markdown")
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[2]
    assert "](" not in head.replace("\\](", "") and "<b>" not in head and "`" not in head.replace("\\`", "")
    assert "x\\` !\\[p\\](http://e.invalid/p.png) \\[c\\](javascript:alert(1)) &lt;b&gt;\\|" in head
    assert "| ✅ | demo_vqa | exact_match |" in r.stdout  # task names stay readable


# --- 10.12: SIGTERM stops the page, not only the launcher -----------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_leaderboard_stops_streamlit(sig):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "m3eval", "leaderboard", "--results", str(GOLDEN.parent),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[int] = []
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the page never started serving")
        children = _children(proc.pid)
        assert children, "streamlit runs as a child process"
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        assert code == 128 + sig or code == 0
        time.sleep(0.5)
        assert not [c for c in children if _alive(c)], "streamlit kept running after its launcher stopped"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the port still answers"
    finally:
        for c in children + _children(proc.pid):
            if _alive(c):
                os.kill(c, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def test_a_line_torn_inside_a_multibyte_character_is_dropped_not_fatal(tmp_path, capsys):
    from m3eval.results import read_jsonl
    whole = json.dumps({"id": "0", "prediction": "红色"}, ensure_ascii=False).encode()
    torn = json.dumps({"id": "1", "prediction": "三角形"}, ensure_ascii=False).encode()[:-4]  # mid-character
    path = tmp_path / "t.jsonl"
    path.write_bytes(whole + b"\n" + torn)
    assert [r["id"] for r in read_jsonl(path)] == ["0"]
    assert f"{path}:2: last line is cut short" in capsys.readouterr().err
    path.write_bytes(torn + b"\n" + whole + b"\n")  # not the last line: an error naming file and line
    with pytest.raises(ValueError, match=r"t\.jsonl:1: not valid JSON"):
        read_jsonl(path)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../up", ""])
def test_a_run_name_is_one_plain_folder_name(tmp_path, name):
    """Issue 20, case 23: `--run-name ..` wrote outside --output, `.` into it directly."""
    r = m3eval("run", "--tasks", "demo_mc", "--run-name", name, "--output", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "expected one plain folder name" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_include_path_folder_in_the_environment_is_named_as_such(tmp_path):
    """Issue 20, case 25: a missing M3EVAL_INCLUDE_PATH folder was blamed on --include-path, exit 1."""
    env = {**os.environ, "M3EVAL_INCLUDE_PATH": str(tmp_path / "gone")}
    r = subprocess.run([sys.executable, "-m", "m3eval", "tasks"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and f"M3EVAL_INCLUDE_PATH names {tmp_path / 'gone'}: no such" in one_line_error(r)


def test_a_line_or_prediction_over_the_bound_is_refused_before_it_is_scored(run_copy, tmp_path, cli):
    """Issue 20, case 19: a 200 MB prediction line was read whole and ran exact_match out of
    memory. A line over MAX_LINE_BYTES is refused unread, naming file and line (run logs and
    `score --predictions` alike); a prediction over MAX_PREDICTION_CHARS is refused when read."""
    from m3eval.results import MAX_LINE_BYTES
    log = run_copy / "predictions" / "demo_mc.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    row = json.loads(lines[1])
    with log.open("w") as f:
        f.write(lines[0] + json.dumps({**row, "prediction": "x" * (MAX_LINE_BYTES + 10)}) + "\n" + "".join(lines[2:]))
    r = cli("score", str(run_copy))
    assert r.returncode == 1 and f"{log}:2: a line over {MAX_LINE_BYTES >> 20} MiB; not read" in one_line_error(r)
    given = tmp_path / "given.jsonl"
    given.write_text(json.dumps({"id": row["id"], "prediction": "x" * (MAX_PREDICTION_CHARS + 1)}) + "\n")
    r = cli("score", "--task", "demo_mc", "--predictions", str(given), "--output", str(tmp_path / "out"))
    assert r.returncode == 1
    assert f"{given}:1: a prediction of {MAX_PREDICTION_CHARS + 1:,} characters, over the bound" in one_line_error(r)
