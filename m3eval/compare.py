"""The regression gate: compare two runs task by task with paired tests.

For every task and metric both runs report: the difference NEW-BASE in points of the
page's 0..100 scale, its 95% paired-bootstrap interval, and a paired test on the
per-sample scores matched by sample id (McNemar where both sides are all 0/1, a
sign-flip permutation test for other mean metrics, a paired bootstrap that re-scores
resampled corpora for corpus metrics such as BLEU and CIDEr).

A regression is a change in the bad direction (per higher_is_better) that is both
significant (p < alpha) and larger than `tolerance` points. Exit codes: 0 no
regression, 1 at least one, 2 the runs cannot be compared (see docs/ci-gate.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from m3eval.runs import ResultsError, Run, load_run

SEED = 0  # fixed: the gate must give the same verdict every time it runs
MEAN_RESAMPLES = 2000
CORPUS_RESAMPLES = 200  # each resample re-scores two corpora; BLEU/CIDEr are not cheap


@dataclass
class MetricComparison:
    task: str
    metric: str
    kind: str  # "mean" | "corpus"
    higher_is_better: bool
    base: float  # 0..100 display scale
    new: float
    diff: float  # new - base, display points (raw sign; see `worse`)
    ci: tuple[float, float] | None
    p_value: float | None
    test: str  # "mcnemar" | "permutation" | "bootstrap" | "none"
    n: int
    significant: bool = False
    worse: bool = False  # moved in the bad direction by more than the tolerance
    regression: bool = False
    note: str = ""

    @property
    def status(self) -> str:
        if self.regression:
            return "regression"
        if self.significant and self.diff != 0 and not self.worse and self._better():
            return "improvement"
        return "ok"

    def _better(self) -> bool:
        return self.diff > 0 if self.higher_is_better else self.diff < 0


@dataclass
class Comparison:
    base: str  # run names
    new: str
    base_path: str
    new_path: str
    tolerance: float
    alpha: float
    rows: list[MetricComparison] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why the runs cannot be compared
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricComparison]:
        return [r for r in self.rows if r.regression]

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 2
        return 1 if self.regressions else 0


# --- LOCAL STATS: minimal paired tests, to be replaced by m3eval.metrics.stats -------------
# (paired_bootstrap / paired_permutation / mcnemar) once it lands; kept here so the gate runs.

def _boot_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _percentile_ci(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def paired_bootstrap_ci(d: np.ndarray, resamples: int = MEAN_RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """95% percentile interval of mean(d) over paired resamples of per-sample differences."""
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(len(d), 1))  # bound memory on large tasks
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        means[start:start + k] = d[rng.integers(0, len(d), size=(k, len(d)))].mean(axis=1)
    return _percentile_ci(means)


def paired_permutation(d: np.ndarray, resamples: int = MEAN_RESAMPLES, seed: int = SEED) -> float:
    """Two-sided sign-flip permutation test of mean(d) == 0 (swapping each pair's labels)."""
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, 2_000_000 // len(d))  # bound memory on large tasks
    for start in range(0, resamples, chunk):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(chunk, resamples - start), len(d)))
        hits += int((np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).sum())
    return (hits + 1) / (resamples + 1)


def mcnemar(base: np.ndarray, new: np.ndarray) -> float:
    """Exact two-sided McNemar test (binomial on the discordant pairs) for 0/1 scores."""
    b = int(((base == 1) & (new == 0)).sum())
    c = int(((base == 0) & (new == 1)).sum())
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so large n does not overflow
    logs = [_log_comb(n, i) - n * np.log(2.0) for i in range(k + 1)]
    tail = float(np.exp(np.logaddexp.reduce(logs)))
    return min(1.0, 2.0 * tail)


def _log_comb(n: int, k: int) -> float:
    from math import lgamma
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def paired_bootstrap_corpus(score: Callable[[np.ndarray, str], float], n: int, observed: float,
                            resamples: int = CORPUS_RESAMPLES, seed: int = SEED
                            ) -> tuple[tuple[float, float], float]:
    """Paired bootstrap for corpus metrics: re-score both systems on the same resampled ids.

    Returns the 95% interval of the difference and a two-sided p-value for "no difference"
    from the resampled differences shifted to mean zero (Koehn 2004, as sacrebleu does).
    """
    idx = _boot_indices(n, resamples, seed)
    diffs = np.array([score(i, "new") - score(i, "base") for i in idx])
    shifted = np.abs(diffs - diffs.mean())
    p = (int((shifted >= abs(observed) - 1e-12).sum()) + 1) / (resamples + 1)
    return _percentile_ci(diffs), (1.0 if observed == 0 else p)
# --- end LOCAL STATS ---------------------------------------------------------------------


def _check_task(task: str, b: dict[str, Any], n: dict[str, Any]) -> list[str]:
    problems = []
    if b.get("version") != n.get("version"):
        problems.append(f"task {task}: version differs (BASE {b.get('version')!r}, NEW {n.get('version')!r})")
    if b.get("hash") != n.get("hash"):
        problems.append(f"task {task}: task definition hash differs "
                        f"(BASE {str(b.get('hash'))[:12]}, NEW {str(n.get('hash'))[:12]})")
    return problems


