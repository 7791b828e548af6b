"""Bulk API 2.0 query jobs through simple-salesforce's bulk2 handler: CSV pages, REST parity, rejections,
job lifecycle (abort, delete, list), determinism of the bytes."""

from __future__ import annotations

import csv
import io
import time

import polars as pl
import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from emulator import DEFAULT_SEED, build_org, emulator_session, run_emulator
from tests.emulator.rest_cells import rest_as_bulk_cells

pytestmark = pytest.mark.integration

SOQL = ("SELECT Id, Name, StageName, Amount, Probability, CloseDate, IsWon, Account.Name, Owner.Name, "
        "CreatedDate, SystemModstamp FROM Opportunity")


def _rows(pages: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    for page in pages:
        rows = list(csv.reader(io.StringIO(page)))
        out.extend(rows[1:] if out else rows)
    return out


def test_bulk_round_trip_equals_rest_after_normalisation(sf_client):
    pages = list(sf_client.bulk2.Opportunity.query(SOQL, max_records=3000, wait=0))
    rows = _rows(pages)
    header, body = rows[0], rows[1:]
    assert header == ["Id", "Name", "StageName", "Amount", "Probability", "CloseDate", "IsWon", "Account.Name",
                      "Owner.Name", "CreatedDate", "SystemModstamp"]
    assert len(pages) > 3 and all(p.startswith('"Id","Name"') for p in pages)
    rest = sf_client.query_all(SOQL)["records"]
    assert body == rest_as_bulk_cells(rest, header)


def test_csv_quoting_round_trip_of_awkward_text(sf_client):
    pages = list(sf_client.bulk2.Account.query("SELECT Id, Name, Description FROM Account", wait=0))
    assert len(pages) == 1 and pages[0].startswith('"Id","Name","Description"\n"001')
    parsed = pl.read_csv(io.StringIO(pages[0]), infer_schema=False).fill_null("")
    expected = build_org(DEFAULT_SEED).frame("Account").filter(~pl.col("IsDeleted"))
    assert parsed["Name"].to_list() == expected["Name"].to_list()
    assert parsed["Description"].to_list() == expected["Description"].fill_null("").to_list()
    assert any('"' in d and "\n" in d and "," in d for d in parsed["Description"].to_list())
    assert any("株式会社" in n for n in parsed["Name"].to_list())


def test_query_all_includes_deleted_rows(sf_client):
    soql = "SELECT Id, IsDeleted FROM Case WHERE IsDeleted = true"
    assert _rows(list(sf_client.bulk2.Case.query(soql, wait=0)))[1:] == []
    deleted = _rows(list(sf_client.bulk2.Case.query_all(soql, wait=0)))[1:]
    assert deleted and all(row[1] == "true" for row in deleted)


def test_pages_carry_locator_and_record_count_headers(emulator, emulator_http):
    auth = {"Authorization": f"Bearer {emulator.access_token}"}
    base = f"{emulator.instance_url}/services/data/v59.0/jobs/query"
    job = emulator_http.post(base, json={"operation": "query", "query": "SELECT Id FROM Lead LIMIT 25"},
                             headers={**auth, "Accept": "text/csv"}).json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750")
    states = _states_until_complete(emulator_http, f"{base}/{job['id']}", auth)
    assert states[-1] == "JobComplete" and set(states) <= {"UploadComplete", "InProgress", "JobComplete"}
    first = emulator_http.get(f"{base}/{job['id']}/results", params={"maxRecords": 10}, headers=auth)
    assert first.headers["Sforce-NumberOfRecords"] == "10" and first.headers["Sforce-Locator"] not in ("", "null")
    last = emulator_http.get(f"{base}/{job['id']}/results",
                             params={"maxRecords": 20, "locator": first.headers["Sforce-Locator"]}, headers=auth)
    assert last.headers["Sforce-NumberOfRecords"] == "15" and last.headers["Sforce-Locator"] == "null"
    assert last.text.startswith('"Id"\n') and last.text.count("\n") == 16


def _states_until_complete(http, job_url: str, auth: dict[str, str]) -> list[str]:
    """A job's states, polled until it is no longer queued or running (as on a real org, it runs for a moment)."""
    states = [http.get(job_url, headers=auth).json()["state"]]
    while states[-1] in ("UploadComplete", "InProgress") and len(states) < 1500:
        time.sleep(0.02)
        states.append(http.get(job_url, headers=auth).json()["state"])
    return states


def test_zero_rows_is_a_header_only_page(sf_client):
    pages = list(sf_client.bulk2.Lead.query("SELECT Id, Name FROM Lead WHERE Name = 'nobody'", wait=0))
    assert pages == ['"Id","Name"\n']


@pytest.mark.parametrize(("soql", "fragment"), [
    ("SELECT Id, BillingAddress FROM Account", "compound data not supported"),
    ("SELECT COUNT() FROM Account", "not supported in Bulk Query"),
    ("SELECT Id FROM Account ORDER BY Id OFFSET 5", "OFFSET"),
    ("SELECT FIELDS(STANDARD) FROM Account", "FIELDS()"),
    ("SELECT Nope FROM Account", "No such column"),
])
def test_bulk_rejections_are_400(sf_client, soql, fragment):
    with pytest.raises(SalesforceMalformedRequest) as err:
        list(sf_client.bulk2.Account.query(soql, wait=0))
    assert fragment in err.value.content[0]["message"]


def test_abort_delete_and_list_jobs(emulator, emulator_http):
    auth = {"Authorization": f"Bearer {emulator.access_token}"}
    base = f"{emulator.instance_url}/services/data/v59.0/jobs/query"
    job_id = emulator_http.post(base, json={"operation": "query", "query": "SELECT Id FROM User"},
                                headers=auth).json()["id"]
    assert job_id in [j["id"] for j in emulator_http.get(base, headers=auth).json()["records"]]
    _states_until_complete(emulator_http, f"{base}/{job_id}", auth)
    late_abort = emulator_http.patch(f"{base}/{job_id}", json={"state": "Aborted"}, headers=auth)
    assert late_abort.status_code == 400 and late_abort.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    assert emulator_http.delete(f"{base}/{job_id}", headers=auth).status_code == 204
    assert emulator_http.get(f"{base}/{job_id}", headers=auth).status_code == 404


def test_job_stays_in_progress_for_the_configured_delay_and_can_be_aborted():
    with run_emulator(faults="", extra_args=["--bulk-delay-ms", "60000"]) as info, emulator_session(info) as http:
        auth = {"Authorization": f"Bearer {info.access_token}"}
        base = f"{info.instance_url}/services/data/v59.0/jobs/query"
        job_id = http.post(base, json={"operation": "query", "query": "SELECT Id FROM User"}, headers=auth).json()["id"]
        assert http.get(f"{base}/{job_id}", headers=auth).json()["state"] in ("UploadComplete", "InProgress")
        early = http.get(f"{base}/{job_id}/results", headers=auth)
        assert early.status_code == 412 and early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
        aborted = http.patch(f"{base}/{job_id}", json={"state": "Aborted"}, headers=auth)
        assert aborted.json()["state"] == "Aborted"
        assert http.get(f"{base}/{job_id}", headers=auth).json()["state"] == "Aborted"


def test_same_seed_serves_identical_bytes_and_object_sizes_are_independent():
    soql = "SELECT Id, Name, AnnualRevenue, Description, CreatedDate FROM Account"

    def account_csv(rows: dict[str, int]) -> str:
        from simple_salesforce import Salesforce

        with run_emulator(seed=11, rows=rows, in_process=True) as info, emulator_session(info) as http:
            sf = Salesforce(instance_url=info.instance_url, session_id=info.access_token, session=http)
            return "".join(sf.bulk2.Account.query(soql, wait=0))

    small = {"User": 10, "Account": 400, "Contact": 10, "Opportunity": 10, "Lead": 10, "Case": 10}
    first = account_csv(small)
    assert first == account_csv(small)
    assert first == account_csv({**small, "Opportunity": 5000, "Lead": 0})
