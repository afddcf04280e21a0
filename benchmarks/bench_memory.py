"""Peak memory of a whole `m3eval run` as the sample count grows (issue 24).

    python benchmarks/bench_memory.py [--sizes 2000,10000,20000] [--backend hf|instant] [--image-size 64]
        [--task vqa|captions]

For each size N, a synthetic image task of N rows (`draw_image` pictures as PNG in a
datasets.Image column; --task vqa: the demo_vqa schema, question, image, ten answers, scored by
VQA accuracy block by block; --task captions: the demo_captions schema, five captions an image,
scored whole by CIDEr, BLEU-4 and ROUGE-L) is written to a local parquet and goes through its own
fresh `python -m m3eval run` process, given to it with `--dataset-override demo_<task>=PATH`. Prints,
for each run, that process's peak RSS (ru_maxrss from os.wait4 of the child: the child and any
processes it waited for, the conversion child and the data process too, each by its own peak) and,
as "all", the peak of the summed PSS of the run's process and every process under it (the data
process that reads the tasks' data, m3eval/run/data_process.py; with --backend hf, the forked
DataLoader worker that decodes media), sampled every 50 ms: pages a fork shares are counted once.
Then the slopes in KiB per sample between the smallest and the largest size.

Each size runs twice: the first run of a data file also has datasets convert it into its Arrow
cache (in a forked child: m3eval/data/convert.py), the second reads that cache. --row-group sets
the rows of the files' parquet row groups (default: datasets' own, up to 100 MB, one group here).

--backend hf (default): the tiny demo model; the whole script took 6 min 30 s on our 2-core VM.
--backend instant: a backend registered with `register_backend`, as the tests register theirs,
that answers every sample at once ("yes"): only the harness is measured (data loading, media
decoding, predictions, records, scoring); the whole script takes about 2 min.

Measured 2026-12-07, 2-core VM, 64x64 images, batch size 8, 2,000 / 20,000 samples, after the data
moved to a data process (docs/SCALING.md, Memory): instant: the run's process 267 / 279 MiB (+0.68
KiB per sample), all 374 / 396 MiB (+1.26); the same script on the tree before it (one process):
380 / 391 MiB (+0.64), all 348 / 359 MiB (+0.64). hf: see docs/SCALING.md.
Before that, the run's process only (ru_maxrss), the conversion in a child and Arrow on the system
allocator (first run / second run):
  instant: 2,000: 380/380 MiB, 10,000: 388/384, 20,000: 391/388: +0.67 / +0.44 KiB per sample
  hf:      2,000: 537/537 MiB, 10,000: 544/548, 20,000: 551/551: +0.80 / +0.78 KiB per sample
Earlier that day, the conversion in the run's process and Arrow's mimalloc: instant +1.75 / +0.52,
hf +1.35 / +0.64; --task captions, instant (second runs): 406 / 480 / 567 MiB, +9.1 KiB per sample
(the corpus metrics' own working set: docs/SCALING.md); before a task was scored whole without its
predictions, one metric at a time, +15.1. Before samples were built lazily: instant +2.7 / +1.6,
hf +2.1 / +1.5 KiB per sample. Before merging and scoring were streamed and samples slimmed
(2026-12-06, first runs): instant 398/438/466 MiB, +3.9; hf 557/641 MiB (2k/20k), +4.8 KiB per
sample. Before the JSONL files were written and read a chunk or a line at a time: instant +8.4,
hf +11.5 KiB per sample.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def child(argv: list[str]) -> int:
    """A `m3eval run` process; with the instant backend registered first when asked for."""
    if argv[argv.index("--model") + 1] == "instant":
        from m3eval.models.base import ModelAdapter
        from m3eval.models.registry import register_backend

        class Instant(ModelAdapter):
            """Answers at once, so a run's memory is the harness's own."""

            def __init__(self) -> None:
                self.name = "instant"

            def generate(self, batch, gen):  # type: ignore[no-untyped-def]
                return ["yes"] * len(batch)

        register_backend("instant", Instant)
    from m3eval.cli import main as cli_main
    sys.argv = ["m3eval", *argv]
    return cli_main()  # argv from sys.argv, as `m3eval run` gets it: ends with os._exit


def write_data(n_max: int, image_size: int, folder: Path, sizes: list[int], task: str, row_group: int | None
               ) -> dict[int, Path]:
    """One parquet per size: the first n rows of the same n_max synthetic rows, in the schema of
    demo_vqa (a question, ten answers) or demo_captions (five captions an image)."""
    import datasets

    from m3eval.data.synthetic import draw_image
    from m3eval.demo.data import png

    datasets.disable_progress_bars()
    answers = ["yes", "no", "red", "two", "3"]
    words = ["a", "dog", "red", "bus", "on", "the", "street", "two", "cats", "sleeping", "near", "window"]

    def row(i: int) -> dict:
        image = {"bytes": png(draw_image(i, (image_size, image_size))), "path": None}
        if task == "captions":
            return {"image_id": i, "image": image, "captions": [
                " ".join(words[(i * 7 + k * 3 + j) % len(words)] for j in range(8 + k)) for k in range(5)]}
        return {"question_id": i, "question": f"Question {i}: what is in the picture?", "image": image,
                "answers": [answers[(i + k) % len(answers)] for k in range(10)]}

    ds = datasets.Dataset.from_generator(lambda: (row(i) for i in range(n_max)), cache_dir=str(folder / "cache"))
    ds = ds.cast_column("image", datasets.Image())
    paths = {}
    for n in sizes:
        paths[n] = folder / f"rows{n}.parquet"
        ds.select(range(n)).to_parquet(str(paths[n]), batch_size=row_group)
    return paths


def run_one(data: Path, out: Path, a: argparse.Namespace) -> tuple[float, float, float]:
    """(peak RSS of the `m3eval run` process, peak of the summed PSS of it and every process under it
    (the data process, the decoding worker), both in MiB; wall seconds) of one whole run."""
    if a.backend == "hf":
        from m3eval.demo.tiny_model import ensure_tiny_model
        model = ["--model", "hf", "--model-args", f"pretrained={ensure_tiny_model()}"]
    else:
        model = ["--model", "instant"]
    task = f"demo_{a.task}"
    argv = ["run", *model, "--tasks", task, "--dataset-override", f"{task}={data}",
            "--output", str(out), "--batch-size", str(a.batch_size), "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, __file__, "--child", "--", *argv], env=env,
                             stdout=subprocess.DEVNULL, stderr=err)
        total = 0.0
        while os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:  # ended: not reaped yet
            total = max(total, _tree_pss(p.pid))
            time.sleep(0.05)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own rusage, not the running max of all children
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - t0
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"run failed ({p.returncode}):\n{err.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, total / 1024, wall  # Linux: ru_maxrss in KiB


def _tree_pss(pid: int) -> float:
    """KiB: the proportional set size of a process and all its descendants, now (pages they share, as a
    fork shares them, counted once among them)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):  # it ended meanwhile
            continue
        total += next((float(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0.0)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,10000,20000")
    ap.add_argument("--backend", choices=["hf", "instant"], default="hf")
    ap.add_argument("--image-size", type=int, default=64, help="side of the square synthetic images, pixels")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--task", choices=["vqa", "captions"], default="vqa",
                    help="vqa: VQA accuracy (per-sample metrics, scored block by block); captions: CIDEr, "
                         "BLEU-4 and ROUGE-L (corpus metrics, scored whole)")
    ap.add_argument("--row-group", type=int, default=0, help="rows a parquet row group holds (default 0: datasets' "
                    "own, up to 100 MB a group, which is one group at every size here)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args()
    if a.child:  # imports nothing before the CLI does, as a user's `m3eval run`
        raise SystemExit(child(rest[1:] if rest[:1] == ["--"] else rest))
    sizes = sorted(int(x) for x in a.sizes.split(","))
    print(f"task=demo_{a.task} schema, N synthetic {a.image_size}x{a.image_size} PNG images, backend={a.backend}, "
          f"batch_size={a.batch_size}, threads=1, each N in its own fresh `m3eval run` process")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        paths = write_data(sizes[-1], a.image_size, Path(tmp), sizes, a.task, a.row_group or None)
        print(f"data written in {time.time() - t0:.1f} s")
        print("peak RSS: the run's process; all: the peak of the summed PSS of it and its helpers (the data "
              "process, the decoding worker), sampled every 50 ms")
        print(f"{'N':>7} {'first run: RSS MiB':>19} {'all MiB':>8} {'wall s':>7} {'second run: RSS MiB':>20} "
              f"{'all MiB':>8} {'wall s':>7}")
        cold, warm, cold_all, warm_all = {}, {}, {}, {}
        for n in sizes:  # the first run of a file converts it into datasets' Arrow cache; the second reads that
            cold[n], cold_all[n], wall_cold = run_one(paths[n], Path(tmp) / f"out{n}", a)
            warm[n], warm_all[n], wall_warm = run_one(paths[n], Path(tmp) / f"again{n}", a)
            print(f"{n:>7} {cold[n]:>19.1f} {cold_all[n]:>8.1f} {wall_cold:>7.1f} {warm[n]:>20.1f} "
                  f"{warm_all[n]:>8.1f} {wall_warm:>7.1f}")
    lo, hi = sizes[0], sizes[-1]
    if hi > lo:
        for name, peaks in (("first runs", cold), ("second runs", warm), ("first runs, all", cold_all),
                            ("second runs, all", warm_all)):
            slope = (peaks[hi] - peaks[lo]) * 1024 / (hi - lo)
            print(f"slope {lo}..{hi}, {name}: {slope:+.2f} KiB per sample")
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
