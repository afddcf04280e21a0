"""The committed demo data is what `python -m m3eval.demo.data` makes: deterministic."""
from __future__ import annotations

import datasets

from m3eval.demo.data import DATA_DIR, write_all


def test_demo_data_regenerates_identically(tmp_path):
    made = write_all(tmp_path)
    assert {p.name for p in made} == {p.name for p in DATA_DIR.iterdir() if p.is_file()}
    for new in made:
        old = DATA_DIR / new.name
        if new.suffix == ".jsonl":
            assert new.read_text(encoding="utf-8") == old.read_text(encoding="utf-8"), new.name
        else:
            load = lambda p: datasets.load_dataset("parquet", data_files=str(p), split="train").to_list()  # noqa: E731
            assert load(new) == load(old), new.name
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == sorted(p.name for p in (DATA_DIR / "videos").iterdir())
