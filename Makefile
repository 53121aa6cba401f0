# shadow-eval developer tasks. `make` (or `make help`) lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: help install kafka test test-unit lint check-native demo bench clean distclean

help: ## List the targets (this message)
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml or a C module changes (or the venv is new).
$(STAMP): pyproject.toml hatch_build.py streams/_avro.h streams/codec/_cread.c streams/join/_cslots.c | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP) ## Create .venv (python3.11 or python3) and pip install -e '.[dev]'

kafka: install ## Fetch the Apache Kafka 4.x jars from Maven Central into the cache (once)
	$(BIN)/shadow-eval kafka provision

test: kafka ## Run the whole suite; the tests start (and always stop) their own local broker
	$(BIN)/pytest -q --durations=15 $(PYTEST_ARGS)

test-unit: install ## Run the unit tests only (no broker, no Java)
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

lint: install ## ruff check, ruff format --check and mypy --strict on streams/
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy streams

ASAN_TREE := build/asan
NATIVE_TESTS := tests/unit/codec tests/unit/join

check-native: install ## Build the C modules with AddressSanitizer in build/asan and run their tests there
	rm -rf $(ASAN_TREE) && mkdir -p $(ASAN_TREE)
	cp -r streams schemas tests pyproject.toml $(ASAN_TREE)/
	find $(ASAN_TREE) -name '*.so' -delete
	$(BIN)/python hatch_build.py --sanitize $(ASAN_TREE)
	cd $(ASAN_TREE) && PYTHONPATH=$$PWD LD_PRELOAD="$$($${CC:-cc} -print-file-name=libasan.so)" \
		ASAN_OPTIONS=detect_leaks=0 $(abspath $(BIN))/python -m pytest -q -p no:cacheprovider $(NATIVE_TESTS)

demo: kafka ## Run the end-to-end demo (shadow-eval demo)
	$(BIN)/shadow-eval demo

bench: kafka ## Run every bench/*.py with --json
	@shopt -s nullglob; for script in bench/*.py; do \
		echo "== $$script" >&2; $(BIN)/python "$$script" --json; \
	done

clean: ## Remove caches and build output (keeps .venv and the Kafka jars)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis reports
	find streams tests bench -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## Also remove .venv
	rm -rf $(VENV)
