# Developer entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Django 6 on a CPython >= 3.12, built and reused by tests/test_example_django.py.
VENV_DJANGO6 := .venv-django6
LINT_PATHS := $(wildcard pgqueue tests benchmarks migrations)

.PHONY: install test lint demo bench bench-web chaos clean distclean

# The virtualenv, and an editable install redone only when pyproject.toml changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/pgqueue demo

# The whole suite (< 10 minutes): pgqueue, PostgreSQL's ceiling and the peers;
# installs the `bench` extra first. Report: benchmarks/results/<date>.md.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m benchmarks
	$(MAKE) bench-web

# Dashboard server time per page on 1,000,000 queued + 5,000,000 finished jobs
# (about 2 minutes, most of it loading the rows). Report: benchmarks/results/<date>-web.md.
bench-web: $(STAMP)
	$(BIN)/python -m benchmarks.web_pages

# Fault injection at full size (100,000 jobs, about 10 minutes, root for the network
# partition): a cluster of its own, real worker processes, every scenario in turn.
# Exits non-zero when a check fails. Report: benchmarks/results/<date>-chaos.md/.json.
chaos: $(STAMP)
	$(BIN)/python -m benchmarks.chaos

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . \( -path ./$(VENV) -o -path ./$(VENV_DJANGO6) \) -prune -o -name __pycache__ -type d \
		-exec rm -rf {} +

# Also the virtualenvs and the embedded development database (./.pgqueue).
distclean: clean
	if [ -d .pgqueue ] && [ -x $(BIN)/python ]; then \
		$(BIN)/python -c "from pathlib import Path; from pgqueue._embedded import LocalCluster; LocalCluster(Path('.pgqueue/data')).destroy()"; \
	fi
	rm -rf .pgqueue $(VENV) $(VENV_DJANGO6)
