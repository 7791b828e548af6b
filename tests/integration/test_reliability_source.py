"""Faults around the source itself (issue #14, round 2): the run-start /limits check, login outages, one shared
session per run, a stuck Bulk job, an object-name typo and a metric that cannot fit its column's type.

Everything runs the real client over HTTPS against the emulator; faults are injected by the emulator.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace

import pytest
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceGeneralError

import configs.salesforce_objects as registry
from configs.salesforce_objects import ObjectSpec
from emulator import get_state, set_faults
from tasks.extract import ExtractOptions, RequestRunner, extract_object
from tasks.extract_plan import ExtractPlanItem, resolve_extract_plan
from utils.connection import SalesforceConnection, SharedSession
from utils.errors import AuthError, ConfigError, FatalSourceError, QuotaExceededError, RetriableSourceError
from utils.settings import load_credentials
from utils.sf_errors import RetryPolicy
from utils.source import get_connection, pipeline_source

pytestmark = [pytest.mark.integration]

PASSWORD_LOGIN = {"SF_USERNAME": "etl@emulator.local", "SF_PASSWORD": "emulator-password",
                  "SF_TOKEN": "EMULATORTOKEN"}
CLIENT_CREDENTIALS_LOGIN = {"SF_CONSUMER_KEY": "emulator-consumer-key",
                            "SF_CONSUMER_SECRET": "emulator-consumer-secret", "SF_DOMAIN": "emulator.my"}
LOGINS = {"password": PASSWORD_LOGIN, "client_credentials": CLIENT_CREDENTIALS_LOGIN}


def _requests(info, kind: str) -> int:
    return get_state(info)["requests_by_kind"].get(kind, 0)


def _logins(info) -> int:
    return get_state(info)["tokens_issued"]


def _login_credentials(info, flow: str, **extra: str):
    return load_credentials({"SF_LOGIN_URL": info.instance_url, "SF_CA_BUNDLE": info.ca_bundle,
                             **LOGINS[flow], **extra})


@pytest.fixture()
def fast_options(monkeypatch) -> ExtractOptions:
    """Short backoffs (read from the environment like a real run), no metadata caching between tests."""
    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "0.01")
    return ExtractOptions(describe_cache_seconds=0, limits_cache_seconds=0)


@pytest.fixture()
def login_org(emulator_reset, monkeypatch):
    """The pipeline pointed at the emulator through the password login flow, short backoffs."""
    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "0.01")
    monkeypatch.setenv("SF_LOGIN_URL", emulator_reset.instance_url)
    monkeypatch.setenv("SF_CA_BUNDLE", emulator_reset.ca_bundle)
    for name, value in PASSWORD_LOGIN.items():
        monkeypatch.setenv(name, value)
    return emulator_reset


# ----------------------------------------------------------------------------- 3. the run-start /limits check


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_a_transient_limits_fault_at_run_start_is_retried(faulty_org, fault):
    set_faults(faulty_org, f"rest.limits:{fault}:times=2")
    with pipeline_source() as info:  # the access-token flow verifies the token with /limits
        assert info.kind == "salesforce"
    assert _requests(faulty_org, "rest.limits") == 3  # two faults, then the check that passed


def test_a_limits_outage_that_persists_says_so_after_the_retries(faulty_org):
    set_faults(faulty_org, "rest.limits:503:times=0")
    with pytest.raises(RetriableSourceError) as err, pipeline_source():
        pass
    message = str(err.value)
    assert "the /limits check" in message and "SERVER_UNAVAILABLE" in message and "next run" in message
    assert _requests(faulty_org, "rest.limits") == 6  # RetryPolicy.max_attempts


def test_a_rejected_token_at_run_start_fails_at_once(faulty_org):
    set_faults(faulty_org, "rest.limits:expire:times=1")
    with pytest.raises(AuthError, match="SF_ACCESS_TOKEN was refused"), pipeline_source():
        pass
    assert _requests(faulty_org, "rest.limits") == 1  # never retried


# ----------------------------------------------------------------------------- 4. login outages, one session


@pytest.mark.parametrize("flow", list(LOGINS))
def test_a_login_outage_is_retried(emulator_reset, monkeypatch, flow):
    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "0.01")
    creds = _login_credentials(emulator_reset, flow)
    before = _logins(emulator_reset)
    set_faults(emulator_reset, "auth:503:times=2")
    conn = SalesforceConnection(creds)
    assert conn.sf.limits()["DailyApiRequests"]["Max"] > 0
    assert _requests(emulator_reset, "auth") == 3 and _logins(emulator_reset) == before + 1


@pytest.mark.parametrize("flow", list(LOGINS))
def test_a_login_outage_that_persists_is_reported_as_an_outage(emulator_reset, monkeypatch, flow):
    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "0.01")
    creds = _login_credentials(emulator_reset, flow)
    set_faults(emulator_reset, "auth:503:times=0")
    with pytest.raises(RetriableSourceError) as err:
        SalesforceConnection(creds)
    message = str(err.value)
    assert message.startswith(f"Salesforce login host {emulator_reset.instance_url} unavailable (HTTP 503 "), message
    assert "Server temporarily unavailable; retry later." in message and "after 6 attempts" in message
    assert "credentials" not in message and "{content}" not in message
    assert _requests(emulator_reset, "auth") == 6


@pytest.mark.parametrize(("flow", "wrong", "says"), [
    ("password", {"SF_PASSWORD": "wrong-password-xyz"},
     "(INVALID_LOGIN: Invalid username, password, security token; or user locked out.)"),
    ("client_credentials", {"SF_CONSUMER_SECRET": "wrong-secret-xyz"}, "(invalid_client: invalid client credentials)"),
])
def test_a_rejected_login_says_check_the_credentials_with_salesforces_reason(emulator_reset, monkeypatch, flow,
                                                                            wrong, says):
    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "0.01")
    creds = _login_credentials(emulator_reset, flow, **wrong)
    with pytest.raises(AuthError) as err:
        SalesforceConnection(creds)
    message = str(err.value)
    assert message == f"Salesforce rejected the '{flow}' login {says}; check the SF_ credentials in .env"
    assert "wrong-" not in message and err.value.__cause__ is None
    assert _requests(emulator_reset, "auth") == 1  # a rejection is never retried


def _in_threads(count: int, work) -> list[BaseException]:
    """Run ``work()`` in ``count`` threads released together; the errors they raised."""
    barrier, errors = threading.Barrier(count), []

    def run() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as err:  # noqa: BLE001 - reported to the test
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_one_run_logs_in_once_for_all_threads_and_renews_once(login_org, fast_options):
    before = _logins(login_org)
    with pipeline_source() as info:
        assert info.auth_flow == "password"
        assert _in_threads(8, lambda: get_connection().sf.limits()) == []
        assert _logins(login_org) == before + 1  # one login for the run, not one per thread

        # the session expires: whichever thread sees it first renews it, the others reuse the new session
        set_faults(login_org, "rest.limits:expire:times=1")

        def read_limits() -> None:
            conn = get_connection()
            RequestRunner(conn, "Account", fast_options)(lambda: conn.sf.limits(), "the /limits read")

        assert _in_threads(8, read_limits) == []
        assert _logins(login_org) == before + 2


def test_a_failed_renewal_is_one_login_attempt_sequence_for_all_threads(emulator_reset, fast_options):
    """During a login outage (or after a password rotation) the threads that saw the session expire share one
    renewal: its failure is theirs too, not one more sequence of logins per thread."""
    creds = _login_credentials(emulator_reset, "password")
    shared = SharedSession(creds)
    first = SalesforceConnection(creds, shared=shared)
    set_faults(emulator_reset, "rest.limits:expire:times=1")  # the run's session is revoked ...
    with pytest.raises(SalesforceExpiredSession):
        first.sf.limits()
    set_faults(emulator_reset, "auth:503:times=0")  # ... and the login host is down from now on
    before = _requests(emulator_reset, "auth")

    def read_limits() -> None:
        conn = SalesforceConnection(creds, shared=shared)
        RequestRunner(conn, "Account", fast_options)(lambda: conn.sf.limits(), "the /limits read")

    errors = _in_threads(8, read_limits)
    assert len(errors) == 8 and all(isinstance(e, RetriableSourceError) for e in errors), errors
    assert all(str(e).startswith("Salesforce login host ") and "after 6 attempts" in str(e) for e in errors)
    assert _requests(emulator_reset, "auth") - before == 6  # one sequence (RetryPolicy.max_attempts), not 8 x 6


def test_a_session_that_expires_again_after_each_renewal_is_not_blamed_on_the_flow(emulator_reset, fast_options):
    conn = SalesforceConnection(_login_credentials(emulator_reset, "password"))
    set_faults(emulator_reset, "rest.limits:expire:times=0")  # every session ends at its first request
    with pytest.raises(AuthError) as err:
        RequestRunner(conn, "Account", fast_options)(lambda: conn.sf.limits(), "the /limits read")
    message = str(err.value)
    assert message.startswith("Account: the Salesforce session expired during the /limits read again right after "
                              "each of 2 renewals ('password' login)"), message
    assert "session settings" in message and "IP" in message and "revokes" in message
    assert "cannot renew" not in message and "use a login flow" not in message


def test_a_rate_limited_login_is_neither_retried_nor_blamed_on_the_credentials(emulator_reset, monkeypatch):
    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "0.01")
    creds = _login_credentials(emulator_reset, "client_credentials")
    set_faults(emulator_reset, "auth:503:status=429")
    with pytest.raises(QuotaExceededError) as err:
        SalesforceConnection(creds)
    message = str(err.value)
    assert message.startswith(f"Salesforce is limiting logins at {emulator_reset.instance_url} (HTTP 429 "), message
    assert "credentials" not in message
    assert _requests(emulator_reset, "auth") == 1  # another login now would only extend the limit


# ----------------------------------------------------------------------------- 5. a stuck Bulk job


def _lead_bulk_item() -> ExtractPlanItem:
    (item,) = resolve_extract_plan(["Lead"])
    return replace(item, api="bulk2")


def _events(caplog, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={event} ")]


def test_a_stuck_bulk_job_is_aborted_after_the_timeout(emulator_reset, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    monkeypatch.setenv("SF_BULK_JOB_TIMEOUT_SECONDS", "1")
    options = ExtractOptions(retry=RetryPolicy(backoff_base_seconds=0.01), bulk_progress_log_seconds=0.2)
    conn = SalesforceConnection(load_credentials({
        "SF_INSTANCE_URL": emulator_reset.instance_url, "SF_ACCESS_TOKEN": emulator_reset.access_token,
        "SF_CA_BUNDLE": emulator_reset.ca_bundle}))
    set_faults(emulator_reset, "bulk.status:hold:times=0")  # the job never leaves InProgress
    with pytest.raises(FatalSourceError) as err:
        extract_object(_lead_bulk_item(), run_id="TSTUCK", connection=conn, options=options, data_root=tmp_path)
    message = str(err.value)
    assert message.startswith("Lead: the Bulk 2.0 job 750") and "SF_BULK_JOB_TIMEOUT_SECONDS" in message, message
    (aborted,) = _events(caplog, "bulk_job_timeout")
    assert "state_after_abort=Aborted" in aborted  # what the emulator answered to the abort request
    waiting = _events(caplog, "bulk_waiting")
    assert waiting and all("object=Lead" in w and "state=InProgress" in w for w in waiting)
    assert not list(tmp_path.rglob("Lead_*.csv"))


def test_a_bulk_job_held_for_a_while_completes_normally(emulator_reset, tmp_path, fast_options):
    conn = SalesforceConnection(load_credentials({
        "SF_INSTANCE_URL": emulator_reset.instance_url, "SF_ACCESS_TOKEN": emulator_reset.access_token,
        "SF_CA_BUNDLE": emulator_reset.ca_bundle}))
    set_faults(emulator_reset, "bulk.status:hold:times=3")
    result = extract_object(_lead_bulk_item(), run_id="THELD", connection=conn, options=fast_options,
                            data_root=tmp_path)
    assert result.api_path == "bulk2" and result.rows > 0
    (rule,) = get_state(emulator_reset)["fault_rules"]
    assert rule["fired"] == 3  # the job really was held


def test_api_usage_is_still_reported_after_a_renewal_during_a_bulk_job(emulator_reset, tmp_path, fast_options,
                                                                       caplog):
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    conn = SalesforceConnection(_login_credentials(emulator_reset, "password"))
    set_faults(emulator_reset, "bulk.status:expire:times=1")  # renewed mid-job: a new client from here on
    result = extract_object(_lead_bulk_item(), run_id="TUSAGE", connection=conn, options=fast_options,
                            data_root=tmp_path)
    assert result.api_path == "bulk2" and result.rows > 0
    assert len(_events(caplog, "session_renewed")) == 1
    (done,) = _events(caplog, "extract_done")
    assert re.search(r" api_usage=\d+/\d+", done), done


# ----------------------------------------------------------------------------- 11. configuration found by describe


@pytest.fixture()
def access_conn(emulator):
    return SalesforceConnection(load_credentials({
        "SF_INSTANCE_URL": emulator.instance_url, "SF_ACCESS_TOKEN": emulator.access_token,
        "SF_CA_BUNDLE": emulator.ca_bundle}), source="emulator")


def test_an_object_name_typo_is_a_config_error_with_a_hint(access_conn, tmp_path, fast_options):
    item = ExtractPlanItem("Opportunty", "SELECT Id FROM Opportunty", ("Id",), "rest", False)
    with pytest.raises(ConfigError) as err:
        extract_object(item, run_id="TTYPO", connection=access_conn, options=fast_options, data_root=tmp_path)
    message = str(err.value)
    assert message.startswith("Opportunty: the org has no object of that name (describe returned NOT_FOUND)")
    assert "configs/salesforce_objects.py" in message and "__c" in message


def test_a_metric_that_cannot_fit_its_type_fails_before_any_query(access_conn, emulator, tmp_path, fast_options,
                                                                  monkeypatch):
    spec = ObjectSpec(fields=("Id", "Name", "CreatedDate", "SystemModstamp"),
                      metrics={"Id": ("count",), "Name": ("sum",), "CreatedDate": ("mean",)})
    monkeypatch.setattr(registry, "SALESFORCE_OBJECTS", {**registry.SALESFORCE_OBJECTS, "Account": spec})
    (item,) = resolve_extract_plan(["Account"], registry=registry.SALESFORCE_OBJECTS)
    before = get_state(emulator)["requests_by_kind"]
    with pytest.raises(ConfigError) as err:
        extract_object(item, run_id="TMETRIC", connection=access_conn, options=fast_options, data_root=tmp_path)
    message = str(err.value)
    assert "Account.metrics['Name']: 'sum' does not apply to a text column (string)" in message
    assert "Account.metrics['CreatedDate']: 'mean' does not apply to a datetime column (datetime)" in message
    assert "configs/salesforce_objects.py" in message
    after = get_state(emulator)["requests_by_kind"]
    for kind in ("rest.query", "rest.query_more", "bulk.create"):
        assert after.get(kind, 0) == before.get(kind, 0), f"a {kind} request was sent"
    assert after.get("rest.describe", 0) > before.get("rest.describe", 0)  # describe did run


def test_the_limits_fault_really_answers_503(emulator_reset, sf_client):
    """Guard for the tests above: the injected fault is what the issue saw (a raw 503 from the client)."""
    set_faults(emulator_reset, "rest.limits:503:times=1")
    with pytest.raises(SalesforceGeneralError):
        sf_client.limits()
