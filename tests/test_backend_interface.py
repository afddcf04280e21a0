"""The backend interface (m3eval/models/base.py): a backend implements `generate`, every other
capability has a default, a plugin's object that does not subclass ModelAdapter is adapted
once when it loads, and the runner never asks a model object what it has."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from m3eval.models.base import GenerationConfig, ModelAdapter, ModelLoadError, PluginAdapter
from m3eval.models.registry import PluginBackend, check_backend, get_backend, load_model, register_backend
from m3eval.results import read_jsonl
from m3eval.run.pipeline import RunConfig, evaluate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def _own_registrations():
    """The backends these tests register are gone after them (other tests list the known backends)."""
    from m3eval.models import registry
    before = dict(registry._REGISTERED)
    yield
    registry._REGISTERED.clear()
    registry._REGISTERED.update(before)


def first_word(message) -> str:
    text = " ".join(p["text"] for p in message if p["type"] == "text")
    return (text.split() or ["?"])[0].lower()


class OnlyGenerate(ModelAdapter):
    """The smallest backend: `generate` and nothing else."""

    def __init__(self, answer: str = ""):
        self.answer = answer
        self.name = "only-generate"

    def generate(self, batch, gen):
        return [self.answer or first_word(m) for m in batch]


class PlainPlugin:
    """A plugin's object of its own class (no ModelAdapter, no name, no info, no close)."""

    closed = False

    def generate(self, batch, gen):
        return [first_word(m) for m in batch]


class PlainStreamingPlugin(PlainPlugin):
    streamed = 0

    def generate(self, batch, gen):
        raise AssertionError("a streaming backend gets its samples through generate_stream")

    def generate_stream(self, items):
        for key, message, gen in items:
            PlainStreamingPlugin.streamed += 1
            yield key, first_word(message), 0.0

    def close(self):
        PlainStreamingPlugin.closed = True


class SplitPlugin(ModelAdapter):
    """Builds its inputs ahead of the model (in a worker process by default)."""

    splits_preprocessing = True

    def generate(self, batch, gen):
        return self.generate_prepared(self.preprocess(batch, gen), gen)

    def preprocess(self, batch, gen):
        return [first_word(m) for m in batch]  # pickles: it crosses from the worker process

    def generate_prepared(self, inputs, gen):
        return list(inputs)


def run_demo(tmp_path: Path, backend: str, **kw) -> tuple[dict, Path]:
    cfg = RunConfig(tasks=["demo_vqa", "demo_mc"], output=tmp_path, model=backend, model_args=kw, run_name="r",
                    batch_size=4, limit=6, progress=False, save_media=False)
    _, failures = evaluate(cfg)
    assert failures == []
    run_dir = tmp_path / "r"
    return json.loads((run_dir / "results.json").read_text()), run_dir


def predictions(run_dir: Path) -> dict[str, str]:
    return {f"{f.stem}/{r['id']}": r["prediction"] for f in sorted((run_dir / "predictions").glob("*.jsonl"))
            for r in read_jsonl(f)}


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, str]:
    """What every test backend below answers (each sample's first prompt word), from the smallest one."""
    register_backend("only-generate", OnlyGenerate)
    results, run_dir = run_demo(tmp_path_factory.mktemp("only"), "only-generate")
    assert all(results["tasks"][t]["n_errors"] == 0 for t in ("demo_vqa", "demo_mc"))
    got = predictions(run_dir)
    assert len(got) == 12 and len(set(got.values())) > 1
    return got


def test_a_subclass_with_only_generate_runs_with_the_defaults(expected, tmp_path):
    register_backend("only-generate", OnlyGenerate)
    results, run_dir = run_demo(tmp_path, "only-generate", answer="yes")
    assert set(predictions(run_dir).values()) == {"yes"}
    model = results["run"]["model"]  # the default info(): the name as the id, no revision
    assert model["id"] == "only-generate" and model["revision"] is None and model["args"] == {"answer": "yes"}


