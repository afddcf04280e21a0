"""The regression gate: compare two runs task by task with paired tests.

For every task and metric both runs report: the difference NEW-BASE in points of the
page's 0..100 scale, its 95% paired-bootstrap interval, and a paired test on the
per-sample scores matched by sample id (McNemar where both sides are all 0/1 and every
sample is its own cluster, a sign-flip permutation test for other mean metrics, a paired
bootstrap that re-scores resampled corpora for corpus metrics such as BLEU and CIDEr).
Samples of one cluster (the same item under several instructions, one video's questions)
are resampled and sign-flipped together.

Two runs are comparable only on the same data: same task definition, same sample ids and
the same references per sample (or, without samples files, the same `references_sha256`).

A regression is a change in the bad direction (per higher_is_better) that is both
significant (p < alpha) and larger than `tolerance` points. Exit codes: 0 no
regression, 1 at least one, 2 the runs cannot be compared (see docs/ci-gate.md).
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from m3eval.errors import ResultsError
from m3eval.line_record import SampleRecord
from m3eval.metrics import stats
from m3eval.record import MetricEntry, TaskResult
from m3eval.report.runs import Run, load_run

SEED = 0  # fixed: the gate must give the same verdict every time it runs
MEAN_RESAMPLES = 1000  # bootstrap CI of a mean difference
PERMUTATIONS = 10000  # sign-flip permutations for the p-value of graded per-sample scores
CORPUS_RESAMPLES = 200  # when a corpus metric has no cheap rescore() and must be re-run per resample


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


def _check_task(task: str, b: TaskResult, n: TaskResult) -> list[str]:
    problems = []
    if b.version != n.version:
        problems.append(f"task {task}: version differs (BASE {b.version!r}, NEW {n.version!r})")
    if b.hash != n.hash:
        problems.append(f"task {task}: task definition hash differs (BASE {b.hash[:12]}, NEW {n.hash[:12]})")
    return problems


def _paired_records(task: str, base: Run, new: Run, cmp: Comparison
                    ) -> tuple[list[SampleRecord], list[SampleRecord]] | None:
    sides = []
    fb, fn = base.tasks[task].references_sha256, new.tasks[task].references_sha256
    for label, run in (("BASE", base), ("NEW", new)):
        records, warnings = run.load_samples(task)
        cmp.notes.extend(f"{label}: {w}" for w in warnings)
        if not records:
            if fb and fn and fb != fn:  # results.json alone shows the data differ
                cmp.problems.append(f"task {task}: the runs scored different data (references_sha256 BASE "
                                    f"{fb[:12]}, NEW {fn[:12]}: different sample ids or answers)")
            else:
                cmp.problems.append(f"task {task}: {label} has no readable per-sample records "
                                    f"({run.samples_path(task)}); a paired test needs them")
            return None
        by_id: dict[str, SampleRecord] = {}
        for r in records:
            if r.id in by_id:
                cmp.problems.append(f"task {task}: {label} has sample id {r.id!r} more than once")
                return None
            by_id[r.id] = r
        sides.append(by_id)
    only_base = sorted(set(sides[0]) - set(sides[1]))
    only_new = sorted(set(sides[1]) - set(sides[0]))
    if only_base or only_new:
        example = ", ".join(repr(i) for i in (only_base + only_new)[:3])
        lb, ln = (run.invocation(task).config.get("limit") for run in (base, new))
        hint = f"; rerun both with the same --limit (BASE {lb}, NEW {ln})" if lb != ln else ""
        cmp.problems.append(f"task {task}: different sample sets: {len(only_base)} ids only in BASE, "
                            f"{len(only_new)} only in NEW (e.g. {example}){hint}")
        return None
    ids = sorted(sides[0])
    changed = [i for i in ids if sides[0][i].references != sides[1][i].references]
    if changed:
        i = changed[0]
        cmp.problems.append(f"task {task}: references differ for {len(changed)} of {len(ids)} samples (e.g. {i!r}: "
                            f"BASE {sides[0][i].references!r}, NEW {sides[1][i].references!r}); "
                            "the runs scored different data (a --dataset-override or changed data?)")
        return None
    return [sides[0][i] for i in ids], [sides[1][i] for i in ids]


def _clusters(records: list[SampleRecord]) -> list[str] | None:
    """Cluster keys of the records (None when every sample is its own cluster)."""
    keys = [r.cluster for r in records]
    return None if len(set(keys)) == len(keys) else keys


def _per_sample(records: list[SampleRecord], metric: str) -> np.ndarray | None:
    values = [r.scores.get(metric) for r in records]
    if any(v is None for v in values):
        return None
    return np.asarray(values, dtype=float)


def _corpus_rescorers(metric_name: str, eb: MetricEntry, en: MetricEntry, rb: list[SampleRecord],
                      rn: list[SampleRecord], cmp: Comparison, task: str
                      ) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], float], int]:
    """rescore(counts) for BASE and NEW: the metric's own cheap rescore, else a re-run of compute()."""
    from m3eval.metrics.base import MetricInput, get_metric, record_input

    metric = get_metric(metric_name)  # KeyError names the metric and the known ones
    out = []
    for side, entry, recs in (("BASE", eb, rb), ("NEW", en, rn)):
        items = [record_input(r) for r in recs]
        args = entry.args or {}
        result = metric.compute(items, **args)
        if abs(result.value - float(entry.value)) > 1e-6 * max(1.0, abs(result.value)):
            cmp.notes.append(f"task {task}: {metric_name} re-scored from {side} samples is {result.value:.6g}, "
                             f"results.json says {entry.value:.6g} (metric or its args changed?)")
        if result.rescore is not None:
            out.append(result.rescore)
        else:  # re-run the metric on the resampled corpus: sample i repeated counts[i] times
            def rescore(counts: np.ndarray, items: list[MetricInput] = items, args: dict[str, Any] = args) -> float:
                return float(metric.compute([it for it, c in zip(items, counts) for _ in range(int(c))], **args).value)
            out.append(rescore)
    resamples = metric.resamples if result.rescore is not None else min(metric.resamples, CORPUS_RESAMPLES)
    return out[0], out[1], resamples


