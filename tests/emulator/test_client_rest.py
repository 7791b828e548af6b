"""The real simple-salesforce client against the emulator over HTTPS: REST query paging, queryAll, describe,
limits, values identical to the generated org, and every REST error mapped to the client's exception."""

from __future__ import annotations

import polars as pl
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from emulator import DEFAULT_SEED, build_org

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_org():
    """The same org the session emulator serves, regenerated in-process for row parity checks."""
    return build_org(DEFAULT_SEED)


def _live(org, name: str) -> pl.DataFrame:
    return org.frame(name).filter(~pl.col("IsDeleted"))


def test_zero_rows_is_one_done_page(sf_client):
    result = sf_client.query("SELECT Id FROM Account WHERE Name = 'no such account'")
    assert result == {"totalSize": 0, "done": True, "records": []}


def test_exactly_one_full_page_has_no_next_url(sf_client):
    result = sf_client.query("SELECT Id FROM Opportunity LIMIT 2000")
    assert result["done"] is True and "nextRecordsUrl" not in result and len(result["records"]) == 2000


def test_batch_size_200_pages_through_everything(sf_client, default_org):
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = sf_client.query("SELECT Id FROM Account", headers=headers)
    expected = _live(default_org, "Account")["Id"].to_list()
    assert len(first["records"]) == 200 and first["done"] is False and first["totalSize"] == len(expected)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/") and first["nextRecordsUrl"].endswith(
        "-200")
    ids = [r["Id"] for r in sf_client.query_all_iter("SELECT Id FROM Account", headers=headers)]
    assert ids == expected


def test_batch_size_is_clamped(sf_client):
    small = sf_client.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=5"})
    big = sf_client.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=90000"})
    assert len(small["records"]) == 200 and len(big["records"]) == 2000


