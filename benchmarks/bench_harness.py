"""Harness overhead on the tiny model.

    python benchmarks/bench_harness.py --sizes 200,800,3200 [--batch-size 8]
    python benchmarks/bench_harness.py --overhead [--tasks demo] [--repeat 3]

--sizes (default): for each size N, a demo_vqa dataset of N samples (the demo's generator,
images and ten answers each) goes through whole `m3eval run` processes, run from a
byte-compiled copy of the package as a wheel install has it. Prints the whole-process wall
time, the generation floor (the same batches through the adapter's generate alone, media
decoded beforehand, nothing else running), wall / floor, start-up = process start to the
first batch reaching the model, and beside each run the start-up floor: a bare process that
only imports torch + transformers and loads the model. Targets at 3,200:
wall <= 1.3 x floor + start-up; start-up at most 0.3 s over the start-up floor.
A run pauses the garbage collector while it starts (m3eval/run/heap.py), which a bare process
does not; so beside it, the same bare process with the collector paused as a run pauses it
("paused floor"): what is left over that floor is m3eval's own start-up work.

--overhead: in-process runs; how much of a run's wall time (model load excluded) is
spent outside `generate`. Target: overhead <= 10%.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


ROOT = Path(__file__).resolve().parents[1]


def child(stamp: str, argv: list[str]) -> int:
    """A `m3eval run` process that writes the wall-clock time its first batch reaches the model."""
    from m3eval.cli import main as cli_main
    from m3eval.models.hf import HFAdapter

    real = HFAdapter.generate_prepared

    def first_call(self, inputs, gen):
        if not os.path.exists(stamp):
            Path(stamp).write_text(repr(time.time()))
        return real(self, inputs, gen)

    HFAdapter.generate_prepared = first_call
    sys.argv = ["m3eval", *argv]
    return cli_main()  # argv from sys.argv, as `m3eval run` gets it: ends with os._exit (no teardown)


def sizes(a: argparse.Namespace) -> None:
    from m3eval.demo.data import vqa_rows
    from m3eval.demo.tiny_model import ensure_tiny_model
    import datasets

    model = ensure_tiny_model()
    print(f"task=demo_vqa (N synthetic samples) batch_size={a.batch_size} torch threads=1, whole process, "
          f"{a.repeat} runs a size, each after a start-up floor run (medians; this VM's speed drifts by a "
          "third over minutes, so only side-by-side figures compare)")
    print("start-up floor: a bare `python -c` that imports torch and transformers' Auto classes and loads "
          "this processor and model. gap: start-up - floor, run by run. paused: the same with the collector "
          "paused as a run pauses it (m3eval/run/heap.py), and the gap to it")
    print(f"{'N':>6} {'wall s':>7} {'gen. floor s':>12} {'wall/floor':>10} {'target s':>8} {'start-up s':>10} "
          f"{'floor s':>7} {'gap s':>6} {'paused s':>8} {'gap s':>6} {'1st run s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        package = installed_copy(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(package), "TOKENIZERS_PARALLELISM": "false"}
        for n in [int(x) for x in a.sizes.split(",")]:
            data = Path(tmp) / f"vqa{n}.parquet"
            ds = datasets.Dataset.from_list(vqa_rows(n, seed=1)).cast_column("image", datasets.Image())
            ds.to_parquet(str(data))
            runs = []  # (wall, start-up, floor, paused floor); the first run also converts the data (datasets' cache)
            for i in range(a.repeat + 1):
                bare, paused = import_floor(model), import_floor(model, paused=True)
                stamp = Path(tmp) / f"first{n}-{i}"
                argv = ["run", "--model", "hf", "--model-args", f"pretrained={model}", "--tasks", "demo_vqa",
                        "--dataset-override", f"demo_vqa={data}", "--output", str(Path(tmp) / f"out{n}-{i}"),
                        "--batch-size", str(a.batch_size), "--threads", "1"]
                t0 = time.time()
                r = subprocess.run([sys.executable, __file__, "--child", str(stamp), "--", *argv], env=env,
                                   capture_output=True, text=True)  # its stderr is kept for a failure message
                wall = time.time() - t0
                if r.returncode != 0:
                    raise SystemExit(f"run failed ({r.returncode}):\n{r.stderr[-2000:]}")
                runs.append((wall, float(stamp.read_text()) - t0, bare, paused))
            first, runs = runs[0], runs[1:]
            wall, startup, bare, paused = (statistics.median(r[k] for r in runs) for k in range(4))
            gap, paused_gap = (statistics.median(r[1] - r[k] for r in runs) for k in (2, 3))
            a.tasks, a.max_new_tokens = "demo_vqa", None
            floor = generate_alone(model, a, override=str(data))
            print(f"{n:>6} {wall:>7.2f} {floor:>12.2f} {wall / floor:>10.2f} {1.3 * floor + startup:>8.2f} "
                  f"{startup:>10.2f} {bare:>7.2f} {gap:>6.2f} {paused:>8.2f} {paused_gap:>6.2f} {first[1]:>9.2f}"
                  f"   (load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def installed_copy(tmp: Path) -> Path:
    """The package as a wheel install has it: byte-compiled (pip compiles on install). From the
    checkout under PYTHONDONTWRITEBYTECODE=1 (set on these machines) every run would compile
    m3eval from source, which no user pays, while torch and transformers load compiled."""
    import compileall
    import shutil

    root = tmp / "site"
    shutil.copytree(ROOT / "m3eval", root / "m3eval", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("tasks", "dashboard"):  # where a wheel has them (setup.py)
        shutil.copytree(ROOT / name, root / "m3eval" / "_data" / name, ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(str(root / "m3eval"), quiet=1):
        raise SystemExit("could not byte-compile m3eval")
    return root


def import_floor(model: Path, paused: bool = False) -> float:
    """Process start to a loaded model with nothing else: what any transformers-based harness pays.
    paused: with the collector paused, the libraries' objects frozen, the load's collected (run/heap.py)."""
    code = ("import gc, time; gc.disable()\n" if paused else "import time\n") + (
            "import torch; torch.set_num_threads(1)\n"
            "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
            + ("gc.freeze()\n" if paused else "") +
            f"AutoProcessor.from_pretrained({str(model)!r})\n"
            f"AutoModelForImageTextToText.from_pretrained({str(model)!r})\n"
            + ("gc.collect(); gc.freeze(); gc.enable()\n" if paused else "") +
            "print(repr(time.time()))")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(r.stdout.split()[-1]) - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200,800,3200")
    ap.add_argument("--overhead", action="store_true", help="the in-process overhead runs instead")
    ap.add_argument("--tasks", default="demo")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int)
    ap.add_argument("--repeat", type=int, default=3, help="runs a size (--sizes; after one that converts "
                    "the data), or in-process runs (--overhead)")
    ap.add_argument("--no-media", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args()
    if a.child:  # imports nothing before the CLI does, as a user's `m3eval run`
        sys.path.remove(str(ROOT))  # the compiled copy on PYTHONPATH, not the checkout
        raise SystemExit(child(a.child, rest[1:] if rest[:1] == ["--"] else rest))
    import torch

    from m3eval.demo.tiny_model import ensure_tiny_model
    from m3eval.run.pipeline import RunConfig, evaluate
    torch.set_num_threads(1)
    if not a.overhead:
        return sizes(a)
    model = ensure_tiny_model()
    overheads = []
    print(f"tasks={a.tasks} batch_size={a.batch_size} max_new_tokens={a.max_new_tokens or 'per task'} "
          f"torch threads=1")
    for i in range(a.repeat):
        with tempfile.TemporaryDirectory() as out:
            cfg = RunConfig(tasks=a.tasks.split(","), output=Path(out), model_args={"pretrained": str(model)},
                            batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, progress=False,
                            save_media=not a.no_media)
            results, _ = evaluate(cfg)
        assert results is not None
        t = results.timings.model_dump()
        wall = t["total_s"] - t["load_s"]
        overhead = 1 - t["generate_s"] / wall
        overheads.append(overhead)
        print(f"run {i + 1}: samples={t['samples']} wall(excl. load)={wall:.2f}s generate={t['generate_s']:.2f}s "
              f"score={t['score_s']:.2f}s load={t['load_s']:.2f}s samples/s={t['samples_per_s']:.1f} "
              f"overhead={overhead:.1%}")
    print(f"median overhead: {statistics.median(overheads):.1%} (target <= 10%)")
    floor = generate_alone(model, a)
    print(f"floor: the same batches through model.generate alone (media decoded beforehand, nothing else "
          f"running): {floor:.2f}s")


def generate_alone(model_dir: Path, a: argparse.Namespace, override: str | None = None) -> float:
    """The model's own time for the run's batches with no harness around it; background
    work (decoding, scoring) in a real run competes with it for the GIL on a model this
    small, so `generate` inside a run is somewhat above this floor."""
    import time

    from m3eval.data.media import VideoRule
    from m3eval.models.base import GenerationConfig
    from m3eval.models.registry import load_model
    from m3eval.data.task_samples import load_task_data
    from m3eval.run.prefetch import prepare
    from m3eval.tasks.registry import Registry

    adapter = load_model("hf", {"pretrained": str(model_dir)})
    total = 0.0
    for spec in Registry.discover().resolve(a.tasks.split(",")):
        rule = VideoRule(frames=spec.video.frames, fps=spec.video.fps, max_frames=spec.video.max_frames)
        samples = sorted(load_task_data(spec, None, "default", override).samples,
                         key=lambda s: (-len(s.prompt) - 256 * len(s.media), s.id))
        messages = [prepare(s, rule, None).message for s in samples]
        gen = GenerationConfig(max_new_tokens=a.max_new_tokens or spec.generation.max_new_tokens)
        for i in range(0, len(messages), a.batch_size):
            t0 = time.perf_counter()
            adapter.generate(messages[i:i + a.batch_size], gen)
            total += time.perf_counter() - t0
    return total


if __name__ == "__main__":
    main()
