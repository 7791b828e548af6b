"""Test session setup: Prefect runs on a throwaway ephemeral database, quietly."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Must be set before Prefect is imported anywhere; removed when the session ends. Under pytest-xdist every worker
# makes its own: a worker inherits the controller's environment, and a shared home would mean one SQLite database
# (and one memo store) written by every worker at once.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... set before conftest is imported
_OWN_PREFECT_HOME = None
if _XDIST_WORKER or "PREFECT_HOME" not in os.environ:
    _OWN_PREFECT_HOME = tempfile.mkdtemp(prefix=f"sfpp-prefect-home-{_XDIST_WORKER or 'main'}-")
    os.environ["PREFECT_HOME"] = _OWN_PREFECT_HOME
    atexit.register(shutil.rmtree, _OWN_PREFECT_HOME, ignore_errors=True)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)
# Tests never pick up a developer's .env or exported credentials: each test states its source explicitly.
os.environ["SF_ENV_FILE"] = ""
for _name in [n for n in os.environ if n.startswith("SF_") and n != "SF_ENV_FILE"]:
    os.environ.pop(_name)

import pytest  # noqa: E402

pytest_plugins = ["tests.emulator_fixtures", "tests.sync_helpers"]


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, hand out the slow tests first: a 40-80 s test picked up last would run on alone while
    the other workers sit idle. Every worker sorts the same way (xdist needs identical collections); the order is
    otherwise kept, and a serial run is left in file order."""
    if _XDIST_WORKER:
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Test files whose tests share one costly per-worker session resource: under pytest-xdist they all go to one worker.
# (``xdist_group`` marks would say this per test, but pytest-xdist 3.8 cannot apply them under pytest 9.)
ONE_WORKER_FILES = {
    "tests/integration/test_scheduling.py": "a real Prefect server, ~15-30 s of CPU to start",
}


def pytest_xdist_make_scheduler(config, log):
    """``--dist load`` (one test at a time to whichever worker is free), except for ``ONE_WORKER_FILES``."""
    if config.getvalue("dist") != "load":
        return None  # any other --dist asked for on the command line
    from xdist.scheduler import LoadScopeScheduling

    class _LoadKeepingSharedFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER_FILES else nodeid

    return _LoadKeepingSharedFiles(config, log)


def pytest_unconfigure(config):
    """Remove this process's Prefect home now (atexit alone is not certain to run in an xdist worker)."""
    if _OWN_PREFECT_HOME:
        shutil.rmtree(_OWN_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect database for the whole session (a function-scoped harness costs ~5 s per test)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture()
def data_root(tmp_path, monkeypatch):
    """A private data root for one test, also exported as SF_PIPELINE_DATA_DIR."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("SF_PIPELINE_DATA_DIR", str(root))
    return root
