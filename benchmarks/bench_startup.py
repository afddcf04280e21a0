"""Start-up and shut-down of the `m3eval` command (issue 9.5). Prints figures; not a test.

    python benchmarks/bench_startup.py [--repeat 3] [--run]

- `m3eval tasks`, `validate`, `--help`: wall time and which heavy modules got imported
  (target: tasks <= 0.5 s, none of torch, transformers, datasets, pandas, nltk).
- with --run: a small `m3eval run` on the tiny model: whole wall time and the time from
  results.json being written to the process having exited (interpreter teardown: the CLI
  skips freeing the model and ends with os._exit once every file is written).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "pandas", "nltk")
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


def light(argv: list[str], repeat: int) -> None:
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "m3eval", *argv], cwd=ROOT, env=ENV, capture_output=True)
        walls.append(time.perf_counter() - t)
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "m3eval", *argv], cwd=ROOT, env=ENV,
                       capture_output=True, text=True)
    mods = {ln.split("|")[-1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")}
    print(f"m3eval {' '.join(argv):10} wall median {statistics.median(walls):.2f} s "
          f"(min {min(walls):.2f})  heavy modules imported: {sorted(mods & set(HEAVY)) or 'none'}")


def small_run(repeat: int) -> None:
    sys.path.insert(0, str(ROOT))
    from m3eval.demo.tiny_model import ensure_tiny_model
    model = ensure_tiny_model(Path(tempfile.gettempdir()) / "m3eval-bench-startup" / "tiny-llava")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            t = time.time()
            subprocess.run([sys.executable, "-m", "m3eval", "run", "--model-args", f"pretrained={model}",
                            "--tasks", "demo_vqa,demo_mc", "--threads", "1", "--output", out, "--run-name", "r"],
                           cwd=ROOT, env=ENV, capture_output=True, check=True)
            end = time.time()
            written = (Path(out) / "r" / "results.json").stat().st_mtime
            print(f"m3eval run (64 samples)  wall {end - t:.2f} s  results.json -> exit {end - written:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--run", action="store_true", help="also time a small run on the tiny model")
    a = ap.parse_args()
    for argv in (["tasks"], ["validate"], ["--help"]):
        light(argv, a.repeat)
    if a.run:
        small_run(a.repeat)


if __name__ == "__main__":
    main()
