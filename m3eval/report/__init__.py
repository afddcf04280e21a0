"""The report stage: reading finished runs (runs), the results table (tables), the CI gate
between two runs (compare), other tools' formats (export: lm-eval; wandb_log: W&B).

Imports nothing heavy: `m3eval compare` runs without torch, transformers, datasets,
pandas or nltk."""
