# shadow-eval developer tasks. `make` (or `make help`) lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: help install kafka schema-registry test-deps test-servers test test-unit test-faults test-pure lint check-native demo bench clean distclean

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

schema-registry: install ## Build the Apicurio Schema Registry of the tests from Maven Central (once)
	$(BIN)/python -c "from streams.broker.registry import provision_registry; \
	from streams.settings import load_settings; print(provision_registry(load_settings().cache_dir))"

# Debian packages of the browser and Prometheus tests: command -> package. Quiet when present.
TEST_TOOLS := chromium:chromium chromedriver:chromium-driver prometheus:prometheus promtool:prometheus

test-deps: ## Install chromium, chromedriver and prometheus (Debian) when missing
	@missing=$$(for tool in $(TEST_TOOLS); do \
		command -v "$${tool%%:*}" >/dev/null || echo "$${tool#*:}"; done | sort -u | xargs); \
	if [ -n "$$missing" ]; then \
		if ! command -v apt-get >/dev/null; then \
			echo "test-deps: no apt-get; install $$missing yourself (their tests skip)" >&2; exit 0; fi; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "test-deps: apt-get install $$missing" >&2; \
		$$sudo apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

# Model servers the integration tests start, each in its own venv: their pins (pydantic,
# fastapi, numpy...) need not agree with ours. Re-installed when this file changes.
MLSERVER_VENV := .venv-mlserver
MLSERVER_PINS := mlserver==1.7.1 mlserver-sklearn==1.7.1
MLFLOW_VENV := .venv-mlflow
MLFLOW_PINS := mlflow==3.17.2

$(MLSERVER_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install -q --disable-pip-version-check $(MLSERVER_PINS)
	touch $@

$(MLFLOW_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install -q --disable-pip-version-check $(MLFLOW_PINS)
	touch $@

test-servers: $(MLSERVER_VENV)/.installed $(MLFLOW_VENV)/.installed ## MLServer and MLflow in their own venvs (the OIP and actions tests start them)

# What CI runs (.ci/run): lint first (seconds, fails fast), the whole suite, then the unit
# tests once more on the C modules' Python twins (what runs where no compiler is).
test: lint kafka schema-registry test-deps test-servers ## lint, the whole suite (the tests start and stop their own broker), test-pure
	$(BIN)/pytest -q --durations=15 $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-pure

test-unit: install ## Run the unit tests only (no broker, no Java)
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test-faults: kafka ## Run the fault scenarios alone (a local three-broker cluster; also in `test`)
	$(BIN)/pytest -q -m faults tests/faults $(PYTEST_ARGS)

test-pure: install ## Run the unit tests with SHADOW_EVAL_PURE_PYTHON=1 (the C modules' Python twins)
	SHADOW_EVAL_PURE_PYTHON=1 $(BIN)/pytest -q tests/unit

lint: install ## ruff check and ruff format --check (streams, tests), mypy --strict (streams)
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
	@shopt -s nullglob; for script in bench/[!_]*.py; do \
		echo "== $$script" >&2; $(BIN)/python "$$script" --json; \
	done

clean: ## Remove caches and build output (keeps .venv and the Kafka jars)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis reports
	find streams tests bench -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## Also remove .venv
	rm -rf $(VENV)
