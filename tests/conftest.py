"""Test session setup: Prefect runs on a throwaway ephemeral database, quietly."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Must be set before Prefect is imported anywhere; removed when the session ends.
if "PREFECT_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="sfpp-prefect-home-")
    os.environ["PREFECT_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)
# Tests never pick up a developer's .env or exported credentials: each test states its source explicitly.
os.environ["SF_ENV_FILE"] = ""
for _name in [n for n in os.environ if n.startswith("SF_") and n != "SF_ENV_FILE"]:
    os.environ.pop(_name)

import pytest  # noqa: E402

pytest_plugins = ["tests.emulator_fixtures", "tests.sync_helpers"]


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
