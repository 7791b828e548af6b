"""An object that refuses queryAll (issue #17 item 8), as a client sees it: ``Snapshot__c`` answers a REST
queryAll, a Bulk 2.0 queryAll job and a Bulk API 1.0 queryAll job with an error, and serves query on all three. It is
in the org only when asked for; the default org and the other objects' rows stay as they were."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from emulator import EmulatorInfo, build_org, emulator_session, reset_state, run_emulator
from emulator.schema import query_all_refusal
from tests.emulator.test_real_org_cases import SMALL, V, _bulk1_batch, _bulk2, _bulk2_rows

pytestmark = pytest.mark.integration

ROWS = {**SMALL, "Snapshot__c": 120}
REFUSAL = [{"errorCode": "INVALID_TYPE_FOR_OPERATION", "message": "entity type Snapshot__c does not support queryAll"}]


@pytest.fixture(scope="module")
def org() -> Iterator[EmulatorInfo]:
    with run_emulator(rows=ROWS, faults="", living_rate=0, in_process=True) as info:
        yield info


@pytest.fixture()
def http(org: EmulatorInfo) -> Iterator[requests.Session]:
    with emulator_session(org) as session:
        session.headers["Authorization"] = f"Bearer {org.access_token}"
        yield session
    reset_state(org)


@pytest.fixture()
def sf(org: EmulatorInfo, http: requests.Session) -> Salesforce:
    return Salesforce(instance_url=org.instance_url, session_id=org.access_token, session=http)


def test_the_refusal_is_a_400_with_the_code_tap_salesforce_records():
    assert query_all_refusal("Snapshot__c") == (400, *REFUSAL[0].values())


def test_only_an_org_that_asks_for_it_has_it_and_the_other_rows_stay():
    plain, extended = build_org(rows=SMALL), build_org(rows=ROWS)
    assert "Snapshot__c" not in plain.object_names() and "Snapshot__c" in extended.object_names()
    for name in plain.object_names():
        assert plain.frame(name).equals(extended.frame(name)), name


def test_rest_query_reads_it_and_query_all_is_refused(sf, http, org):
    soql = "SELECT Id, Name, Value__c, Status__c, SystemModstamp FROM Snapshot__c"
    live = sf.query_all(soql)["records"]
    assert 100 < len(live) <= 120  # soft-deleted ones (IsDeleted) are in the recycle bin, not in query
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query_all(soql, include_deleted=True)
    assert (err.value.status, err.value.content) == (400, REFUSAL)
    counted = http.get(f"{org.instance_url}{V}/queryAll/", params={"q": "SELECT COUNT() FROM Snapshot__c"}, timeout=30)
    assert (counted.status_code, counted.json()) == (400, REFUSAL)


def test_a_deleted_record_leaves_query_and_no_api_shows_it_deleted(sf, http, org):
    soql = "SELECT Id FROM Snapshot__c"
    before = {r["Id"] for r in sf.query_all(soql)["records"]}
    gone = sorted(before)[0]
    sf.Snapshot__c.delete(gone)
    assert {r["Id"] for r in sf.query_all(soql)["records"]} == before - {gone}
    assert _bulk2(http, org, soql, operation="queryAll").json() == REFUSAL


def test_bulk_2_query_jobs_run_and_query_all_jobs_are_refused_at_creation(sf, http, org):
    soql = "SELECT Id, Value__c FROM Snapshot__c"
    assert len(_bulk2_rows(http, org, soql)) == len(sf.query_all(soql)["records"])
    refused = _bulk2(http, org, soql, operation="queryAll")
    assert (refused.status_code, refused.json()) == (400, REFUSAL)


def test_bulk_1_query_jobs_run_and_query_all_jobs_are_refused(sf, http, org):
    soql = "SELECT Id FROM Snapshot__c"
    status, batch = _bulk1_batch(http, org, "Snapshot__c", soql)
    assert (status, len(batch["rows"])) == (201, len(sf.query_all(soql)["records"]))
    base, headers = f"{org.instance_url}/services/async/59.0", {"X-SFDC-Session": org.access_token}
    job = http.post(f"{base}/job", json={"operation": "queryAll", "object": "Snapshot__c", "contentType": "CSV"},
                    headers=headers, timeout=30)
    assert (job.status_code, job.json()["exceptionCode"], job.json()["exceptionMessage"]) == (
        400, "InvalidOperation", REFUSAL[0]["message"])
