# sf-prefect-pipeline: `make run` and `make test` are all a new user needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint bench emulator lock clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The venv is rebuilt only when the pins or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)  ## create/refresh .venv from requirements.lock (no-op when up to date)

run: $(STAMP)  ## run the pipeline 3 times (embedded emulator unless .env has credentials)
	$(BIN)/python run_multiple_times.py $(ARGS)

# Tests run in parallel (pytest-xdist), each worker with its own emulator, Prefect home and database
# (tests/conftest.py). 3 workers on this 2-core machine: measured on `make test-fast` (noisy, shared box),
# -n 2 took 2m45, -n 3 2m02, -n 4 2m41; tests wait on subprocesses and I/O, but each worker also pays ~15 s of
# imports and start-up. A serial run: make test ARGS="-n 0".
XDIST := -n 3

test: $(STAMP)  ## run the whole test suite (unit + integration against the emulator)
	$(BIN)/python -m pytest $(XDIST) $(ARGS)

test-fast: $(STAMP)  ## unit tests and quick integration tests only
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(ARGS)

lint: $(STAMP)  ## ruff and mypy (the type checker; config in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)  ## benchmarks (installs the bench extra: pandas, duckdb)
	$(BIN)/python -m pip install --quiet -r requirements-bench.lock
	$(BIN)/python -m benchmarks $(ARGS)

emulator: $(STAMP)  ## serve the embedded Salesforce emulator in the foreground
	$(BIN)/python -m emulator serve $(ARGS)

lock:  ## re-resolve requirements.lock from pyproject.toml (needs network)
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e '.[dev]'
	(echo "# Exact pins for runtime + dev (make run / make test install from this file)."; \
	 echo "# Regenerate: make lock"; .lockvenv/bin/pip freeze --exclude-editable) > requirements.lock
	rm -rf .lockvenv

clean:  ## remove the venv and everything the pipeline wrote under data/
	rm -rf $(VENV)
	find data -type f ! -name .gitkeep -delete