def _paired_records(task: str, base: Run, new: Run, cmp: Comparison
                    ) -> tuple[list[dict], list[dict]] | None:
    sides = []
    for label, run in (("BASE", base), ("NEW", new)):
        records, warnings = run.load_samples(task)
        cmp.notes.extend(f"{label}: {w}" for w in warnings)
        if not records:
            cmp.problems.append(f"task {task}: {label} has no readable per-sample records "
                                f"({run.samples_path(task)}); a paired test needs them")
            return None
        by_id: dict[str, dict] = {}
        for r in records:
            if r["id"] in by_id:
                cmp.problems.append(f"task {task}: {label} has sample id {r['id']!r} more than once")
                return None
            by_id[r["id"]] = r
        sides.append(by_id)
    only_base = sorted(set(sides[0]) - set(sides[1]))
    only_new = sorted(set(sides[1]) - set(sides[0]))
    if only_base or only_new:
        example = ", ".join(repr(i) for i in (only_base + only_new)[:3])
        cmp.problems.append(f"task {task}: different sample sets: {len(only_base)} ids only in BASE, "
                            f"{len(only_new)} only in NEW (e.g. {example}); rerun both with the same --limit")
        return None
    ids = sorted(sides[0])
    return [sides[0][i] for i in ids], [sides[1][i] for i in ids]


def _per_sample(records: list[dict], metric: str) -> np.ndarray | None:
    values = [r["scores"].get(metric) for r in records]
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        return None
    return np.asarray(values, dtype=float)


def _corpus_scorer(metric_name: str, entry_b: dict, entry_n: dict, rb: list[dict], rn: list[dict]
                   ) -> Callable[[np.ndarray, str], float]:
    """score(indices, side) re-scores a resampled corpus with the registered metric."""
    from m3eval.metrics.base import MetricInput, get_metric

    metric = get_metric(metric_name)  # KeyError names the metric and the known ones
    items = {
        side: [MetricInput(prediction=r.get("extracted"), references=list(r.get("references") or []),
                           choices=r.get("choices"), lang=r.get("lang") or "en") for r in recs]
        for side, recs in (("base", rb), ("new", rn))
    }
    args = {"base": entry_b.get("args") or {}, "new": entry_n.get("args") or {}}

    def score(idx: np.ndarray, side: str) -> float:
        return float(metric.compute([items[side][i] for i in idx], **args[side]).value)
    return score


def _compare_metric(task: str, name: str, eb: dict, en: dict, rb: list[dict], rn: list[dict],
                    cmp: Comparison, corpus_resamples: int) -> MetricComparison:
    k = 100.0 / float(eb.get("scale", 1))  # to display points
    hib = bool(eb.get("higher_is_better", True))
    kind = str(eb.get("kind", "mean"))
    row = MetricComparison(task=task, metric=name, kind=kind, higher_is_better=hib,
                           base=float(eb["value"]) * k, new=float(en["value"]) * k,
                           diff=(float(en["value"]) - float(eb["value"])) * k,
                           ci=None, p_value=None, test="none", n=len(rb))
    if kind == "corpus":
        try:
            score = _corpus_scorer(name, eb, en, rb, rn)
        except KeyError as e:
            row.note = f"no paired test: {e.args[0]}"
            return row
        everything = np.arange(len(rb))
        for side, entry in (("base", eb), ("new", en)):
            again = score(everything, side)
            if abs(again - float(entry["value"])) > 1e-6 * max(1.0, abs(again)):
                cmp.notes.append(f"task {task}: {name} re-scored from {side.upper()} samples is {again:.6g}, "
                                 f"results.json says {entry['value']:.6g} (metric args not recorded?)")
        (lo, hi), p = paired_bootstrap_corpus(score, len(rb), row.diff / k, corpus_resamples)
        row.ci, row.p_value, row.test = (lo * k, hi * k), p, "bootstrap"
        return row
    sb, sn = _per_sample(rb, name), _per_sample(rn, name)
    if sb is None or sn is None:
        row.note = "no paired test: some samples lack a per-sample score"
        return row
    d = sn - sb
    lo, hi = paired_bootstrap_ci(d)
    row.ci = (lo * k, hi * k)
    if set(np.unique(sb)) <= {0.0, 1.0} and set(np.unique(sn)) <= {0.0, 1.0}:
        row.p_value, row.test = mcnemar(sb, sn), "mcnemar"
    else:
        row.p_value, row.test = paired_permutation(d), "permutation"
    return row


