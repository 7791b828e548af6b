"""`make run` with stdout a pipe (CI, cron, `| tee`): plain progress lines, no escape codes, the run's table intact."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prefect_template import seed_prefect_home  # a migrated database: the run is the subject

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_piped_run_prints_plain_progress_lines_and_its_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "PREFECT_"))}
    env.update(SF_PIPELINE_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(seed_prefect_home(tmp_path / "prefect")),
               SF_ENV_FILE="")
    proc = subprocess.run([sys.executable, "run_multiple_times.py", "--runs", "1", "--objects", "Lead",
                           "--progress-seconds", "0.5"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "\x1b" not in proc.stdout
    progress = [line for line in proc.stdout.splitlines() if line.startswith("progress ")]
    assert any(re.fullmatch(r"progress Lead extract done 5,000/5,000 rows [\d,]+/s [\d.ms]+", line)
               for line in progress), proc.stdout
    # the display is gone before the run's table: no progress line after its header
    table = proc.stdout.index("run 1/1  id=")
    assert "progress " not in proc.stdout[table:]
    assert re.search(r"^  Lead +backfill +5,000", proc.stdout[table:], re.MULTILINE)
