"""The run stage: evaluate a model on tasks (pipeline), the generation loop (generate), the
decoding ahead of it (prefetch), resuming, the run-folder lock, torchrun ranks, encoder tasks.

Imports nothing heavy: `m3eval tasks` and the other light commands import this package's
siblings without torch, transformers or datasets."""
