"""Each injected fault kind, as the real client sees it (exception type, errorCode, recovery)."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)

from emulator import get_state, reset_state, set_faults

pytestmark = pytest.mark.integration
SOQL = "SELECT Id FROM Contact"


def _code(err: pytest.ExceptionInfo) -> str:
    return err.value.content[0]["errorCode"]


def test_5xx_burst_then_recovery(emulator_reset, sf_client):
    set_faults(emulator_reset, "rest.query:503:times=2;rest.describe:500")
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as err:
            sf_client.query(SOQL)
        assert err.value.status == 503 and _code(err) == "SERVER_UNAVAILABLE"
    assert sf_client.query(SOQL)["totalSize"] > 0
    with pytest.raises(SalesforceGeneralError) as err:
        sf_client.describe()
    assert err.value.status == 500 and _code(err) == "UNKNOWN_EXCEPTION"


def test_query_more_failure_after_first_page(emulator_reset, sf_client):
    set_faults(emulator_reset, "rest.query_more:503:after=1")
    first = sf_client.query(SOQL, headers={"Sforce-Query-Options": "batchSize=200"})
    second = sf_client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    with pytest.raises(SalesforceGeneralError):
        sf_client.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    third = sf_client.query_more(second["nextRecordsUrl"], identifier_is_url=True)  # the cursor survived
    assert third["records"][0]["Id"] != second["records"][0]["Id"]


def test_concurrent_limit_is_transient_and_daily_limit_sticks_until_reset(emulator_reset, sf_client):
    set_faults(emulator_reset, "rest.limits:concurrent;rest.query:daily:after=1")
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf_client.limits()
    assert "ConcurrentRequests" in err.value.content[0]["message"] and _code(err) == "REQUEST_LIMIT_EXCEEDED"
    assert sf_client.limits()["DailyApiRequests"]["Remaining"] > 0
    sf_client.query(SOQL)
    for call in (lambda: sf_client.query(SOQL), sf_client.limits, sf_client.describe):
        with pytest.raises(SalesforceRefusedRequest) as err:
            call()
        assert err.value.content[0]["message"] == "TotalRequests Limit exceeded."
    reset_state(emulator_reset)
    assert sf_client.limits()["DailyApiRequests"]["Remaining"] > 0


def test_token_expiry_needs_a_new_login(emulator_reset, sf_client, emulator_http):
    set_faults(emulator_reset, "*:expire:after=2")
    sf_client.query(SOQL)
    sf_client.describe()
    with pytest.raises(SalesforceExpiredSession) as err:
        sf_client.limits()
    assert _code(err) == "INVALID_SESSION_ID"
    with pytest.raises(SalesforceExpiredSession):  # the token stays invalid
        sf_client.query(SOQL)
    port = emulator_reset.instance_url.rsplit(":", 1)[1]
    relogged = Salesforce(username="etl@emulator.local", password="emulator-password",
                          consumer_key="emulator-consumer-key", consumer_secret="emulator-consumer-secret",
                          domain=f"127.0.0.1:{port}/services/oauth2/token?", session=emulator_http)
    assert relogged.query("SELECT COUNT() FROM User")["totalSize"] > 0


def test_login_flow_client_refreshes_an_expired_token_by_itself(emulator_reset, emulator_http):
    port = emulator_reset.instance_url.rsplit(":", 1)[1]
    sf = Salesforce(username="etl@emulator.local", password="emulator-password",
                    consumer_key="emulator-consumer-key", consumer_secret="emulator-consumer-secret",
                    domain=f"127.0.0.1:{port}/services/oauth2/token?", session=emulator_http)
    set_faults(emulator_reset, "rest.query:expire")
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] > 0  # 401 -> re-login -> retry
    assert get_state(emulator_reset)["tokens_issued"] >= 2


def test_invalid_locator_and_query_timeout(emulator_reset, sf_client):
    set_faults(emulator_reset, "rest.query_more:locator;rest.query:timeout:after=1")
    first = sf_client.query(SOQL)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert _code(err) == "INVALID_QUERY_LOCATOR"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.query(SOQL)
    assert _code(err) == "QUERY_TIMEOUT"


def test_connection_reset_mid_body(emulator_reset, sf_client):
    set_faults(emulator_reset, "bulk.results:reset:after=1;rest.query:reset")
    with pytest.raises(requests.exceptions.RequestException):
        sf_client.query(SOQL)
    assert sf_client.query(SOQL)["totalSize"] > 0
    with pytest.raises(requests.exceptions.RequestException):
        list(sf_client.bulk2.Contact.query("SELECT Id FROM Contact", max_records=1000, wait=0))
    rules = {r["kind"]: r for r in get_state(emulator_reset)["fault_rules"]}
    assert rules["bulk.results"]["fired"] == 1 and rules["rest.query"]["fired"] == 1


def test_bulk_job_failed_and_aborted(emulator_reset, sf_client):
    set_faults(emulator_reset, "bulk.create:job_failed;bulk.status:job_aborted:after=1")
    with pytest.raises(SalesforceOperationError, match="InternalServerError"):
        list(sf_client.bulk2.User.query("SELECT Id FROM User", wait=0))
    with pytest.raises(SalesforceOperationError, match="Aborted"):
        list(sf_client.bulk2.User.query("SELECT Id FROM User", wait=0))


def test_latency_and_probability_faults_are_counted(emulator_reset, sf_client):
    set_faults(emulator_reset, "rest.describe:latency=30;sobject:500:p=0.5:times=0")
    sf_client.describe()
    outcomes = []
    for _ in range(12):
        try:
            sf_client.Account.get("001EM0000000001YAA")
            outcomes.append("ok")
        except SalesforceGeneralError:
            outcomes.append("500")
    rules = get_state(emulator_reset)["fault_rules"]
    assert rules[0]["fired"] == 1 and rules[1]["fired"] == outcomes.count("500")
    assert set(outcomes) == {"ok", "500"}


def test_bad_fault_spec_is_refused(emulator_reset):
    with pytest.raises(RuntimeError, match="unknown action"):
        set_faults(emulator_reset, "rest.query:explode")


def test_daily_allowance_runs_out_without_faults():
    from emulator import emulator_session, run_emulator

    with run_emulator(rows={"Opportunity": 10}, faults="", extra_args=["--daily-limit", "3"]) as info, \
            emulator_session(info) as http:
        sf = Salesforce(instance_url=info.instance_url, session_id=info.access_token, session=http)
        daily = sf.limits()["DailyApiRequests"]
        assert (daily["Max"], daily["Remaining"]) == (3, 2)
        sf.query("SELECT Id FROM User LIMIT 1")
        assert sf.api_usage["api-usage"].used == 2
        sf.describe()
        with pytest.raises(SalesforceRefusedRequest) as err:
            sf.query("SELECT Id FROM User LIMIT 1")
        assert err.value.content == [{"message": "TotalRequests Limit exceeded.",
                                      "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
