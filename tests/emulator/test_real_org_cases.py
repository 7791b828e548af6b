"""The real-org cases of issue #17, as a client sees them (simple-salesforce and plain HTTPS, in-process emulators):
formula fields that change while SystemModstamp stays, a History object without SystemModstamp, an object the Bulk
APIs refuse, a 500-field object whose full SOQL does not fit a REST GET, compound fields on Bulk, fields deleted,
hidden, retyped and added at runtime, QUERY_TIMEOUT above a row count. None of them is in the default org."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import date, datetime
from xml.etree import ElementTree

import polars as pl
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

from emulator import EmulatorInfo, build_org, change_field, emulator_session, freeze_clock, reset_state, run_emulator
from emulator.cli import build_parser, config_from_args
from emulator.optional_objects import OPTIONAL_OBJECTS

pytestmark = pytest.mark.integration

SMALL = {"User": 10, "Group": 4, "Account": 200, "Contact": 20, "Opportunity": 20, "Lead": 20, "Case": 20}
OPTIONAL = {"Invoice__c": 300, "AccountHistory": 200, "CaseStatus": 4, "Wide__c": 60}
V = "/services/data/v59.0"
NS = {"a": "http://www.force.com/2009/06/asyncapi/dataload"}


@pytest.fixture(scope="module")
def org() -> Iterator[EmulatorInfo]:
    with run_emulator(rows={**SMALL, **OPTIONAL}, faults="", living_rate=0, in_process=True) as info:
        yield info


@pytest.fixture()
def http(org: EmulatorInfo) -> Iterator[requests.Session]:
    with emulator_session(org) as session:
        session.headers["Authorization"] = f"Bearer {org.access_token}"
        yield session
    reset_state(org)  # writes, clock and schema changes undone for the next test


@pytest.fixture()
def sf(org: EmulatorInfo, http: requests.Session) -> Salesforce:
    return Salesforce(instance_url=org.instance_url, session_id=org.access_token, session=http)


def _describe(sf: Salesforce, name: str) -> dict:
    return getattr(sf, name).describe()


def _fields(sf: Salesforce, name: str) -> dict[str, dict]:
    return {f["name"]: f for f in _describe(sf, name)["fields"]}


def _bulk2(http: requests.Session, info: EmulatorInfo, soql: str, operation: str = "query") -> requests.Response:
    return http.post(f"{info.instance_url}{V}/jobs/query", json={"operation": operation, "query": soql}, timeout=30)


def _bulk2_finished(http: requests.Session, info: EmulatorInfo, job_id: str) -> dict:
    for _ in range(500):
        job = http.get(f"{info.instance_url}{V}/jobs/query/{job_id}", timeout=30).json()
        if job["state"] in ("JobComplete", "Failed", "Aborted"):
            return job
        time.sleep(0.02)
    raise AssertionError(job)


def _bulk2_rows(http: requests.Session, info: EmulatorInfo, soql: str) -> list[dict[str, str]]:
    created = _bulk2(http, info, soql)
    assert created.status_code == 200, created.text
    assert _bulk2_finished(http, info, created.json()["id"])["state"] == "JobComplete"
    text = http.get(f"{info.instance_url}{V}/jobs/query/{created.json()['id']}/results", timeout=30).text
    return list(csv.DictReader(io.StringIO(text)))


def _xml(response: requests.Response) -> ElementTree.Element:
    return ElementTree.fromstring(response.content)


def _bulk1_batch(http: requests.Session, info: EmulatorInfo, object_name: str, soql: str) -> tuple[int, dict]:
    """A Bulk API 1.0 CSV query job (a Singer tap's: JSON job request, XML answers) with one batch: (job creation
    status, the finished batch's fields with its CSV ``rows``, or the job error)."""
    base, headers = f"{info.instance_url}/services/async/59.0", {"X-SFDC-Session": info.access_token}
    job = http.post(f"{base}/job", json={"operation": "query", "object": object_name, "contentType": "CSV"},
                    headers=headers, timeout=30)
    if job.status_code != 201:
        return job.status_code, job.json()
    job_id = job.json()["id"]
    batch_id = _xml(http.post(f"{base}/job/{job_id}/batch", data=soql, timeout=30,
                              headers={**headers, "Content-Type": "text/csv"})).findtext("a:id", namespaces=NS)
    for _ in range(500):
        info_xml = _xml(http.get(f"{base}/job/{job_id}/batch/{batch_id}", headers=headers, timeout=30))
        batch = {child.tag.split("}")[1]: child.text for child in info_xml}
        if batch["state"] in ("Completed", "Failed"):
            break
        time.sleep(0.02)
    if batch["state"] == "Completed":
        listed = _xml(http.get(f"{base}/job/{job_id}/batch/{batch_id}/result", headers=headers, timeout=30))
        result_id = listed.findtext("a:result", namespaces=NS)
        text = http.get(f"{base}/job/{job_id}/batch/{batch_id}/result/{result_id}", headers=headers, timeout=30).text
        batch["rows"] = list(csv.DictReader(io.StringIO(text)))
    return 201, batch


def _a_live_invoice(sf: Salesforce) -> dict:
    return sf.query("SELECT Id, Account__c, Account_Name__c, Days_Open__c, CreatedDate, SystemModstamp "
                    "FROM Invoice__c WHERE Status__c = 'Paid' ORDER BY Name LIMIT 1")["records"][0]


# --- opt-in ------------------------------------------------------------------------------------------------------
def test_the_default_org_has_none_of_the_optional_objects():
    names = build_org(rows=SMALL).object_names()
    assert names == ["User", "Group", "Account", "Contact", "Opportunity", "Lead", "Case"]
    assert not set(OPTIONAL_OBJECTS) & set(names)


def test_asking_for_optional_objects_leaves_the_standard_rows_alone():
    plain, extended = build_org(rows=SMALL), build_org(rows={**SMALL, **OPTIONAL})
    for name in plain.object_names():
        assert plain.frame(name).equals(extended.frame(name)), name


# --- 1. formula fields -----------------------------------------------------------------------------------------
def test_invoice_describe_is_a_custom_object_with_formulas(sf):
    described = _describe(sf, "Invoice__c")
    fields = {f["name"]: f for f in described["fields"]}
    assert (described["custom"], described["keyPrefix"]) == (True, "a00")
    assert fields["Name"]["autoNumber"] and not fields["Name"]["createable"]
    master = fields["Account__c"]
    assert (master["relationshipName"], master["referenceTo"], master["cascadeDelete"], master["nillable"]) == \
        ("Account__r", ["Account"], True, False)
    for name, formula, type_ in (("Account_Name__c", "Account__r.Name", "string"),
                                 ("Days_Open__c", "TODAY() - DATEVALUE(CreatedDate)", "double")):
        f = fields[name]
        assert (f["calculated"], f["calculatedFormula"], f["type"], f["createable"], f["updateable"], f["custom"]) \
            == (True, formula, type_, False, False, True)
    assert not fields["Amount__c"]["calculated"] and fields["Amount__c"]["type"] == "currency"
    children = {r["relationshipName"]: r for r in _describe(sf, "Account")["childRelationships"]}
    assert children["Invoices__r"]["childSObject"] == "Invoice__c" and children["Invoices__r"]["cascadeDelete"]


def test_cross_object_formula_follows_the_parent_without_touching_systemmodstamp(sf, http, org):
    invoice = _a_live_invoice(sf)
    sf.Account.update(invoice["Account__c"], {"Name": "Renamed Holdings"})
    soql = f"SELECT Id, Account_Name__c, SystemModstamp FROM Invoice__c WHERE Id = '{invoice['Id']}'"
    rest = sf.query(soql)["records"][0]
    assert rest["Account_Name__c"] == "Renamed Holdings" != invoice["Account_Name__c"]
    assert rest["SystemModstamp"] == invoice["SystemModstamp"]
    bulk2 = _bulk2_rows(http, org, soql)
    assert bulk2 == [{"Id": invoice["Id"], "Account_Name__c": "Renamed Holdings",
                      "SystemModstamp": invoice["SystemModstamp"].replace("+0000", "Z")}]
    _, batch = _bulk1_batch(http, org, "Invoice__c", soql)
    assert batch["rows"] == bulk2
    record = sf.Invoice__c.get(invoice["Id"])
    assert (record["Account_Name__c"], record["SystemModstamp"]) == ("Renamed Holdings", invoice["SystemModstamp"])


def test_clock_formula_counts_days_since_creation_and_moves_with_the_clock(sf, http, org):
    invoice = _a_live_invoice(sf)
    created = datetime.strptime(invoice["CreatedDate"], "%Y-%m-%dT%H:%M:%S.%f%z").date()
    soql = f"SELECT Days_Open__c, SystemModstamp FROM Invoice__c WHERE Id = '{invoice['Id']}'"
    values = []
    for today in (date(2031, 3, 1), date(2031, 3, 2)):
        freeze_clock(org, f"{today.isoformat()}T12:00:00Z")
        rest = sf.query(soql)["records"][0]
        assert rest["Days_Open__c"] == float((today - created).days)
        assert rest["SystemModstamp"] == invoice["SystemModstamp"]
        assert _bulk2_rows(http, org, soql)[0]["Days_Open__c"] == f"{(today - created).days}.0"
        assert sf.Invoice__c.get(invoice["Id"])["Days_Open__c"] == rest["Days_Open__c"]
        values.append(rest["Days_Open__c"])
    assert values[1] == values[0] + 1


def test_formula_fields_cannot_be_written(sf):
    invoice = _a_live_invoice(sf)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Invoice__c.update(invoice["Id"], {"Account_Name__c": "x"})
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_created_invoice_gets_the_next_auto_number_and_its_formulas(sf):
    account = sf.query("SELECT Id, Name FROM Account ORDER BY Name LIMIT 1")["records"][0]
    created = sf.Invoice__c.create({"Account__c": account["Id"], "Amount__c": 10.5})
    record = sf.Invoice__c.get(created["id"])
    assert (record["Name"], record["Account_Name__c"]) == ("INV-000301", account["Name"])


# --- 2. a History object ---------------------------------------------------------------------------------------
def test_account_history_has_no_systemmodstamp_and_no_lastmodifieddate(sf):
    described = _describe(sf, "AccountHistory")
    assert [f["name"] for f in described["fields"]] == [
        "Id", "IsDeleted", "AccountId", "CreatedById", "CreatedDate", "Field", "DataType", "OldValue", "NewValue"]
    fields = {f["name"]: f for f in described["fields"]}
    assert (fields["OldValue"]["type"], fields["OldValue"]["filterable"], fields["OldValue"]["sortable"]) == \
        ("anyType", False, True)
    assert (described["createable"], described["updateable"], described["queryable"], described["keyPrefix"]) == \
        (False, False, True, "017")
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id, SystemModstamp FROM AccountHistory")
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_account_history_is_read_by_query_queryall_and_both_bulk_apis(sf, http, org):
    soql = "SELECT Id, AccountId, CreatedDate, Field, OldValue, NewValue FROM AccountHistory"
    live = sf.query_all(soql)["records"]
    every = sf.query_all(soql, include_deleted=True)["records"]
    assert 150 < len(live) < len(every) == 200
    assert len(_bulk2_rows(http, org, soql)) == len(live)
    assert len(_bulk1_batch(http, org, "AccountHistory", soql)[1]["rows"]) == len(live)


def test_an_account_update_appends_its_field_history(sf):
    account = sf.query("SELECT Id, Name, Industry FROM Account WHERE Industry = 'Banking' LIMIT 1")["records"][0]
    sf.Account.update(account["Id"], {"Name": "New Name Ltd", "Industry": "Energy"})
    rows = sf.query(f"SELECT Field, DataType, OldValue, NewValue FROM AccountHistory WHERE AccountId = "
                    f"'{account['Id']}' AND CreatedDate = TODAY ORDER BY Field")["records"]
    assert [(r["Field"], r["DataType"], r["OldValue"], r["NewValue"]) for r in rows] == [
        ("Industry", "DynamicEnum", "Banking", "Energy"), ("Name", "Text", account["Name"], "New Name Ltd")]


# --- 3. an object the Bulk APIs refuse ---------------------------------------------------------------------------
def test_case_status_is_queryable_by_rest_but_refused_by_both_bulk_apis(sf, http, org):
    labels = [r["MasterLabel"] for r in sf.query("SELECT MasterLabel FROM CaseStatus ORDER BY SortOrder")["records"]]
    assert labels == ["New", "Working", "Escalated", "Closed"]
    refused = _bulk2(http, org, "SELECT Id, MasterLabel FROM CaseStatus")
    assert refused.status_code == 400
    assert refused.json() == [{"errorCode": "INVALIDENTITY",
                               "message": "Entity 'CaseStatus' is not supported by the Bulk API."}]
    status, error = _bulk1_batch(http, org, "CaseStatus", "SELECT Id FROM CaseStatus")
    assert (status, error["exceptionCode"], error["exceptionMessage"]) == \
        (400, "InvalidEntity", "Entity 'CaseStatus' is not supported by the Bulk API.")


# --- 4. a 500-field object and the GET URL limit -----------------------------------------------------------------
def test_wide_object_has_500_fields_and_its_full_soql_is_too_long_for_a_get(sf, http, org):
    names = [f["name"] for f in _describe(sf, "Wide__c")["fields"]]
    assert len(names) == 500 and len({f["type"] for f in _describe(sf, "Wide__c")["fields"]}) >= 12
    everything = f"SELECT {', '.join(names)} FROM Wide__c"
    with pytest.raises(SalesforceGeneralError) as err:
        sf.query(everything)
    assert err.value.status == 414
    assert err.value.content == "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>"
    half = names[:250]
    rows = sf.query_all(f"SELECT {', '.join(half)} FROM Wide__c")["records"]
    assert len(rows) > 50 and set(rows[0]) == {"attributes", *half}
    bulk = _bulk2_rows(http, org, everything)  # a POST body has no such limit
    assert len(bulk) == len(rows) and list(bulk[0]) == names


# --- 5. compound fields on Bulk ----------------------------------------------------------------------------------
@pytest.mark.parametrize("soql", ["SELECT Id, Site_Location__c FROM Invoice__c",
                                  "SELECT Id, BillingAddress FROM Account"])
def test_compound_fields_are_refused_by_bulk_and_accepted_by_rest(sf, http, org, soql):
    refused = _bulk2(http, org, soql)
    assert (refused.status_code, refused.json()) == (400, [
        {"errorCode": "API_ERROR", "message": "Selecting compound data not supported in Bulk Query"}])
    _, batch = _bulk1_batch(http, org, soql.split()[-1], soql)
    assert (batch["state"], batch["stateMessage"]) == ("Failed", "InvalidBatch : Failed to process query: "
                                                       "FUNCTIONALITY_NOT_ENABLED: Selecting compound data not "
                                                       "supported in Bulk Query")
    assert len(sf.query_all(soql)["records"]) > 100


def test_geolocation_reads_as_latitude_and_longitude_in_rest(sf):
    record = sf.query("SELECT Site_Location__c, Site_Location__Latitude__s, Site_Location__Longitude__s "
                      "FROM Invoice__c WHERE Site_Location__Latitude__s != null LIMIT 1")["records"][0]
    assert record["Site_Location__c"] == {"latitude": record["Site_Location__Latitude__s"],
                                          "longitude": record["Site_Location__Longitude__s"]}
    assert _fields(sf, "Invoice__c")["Site_Location__c"]["type"] == "location"


# --- 6. schema changes at runtime --------------------------------------------------------------------------------
def _query_error(sf: Salesforce, soql: str) -> dict:
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query(soql)
    return err.value.content[0]


def test_hidden_field_is_exactly_like_a_field_that_never_existed(sf, http, org):
    change_field(org, "Invoice__c", "Amount__c", "hide")
    assert "Amount__c" not in _fields(sf, "Invoice__c")
    hidden = _query_error(sf, "SELECT Id, Amount__c FROM Invoice__c")
    never = _query_error(sf, "SELECT Id, Amountx__c FROM Invoice__c")
    assert hidden["errorCode"] == never["errorCode"] == "INVALID_FIELD"
    assert hidden["message"] == never["message"].replace("Amountx__c", "Amount__c")
    assert _bulk2(http, org, "SELECT Amount__c FROM Invoice__c").json()[0]["errorCode"] == "INVALID_FIELD"
    invoice = _a_live_invoice(sf)
    assert "Amount__c" not in sf.Invoice__c.get(invoice["Id"])
    change_field(org, "Invoice__c", "Amount__c", "show")  # access granted back: values and place as before
    assert list(_fields(sf, "Invoice__c")).index("Amount__c") == 12
    assert sf.query("SELECT Amount__c FROM Invoice__c WHERE Amount__c != null LIMIT 1")["totalSize"] == 1


def test_deleted_custom_field_is_gone_and_a_standard_one_cannot_be_deleted(sf, org):
    change_field(org, "Invoice__c", "Quantity__c", "delete")
    assert "Quantity__c" not in _fields(sf, "Invoice__c")
    assert _query_error(sf, "SELECT Quantity__c FROM Invoice__c")["errorCode"] == "INVALID_FIELD"
    with pytest.raises(RuntimeError, match="INVALID_SCHEMA_CHANGE"):
        change_field(org, "Account", "Industry", "delete")
    reset_state(org)
    assert "Quantity__c" in _fields(sf, "Invoice__c")


def test_retyped_fields_read_with_their_new_type_everywhere(sf, http, org):
    before = sf.query("SELECT Id, Status__c FROM Invoice__c WHERE Status__c != null ORDER BY Name LIMIT 5")["records"]
    change_field(org, "Invoice__c", "Status__c", "retype", type="string")
    status = _fields(sf, "Invoice__c")["Status__c"]
    assert (status["type"], status["picklistValues"]) == ("string", [])
    after = sf.query("SELECT Id, Status__c FROM Invoice__c WHERE Status__c != null ORDER BY Name LIMIT 5")["records"]
    assert after == before
    text_field = next(n for n in _fields(sf, "Wide__c") if n.startswith("Text_"))
    change_field(org, "Wide__c", text_field, "retype", type="double")
    assert _fields(sf, "Wide__c")[text_field]["type"] == "double"
    values = [r[text_field] for r in sf.query_all(f"SELECT {text_field} FROM Wide__c")["records"]]
    assert values == [None] * len(values)  # 'Acme 12' is no number: the conversion clears it
    assert _query_error(sf, f"SELECT Id FROM Wide__c WHERE {text_field} = 'x'")["errorCode"] == "INVALID_FIELD"
    assert {r[text_field] for r in _bulk2_rows(http, org, f"SELECT {text_field} FROM Wide__c")} == {""}


def test_added_custom_field_appears_empty_and_can_be_written(sf, org):
    change_field(org, "Account", "Region__c", "add", type="picklist", picklist=["EMEA", "APAC"])
    region = _fields(sf, "Account")["Region__c"]
    assert (region["type"], region["custom"], [v["value"] for v in region["picklistValues"]]) == \
        ("picklist", True, ["EMEA", "APAC"])
    account = sf.query("SELECT Id, Region__c FROM Account LIMIT 1")["records"][0]
    assert account["Region__c"] is None
    sf.Account.update(account["Id"], {"Region__c": "EMEA"})
    assert sf.Account.get(account["Id"])["Region__c"] == "EMEA"


# --- 7. QUERY_TIMEOUT above a row count -------------------------------------------------------------------------
def test_queries_matching_more_rows_than_the_limit_time_out():
    with run_emulator(rows={**SMALL, "AccountHistory": 150}, faults="", living_rate=0, query_timeout_rows=100,
                      in_process=True) as info, emulator_session(info) as http:
        http.headers["Authorization"] = f"Bearer {info.access_token}"
        sf = Salesforce(instance_url=info.instance_url, session_id=info.access_token, session=http)
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.query("SELECT Id FROM Account LIMIT 10")  # 200 rows match: the LIMIT does not save it
        assert err.value.content == [{"errorCode": "QUERY_TIMEOUT",
                                      "message": "Your query request was running for too long."}]
        accounts = build_org(rows=SMALL).frame("Account")
        cutoff = sorted(accounts["CreatedDate"].to_list())[90]
        window = f"SELECT Id FROM Account WHERE CreatedDate < {cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        live = accounts.filter(~pl.col("IsDeleted") & (pl.col("CreatedDate") < cutoff)).height
        assert len(sf.query_all(window)["records"]) == live > 80  # a narrower window passes
        job = _bulk2(http, info, "SELECT Id FROM AccountHistory")
        finished = _bulk2_finished(http, info, job.json()["id"])
        assert (finished["state"], finished["errorMessage"]) == (
            "Failed", "Failed to process query: QUERY_TIMEOUT: Your query request was running for too long.")
        _, batch = _bulk1_batch(http, info, "AccountHistory", "SELECT Id FROM AccountHistory")
        assert (batch["state"], batch["stateMessage"]) == (
            "Failed", "InvalidBatch : Failed to process query: QUERY_TIMEOUT: Your query request was running for "
                      "too long.")


def test_query_timeout_rows_is_a_serve_option():
    args = build_parser().parse_args(["serve", "--query-timeout-rows", "5000", "--rows", "Wide__c=10"])
    config = config_from_args(args, env={})
    assert (config.query_timeout_rows, config.rows) == (5000, {"Wide__c": 10})
    assert config_from_args(build_parser().parse_args(["serve"]), env={}).query_timeout_rows is None
