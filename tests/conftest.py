"""Shared test fixtures: one tiny real model per session, one thread for torch
(5-10x faster and steadier for a model this small)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from m3eval.demo.tiny_model import ensure_tiny_model
    return ensure_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llava")


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    """The demo's model: the tiny LLaVA after its short training (scores are not all zero)."""
    from m3eval.demo.tiny_model import DEMO_TRAIN_STEPS, ensure_tiny_model
    return ensure_tiny_model(tmp_path_factory.mktemp("demo-model") / "tiny-llava", train_steps=DEMO_TRAIN_STEPS)