def _compare_metric(task: str, name: str, eb: MetricEntry, en: MetricEntry, rb: list[SampleRecord],
                    rn: list[SampleRecord], cmp: Comparison) -> MetricComparison:
    k = 100.0 / float(eb.scale)  # to display points
    hib, kind = eb.higher_is_better, eb.kind
    row = MetricComparison(task=task, metric=name, kind=kind, higher_is_better=hib,
                           base=float(eb.value) * k, new=float(en.value) * k,
                           diff=(float(en.value) - float(eb.value)) * k,
                           ci=None, p_value=None, test="none", n=len(rb))
    if kind == "corpus":
        try:
            rescore_b, rescore_n, resamples = _corpus_rescorers(name, eb, en, rb, rn, cmp, task)
        except KeyError as e:
            row.note = f"no paired test: {e.args[0]}"
            return row
        if resamples <= 0:
            row.note = f"no paired test: metric {name} cannot be re-scored on resampled corpora"
            return row
        _, (lo, hi), p = stats.paired_corpus_bootstrap(rescore_b, rescore_n, len(rb), n=resamples, seed=SEED,
                                                       clusters=_clusters(rb))
        row.ci, row.p_value, row.test = (lo * k, hi * k), p, "bootstrap"
        return row
    sb, sn = _per_sample(rb, name), _per_sample(rn, name)
    if sb is None or sn is None:
        row.note = "no paired test: some samples lack a per-sample score"
        return row
    clusters = _clusters(rb)
    _, (lo, hi), _ = stats.paired_bootstrap(sb, sn, n=MEAN_RESAMPLES, seed=SEED, clusters=clusters)
    row.ci = (lo * k, hi * k)
    if clusters is None and np.isin(sb, (0.0, 1.0)).all() and np.isin(sn, (0.0, 1.0)).all():
        row.p_value, row.test = stats.mcnemar(sb, sn), "mcnemar"
    else:
        row.p_value = stats.paired_permutation(sb, sn, n=PERMUTATIONS, seed=SEED, clusters=clusters)[1]
        row.test = "permutation" if clusters is None else "cluster permutation"
    return row


