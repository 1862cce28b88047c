# Developer entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Django 6 on a CPython >= 3.12, built and reused by tests/test_example_django.py.
VENV_DJANGO6 := .venv-django6
LINT_PATHS := $(wildcard pgqueue tests benchmarks migrations)

.PHONY: install test lint demo bench bench-web bench-flows bench-load bench-long chaos clean distclean

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
# installs the `bench` extra first. Report: benchmarks/results/<date>.md. Then the
# dashboard pages (bench-web, ~2 min) and the load workloads (bench-load, ~45 min):
# about an hour in all. The 10-minute pins and the 30-minute soak: bench-long.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m benchmarks
	$(MAKE) bench-web
	$(MAKE) bench-flows
	$(MAKE) bench-load

# The load workloads at the issue's sizes (about 45 minutes): steady state
# (pgqueue, PgQueuer, procrastinate, Celery on Redis; concurrency 16 and 64; 30 s
# warm-up + 180 s each, ~30 min), single async enqueue (~2 min), overload (1.5x the
# measured maximum for 5 minutes, then 1x until drained, ~8-17 min).
# Reports: benchmarks/results/<date>-{steady,enqueue-async,overload}.md.
bench-load: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.steady
	$(BIN)/python -m benchmarks.enqueue_async --profile --floor
	$(BIN)/python -m benchmarks.overload

# The long ones (about 90 minutes, on a quiet machine): the pinned horizon, both
# forms, 60 s clean + 10 minutes pinned + 60 s recovery at 800 jobs/s offered, then
# the same at maximum throughput (--topup); the 30-minute soak with the pruner on a
# 60 s retention. Reports: benchmarks/results/<date>-{horizon,horizon-max,soak}.md.
bench-long: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.horizon
	$(BIN)/python -m benchmarks.horizon --topup 4000 --tag max
	$(BIN)/python -m benchmarks.soak

# Dashboard server time per page on 1,000,000 queued + 5,000,000 finished jobs
# (about 2 minutes, most of it loading the rows). Report: benchmarks/results/<date>-web.md.
bench-web: $(STAMP)
	$(BIN)/python -m benchmarks.web_pages

# Workflows: a 10,000-job chord against 10,000 plain jobs, hand-off along a 1,000-step
# chain, enqueueing a 10,000-job flow (about 2 minutes). Report: <date>-flows.md.
bench-flows: $(STAMP)
	$(BIN)/python -m benchmarks.flows

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
