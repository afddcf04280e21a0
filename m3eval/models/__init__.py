"""Model adapters: one interface (`ModelAdapter`, base.py), backends looked up by name (registry.py)."""
from m3eval.models.base import (
    BadMessageError,
    GenerationConfig,
    ModelAdapter,
    ModelLoadError,
    PluginAdapter,
    truncate_at_stop,
)
from m3eval.models.chat import check_message
from m3eval.models.registry import (
    backend_names,
    check_backend,
    get_backend,
    load_model,
    parse_model_args,
    register_backend,
)

__all__ = [
    "BadMessageError", "GenerationConfig", "ModelAdapter", "ModelLoadError", "PluginAdapter", "backend_names",
    "check_backend", "check_message", "get_backend", "load_model", "parse_model_args", "register_backend",
    "truncate_at_stop",
]
