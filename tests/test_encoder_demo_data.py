"""The encoder/grounding demo data regenerates byte-identically (python -m m3eval.demo.encoder_data)."""
from __future__ import annotations

from m3eval.demo.encoder_data import DATA_DIR, write_all


def test_encoder_demo_data_regenerates_identically(tmp_path):
    for path in write_all(tmp_path):
        assert path.read_bytes() == (DATA_DIR / path.name).read_bytes(), path.name
