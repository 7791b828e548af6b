"""Bulk job lifecycles as real orgs run them (issue #16): a Bulk 2.0 job is queued, then InProgress, then
JobComplete after a short delay, with second-precision dates and a systemModstamp that follows its state; results on
another API version are 409; Bulk API 1.0 batches go Queued, InProgress, Completed."""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError

from emulator import emulator_session, run_emulator

pytestmark = pytest.mark.integration

# facts of a real org's job answers
JOB_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$")  # Bulk 2.0 / Bulk 1.0 JSON jobInfo
XML_JOB_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$")  # Bulk 1.0 XML jobInfo
RUNNING_V2 = {"UploadComplete", "InProgress"}
RUNNING_V1 = {"Queued", "InProgress"}
DEFAULT_DELAY_S = (0.2, 0.5)  # a job takes this long by default: long enough to be seen running, short for tests
SLOW_DELAY_MS = 1500  # long enough for systemModstamp to move past createdDate's second


def _date(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def _poll(get, done: set[str], timeout_s: float = 30.0, start: float | None = None) -> list[tuple[float, dict]]:
    """(seconds since ``start``, by default the first poll; job or batch answer) until its state is in ``done``."""
    start, seen = time.monotonic() if start is None else start, []
    while True:
        answer = get()
        seen.append((time.monotonic() - start, answer))
        if answer["state"] in done or time.monotonic() - start > timeout_s:
            return seen
        time.sleep(0.02)


def _jobs(info, http):
    auth = {"Authorization": f"Bearer {info.access_token}"}
    base = f"{info.instance_url}/services/data/v59.0/jobs/query"

    def create(soql: str) -> dict:
        return http.post(base, json={"operation": "query", "query": soql}, headers=auth).json()

    def get(job_id: str) -> dict:
        return http.get(f"{base}/{job_id}", headers=auth).json()

    return create, get, auth


def test_a_bulk2_job_runs_for_a_moment_before_it_completes(emulator, emulator_http):
    create, get, _ = _jobs(emulator, emulator_http)
    created_at = time.monotonic()
    job = create("SELECT Id FROM Account")
    assert job["state"] == "UploadComplete"
    assert JOB_DATE.match(job["createdDate"]) and JOB_DATE.match(job["systemModstamp"])
    seen = _poll(lambda: get(job["id"]), {"JobComplete"}, start=created_at)
    states = [answer["state"] for _, answer in seen]
    # a poll sooner than the shortest delay finds it running; a stalled test may first poll after it completed
    assert states[0] in RUNNING_V2 or seen[0][0] >= DEFAULT_DELAY_S[0]
    assert states[-1] == "JobComplete" and set(states[:-1]) <= RUNNING_V2
    assert DEFAULT_DELAY_S[0] * 0.5 <= seen[-1][0] <= DEFAULT_DELAY_S[1] + 2.0
    for _, answer in seen:
        assert JOB_DATE.match(answer["createdDate"]) and JOB_DATE.match(answer["systemModstamp"])
        assert answer["createdDate"] == job["createdDate"]
        assert _date(answer["systemModstamp"]) >= _date(answer["createdDate"])


def test_system_modstamp_moves_when_the_job_completes():
    with run_emulator(faults="", extra_args=["--bulk-delay-ms", str(SLOW_DELAY_MS)]) as info, \
            emulator_session(info) as http:
        create, get, _ = _jobs(info, http)
        job = create("SELECT Id FROM User")
        seen = _poll(lambda: get(job["id"]), {"JobComplete"})
        running, done = seen[0][1], seen[-1][1]
        assert running["state"] in RUNNING_V2 and done["state"] == "JobComplete"
        assert running["systemModstamp"] == job["createdDate"]
        assert _date(done["systemModstamp"]) > _date(done["createdDate"])
        assert get(job["id"])["systemModstamp"] == done["systemModstamp"]  # looking again changes nothing


def test_the_job_list_shows_each_jobs_current_state(emulator, emulator_http):
    create, get, auth = _jobs(emulator, emulator_http)
    job = create("SELECT Id FROM Contact LIMIT 3")
    time.sleep(DEFAULT_DELAY_S[1] + 0.5)  # never polled, it has finished all the same
    listed = emulator_http.get(f"{emulator.instance_url}/services/data/v59.0/jobs/query", headers=auth).json()
    (entry,) = [j for j in listed["records"] if j["id"] == job["id"]]
    assert entry["state"] == "JobComplete" == get(job["id"])["state"]


def test_results_on_another_api_version_are_409(emulator, emulator_http, sf_client):
    create, get, auth = _jobs(emulator, emulator_http)
    job = create("SELECT Id FROM Lead LIMIT 5")
    _poll(lambda: get(job["id"]), {"JobComplete"})
    results = f"{emulator.instance_url}/services/data/v{{}}/jobs/query/{job['id']}/results"
    other = emulator_http.get(results.format("58.0"), headers=auth)
    assert other.status_code == 409
    (error,) = other.json()
    assert set(error) == {"errorCode", "message"} and "59.0" in error["message"]
    same = emulator_http.get(results.format("59.0"), headers=auth)
    assert same.status_code == 200 and same.headers["Sforce-NumberOfRecords"] == "5"
    on_58 = Salesforce(instance_url=emulator.instance_url, session_id=emulator.access_token, session=emulator_http,
                       version="58.0")
    with pytest.raises(SalesforceGeneralError) as err:  # what a client on another version sees
        on_58.bulk2.Lead._client.get_query_results(job["id"])
    assert err.value.status == 409


def test_bulk1_batches_are_queued_then_in_progress_then_completed(emulator, emulator_http):
    base = f"{emulator.instance_url}/services/async/59.0/job"
    headers = {"X-SFDC-Session": emulator.access_token, "Content-Type": "application/json"}
    job = emulator_http.post(base, json={"operation": "query", "object": "Account", "contentType": "JSON"},
                             headers=headers).json()
    assert JOB_DATE.match(job["createdDate"]) and JOB_DATE.match(job["systemModstamp"])
    batch = emulator_http.post(f"{base}/{job['id']}/batch", data="SELECT Id FROM Account LIMIT 3",
                               headers=headers).json()
    assert batch["state"] == "Queued" and JOB_DATE.match(batch["createdDate"])
    seen = _poll(lambda: emulator_http.get(f"{base}/{job['id']}/batch/{batch['id']}", headers=headers).json(),
                 {"Completed", "Failed"})
    states = [answer["state"] for _, answer in seen]
    assert states[0] in RUNNING_V1 and states[-1] == "Completed" and set(states[:-1]) <= RUNNING_V1
    assert all(JOB_DATE.match(answer["systemModstamp"]) for _, answer in seen)
    done = emulator_http.get(f"{base}/{job['id']}", headers=headers).json()
    assert done["numberBatchesCompleted"] == 1 and JOB_DATE.match(done["systemModstamp"])
    assert _date(done["systemModstamp"]) >= _date(done["createdDate"])


def test_bulk1_xml_job_dates_have_second_precision(emulator, emulator_http):
    body = ('<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
            "<operation>query</operation><object>Lead</object><contentType>CSV</contentType></jobInfo>")
    answer = emulator_http.post(f"{emulator.instance_url}/services/async/59.0/job", data=body,
                                headers={"X-SFDC-Session": emulator.access_token,
                                         "Content-Type": "application/xml"}).text
    for name in ("createdDate", "systemModstamp"):
        assert XML_JOB_DATE.match(re.search(rf"<{name}>([^<]+)</{name}>", answer).group(1))
