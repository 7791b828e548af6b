"""Secrets never leak: a real run with known fake secrets (password flow, one session renewal, DEBUG logging),
then every log line, file, Prefect record and exception text is searched for them."""

from __future__ import annotations

import json
import subprocess
import traceback

import pytest

from emulator import run_emulator
from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from tests.reliability_helpers import (
    PYTHON,
    ROOT,
    base_env,
    file_texts,
    find_secrets,
    fresh_prefect_home,
    run_orchestrator,
)
from utils.errors import AuthError

pytestmark = [pytest.mark.integration]

USERNAME = "etl-secret-test@emulator.local"
PASSWORD = "Pw-SECRET-7c1e9f30d41d"
TOKEN = "Tok-SECRET-88aa91ff"
SECRETS = (PASSWORD, TOKEN, PASSWORD + TOKEN)

# Everything Prefect stored about the runs, read back through its API (not the database file).
_DUMP_PREFECT = """
import asyncio, json
from prefect.client.orchestration import get_client

async def main():
    async with get_client() as client:
        flows = await client.read_flow_runs()
        tasks = await client.read_task_runs()
        artifacts = await client.read_artifacts()
        offset, logs = 0, []
        while True:
            page = await client.read_logs(limit=200, offset=offset)
            logs += page
            offset += len(page)
            if len(page) < 200:
                break
    dump = {"flow_runs": [f.model_dump(mode="json") if hasattr(f, "model_dump") else f.dict() for f in flows],
            "task_runs": [t.model_dump(mode="json") if hasattr(t, "model_dump") else t.dict() for t in tasks],
            "artifacts": [a.model_dump(mode="json") if hasattr(a, "model_dump") else a.dict() for a in artifacts],
            "logs": [lg.model_dump(mode="json") if hasattr(lg, "model_dump") else lg.dict() for lg in logs]}
    print(json.dumps(dump, default=str))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def secret_emulator():
    """An emulator that accepts exactly our fake secrets and expires the session once mid-extract."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SF_EMULATOR_USERNAME", USERNAME)
    mp.setenv("SF_EMULATOR_PASSWORD", PASSWORD)
    mp.setenv("SF_EMULATOR_SECURITY_TOKEN", TOKEN)
    try:
        with run_emulator(faults="rest.query_more:expire:times=1") as info:
            yield info
    finally:
        mp.undo()


@pytest.mark.slow  # two subprocesses importing Prefect
def test_a_real_run_leaks_no_secret_anywhere(secret_emulator, tmp_path):
    data, home = tmp_path / "data", fresh_prefect_home(tmp_path / "prefect")
    env = base_env(data_root=data, prefect_home=home, extra={
        "SF_LOGIN_URL": secret_emulator.instance_url, "SF_CA_BUNDLE": secret_emulator.ca_bundle,
        "SF_USERNAME": USERNAME, "SF_PASSWORD": PASSWORD, "SF_TOKEN": TOKEN,
        "PREFECT_LOGGING_LEVEL": "DEBUG", "SF_API_VERSION": secret_emulator.api_version,
        # every line on the console too (make run shows warnings only there): all of it is searched for secrets
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "DEBUG", "PREFECT_LOGGING_TO_API_ENABLED": "true",
    })
    run = run_orchestrator(env, "--objects", "Lead")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "session_renewed" in run.stdout + run.stderr  # the renewal path (a second login) really ran

    dump = subprocess.run([PYTHON, "-c", _DUMP_PREFECT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert dump.returncode == 0, dump.stderr[-2000:]
    records = json.loads(dump.stdout)
    assert records["flow_runs"] and records["task_runs"] and records["logs"], "the Prefect dump is empty"
    assert any(a["key"] == "sf-etl-run-summary" for a in records["artifacts"])

    places = [("stdout", run.stdout), ("stderr", run.stderr), ("prefect api", dump.stdout),
              *file_texts(data), *file_texts(home)]
    assert len(places) > 10
    assert find_secrets(places, SECRETS) == []


def test_a_rejected_login_leaks_no_secret(prefect_harness, emulator, data_root, monkeypatch, caplog):
    wrong = "Wrong-SECRET-5d8e2b"
    monkeypatch.setenv("SF_LOGIN_URL", emulator.instance_url)
    monkeypatch.setenv("SF_CA_BUNDLE", emulator.ca_bundle)
    monkeypatch.setenv("SF_USERNAME", "etl@emulator.local")
    monkeypatch.setenv("SF_PASSWORD", wrong)
    monkeypatch.setenv("SF_TOKEN", TOKEN)
    with pytest.raises(AuthError) as err:
        sf_etl_orchestrator_flow(objects=["Lead"])
    texts = [("exception", "".join(traceback.format_exception(err.value))), ("repr", repr(err.value)),
             ("logs", caplog.text), *file_texts(data_root)]
    assert "Salesforce rejected the 'password' login" in texts[0][1]
    assert find_secrets(texts, (wrong, TOKEN, wrong + TOKEN)) == []
