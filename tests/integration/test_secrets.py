"""Secrets never leak: a real run with known fake secrets (password flow, one session renewal, DEBUG logging),
then every log line, file, Prefect record and exception text is searched for them."""

from __future__ import annotations

import asyncio
import json
import logging
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
from utils.errors import AuthError, ConfigError
from utils.settings import load_credentials

pytestmark = [pytest.mark.integration]

USERNAME = "etl-secret-test@emulator.local"
PASSWORD = "Pw-SECRET-7c1e9f30d41d"
TOKEN = "Tok-SECRET-88aa91ff"
SECRETS = (PASSWORD, TOKEN, PASSWORD + TOKEN)

def _prefect_records(home: Path) -> dict[str, list[dict]]:
    """Everything Prefect stored about the runs in ``home``, read back through its API (not the database file): the
    ephemeral API a process on that home runs, started here on its database (a process of its own importing Prefect
    would cost ~5 s of CPU more)."""
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.settings import (
        PREFECT_API_DATABASE_CONNECTION_URL,
        PREFECT_API_URL,
        PREFECT_HOME,
        temporary_settings,
    )

    database = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    settings = {PREFECT_HOME: str(home), PREFECT_API_DATABASE_CONNECTION_URL: database, PREFECT_API_URL: None}
    with temporary_database_interface(), temporary_settings(restore_defaults={PREFECT_API_URL}, updates=settings):
        return asyncio.run(_read_prefect_records())


async def _read_prefect_records() -> dict[str, list[dict]]:
    """Every flow run, task run (parameters and inputs included), artifact and log line of the current Prefect
    API, as JSON-able dicts."""
    from prefect.client.orchestration import get_client

    def as_json(models) -> list[dict]:
        return [m.model_dump(mode="json") if hasattr(m, "model_dump") else m.dict() for m in models]

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


def _save_secret_block(name: str, value: str) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(name, overwrite=True)


def test_a_run_with_credentials_only_in_a_secret_block_leaks_them_nowhere(prefect_harness, secret_emulator,
                                                                            data_root, caplog):
    """A worker with no .env and no SF_ variable (conftest removed them): the run logs in with the block's
    credentials, not the emulator fallback, and neither the flow run's parameters, its task runs, its logs
    (stored by Prefect at DEBUG), its artifacts, its files nor the console show them."""
    from prefect.logging.configuration import setup_logging
    from prefect.settings import PREFECT_LOGGING_LEVEL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    _save_secret_block("sf-block-test", json.dumps({
        "SF_USERNAME": USERNAME, "SF_PASSWORD": PASSWORD, "SF_TOKEN": TOKEN,
        "SF_LOGIN_URL": secret_emulator.instance_url, "SF_CA_BUNDLE": secret_emulator.ca_bundle,
        "SF_API_VERSION": secret_emulator.api_version}))
    caplog.set_level(logging.DEBUG)
    # a flow call sets Prefect's logging up again from the settings of the moment (prefect/engine.py), so the
    # level is a setting here, and the session's is set up again after
    try:
        with temporary_settings(updates={PREFECT_LOGGING_TO_API_ENABLED: True, PREFECT_LOGGING_LEVEL: "DEBUG"}):
            summary = sf_etl_orchestrator_flow(objects=["Lead"], credentials_block="sf-block-test")
            records = asyncio.run(_read_prefect_records())
    finally:
        setup_logging()

    assert summary["source"]["kind"] == "salesforce" and summary["source"]["auth_flow"] == "password"
    (run,) = [r for r in records["flow_runs"] if r["parameters"].get("credentials_block") == "sf-block-test"]
    assert run["parameters"]["objects"] == ["Lead"]  # (with every other parameter's default)
    mine = [log for log in records["logs"] if log["flow_run_id"] == run["id"]]
    assert any("Secret block 'sf-block-test'" in log["message"] for log in mine), "the run's INFO logs are missing"
    assert any(log["level"] == logging.DEBUG for log in records["logs"]), "no DEBUG line was stored"
    assert any(a["key"] == "sf-etl-run-summary" and a["flow_run_id"] == run["id"] for a in records["artifacts"])
    places = [("prefect api", json.dumps(records, default=str)), ("logs", caplog.text), *file_texts(data_root)]
    assert find_secrets(places, SECRETS) == []


@pytest.mark.parametrize(("value", "error"), [
    (PASSWORD + " not json", "must hold a JSON object of SF_ variables"),
    (json.dumps([PASSWORD]), "must hold a JSON object of SF_ variables"),
    (json.dumps({"SF_PASSWORD": PASSWORD, "PASSWORD": TOKEN}), "it has PASSWORD, not one of SF_INSTANCE_URL"),
    (json.dumps({"SF_API_VERSION": "59.0"}), "holds none of SF_INSTANCE_URL"),
])
def test_a_credentials_block_that_cannot_be_used_says_why_without_its_value(prefect_harness, value, error):
    _save_secret_block("sf-bad-block", value)
    with pytest.raises(ConfigError, match=error) as err:
        load_credentials(block="sf-bad-block")
    text = "".join(traceback.format_exception(err.value))
    assert find_secrets([("exception", text), ("repr", repr(err.value))], SECRETS) == []


def test_a_missing_credentials_block_is_named_with_how_to_create_it(prefect_harness):
    with pytest.raises(ConfigError, match="no Prefect Secret block named 'sf-no-such-block'.*Credentials on workers"):
        load_credentials(block="sf-no-such-block")
