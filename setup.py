"""Build step that pyproject.toml cannot express: ship the repository's top-level tasks/
and dashboard/ inside the wheel, as m3eval/_data/ (m3eval/resources.py finds them)."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        for name in ("tasks", "dashboard"):
            dst = Path(self.build_lib) / "m3eval" / "_data" / name
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(ROOT / name, dst, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))


setup(cmdclass={"build_py": BuildWithData})
