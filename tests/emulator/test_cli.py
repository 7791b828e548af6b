"""``python -m emulator serve``: exactly one JSON line when ready, clean exit on SIGTERM/SIGINT, option errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError

from emulator import EmulatorInfo, emulator_session

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SF_EMULATOR_FAULTS"}
    full_env.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "emulator", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, cwd=ROOT)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_json_line_and_exits_cleanly(sig):
    proc = _serve("--rows", "Opportunity=50,Case=5", env={"SF_EMULATOR_FAULTS": "rest.query:503"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    data = json.loads(line)
    assert set(data) == {"instance_url", "access_token", "ca_bundle", "api_version"}
    assert data["instance_url"].startswith("https://127.0.0.1:") and data["api_version"] == "59.0"
    ca_bundle = Path(data["ca_bundle"])
    assert ca_bundle.is_absolute() and ca_bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")
    info = EmulatorInfo.from_json(line)
    with emulator_session(info) as http:
        sf = Salesforce(instance_url=info.instance_url, session_id=info.access_token, session=http)
        with pytest.raises(SalesforceGeneralError):  # SF_EMULATOR_FAULTS applies when --faults is absent
            sf.query("SELECT Id FROM Case")
        assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] <= 50
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and out == ""
    assert info.access_token not in err
    assert not ca_bundle.exists()  # the throwaway certificates are removed on exit


@pytest.mark.parametrize(("args", "message"), [
    (["--rows", "Opportunity"], "Object=N"),
    (["--rows", "Widget=3"], "Widget"),
    (["--faults", "rest.query:explode"], "unknown action"),
])
def test_bad_options_exit_2_with_one_clear_line(args, message):
    proc = _serve(*args)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
