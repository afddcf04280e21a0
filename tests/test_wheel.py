"""The wheel carries the product: built from this checkout, installed into a fresh
virtualenv outside it, `m3eval tasks`, `validate`, `demo` and the leaderboard page work
from a folder that is not the repository."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m3eval.demo.tiny_model import DEMO_TRAIN_STEPS, default_cache_dir

ROOT = Path(__file__).resolve().parents[1]
# What a build reads (pyproject.toml, setup.py, MANIFEST.in): copied, so a stale build/ in the
# checkout cannot leak into the wheel and the test leaves nothing behind.
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "m3eval", "tasks", "dashboard"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                        if (ROOT / name).is_dir() else {}))
    # Without build isolation when setuptools is here (no download); else pip fetches it.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                    "-w", str(work / "dist"), str(src)], check=True, capture_output=True, text=True)
    wheel = next((work / "dist").glob("m3eval-*.whl"))
    # --system-site-packages reuses torch, transformers and streamlit; m3eval itself is the
    # wheel's (the venv's site-packages comes before the editable install's finder).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(work / "venv")],
                   check=True)
    py = work / "venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, text=True, env=_env(work))
    return work


def _env(work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "M3EVAL_INCLUDE_PATH")}
    return {**env, "TOKENIZERS_PARALLELISM": "false", "M3EVAL_CACHE": str(work / "cache"), **extra}


def _run(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    cwd = work / "elsewhere"
    cwd.mkdir(exist_ok=True)
    return subprocess.run([str(work / "venv" / "bin" / args[0]), *args[1:]], cwd=cwd, env=_env(work, **env),
                          capture_output=True, text=True, timeout=300)


def test_the_installed_wheel_is_the_one_imported(venv):
    r = _run(venv, "python", "-c", "import m3eval, m3eval.resources as r; print(m3eval.__file__); "
             "print(r.TASKS_DIR); print(r.DASHBOARD_DIR)")
    assert r.returncode == 0, r.stderr
    module, tasks, dashboard = r.stdout.split()
    inside = str(venv / "venv") + os.sep
    assert module.startswith(inside) and tasks.startswith(inside) and dashboard.startswith(inside), r.stdout
    assert (Path(module).parent / "py.typed").is_file()  # PEP 561: type checkers read the annotations


def test_tasks_validate_demo_and_page_from_the_wheel(venv, demo_model):
    r = _run(venv, "m3eval", "tasks")
    assert r.returncode == 0, r.stderr
    for name in ("demo_vqa", "m3it_okvqa", "m3it_heldout", "official_heldout"):
        assert name in r.stdout, name

    r = _run(venv, "m3eval", "validate")
    assert r.returncode == 0 and "0 problems" in r.stdout, r.stdout + r.stderr

    # The demo model as the session built it, where the installed demo looks for its cache.
    cached = venv / "cache" / default_cache_dir(DEMO_TRAIN_STEPS).name
    cached.parent.mkdir(exist_ok=True)
    if not cached.exists():
        shutil.copytree(demo_model, cached)
    runs = venv / "elsewhere" / "runs"
    r = _run(venv, "m3eval", "demo", "--output", str(runs))
    assert r.returncode == 0, r.stderr
    assert "demo_mc" in r.stdout and (runs / "tiny-llava" / "results.json").is_file()
    assert "2-MB toy" in r.stderr and "building the demo model" not in r.stderr  # the cached copy was used

    page = ("import m3eval.resources as r; from streamlit.testing.v1 import AppTest;"
            "at = AppTest.from_file(str(r.DASHBOARD_DIR / 'app.py'), default_timeout=60).run();"
            "assert not at.exception, [e.value for e in at.exception];"
            "print(at.title[0].value); print(sorted(at.dataframe[0].value['model']))")
    r = _run(venv, "python", "-c", page, M3EVAL_RESULTS=str(runs))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["m3eval leaderboard", "['tiny-clip', 'tiny-llava']"], r.stdout
