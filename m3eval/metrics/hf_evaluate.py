"""Optional source of extra metrics: Hugging Face `evaluate`, named "hf:<metric>" in task YAML.

    metrics:
      - {name: "hf:meteor", args: {key: meteor}}

`evaluate.load` fetches the metric's script from the Hugging Face Hub at load time, so it fails
offline unless the script is already in the local cache (HF_HOME). Such metrics are scored as a
corpus with no re-scoring function (no CI) and stored on a 0..1 scale: declare `scale: 100` in
args for a metric that reports 0..100 (its value is divided by it). Prefer the built-in metrics: they are pinned, offline and tested.
"""
from __future__ import annotations

from typing import Any

from m3eval.metrics.base import Metric, MetricInput, MetricResult


def _load(metric: str) -> Any:
    try:
        import evaluate
    except ImportError:
        raise RuntimeError(f"metric 'hf:{metric}' needs the `evaluate` package, which is not installed "
                           f"(pip install evaluate); built-in metrics: see `m3eval.metrics.metric_names()`") from None
    try:
        return evaluate.load(metric)
    except Exception as e:  # evaluate raises several types (ConnectionError, FileNotFoundError, ...)
        raise RuntimeError(
            f"could not load HF evaluate metric {metric!r}: evaluate fetches metric scripts from the "
            f"Hugging Face Hub, which is unreachable here (offline?) and the script is not cached. "
            f"Cause: {type(e).__name__}: {e}") from None


def hf_metric(name: str) -> Metric:
    """A registry entry for "hf:<metric>"; the script is loaded at first compute, not at lookup."""
    metric = name.split(":", 1)[1]
    if not metric:
        raise KeyError(f"metric {name!r}: say which HF evaluate metric, e.g. 'hf:bleu'")

    def compute(items: list[MetricInput], key: str | None = None, scale: int = 1, **kwargs: Any) -> MetricResult:
        module = _load(metric)
        out = module.compute(predictions=[it.prediction or "" for it in items],
                             references=[it.references for it in items], **kwargs)
        k = key or (metric if metric in out else next((k for k, v in out.items() if isinstance(v, (int, float))), None))
        if k is None or k not in out:
            raise RuntimeError(f"metric {name!r}: result has keys {sorted(out)}; pick one with args.key")
        return MetricResult(float(out[k]) / scale, None, f"hf-evaluate:{metric}")

    return Metric(name, compute, kind="corpus", resamples=0, description=f"HF evaluate metric {metric!r} (optional)",
                  source=f"huggingface/evaluate metric {metric!r}", bounds="as the metric defines")