def compare_runs(base: Run, new: Run, tolerance: float = 1.0, alpha: float = 0.05,
                 tasks: list[str] | None = None, shared: bool = False) -> Comparison:
    """Compare every task and metric the two runs share. `tolerance` is in display points.
    `tasks`: only these (each must be in both runs); `shared`: only the tasks both runs have
    (a task missing from NEW is then a note, not a failure to compare)."""
    cmp = Comparison(base=base.name, new=new.name, base_path=str(base.path), new_path=str(new.path),
                     tolerance=tolerance, alpha=alpha)
    submitted = sorted(set(base.results.submissions) | set(new.results.submissions))
    if submitted:  # answers withheld: a file for a server, no score on either side
        cmp.notes.append(f"submission only (no score; not compared): {', '.join(submitted)}")
        tasks = [t for t in tasks if t not in submitted] if tasks else tasks
    if tasks:
        for label, run in (("BASE", base), ("NEW", new)):
            absent = [t for t in tasks if t not in run.tasks]
            if absent:
                cmp.problems.append(f"--tasks: {label} has no task {', '.join(absent)} "
                                    f"(it has: {', '.join(sorted(run.tasks))})")
        chosen = [t for t in tasks if t in base.tasks and t in new.tasks]
    else:
        missing = sorted(set(base.tasks) - set(new.tasks))
        if missing:
            (cmp.notes if shared else cmp.problems).append(
                f"NEW lacks {len(missing)} task(s) that BASE has: {', '.join(missing)}"
                + (" (not compared: --shared)" if shared else "; use --shared to compare only the tasks both have"))
        extra = sorted(set(new.tasks) - set(base.tasks))
        if extra:
            cmp.notes.append(f"tasks only in NEW (not gated): {', '.join(extra)}")
        chosen = sorted(set(base.tasks) & set(new.tasks))
    for task in sorted(chosen):
        tb, tn = base.tasks[task], new.tasks[task]
        problems = _check_task(task, tb, tn)
        if problems:
            cmp.problems.extend(problems)
            continue
        paired = _paired_records(task, base, new, cmp)
        if paired is None:
            continue
        for side, a, b in (("BASE", tb, tn), ("NEW", tn, tb)):
            for name in sorted(set(a.metrics) - set(b.metrics)):
                cmp.notes.append(f"task {task}: metric {name} only in {side} (not gated)")
        for name in sorted(set(tb.metrics) & set(tn.metrics)):
            row = _compare_metric(task, name, tb.metrics[name], tn.metrics[name], *paired, cmp=cmp)
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


# Characters that start markup inside a line; `_` only at a word's edge (GFM ignores it inside words).
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<!\w)_|_(?!\w))")


def _escape_md(text: str) -> str:
    """Run names and notes are data: shown as text, never as links, images, code or table cells."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


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
               f"BASE **{_escape_md(cmp.base)}** → NEW **{_escape_md(cmp.new)}** ({settings}; "
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


def run_compare(base_path: str | Path, new_path: str | Path, tolerance: float = 1.0, alpha: float = 0.05,
                fmt: str = "text", tasks: list[str] | None = None, shared: bool = False) -> int:
    """What `m3eval compare` does: print the report to stdout, return the exit code."""
    try:
        base, new = load_run(base_path), load_run(new_path)
    except ResultsError as e:
        print(f"m3eval compare: cannot compare: {e}", file=sys.stderr)
        return 2
    cmp = compare_runs(base, new, tolerance=tolerance, alpha=alpha, tasks=tasks, shared=shared)
    sys.stdout.write(render(cmp, fmt))
    return cmp.exit_code