def compare_runs(base: Run, new: Run, tolerance: float = 0.0, alpha: float = 0.05,
                 corpus_resamples: int = CORPUS_RESAMPLES) -> Comparison:
    """Compare every task and metric the two runs share. `tolerance` is in display points."""
    cmp = Comparison(base=base.name, new=new.name, base_path=str(base.path), new_path=str(new.path),
                     tolerance=tolerance, alpha=alpha)
    missing = sorted(set(base.tasks) - set(new.tasks))
    if missing:
        cmp.problems.append(f"NEW lacks {len(missing)} task(s) that BASE has: {', '.join(missing)}")
    extra = sorted(set(new.tasks) - set(base.tasks))
    if extra:
        cmp.notes.append(f"tasks only in NEW (not gated): {', '.join(extra)}")
    for task in sorted(set(base.tasks) & set(new.tasks)):
        tb, tn = base.tasks[task], new.tasks[task]
        problems = _check_task(task, tb, tn)
        if problems:
            cmp.problems.extend(problems)
            continue
        paired = _paired_records(task, base, new, cmp)
        if paired is None:
            continue
        for name in sorted(set(tb["metrics"]) & set(tn["metrics"])):
            row = _compare_metric(task, name, tb["metrics"][name], tn["metrics"][name], *paired,
                                  cmp=cmp, corpus_resamples=corpus_resamples)
            bad = -row.diff if row.higher_is_better else row.diff
            row.worse = bad > tolerance
            row.significant = row.p_value is not None and row.p_value < alpha
            row.regression = row.significant and row.worse
            cmp.rows.append(row)
    return cmp


# --- rendering ---------------------------------------------------------------------------

def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "—" if ci is None else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _fmt_p(p: float | None) -> str:
    return "—" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _verdict(cmp: Comparison) -> str:
    if cmp.problems:
        return "cannot compare"
    n = len(cmp.regressions)
    return f"{n} significant regression(s)" if n else "no significant regression"


def _table_rows(cmp: Comparison) -> list[list[str]]:
    return [[r.task, r.metric, f"{r.base:.2f}", f"{r.new:.2f}", f"{r.diff:+.2f}", _fmt_ci(r.ci),
             _fmt_p(r.p_value), r.test, r.status + (f" ({r.note})" if r.note else "")] for r in cmp.rows]


HEADER = ["task", "metric", "base", "new", "Δ (pts)", "95% CI", "p", "test", "status"]


def _escape_md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render(cmp: Comparison, fmt: str = "text") -> str:
    if fmt == "json":
        data = asdict(cmp)
        for row, obj in zip(data["rows"], cmp.rows):
            row["status"] = obj.status
        data.update(verdict=_verdict(cmp), exit_code=cmp.exit_code)
        return json.dumps(data, indent=2, ensure_ascii=False)
    settings = f"tolerance {cmp.tolerance:g} pts, alpha {cmp.alpha:g}"
    if fmt == "markdown":
        icon = {0: "✅", 1: "❌", 2: "⚠️"}[cmp.exit_code]
        out = [f"### {icon} m3eval compare: {_verdict(cmp)}", "",
               f"BASE `{_escape_md(cmp.base)}` → NEW `{_escape_md(cmp.new)}` ({settings}; "
               "Δ in points of the 0..100 scale, NEW−BASE)"]
        if cmp.problems:
            out += [""] + [f"- ⚠️ {_escape_md(p)}" for p in cmp.problems]
        if cmp.rows:
            out += ["", "| | " + " | ".join(HEADER) + " |", "|" + "---|" * (len(HEADER) + 1)]
            for r, cells in zip(cmp.rows, _table_rows(cmp)):
                mark = "❌" if r.regression else "✅"
                out.append(f"| {mark} | " + " | ".join(_escape_md(c) for c in cells) + " |")
        if cmp.notes:
            out += ["", "<details><summary>notes</summary>", ""]
            out += [f"- {_escape_md(n)}" for n in cmp.notes] + ["", "</details>"]
        return "\n".join(out) + "\n"
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; use text, markdown or json")
    out = [f"m3eval compare: {_verdict(cmp)}", f"BASE {cmp.base} ({cmp.base_path})",
           f"NEW  {cmp.new} ({cmp.new_path})", settings, ""]
    out += [f"cannot compare: {p}" for p in cmp.problems]
    if cmp.rows:
        rows = [HEADER] + _table_rows(cmp)
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out += [f"note: {n}" for n in cmp.notes]
    return "\n".join(out) + "\n"


def run_compare(base_path: str, new_path: str, tolerance: float = 0.0, alpha: float = 0.05,
                fmt: str = "text") -> int:
    """What `m3eval compare` does: print the report to stdout, return the exit code."""
    try:
        base, new = load_run(base_path), load_run(new_path)
    except ResultsError as e:
        print(f"m3eval compare: cannot compare: {e}", file=sys.stderr)
        return 2
    cmp = compare_runs(base, new, tolerance=tolerance, alpha=alpha)
    sys.stdout.write(render(cmp, fmt))
    return cmp.exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="BASE run directory or its results.json")
    parser.add_argument("new", help="NEW run directory or its results.json")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="allowed drop in points of the 0..100 scale (default 0)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="m3eval compare", description=__doc__.splitlines()[0])
    add_arguments(parser)
    a = parser.parse_args(argv)
    return run_compare(a.base, a.new, a.tolerance, a.alpha, a.format)


if __name__ == "__main__":
    raise SystemExit(main())
