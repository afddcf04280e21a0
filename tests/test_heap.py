"""A run pauses the garbage collector until its model is loaded, keeps the objects made by then
out of later collections, collects what the model's load left, and leaves the collector as it
found it (run/heap.py)."""
from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from m3eval.models.base import ModelAdapter, ModelLoadError
from m3eval.models.registry import register_backend
from m3eval.run.pipeline import RunConfig, evaluate


@pytest.fixture(autouse=True)
def _own_registrations():
    from m3eval.models import registry
    before = dict(registry._REGISTERED)
    gc.unfreeze()  # what an in-process CLI run of another test left frozen (free_model=False)
    yield
    registry._REGISTERED.clear()
    registry._REGISTERED.update(before)


class Weights:
    """Stands in for a tensor."""


class Probe(ModelAdapter):
    """Records the collector's state while it loads and while it generates; its load leaves a
    reference cycle holding `Weights` behind, as a loader might."""

    seen: dict = {}

    def __init__(self) -> None:
        left = [Weights()]
        left.append(left)  # garbage only the collector can free
        Probe.seen = {"loading": gc.isenabled(), "left": weakref.ref(left[0])}
        self.name = "probe"

    def generate(self, batch, gen):
        Probe.seen.setdefault("generating", {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count() > 0,
                                             "left freed": Probe.seen["left"]() is None})
        return ["x"] * len(batch)


class FailsToLoad(ModelAdapter):
    def __init__(self) -> None:
        raise ModelLoadError("no weights here")

    def generate(self, batch, gen):
        raise AssertionError


def run(tmp_path: Path, backend: str, free_model: bool = True) -> None:
    evaluate(RunConfig(tasks=["demo_vqa"], output=tmp_path, model=backend, run_name="r", batch_size=4, limit=4,
                       progress=False, save_media=False, free_model=free_model))


def test_paused_while_the_model_loads_on_while_it_generates_and_as_it_was_after(tmp_path):
    register_backend("probe", Probe)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    run(tmp_path, "probe")
    assert Probe.seen["loading"] is False
    # the load's cycle was collected before the rest was frozen
    assert Probe.seen["generating"] == {"enabled": True, "frozen": True, "left freed": True}
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_model_that_fails_to_load_leaves_the_collector_as_it_was(tmp_path):
    register_backend("fails", FailsToLoad)
    with pytest.raises(ModelLoadError, match="no weights here"):
        run(tmp_path, "fails")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_caller_who_turned_the_collector_off_or_froze_objects_keeps_that(tmp_path):
    register_backend("probe", Probe)
    gc.disable()
    try:
        run(tmp_path / "off", "probe")
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        run(tmp_path / "frozen", "probe")
        assert Probe.seen["generating"]["enabled"] is True
        # neither frozen further (the run's objects would add thousands) nor unfrozen (some of the
        # caller's frozen objects may have died meanwhile)
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_a_run_that_keeps_its_model_leaves_the_start_up_objects_frozen(tmp_path):
    """The CLI (free_model=False: its process ends with the run) does not unfreeze: no last full pass."""
    register_backend("probe", Probe)
    try:
        run(tmp_path, "probe", free_model=False)
        assert gc.isenabled() and gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
