PYTHON ?= python3
export PYTHON

.PHONY: setup demo test bench golden clean

.setup-stamp: pyproject.toml scripts/setup.sh scripts/golden-constraints.txt
	bash scripts/setup.sh
	touch $@

setup: .setup-stamp

demo: setup  ## run the embedded demo: a tiny VLM on synthetic tasks, offline, on the CPU
	$(PYTHON) -m m3eval demo

test: setup  ## lint, type-check, then the whole test suite (installs Java and chromium if missing)
	bash scripts/install_test_deps.sh
	$(PYTHON) -m ruff check m3eval
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q

bench: setup  ## benchmark scripts: print figures
	$(PYTHON) benchmarks/bench_harness.py
	$(PYTHON) benchmarks/bench_metrics.py
	$(PYTHON) benchmarks/bench_video.py
	$(PYTHON) benchmarks/bench_video_tasks.py

golden: setup  ## re-record results/demo/tiny-llava after an intended change
	$(PYTHON) scripts/update_golden.py

clean:
	rm -rf .setup-stamp runs .pytest_cache
