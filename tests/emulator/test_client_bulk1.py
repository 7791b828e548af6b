"""Bulk API 1.0 query jobs: simple-salesforce's ``sf.bulk`` (JSON jobs) and a Singer tap's CSV jobs (JSON job
requests, text/csv batches, XML batch answers, PK chunking), each checked against a plain REST query; the API's own
error format."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import date, datetime, timezone
from xml.etree import ElementTree

import pytest
import requests
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

from emulator import set_faults
from tests.emulator.rest_cells import rest_as_bulk_cells

pytestmark = [pytest.mark.integration]

NS = {"a": "http://www.force.com/2009/06/asyncapi/dataload"}
SOQL = ("SELECT Id, Name, StageName, Amount, CloseDate, IsWon, Account.Name, Owner.Name, CreatedDate "
        "FROM Opportunity WHERE Amount > 50000")


def _epoch_ms(value: str, soap_type: str) -> int:
    if soap_type == "xsd:date":
        return int(datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc).timestamp() * 1000)
    return round(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


def _rest_as_bulk_json(sf, object_name: str, records: list[dict]) -> list[dict]:
    """What Bulk 1.0 JSON should hold for REST records: the same nesting, dates and datetimes as epoch ms."""
    types = {f["name"]: f["soapType"] for f in getattr(sf, object_name).describe()["fields"]}
    out = []
    for record in records:
        row = {}
        for key, value in record.items():
            if isinstance(value, str) and types.get(key) in ("xsd:date", "xsd:dateTime"):
                value = _epoch_ms(value, types[key])
            row[key] = value
        out.append(row)
    return out


def _plain(records: list) -> list:
    """OrderedDicts (REST) and dicts (Bulk) compared as plain JSON values."""
    return json.loads(json.dumps(records))


def test_bulk_query_json_equals_rest(sf_client):
    bulk = sf_client.bulk.Opportunity.query(SOQL, wait=0)
    rest = sf_client.query_all(SOQL)["records"]
    assert len(bulk) == len(rest) > 1000
    assert _plain(bulk) == _plain(_rest_as_bulk_json(sf_client, "Opportunity", rest))
    assert isinstance(bulk[0]["CreatedDate"], int) and isinstance(bulk[0]["CloseDate"], int)
    assert bulk[0]["attributes"] == {"type": "Opportunity",
                                     "url": f"/services/data/v59.0/sobjects/Opportunity/{bulk[0]['Id']}"}


def test_bulk_query_all_includes_deleted_rows(sf_client):
    soql = "SELECT Id, IsDeleted FROM Case WHERE IsDeleted = true"
    assert sf_client.bulk.Case.query(soql, wait=0) == []
    deleted = sf_client.bulk.Case.query_all(soql, wait=0)
    rest = sf_client.query_all(soql, include_deleted=True)["records"]
    assert deleted and [r["Id"] for r in deleted] == [r["Id"] for r in rest]
    assert all(r["IsDeleted"] is True for r in deleted)


def test_null_parent_is_null_not_an_object(sf_client):
    rows = sf_client.bulk.Contact.query("SELECT Id, Account.Name FROM Contact WHERE AccountId = null", wait=0)
    assert rows and all(r["Account"] is None for r in rows)


# --- a Singer tap's CSV job, request by request ---------------------------------------------------------------
class Bulk1:
    """Raw Bulk 1.0 calls the way tap-salesforce makes them (X-SFDC-Session, JSON job requests)."""

    def __init__(self, info, http: requests.Session, session_id: str | None = None):
        self.base = f"{info.instance_url}/services/async/59.0/"
        self.http = http
        self.headers = {"X-SFDC-Session": session_id or info.access_token, "Content-Type": "application/json"}

    def post(self, path: str, body: str | bytes, content_type: str = "application/json", **headers: str):
        return self.http.post(self.base + path, data=body, headers={**self.headers, "Content-Type": content_type,
                                                                    **headers})

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, headers=self.headers)

    def create_job(self, obj: str, operation: str = "queryAll", content_type: str = "CSV", **headers: str) -> str:
        response = self.post("job", f'{{"operation": "{operation}", "object": "{obj}", '
                                    f'"contentType": "{content_type}"}}', **headers)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def add_batch(self, job_id: str, soql: str) -> ElementTree.Element:
        response = self.post(f"job/{job_id}/batch", soql, "text/csv")
        assert response.status_code == 201 and response.headers["Content-Type"].startswith("application/xml")
        return ElementTree.fromstring(response.text)

    def batch(self, job_id: str, batch_id: str) -> ElementTree.Element:
        return ElementTree.fromstring(self.get(f"job/{job_id}/batch/{batch_id}").text)

    def wait(self, job_id: str, batch_id: str) -> ElementTree.Element:
        """The batch once it is done (a batch is Queued, then InProgress, for a moment, as on a real org)."""
        deadline = time.monotonic() + 30
        while _text(batch := self.batch(job_id, batch_id), "state") not in ("Completed", "Failed", "NotProcessed"):
            assert time.monotonic() < deadline, "batch never finished"
            time.sleep(0.02)
        return batch

    def csv_rows(self, job_id: str, batch_id: str) -> list[list[str]]:
        results = ElementTree.fromstring(self.get(f"job/{job_id}/batch/{batch_id}/result").text)
        rows: list[list[str]] = []
        for result_id in [r.text for r in results.findall("a:result", NS)]:
            response = self.get(f"job/{job_id}/batch/{batch_id}/result/{result_id}")
            assert response.headers["Content-Type"] == "text/csv; charset=UTF-8"
            parsed = list(csv.reader(io.StringIO(response.text)))
            rows.extend(parsed if not rows else parsed[1:])
        return rows


def _text(element: ElementTree.Element, name: str) -> str | None:
    found = element.find(f"a:{name}", NS)
    return None if found is None else found.text


def test_tap_style_csv_job_equals_rest(emulator, emulator_http, sf_client):
    api = Bulk1(emulator, emulator_http)
    soql = "SELECT Id, Name, Industry, Owner.Name, SystemModstamp, IsDeleted FROM Account"
    job_id = api.create_job("Account")
    batch = api.add_batch(job_id, soql)
    assert _text(batch, "state") == "Queued" and _text(batch, "jobId") == job_id
    batch_id = _text(batch, "id")
    assert _text(api.wait(job_id, batch_id), "state") == "Completed"
    rows = api.csv_rows(job_id, batch_id)
    header = ["Id", "Name", "Industry", "Owner.Name", "SystemModstamp", "IsDeleted"]
    assert rows[0] == header
    assert rows[1:] == rest_as_bulk_cells(sf_client.query_all(soql, include_deleted=True)["records"], header)

    closed = api.post(f"job/{job_id}", '{"state": "Closed"}').json()
    assert closed["state"] == "Closed" and closed["numberBatchesCompleted"] == 1
    assert closed["numberRecordsProcessed"] == len(rows) - 1
    refused = api.post(f"job/{job_id}/batch", soql, "text/csv")
    assert refused.status_code == 400 and _text(ElementTree.fromstring(refused.text), "exceptionCode") == (
        "InvalidJobState")


def test_xml_job_request_gets_xml_answers(emulator, emulator_http):
    api = Bulk1(emulator, emulator_http)
    body = (f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS["a"]}"><operation>query</operation>'
            "<object>lead</object><contentType>CSV</contentType></jobInfo>")
    response = api.post("job", body, "application/xml; charset=UTF-8")
    job = ElementTree.fromstring(response.text)
    assert response.status_code == 201 and job.tag == f"{{{NS['a']}}}jobInfo"
    assert [_text(job, n) for n in ("operation", "object", "state", "concurrencyMode", "contentType")] == [
        "query", "Lead", "Open", "Parallel", "CSV"]
    assert _text(job, "createdDate").endswith("Z") and _text(job, "apiVersion") == "59.0"


def test_no_rows_is_records_not_found(emulator, emulator_http, sf_client):
    api = Bulk1(emulator, emulator_http)
    job_id = api.create_job("Lead")
    batch_id = _text(api.add_batch(job_id, "SELECT Id FROM Lead WHERE Name = 'nobody'"), "id")
    api.wait(job_id, batch_id)
    results = ElementTree.fromstring(api.get(f"job/{job_id}/batch/{batch_id}/result").text)
    result_id = results.find("a:result", NS).text
    assert api.get(f"job/{job_id}/batch/{batch_id}/result/{result_id}").text == "Records not found for this query"
    assert sf_client.bulk.Lead.query("SELECT Id FROM Lead WHERE Name = 'nobody'", wait=0) == []


def test_pk_chunking_splits_the_id_space_into_batches(emulator, emulator_http, sf_client):
    api = Bulk1(emulator, emulator_http)
    job_id = api.create_job("Account", **{"Sforce-Enable-PKChunking": "chunkSize=500"})
    original = api.add_batch(job_id, "SELECT Id, Name FROM Account")
    listed = ElementTree.fromstring(api.get(f"job/{job_id}/batch").text).findall("a:batchInfo", NS)
    assert _text(listed[0], "id") == _text(original, "id") and _text(listed[0], "state") == "NotProcessed"
    chunks = listed[1:]
    everything = sf_client.query_all("SELECT Id FROM Account", include_deleted=True)["totalSize"]
    assert len(chunks) == -(-everything // 500)
    assert all(_text(api.wait(job_id, _text(b, "id")), "state") == "Completed" for b in chunks)
    ids = [row[0] for b in chunks for row in api.csv_rows(job_id, _text(b, "id"))[1:]]  # a queryAll job
    assert ids == sorted(r["Id"] for r in sf_client.query_all("SELECT Id FROM Account", include_deleted=True)[
        "records"])


# --- errors ---------------------------------------------------------------------------------------------------
def test_a_bad_query_fails_the_batch(sf_client):
    with pytest.raises(SalesforceGeneralError) as err:
        sf_client.bulk.Account.query("SELECT Nope FROM Account", wait=0)
    assert "InvalidBatch : Failed to process query: INVALID_FIELD" in str(err.value)
    with pytest.raises(SalesforceGeneralError) as err:
        sf_client.bulk.Account.query("SELECT Id, BillingAddress FROM Account", wait=0)
    assert "FUNCTIONALITY_NOT_ENABLED: Selecting compound data not supported in Bulk Query" in str(err.value)
    with pytest.raises(SalesforceGeneralError) as err:
        sf_client.bulk.Account.query("SELECT Id, (SELECT Id FROM Contacts) FROM Account", wait=0)
    assert "Aggregate Relationships not supported in Bulk Query with CSV content type" in str(err.value)


def test_ingest_jobs_are_refused_with_invalid_job(sf_client):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.bulk.Account.insert([{"Name": "Nope"}])
    assert err.value.content["exceptionCode"] == "InvalidJob"
    assert "only query and queryAll" in err.value.content["exceptionMessage"]


@pytest.mark.parametrize(("session_id", "message"), [("", "Unable to find session id"),
                                                      ("00Dnope", "Invalid session id")])
def test_a_bad_session_is_a_400_invalid_session_id(emulator, emulator_http, session_id, message):
    api = Bulk1(emulator, emulator_http)
    api.headers["X-SFDC-Session"] = session_id
    response = api.post("job", '{"operation": "query", "object": "Account", "contentType": "CSV"}')
    assert response.status_code == 400
    assert response.json() == {"exceptionCode": "InvalidSessionId", "exceptionMessage": message}
    xml = api.post("job", "<jobInfo/>", "application/xml")
    assert _text(ElementTree.fromstring(xml.text), "exceptionCode") == "InvalidSessionId"


@pytest.mark.parametrize(("body", "code", "fragment"), [
    ('{"operation": "query", "object": "Nope__c", "contentType": "CSV"}', "InvalidJob", "Unable to find object"),
    ('{"operation": "QUERY", "object": "Account", "contentType": "CSV"}', "InvalidJob", "Invalid operation"),
    ('{"operation": "query", "object": "Account", "contentType": "XML"}', "InvalidJob", "use CSV or JSON"),
    ("{not json", "InvalidJob", "Unable to parse"),
])
def test_bad_job_requests(emulator, emulator_http, body, code, fragment):
    response = Bulk1(emulator, emulator_http).post("job", body)
    assert response.status_code == 400
    assert response.json()["exceptionCode"] == code and fragment in response.json()["exceptionMessage"]


def test_unknown_ids_and_paths(emulator, emulator_http):
    api = Bulk1(emulator, emulator_http)
    assert api.get("job/750EM0000000000AAA").json()["exceptionCode"] == "InvalidJob"
    job_id = api.create_job("Account", content_type="JSON")
    assert api.get(f"job/{job_id}/batch/751EM0000000000AAA").json()["exceptionCode"] == "InvalidBatch"
    assert api.get("jobs").json()["exceptionCode"] == "InvalidOperation"
    assert api.http.delete(api.base + f"job/{job_id}", headers=api.headers).status_code == 405


def test_a_timeout_fault_fails_the_batch_like_a_slow_query(emulator_reset, sf_client):
    set_faults(emulator_reset, "bulk.create:timeout:after=1")  # the job is created, its batch times out
    with pytest.raises(SalesforceGeneralError) as err:
        sf_client.bulk.Account.query("SELECT Id FROM Account", wait=0)
    assert "InvalidBatch : Failed to process query: QUERY_TIMEOUT" in str(err.value)


def test_an_expire_fault_is_a_400_invalid_session_id(emulator_reset, sf_client):
    set_faults(emulator_reset, "bulk.create:expire")
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.bulk.Account.query("SELECT Id FROM Account", wait=0)
    assert err.value.content == {"exceptionCode": "InvalidSessionId", "exceptionMessage": "Invalid session id"}


def test_a_503_fault_answers_in_the_bulk_format(emulator_reset, sf_client):
    set_faults(emulator_reset, "bulk.results:503")
    with pytest.raises(SalesforceGeneralError) as err:
        sf_client.bulk.Account.query("SELECT Id FROM Account", wait=0)
    assert err.value.status == 503 and err.value.content["exceptionCode"] == "Unknown"
