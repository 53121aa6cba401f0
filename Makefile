# shadow-eval developer tasks. `make` (or `make help`) lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: help install kafka test test-unit test-pure lint demo bench clean distclean

help: ## List the targets (this message)
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml or a C module changes (or the venv is new).
$(STAMP): pyproject.toml hatch_build.py streams/_avro_read.h streams/codec/_cread.c streams/join/_cslots.c | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP) ## Create .venv (python3.11 or python3) and pip install -e '.[dev]'

kafka: install ## Fetch the Apache Kafka 4.x jars from Maven Central into the cache (once)
	$(BIN)/shadow-eval kafka provision

# What CI runs (.ci/run): lint first (seconds, fails fast), the whole suite, then the unit
# tests once more on the C modules' Python twins (what runs where no compiler is).
test: lint kafka ## lint, the whole suite (the tests start and stop their own broker), test-pure
	$(BIN)/pytest -q --durations=15 $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-pure

test-unit: install ## Run the unit tests only (no broker, no Java)
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test-pure: install ## Run the unit tests with SHADOW_EVAL_PURE_PYTHON=1 (the C modules' Python twins)
	SHADOW_EVAL_PURE_PYTHON=1 $(BIN)/pytest -q tests/unit

lint: install ## ruff check and ruff format --check (streams, tests), mypy --strict (streams)
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy streams

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
