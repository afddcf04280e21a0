"""METEOR 1.5 as pycocoevalcap runs it (meteor.py: meteor-1.5.jar -stdio, "-l en -norm"), over the
caption metrics' tokenization (m3eval/metrics/caption.py). The JVM (~7 s to start) is started once
per Python process and reused; the bootstrap re-scores resampled corpora from the per-segment
statistics in Python (meteor_from_stats)."""
from __future__ import annotations

import atexit
import subprocess
import threading
from typing import IO

import numpy as np

from m3eval.metrics.base import READS_ANSWERS, Metric, MetricInput, MetricResult, register_metric
from m3eval.metrics.caption import COCO_SOURCE, JAVA_UTF8, METEOR_DIR, java_binary, tokenize_items

# ---- METEOR 1.5 (pycocoevalcap meteor.py protocol), one JVM per Python process ----

class _MeteorProcess:
    """Speaks meteor-1.5.jar's -stdio protocol as pycocoevalcap Meteor does ("SCORE ||| refs |||
    hyp" -> statistics line; "EVAL ||| stats ..." -> one score per segment, then the corpus score).
    Lines are written from a thread so long corpora cannot deadlock on full pipes."""

    def __init__(self) -> None:
        java = java_binary("METEOR (coco_meteor)")
        cmd = [java, *JAVA_UTF8, "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"]
        self.proc = subprocess.Popen(cmd, cwd=METEOR_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are PIPEs
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _exchange(self, lines: list[str], n_out: int) -> list[str]:
        def write() -> None:
            try:
                for ln in lines:
                    self.stdin.write((ln + "\n").encode("utf-8"))
                self.stdin.flush()
            except BrokenPipeError:
                pass
        t = threading.Thread(target=write, daemon=True)
        t.start()
        out = []
        for _ in range(n_out):
            ln = self.stdout.readline()
            if not ln:
                raise RuntimeError("METEOR's Java process ended unexpectedly")
            out.append(ln.decode("utf-8").strip())
        t.join()
        return out

    def stats(self, hyps: list[str], refs: list[list[str]]) -> list[str]:
        clean = lambda s: s.replace("|||", "").replace("\n", " ").replace("  ", " ")  # noqa: E731
        lines = [" ||| ".join(("SCORE", " ||| ".join(clean(r) for r in rs), clean(h))) for h, rs in zip(hyps, refs)]
        with self.lock:
            return self._exchange(lines, len(lines))

    def evaluate(self, stats: list[str]) -> tuple[float, list[float]]:
        with self.lock:
            out = self._exchange(["EVAL ||| " + " ||| ".join(stats)], len(stats) + 1)
        return float(out[-1]), [float(x) for x in out[:-1]]

    def close(self) -> None:
        if self.alive():
            self.stdin.close()
            self.proc.kill()
            self.proc.wait()


_meteor: _MeteorProcess | None = None
_meteor_lock = threading.Lock()


def meteor_process() -> _MeteorProcess:
    global _meteor
    with _meteor_lock:
        if _meteor is None or not _meteor.alive():
            _meteor = _MeteorProcess()
            atexit.register(_meteor.close)
        return _meteor


# Meteor 1.5 defaults for "-l en" (alpha, beta, gamma, delta; module weights exact, stem, synonym,
# paraphrase). With them, meteor_from_stats reproduces the JVM's per-segment and corpus scores to
# ~1e-16 (tests check it against EVAL on resampled corpora).
_METEOR_EN = (0.85, 0.20, 0.60, 0.75, (1.0, 0.6, 0.8, 0.6))


def meteor_from_stats(v: np.ndarray) -> float:
    """METEOR score from (summed) statistics lines as the jar prints them: test/ref length,
    test/ref function words, then per module test/ref content and function matches, then
    chunks and test/ref matched words (Meteor's MeteorScorer.computeMetrics)."""
    alpha, beta, gamma, delta, w = _METEOR_EN
    tm = sum(w[i] * (delta * v[4 + 4 * i] + (1 - delta) * v[6 + 4 * i]) for i in range(4))
    rm = sum(w[i] * (delta * v[5 + 4 * i] + (1 - delta) * v[7 + 4 * i]) for i in range(4))
    if tm == 0 or rm == 0:
        return 0.0
    p = tm / (delta * (v[0] - v[2]) + (1 - delta) * v[2])
    r = rm / (delta * (v[1] - v[3]) + (1 - delta) * v[3])
    fmean = p * r / (alpha * p + (1 - alpha) * r)
    full = v[21] == v[0] and v[22] == v[1] and v[20] == 1
    frag = 0.0 if full else v[20] / ((v[21] + v[22]) / 2.0)
    return float(fmean * (1 - gamma * frag ** beta))


def coco_meteor_items(items: list[MetricInput], segment: str = "char") -> MetricResult:
    hyps, refs = tokenize_items(items, segment)
    proc = meteor_process()
    stats = proc.stats(hyps, refs)
    score, per = proc.evaluate(stats)
    mat = np.array([[float(x) for x in s.split()] for s in stats], dtype=np.float64).reshape(len(stats), -1)
    # Meteor adds a segment's chunks to a corpus only when the segment is not one perfect chunk
    perfect = (mat[:, 21] == mat[:, 0]) & (mat[:, 22] == mat[:, 1]) & (mat[:, 20] == 1)
    mat[perfect, 20] = 0

    def rescore(counts: np.ndarray) -> float:
        return meteor_from_stats(counts @ mat)

    return MetricResult(score, per, "meteor-1.5 -l en -norm", rescore)


register_metric(Metric("coco_meteor", coco_meteor_items, kind="corpus", resamples=1000,
                       reads=READS_ANSWERS, description="pycocoevalcap METEOR 1.5 (Java), corpus",
                       source=COCO_SOURCE + "meteor/meteor.py (METEOR 1.5 jar)"))
