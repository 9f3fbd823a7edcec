# The two commands of the README. Both set everything up on a fresh machine that has
# Python 3.11: uv (installed with pip when missing), then the locked environment.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTHON ?= python3

.PHONY: setup setup-all system-packages demo test test-scenarios lint bench

$(UV):
	$(PYTHON) -m pip install --user --quiet uv || \
		$(PYTHON) -m pip install --user --quiet --break-system-packages uv

setup: $(UV)
	$(UV) sync --frozen --compile-bytecode

setup-all: $(UV)
	$(UV) sync --frozen --compile-bytecode --extra airflow

# What the print and report tests need from Debian: LibreOffice to print the lists to PDF,
# poppler to read the PDF, a Chinese font to draw it, Chromium to render the night's report
# (headless, offline). Installed with apt when missing (as root, or with sudo); without
# either, those tests say what to install.
SYSTEM_PACKAGES_CHECK := command -v soffice >/dev/null || echo libreoffice-calc-nogui; \
	command -v pdftotext >/dev/null || echo poppler-utils; \
	fc-list :lang=zh 2>/dev/null | grep -q . || echo fonts-wqy-microhei; \
	command -v chromium >/dev/null || echo chromium

system-packages:
	@missing="$$( $(SYSTEM_PACKAGES_CHECK) )"; missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; \
		else echo "make: the print and report tests need these Debian packages: $$missing"; exit 0; fi; \
		echo "make: installing $$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: setup
	$(UV) run guardline demo

# The suite, but the whole-night scenarios (marked `scenario`: the DAGs under a real
# Airflow, every bad delivery), which `make test-scenarios` runs and CI runs after it.
test: setup-all system-packages
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync pytest -m "not scenario"

test-scenarios: setup-all system-packages
	$(UV) run --no-sync pytest -m scenario

bench: $(UV)
	$(UV) sync --frozen --compile-bytecode --group bench --extra airflow
	$(UV) run --no-sync python bench/generate_bench.py
	$(UV) run --no-sync python bench/ingest_bench.py
	$(UV) run --no-sync python bench/matching_bench.py
	$(UV) run --no-sync python bench/rules_bench.py
	$(UV) run --no-sync python bench/warehouse_bench.py
	$(UV) run --no-sync python bench/night_bench.py
	$(UV) run --no-sync python bench/province_bench.py
