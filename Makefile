# The two set-up commands (README, "Quick start") and their background variant.
# Each one first installs whatever is missing (scripts/install.sh).
PYTHON := .venv/bin/python
# Tryton's test databases: SQLite in memory, with the created databases
# cached so that the health_imaging one (~35 s) is built once.
export DB_NAME ?= :memory:
# Keyed on the module's code: a cached database without a new column fails.
export DB_CACHE ?= $(CURDIR)/.cache/tryton-tests/$(shell cat tryton_stub_module/*.py \
	tryton_stub_module/*.xml tryton_stub_module/tryton.cfg | sha256sum | cut -c1-16)

.PHONY: install demo up down test test-unit test-tryton test-integration test-postgresql \
	test-browser bench

install:
	bash scripts/install.sh

# DB=postgresql: GNU Health on a private PostgreSQL 15 cluster (default SQLite).
DB ?= sqlite

demo: install
	$(PYTHON) scripts/stack.py demo --db $(DB)

up: install
	$(PYTHON) scripts/stack.py up --db $(DB)

down:
	@[ ! -x $(PYTHON) ] || $(PYTHON) scripts/stack.py down

test: install test-unit test-tryton test-integration test-postgresql test-browser

# A plain `pytest` from the root must collect every test (two test files of
# one name in two folders would stop it): checked first, in a second.
test-unit:
	$(PYTHON) -m pytest -q --collect-only -p no:cacheprovider >/dev/null
	$(PYTHON) -m pytest -q tests/unit

test-tryton:
	mkdir -p $(DB_CACHE)
	$(PYTHON) -W "ignore:::trytond.backend.sqlite.table" -m unittest tryton_stub_module.tests

test-integration:
	$(PYTHON) -m pytest -q -x tests/integration

# The same tests with trytond on a private PostgreSQL 15 cluster (GNU Health's
# production database), for what differs there: the sync end to end, the
# faults, two Orthanc nodes pushing at once, the access rights.
PG_TESTS := test_modality_to_gnuhealth.py test_faults.py test_faults_cluster.py \
	test_concurrent_pushes.py test_least_privilege.py
test-postgresql:
	cd tests/integration && TRYTON_DB=postgresql ../../$(PYTHON) -m pytest -q -x $(PG_TESTS)

# SAO, Orthanc Explorer and the web viewer in Debian's headless chromium
# (Playwright); refreshes the screenshots in docs/screenshots/.
test-browser:
	$(PYTHON) -m pytest -q -x tests/browser

# The push path's benchmarks (docs/benchmarks.md): ~30 min, JSON results in
# .cache/bench/. Not part of `make test`; its smoke test is.
bench: install
	$(PYTHON) benchmarks/run_all.py $(BENCH_ARGS)
