"""Scoring: predictions -> scores. Filters (answer extraction), one task (`task`), a run's
results entries (`run`), groups, predictions made elsewhere (`external`), the LLM judge.
Needs no model (the judge calls a configured backend)."""
