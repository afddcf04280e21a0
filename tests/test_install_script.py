"""scripts/install_test_deps.sh: lean installs (no recommended packages, a CJK font), and no
sudo surprises. apt-get, id and sudo are stand-ins on PATH that record how they were called."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(tmp_path: Path, uid: int, sudo: bool) -> tuple[subprocess.CompletedProcess, str]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    stubs = {"id": f"echo {uid}", "apt-get": f'echo "apt-get $*" >> {log}'}
    if sudo:
        stubs["sudo"] = f'echo "sudo $*" >> {log}; "$@"'
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "env").symlink_to("/usr/bin/env")
    # Only the stand-ins on PATH: java, fc-match and fc-list are "missing".
    r = subprocess.run(["/bin/bash", str(ROOT / "scripts" / "install_test_deps.sh")], capture_output=True,
                       text=True, env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/")}, timeout=60)
    return r, log.read_text() if log.exists() else ""


def test_root_installs_without_recommends_and_with_a_cjk_font(tmp_path):
    r, calls = run_script(tmp_path, uid=0, sudo=False)
    assert r.returncode == 0, r.stderr
    install = [c for c in calls.splitlines() if " install " in c]
    assert len(install) == 1 and "sudo" not in calls
    for word in ("--no-install-recommends", "default-jre-headless", "fontconfig", "fonts-noto-cjk"):
        assert word in install[0], install


def test_non_root_without_sudo_says_what_to_run(tmp_path):
    r, calls = run_script(tmp_path, uid=1000, sudo=False)
    assert r.returncode == 1 and calls == ""
    assert "not root and no sudo" in r.stderr and "apt-get install -y --no-install-recommends" in r.stderr


def test_non_root_with_sudo_says_it_uses_sudo(tmp_path):
    r, calls = run_script(tmp_path, uid=1000, sudo=True)
    assert r.returncode == 0, r.stderr
    assert "with sudo" in r.stderr and calls.count("sudo ") == 2
