"""The garbage collector while a run starts.

Importing torch and transformers makes ~650k objects. With the collector on, CPython runs a
full collection whenever the long-lived objects have grown by a quarter: six or seven passes
over a growing heap while the libraries import, ~0.8 s of a 4 s start-up on this repository's
machines (benchmarks/bench_harness.py), to find ~14k objects of garbage (functions and cells
that imports leave). So a run pauses the collector from its start until its model is loaded,
and keeps what was made by then in the permanent generation (gc.freeze, as Python's docs
suggest before a fork): later collections do not scan those objects, nor write to them, so the
decoding worker forked later shares their pages.

The garbage of imports is small (functions and cells) and stays frozen. The model's loading is
collected before it is frozen (weights a loader left in a reference cycle must not be kept), a
scan of the objects the load made only: the libraries' were frozen before it (`libraries_loaded`).
A run that frees its model (RunConfig.free_model: the Python API) gives the frozen objects back to
the collector first, so that freeing the model frees its cycles too. The CLI's process ends with
its run and leaves them frozen: unfreezing brings a full pass over them soon after (~0.4 s here).
A process that holds frozen objects already (gc.get_freeze_count() > 0: its own, or an earlier
in-process CLI run's) gets the pause but no freezing: unfreezing would undo them.
"""
from __future__ import annotations

import gc


class StartupHeap:
    def __init__(self) -> None:
        self.was_enabled = gc.isenabled()
        self.freezes = gc.get_freeze_count() == 0
        gc.disable()
        self.paused = True

    def libraries_loaded(self) -> None:
        """The model's libraries are imported: their objects are kept, unscanned."""
        if self.freezes:
            gc.freeze()

    def model_loaded(self) -> None:
        """The model is loaded (or none is needed): the load's garbage is collected, what is left
        kept, and the collector back on."""
        if not self.paused:
            return
        if self.freezes:
            gc.collect()
            gc.freeze()
        self._resume()

    def close(self, unfreeze: bool) -> None:
        """The run is over: the collector as it was, and with `unfreeze` every object back in its care."""
        if unfreeze and self.freezes:
            gc.unfreeze()
            self.freezes = False
        if self.paused:
            self._resume()

    def _resume(self) -> None:
        self.paused = False
        if self.was_enabled:
            gc.enable()
