# Conveyor — `make help` lists the targets. `make check` is exactly what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test check lint typecheck services bench bench-throughput clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Conveyor needs Python 3.11+"' \
	  || { echo "error: Python 3.11+ is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(BIN)/pip install -q -e '.[all]'
	@touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(STAMP_RUN)

run: $(STAMP_RUN) ## set up and start Conveyor (API, dashboard, worker) on SQLite at http://127.0.0.1:8080
	$(BIN)/conveyor up --app examples.tasks:app --host $(HOST) --port $(PORT)

services: ## install PostgreSQL and Redis when missing (Debian, as root); the tests start them
	@bash scripts/install-services.sh

test: $(STAMP_DEV) services ## set up and run the whole test suite (starts PostgreSQL and Redis itself)
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP_DEV) ## ruff lint + format check, import layering
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports

typecheck: $(STAMP_DEV) ## mypy --strict on src/
	$(BIN)/mypy

check: lint typecheck test ## what CI runs: lint, types, the whole test suite

bench: $(STAMP_DEV) services ## Conveyor and its peers side by side (writes bench/results.md)
	bash bench/setup-peers.sh
	bench/.venv/bin/python bench/compare.py

bench-throughput: $(STAMP_DEV) services ## Conveyor alone: throughput and pickup latency per engine
	$(PY) bench/throughput.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
