"""`make run` as a new user's shell and CI start it: no Salesforce credentials (the built-in emulator starts and says
so) and stdout a pipe (plain progress lines, no escape codes, the run's table intact). One run feeds both tests
(a module fixture; tests/conftest.py keeps them on one xdist worker): each only reads what the run printed and wrote.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prefect_template import seed_prefect_home  # a migrated database: the run is the subject

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def piped_make_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``run_multiple_times.py`` with no credentials and stdout a pipe; the process and its data root.

    The Prefect home is a migrated copy: a first start on an empty home is the subject of
    test_first_runs_started_together_share_one_fresh_prefect_home (tests/integration/test_reliability_process.py).
    """
    tmp_path = tmp_path_factory.mktemp("make-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "PREFECT_"))}
    env.update(SF_PIPELINE_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(seed_prefect_home(tmp_path / "prefect")),
               SF_ENV_FILE="",
               # a still org, as for the rest of the suite (tests/conftest.py): the counts below are the seed's own
               SF_EMULATOR_LIVING_RATE="0")
    proc = subprocess.run([sys.executable, "run_multiple_times.py", "--runs", "1", "--objects", "Account", "Lead",
                           "--progress-seconds", "0.5"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc, tmp_path / "data"


@pytest.mark.slow
def test_make_run_entry_point_uses_the_embedded_emulator(piped_make_run):
    """`run_multiple_times.py` with no credentials: the emulator starts, says so, and the run completes."""
    proc, data_root = piped_make_run
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "no Salesforce credentials found: using the built-in emulator, synthetic data" in output
    assert "run 1/1" in output and "source=emulator" in output
    assert (data_root / "output" / "Lead" / "summary.json").is_file()
    (run_file,) = (data_root / "runs").glob("*.json")
    assert json.loads(run_file.read_text())["source"]["kind"] == "emulator"


@pytest.mark.slow
def test_a_piped_run_prints_plain_progress_lines_and_its_table(piped_make_run):
    proc, _ = piped_make_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "\x1b" not in proc.stdout
    progress = [line for line in proc.stdout.splitlines() if line.startswith("progress ")]
    assert any(re.fullmatch(r"progress Lead extract done 5,000/5,000 rows [\d,]+/s [\d.ms]+", line)
               for line in progress), proc.stdout
    # the display is gone before the run's table: no progress line after its header
    table = proc.stdout.index("run 1/1  id=")
    assert "progress " not in proc.stdout[table:]
    assert re.search(r"^  Lead +backfill +5,000", proc.stdout[table:], re.MULTILINE)
