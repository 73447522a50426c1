# Chain STS developer commands. Both create the virtual environment and install what they
# need on first use.
#   make run    start the STS on http://127.0.0.1:8000 (SQLite, dev keys, demo registry);
#               another port: make run PORT=8001
#   make test   lint, type-check and run the test suite on SQLite and PostgreSQL

PYTHON ?= python3
PORT   ?= 8000
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck clean demo bench

# The service SDK is installed from this repository in the same pip call as the server, which
# depends on it, so pip never looks for chain-sts-client on an index.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e clients/python -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sts serve --demo --port $(PORT)

# The end-to-end demo: a person's request through web -> agent -> tool -> data, then a
# revocation (its own temporary STS and services; cleans up after itself).
demo: $(STAMP)
	$(BIN)/sts demo

# The benchmark against PostgreSQL with wrk (see README, Performance); options in BENCH_ARGS,
# e.g. make bench BENCH_ARGS=--scale
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check sts sts_demo tests migrations bench clients/python
	$(BIN)/ruff format --check sts sts_demo clients/python

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
