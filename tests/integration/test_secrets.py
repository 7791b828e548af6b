"""Secrets never leak: a real run with known fake secrets (password flow, one session renewal, DEBUG logging),
then every log line, file, Prefect record and exception text is searched for them."""

from __future__ import annotations

import asyncio
import json
import traceback
from pathlib import Path

import pytest

from emulator import run_emulator
from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from tests.reliability_helpers import (
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

def _prefect_records(home: Path) -> dict[str, list[dict]]:
    """Everything Prefect stored about the runs in ``home``, read back through its API (not the database file): the
    ephemeral API a process on that home runs, started here on its database (a process of its own importing Prefect
    would cost ~5 s of CPU more)."""
    from prefect.client.orchestration import get_client
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.settings import (
        PREFECT_API_DATABASE_CONNECTION_URL,
        PREFECT_API_URL,
        PREFECT_HOME,
        temporary_settings,
    )

    def as_json(models) -> list[dict]:
        return [m.model_dump(mode="json") if hasattr(m, "model_dump") else m.dict() for m in models]

    async def main() -> dict[str, list[dict]]:
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
        return {"flow_runs": as_json(flows), "task_runs": as_json(tasks), "artifacts": as_json(artifacts),
                "logs": as_json(logs)}

    database = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    settings = {PREFECT_HOME: str(home), PREFECT_API_DATABASE_CONNECTION_URL: database, PREFECT_API_URL: None}
    with temporary_database_interface(), temporary_settings(restore_defaults={PREFECT_API_URL}, updates=settings):
        return asyncio.run(main())


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


@pytest.mark.slow  # a subprocess importing Prefect, then its API started here
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

    records = _prefect_records(home)
    dump = json.dumps(records, default=str)
    assert records["flow_runs"] and records["task_runs"] and records["logs"], "the Prefect dump is empty"
    assert any(a["key"] == "sf-etl-run-summary" for a in records["artifacts"])

    places = [("stdout", run.stdout), ("stderr", run.stderr), ("prefect api", dump),
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
