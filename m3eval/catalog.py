"""`m3eval metrics`: every registered metric and filter with its arguments, scale and source.

Imports only the metric and filter registries (no torch, transformers or datasets), so the
listing is instant."""
from __future__ import annotations

import argparse
import inspect
import json
from typing import Any


def _args(fn: Any, skip: int) -> dict[str, Any]:
    from .plugins import arguments

    return {k: ("required" if v is inspect.Parameter.empty else v) for k, v in arguments(fn, skip).items()}


def catalog() -> dict[str, list[dict[str, Any]]]:
    import m3eval.metrics  # noqa: F401  (registers the built-in metrics)

    from .metrics.base import all_metrics
    from .scoring.filters import all_filters

    return {
        "metrics": [{"name": m.name, "args": _args(m.compute, 1), "kind": m.kind,
                     "scale": m.bounds or ("0-1" if m.scale == 1 else f"0-{m.scale}"),
                     "higher_is_better": m.higher_is_better, "source": m.source or "m3eval",
                     "description": m.description} for m in all_metrics()],
        "filters": [{"name": f.name, "args": _args(f.fn, 2), "source": f.source,
                     "description": f.description} for f in all_filters()],
    }


def _fmt_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" if v != "required" else k for k, v in args.items()) or "-"


def format_catalog(cat: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["Metrics (name  scale  kind  args; then description and source)"]
    for m in cat["metrics"]:
        lines += [f"  {m['name']}  [{m['scale']}]  {m['kind']}  args: {_fmt_args(m['args'])}",
                  f"      {m['description']}", f"      source: {m['source']}"]
    lines.append("\nFilters (answer extraction, run before the metrics in task order)")
    for f in cat["filters"]:
        lines += [f"  {f['name']}  args: {_fmt_args(f['args'])}", f"      {f['description']}",
                  f"      source: {f['source']}"]
    lines.append("\nHF `evaluate` metrics are also accepted as hf:NAME (optional extra, loaded on demand).")
    return "\n".join(lines)


def cmd_metrics(a: argparse.Namespace) -> int:
    cat = catalog()
    print(json.dumps(cat, indent=2, ensure_ascii=False, default=repr) if a.format == "json" else format_catalog(cat))
    return 0
