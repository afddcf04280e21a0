"""Model adapters: one protocol, backends looked up by name (see base.py)."""
from m3eval.models.base import (
    BadMessageError,
    GenerationConfig,
    ModelAdapter,
    ModelLoadError,
    backend_names,
    check_backend,
    check_message,
    get_backend,
    load_model,
    parse_model_args,
    register_backend,
    truncate_at_stop,
)

__all__ = [
    "BadMessageError", "GenerationConfig", "ModelAdapter", "ModelLoadError", "backend_names",
    "check_backend", "check_message", "get_backend", "load_model", "parse_model_args", "register_backend",
    "truncate_at_stop",
]
