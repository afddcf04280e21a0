"""Optional Weights & Biases logging of a finished run (`--wandb-project` on `run` and
`export`; `pip install m3eval[wandb]`): its scores as the summary, one table of per-sample
records per task, and the run's configuration. Offline with WANDB_MODE=offline."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunError
from .runs import load_run

SAMPLE_COLUMNS = ["id", "prompt", "prediction", "extracted", "references", "lang", "instruction", "error"]


def log_run(run_dir: Path, project: str, entity: str | None = None) -> str:
    """Log the run at `run_dir` to W&B; returns the W&B run's local folder."""
    try:
        import wandb
    except ImportError:
        raise RunError("--wandb-project needs the wandb package: pip install 'm3eval[wandb]'") from None
    run = load_run(run_dir)
    config = {"m3eval_run": run.name, **run.results.run.dump()}
    wb = wandb.init(project=project, entity=entity, name=run.name, job_type="eval", config=config)
    try:
        scores: dict[str, Any] = {f"{task}/{name}": m.value
                                  for task, e in run.tasks.items() for name, m in e.metrics.items()}
        scores.update({f"group/{g}": e.value for g, e in run.groups.items() if e.value is not None})
        for task in run.tasks:
            records, _ = run.load_samples(task)
            metrics = sorted({k for r in records for k in r.scores})
            table = wandb.Table(columns=[*SAMPLE_COLUMNS, *metrics])
            for r in records:
                table.add_data(*[_cell(getattr(r, c)) for c in SAMPLE_COLUMNS], *[r.scores.get(m) for m in metrics])
            scores[f"{task}/samples"] = table
        wb.log(scores)
        return str(Path(wb.dir).parent)
    finally:
        wb.finish()


def _cell(value):
    """Table cells: text for lists and objects (references, choices), as they are."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else json.dumps(value,
                                                                                               ensure_ascii=False)
