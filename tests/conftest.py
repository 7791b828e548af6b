"""Test session setup: Prefect runs on a throwaway ephemeral database, quietly."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Must be set before Prefect is imported anywhere; removed when the session ends. Under pytest-xdist every worker
# makes its own: a worker inherits the controller's environment, and a shared home would mean one SQLite database
# (and one memo store) written by every worker at once. Its database is a copy of one migrated template shared by
# all workers and sessions (pytest_configure below, tests/prefect_template.py), not migrated again in each.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... set before conftest is imported
_OWN_PREFECT_HOME = None
if _XDIST_WORKER or "PREFECT_HOME" not in os.environ:
    _OWN_PREFECT_HOME = tempfile.mkdtemp(prefix=f"sfpp-prefect-home-{_XDIST_WORKER or 'main'}-")
    os.environ["PREFECT_HOME"] = _OWN_PREFECT_HOME
    atexit.register(shutil.rmtree, _OWN_PREFECT_HOME, ignore_errors=True)
# Bytecode caches (__pycache__, gitignored) are written even when the shell says PYTHONDONTWRITEBYTECODE: the suite
# starts ~40 interpreters (workers, orchestrator runs, serve and agent processes, emulators), and without the caches
# each one compiles the project again (~0.5 s of CPU each, ~2 s per xdist worker with the test modules).
# Popped before pytest-xdist starts its workers, so they and every subprocess inherit it.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
    sys.dont_write_bytecode = False
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)
# Tests never pick up a developer's .env or exported credentials: each test states its source explicitly.
os.environ["SF_ENV_FILE"] = ""
for _name in [n for n in os.environ if n.startswith("SF_") and n != "SF_ENV_FILE"]:
    os.environ.pop(_name)
# A still org for the suite: tests compare reads taken seconds apart, which a living org (emulator/living.py) may
# change in between; the living org's own tests ask for it (living_rate=1) and step a frozen clock.
os.environ["SF_EMULATOR_LIVING_RATE"] = "0"

import pytest  # noqa: E402

# Fixture modules, registered in pytest_configure by the processes that run tests: under pytest-xdist the controller
# runs none, and importing them (emulator, Polars, Prefect through tasks.sync) cost it ~6 s of CPU for nothing.
FIXTURE_PLUGINS = ("tests.emulator_fixtures", "tests.sync_helpers")

_SQLITE_URL = "sqlite+aiosqlite:///"


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, hand out the slow tests first: a 40-80 s test picked up last would run on alone while
    the other workers sit idle. Every worker sorts the same way (xdist needs identical collections); the order is
    otherwise kept, and a serial run is left in file order. (The ``ONE_WORKER_GROUPS`` go out before any single test:
    xdist's scheduler hands out its largest work units first.)"""
    if _XDIST_WORKER:
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Test files whose tests share one costly per-worker session or module resource: under pytest-xdist each group goes
# to one worker, which runs its files one after the other and builds the resource once (spread over three workers,
# each would build its own). (``xdist_group`` marks would say this per test, but pytest-xdist 3.8 cannot apply them
# under pytest 9.)
ONE_WORKER_GROUPS = {
    "prefect-server": (
        ("tests/integration/test_prefect_ui.py", "tests/integration/test_scheduling.py",
         "tests/integration/test_fanout.py"),
        "one real Prefect server (~9 s of CPU to start), stopped after them (tests/prefect_server.py SharedServer)",
    ),
    "make-run": (
        ("tests/integration/test_progress_run.py",),
        "one `make run` subprocess (~10 s of CPU) feeds both tests (module fixture)",
    ),
    "report-browser": (
        ("tests/integration/test_html_report_browser.py",),
        "an orchestrator run on the default org (module fixture)",
    ),
}
ONE_WORKER_FILES = {path: group for group, (paths, _why) in ONE_WORKER_GROUPS.items() for path in paths}


def pytest_xdist_make_scheduler(config, log):
    """``--dist load`` (one test at a time to whichever worker is free), except for ``ONE_WORKER_GROUPS``."""
    if config.getvalue("dist") != "load":
        return None  # any other --dist asked for on the command line
    from xdist.scheduler import LoadScopeScheduling

    class _LoadKeepingSharedFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return ONE_WORKER_FILES.get(nodeid.split("::", 1)[0], nodeid)

    return _LoadKeepingSharedFiles(config, log)


def pytest_configure(config):
    """Give this process's own Prefect home a copy of the migrated template database (``tests/prefect_template.py``)
    instead of letting its first flow create and migrate one (~10 s of CPU per worker). The home stays private: a
    copy, never shared. Under xdist the controller runs no test, so its home is left empty."""
    xdist_controller = not _XDIST_WORKER and getattr(config.option, "dist", "no") != "no"
    if not xdist_controller:
        for plugin in FIXTURE_PLUGINS:
            config.pluginmanager.import_plugin(plugin)
    if _OWN_PREFECT_HOME and not xdist_controller:
        from tests.prefect_template import seed_prefect_home

        try:
            seed_prefect_home(Path(_OWN_PREFECT_HOME))
        except Exception as err:  # noqa: BLE001 - only a head start: Prefect creates the database itself if need be
            config.issue_config_time_warning(
                pytest.PytestWarning(f"no migrated Prefect database for {_OWN_PREFECT_HOME}: {err}"), stacklevel=2)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the shared Prefect server (``tests/prefect_server.py``) once no further test of this process needs it."""
    try:
        return (yield)
    finally:
        fixture = "prefect_server"
        if fixture in item.fixturenames and (nextitem is None or fixture not in nextitem.fixturenames):
            from tests.prefect_server import SHARED_SERVER

            SHARED_SERVER.stop()


def pytest_unconfigure(config):
    """Stop a Prefect server still running (an interrupted session) and remove this process's Prefect home now
    (atexit alone is not certain to run in an xdist worker)."""
    import sys

    shared = sys.modules.get("tests.prefect_server")
    if shared is not None:
        shared.SHARED_SERVER.stop()
    if _OWN_PREFECT_HOME:
        shutil.rmtree(_OWN_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect database for the whole session (a function-scoped harness costs ~5 s per test).

    The harness points Prefect at a new database file in a temporary folder; that file starts as a copy of the
    migrated template database (``tests/prefect_template.py``), as it would be after Prefect created it, rather
    than being created and migrated again in every worker (~10 s of CPU each).
    """
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME
    from prefect.testing.utilities import prefect_test_harness

    from tests.prefect_template import seed_prefect_home

    with prefect_test_harness():
        url = PREFECT_API_DATABASE_CONNECTION_URL.value()
        if url.startswith(_SQLITE_URL):
            database = Path(url.removeprefix(_SQLITE_URL))
            if not database.exists():
                seed_prefect_home(Path(PREFECT_HOME.value()), database=database)
        yield


@pytest.fixture()
def data_root(tmp_path, monkeypatch):
    """A private data root for one test, also exported as SF_PIPELINE_DATA_DIR."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("SF_PIPELINE_DATA_DIR", str(root))
    return root
