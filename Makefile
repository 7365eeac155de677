# `make demo` and `make test` set everything up on a fresh machine (a virtualenv in .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-pg clean

$(STAMP): pyproject.toml
	@# Debian's chromium renders the HTML report in a test; installed when missing and we can.
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: chromium not installed; the HTML report screenshot test will be skipped"; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,agent]"
	touch $(STAMP)

demo: $(STAMP)  ## run the sales pipeline over a week of demo deliveries (DuckDB)
	$(BIN)/heal demo

test: $(STAMP)  ## the whole test suite (real DuckDB, PostgreSQL, S3 over HTTP, Claude Code CLI)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)  ## benchmarks (not part of the tests)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench

bench-pg: $(STAMP)  ## 5M rows into PostgreSQL vs a bare COPY (a server at 127.0.0.1:5432; see bench/pg.py)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench --pg

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
