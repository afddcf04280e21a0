"""docs/RELIABILITY.md names the test behind every case: every name it gives must exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_reliability_md_exists():
    missing, named = [], 0
    for line in (ROOT / "docs" / "RELIABILITY.md").read_text().splitlines():
        current = None
        for m in re.finditer(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", line):
            current = m.group(1) or current
            if current is None:
                continue
            path = ROOT / current
            if not path.exists():
                missing.append(current)
            elif m.group(2):
                named += 1
                if not re.search(rf"^def {m.group(2)}\(", path.read_text(), re.M):
                    missing.append(f"{current}::{m.group(2)}")
    assert named > 60 and missing == []
