# The two commands of the README. Both set everything up on a fresh machine that has
# Python 3.11: uv (installed with pip when missing), then the locked environment.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTHON ?= python3

.PHONY: setup setup-all demo test lint bench

$(UV):
	$(PYTHON) -m pip install --user --quiet uv || \
		$(PYTHON) -m pip install --user --quiet --break-system-packages uv

setup: $(UV)
	$(UV) sync --frozen

setup-all: $(UV)
	$(UV) sync --frozen --extra airflow

demo: setup
	$(UV) run guardline demo

test: setup-all
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync pytest

bench: $(UV)
	$(UV) sync --frozen --group bench
	$(UV) run --no-sync python bench/generate_bench.py
	$(UV) run --no-sync python bench/ingest_bench.py
	$(UV) run --no-sync python bench/matching_bench.py
	$(UV) run --no-sync python bench/rules_bench.py
	$(UV) run --no-sync python bench/warehouse_bench.py