def test_a_plain_plugin_object_is_adapted_once_and_runs(expected, tmp_path):
    register_backend("plain-plugin", PlainPlugin)
    m = load_model("plain-plugin", {})
    assert isinstance(m, PluginAdapter) and isinstance(m.wrapped, PlainPlugin)
    assert not (m.streams or m.splits_preprocessing or m.is_encoder)
    assert m.info() == {"backend": "plain-plugin", "id": None, "revision": None}
    m.close()  # the plugin has none: the default does nothing
    results, run_dir = run_demo(tmp_path, "plain-plugin")
    assert predictions(run_dir) == expected
    assert results["run"]["model"]["backend"] == "plain-plugin"


def test_a_plain_streaming_plugin_is_streamed_and_closed(expected, tmp_path):
    register_backend("plain-streaming", PlainStreamingPlugin)
    PlainStreamingPlugin.streamed, PlainStreamingPlugin.closed = 0, False
    _, run_dir = run_demo(tmp_path, "plain-streaming")
    assert predictions(run_dir) == expected
    assert PlainStreamingPlugin.streamed == 12 and PlainStreamingPlugin.closed


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_split_preprocessing_runs_preprocess_then_generate_prepared(expected, tmp_path, mode, monkeypatch):
    monkeypatch.setenv("M3EVAL_PREFETCH", mode)
    register_backend("split-plugin", SplitPlugin)
    _, run_dir = run_demo(tmp_path, "split-plugin")
    assert predictions(run_dir) == expected


def test_the_defaults():
    with pytest.raises(TypeError, match="abstract"):
        ModelAdapter()  # type: ignore[abstract]
    m = OnlyGenerate()
    assert m.info() == {"backend": "OnlyGenerate", "id": "only-generate", "revision": None}
    assert m.close() is None and OnlyGenerate.preflight({"x": 1}) is None
    assert OnlyGenerate.revision_without_loading({"pretrained": "."}) is None
    assert not (m.streams or m.splits_preprocessing or m.is_encoder)
    gen = GenerationConfig()
    for call in (lambda: m.generate_stream([]), lambda: m.preprocess([], gen), lambda: m.generate_prepared(None, gen),
                 lambda: m.encode_images([]), lambda: m.encode_texts([])):
        with pytest.raises(NotImplementedError):
            call()


def test_builtin_backends_subclass_the_interface_and_declare_their_capabilities():
    classes = {name: get_backend(name) for name in ("hf", "vllm", "openai", "clip")}
    assert all(isinstance(c, type) and issubclass(c, ModelAdapter) for c in classes.values())
    assert {n for n, c in classes.items() if c.streams} == {"vllm", "openai"}
    assert {n for n, c in classes.items() if c.is_encoder} == {"clip"}


def test_a_plugin_factory_gets_preflight_and_revision_from_itself_or_the_defaults(tmp_path):
    def factory(**kw):
        return PlainPlugin()

    register_backend("fn-plugin", factory)
    backend = get_backend("fn-plugin")
    assert isinstance(backend, PluginBackend)
    assert backend.revision_without_loading({}) is None
    check_backend("fn-plugin", {"anything": 1})  # no preflight of its own: nothing to check

    class Checked(PlainPlugin):
        def __init__(self, key=None):
            pass

        @staticmethod
        def preflight(model_args):
            if not model_args.get("key"):
                raise ModelLoadError("checked: 'key' is required")

        @staticmethod
        def revision_without_loading(model_args):
            return "r-" + str(model_args.get("key"))

    register_backend("checked-plugin", Checked)
    with pytest.raises(ModelLoadError, match="'key' is required"):
        check_backend("checked-plugin", {})
    with pytest.raises(ModelLoadError, match=r"unknown model arg\(s\) 'nope'"):
        check_backend("checked-plugin", {"key": 1, "nope": 2})  # its own signature is checked
    assert get_backend("checked-plugin").revision_without_loading({"key": 7}) == "r-7"

    register_backend("not-a-model", lambda **kw: object())
    with pytest.raises(ModelLoadError, match="no generate"):
        load_model("not-a-model", {})


# ---- the runner never probes a model ---------------------------------------------------------

def probes() -> list[str]:
    found = []
    for folder in ("m3eval/run", "m3eval/scoring"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                where = f"{rel}:{node.lineno}: {ast.unparse(node)}"
                # never needed: the interface has every member, and data objects have typed fields
                if node.func.id == "hasattr" or node.func.id == "getattr" and len(node.args) == 3:
                    found.append(where)
    return found


def test_run_and_scoring_never_probe_a_model():
    assert probes() == []