def test_many_pages_match_the_generated_rows(sf_client, default_org):
    soql = ("SELECT Id, Name, Amount, Probability, CloseDate, IsWon, Account.Name, Owner.Name, CreatedDate "
            "FROM Opportunity")
    records = sf_client.query_all(soql)["records"]
    expected = _live(default_org, "Opportunity")
    assert [r["Id"] for r in records] == expected["Id"].to_list()
    by_id = {r["Id"]: r for r in records}
    for row in expected.head(300).iter_rows(named=True):
        got = by_id[row["Id"]]
        assert got["Name"] == row["Name"] and got["Amount"] == row["Amount"] and got["IsWon"] == row["IsWon"]
        assert got["CloseDate"] == row["CloseDate"].isoformat()
        assert got["CreatedDate"] == row["CreatedDate"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        assert (got["Account"] is None) == (row["AccountId"] is None)


def test_query_hides_and_query_all_shows_soft_deleted_rows(sf_client, default_org):
    deleted = default_org.frame("Lead").filter(pl.col("IsDeleted"))["Id"].to_list()
    assert deleted
    visible = sf_client.query_all("SELECT Id FROM Lead WHERE IsDeleted = true")
    everything = sf_client.query_all("SELECT Id FROM Lead WHERE IsDeleted = true", include_deleted=True)
    assert visible["totalSize"] == 0
    assert [r["Id"] for r in everything["records"]] == deleted


def test_query_all_next_url_points_at_query(sf_client):
    page = sf_client.query("SELECT Id FROM Contact", include_deleted=True)
    assert "/query/" in page["nextRecordsUrl"] and "/queryAll/" not in page["nextRecordsUrl"]


def test_null_lookup_gives_null_relationship_and_address_is_an_object(sf_client):
    contact = sf_client.query("SELECT Id, Account.Name FROM Contact WHERE AccountId = null LIMIT 1")["records"][0]
    assert contact["Account"] is None
    account = sf_client.query("SELECT BillingAddress FROM Account WHERE BillingCity = 'Paris' LIMIT 1")
    address = account["records"][0]["BillingAddress"]
    assert address["city"] == "Paris" and address["country"] == "France" and "postalCode" in address


def test_count_puts_the_total_in_total_size(sf_client, default_org):
    result = sf_client.query("SELECT COUNT() FROM Case")
    assert result == {"totalSize": _live(default_org, "Case").height, "done": True, "records": []}


def test_describe_global_and_sobject_describe(sf_client):
    names = {o["name"]: o for o in sf_client.describe()["sobjects"]}
    assert {"User", "Account", "Contact", "Opportunity", "Lead", "Case"} <= set(names)
    assert names["Lead"]["keyPrefix"] == "00Q"
    fields = {f["name"]: f for f in sf_client.Account.describe()["fields"]}
    assert fields["OwnerId"]["type"] == "reference" and fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["OwnerId"]["relationshipName"] == "Owner"
    assert fields["BillingCity"]["compoundFieldName"] == "BillingAddress"
    assert fields["BillingAddress"]["type"] == "address" and fields["AnnualRevenue"]["type"] == "currency"
    assert {"Hot", "Warm", "Cold"} <= {p["value"] for p in fields["Rating"]["picklistValues"]}
    assert fields["SystemModstamp"]["soapType"] == "xsd:dateTime"
    assert fields["Description"]["filterable"] is False and fields["BillingStreet"]["filterable"] is True


def test_limits_and_usage_header(sf_client, emulator_http, emulator):
    limits = sf_client.limits()
    assert limits["DailyApiRequests"]["Max"] >= 15000
    assert "DailyBulkV2QueryJobs" in limits
    sf_client.query("SELECT Id FROM User LIMIT 1")
    usage = sf_client.api_usage["api-usage"]
    assert usage.total == limits["DailyApiRequests"]["Max"] and usage.used >= 2


@pytest.mark.parametrize("path", ["/services/data/v59.0/sobjects", "/services/data/v59.0/sobjects/",
                                  "/services/data/v59.0/limits", "/services/data/v59.0/limits/",
                                  "/services/data/v59.0/sobjects/Account/describe/"])
def test_paths_work_with_and_without_trailing_slash(emulator, emulator_http, path):
    response = emulator_http.get(emulator.instance_url + path,
                                 headers={"Authorization": f"Bearer {emulator.access_token}"})
    assert response.status_code == 200 and response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_versions_list_needs_no_token(emulator, emulator_http):
    versions = emulator_http.get(emulator.instance_url + "/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions


@pytest.mark.parametrize(("soql", "code"), [
    ("SELECT Idd FROM Account", "INVALID_FIELD"),
    ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
    ("SELECT Id FORM Account", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"),
])
def test_soql_errors_are_400_malformed_request(sf_client, soql, code):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.query(soql)
    assert err.value.status == 400 and err.value.content[0]["errorCode"] == code
    assert "ERROR at Row:1:Column:" in err.value.content[0]["message"]


def test_unknown_locator_is_invalid_query_locator(sf_client):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.query_more("01gNOSUCHLOCATOR00-2000")
    assert err.value.content == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


def test_unknown_token_is_401_expired_session(emulator, emulator_http):
    stranger = Salesforce(instance_url=emulator.instance_url, session_id="00DEM0000000001!AQbogus",
                          session=emulator_http)
    with pytest.raises(SalesforceExpiredSession) as err:
        stranger.query("SELECT Id FROM Account")
    assert err.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_unknown_object_describe_is_404(sf_client):
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf_client.Widget__c.describe()
    assert err.value.content[0]["errorCode"] == "NOT_FOUND"


def test_the_date_header_is_the_org_clock_even_when_frozen(emulator_reset, emulator_http):
    """Clients read Salesforce's time from ``Date`` (the pipeline checks its watermark against it)."""
    from email.utils import parsedate_to_datetime

    from emulator import freeze_clock

    freeze_clock(emulator_reset, "2031-05-06T07:08:09Z")
    response = emulator_http.get(f"{emulator_reset.instance_url}/services/data/v59.0/limits",
                                 headers={"Authorization": f"Bearer {emulator_reset.access_token}"})
    assert parsedate_to_datetime(response.headers["Date"]).isoformat() == "2031-05-06T07:08:09+00:00"
