# The two set-up commands (README, "Quick start") and their background variant.
# Each one first installs whatever is missing (scripts/install.sh).
PYTHON := .venv/bin/python
# Tryton's test databases: SQLite in memory, with the created databases
# cached so that the health_imaging one (~35 s) is built once.
export DB_NAME ?= :memory:
export DB_CACHE ?= $(CURDIR)/.cache/tryton-tests

.PHONY: install demo up down test test-unit test-tryton test-integration benchmark

install:
	bash scripts/install.sh

demo: install
	$(PYTHON) scripts/stack.py demo

up: install
	$(PYTHON) scripts/stack.py up

down:
	@[ ! -x $(PYTHON) ] || $(PYTHON) scripts/stack.py down

test: install test-unit test-tryton test-integration

test-unit:
	$(PYTHON) -m pytest -q tests/unit

test-tryton:
	mkdir -p $(DB_CACHE)
	$(PYTHON) -m unittest tryton_stub_module.tests

test-integration:
	$(PYTHON) -m pytest -q -x tests/integration
