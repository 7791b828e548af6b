"""The standard fields real orgs have, with plausible values, and datetimes in whole seconds (issue #16), read
through the real simple-salesforce client (REST and Bulk 2.0)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from emulator import freeze_clock

pytestmark = pytest.mark.integration

DATETIMES = {"Account": "CreatedDate, LastModifiedDate, SystemModstamp, LastViewedDate",
             "Case": "CreatedDate, SystemModstamp, ClosedDate",
             "Opportunity": "CreatedDate, SystemModstamp, LastStageChangeDate",
             "User": "CreatedDate, SystemModstamp, LastLoginDate", "Group": "CreatedDate, SystemModstamp"}


def _all(sf_client, soql: str, *, deleted: bool = False) -> list[dict]:
    return sf_client.query_all(soql, include_deleted=deleted)["records"]


@pytest.mark.parametrize("object_name", list(DATETIMES))
def test_rest_datetimes_have_whole_seconds(sf_client, object_name):
    columns = DATETIMES[object_name].split(", ")
    values = [r[c] for r in _all(sf_client, f"SELECT {DATETIMES[object_name]} FROM {object_name}")
              for c in columns if r[c] is not None]
    assert values and all(v.endswith(".000+0000") for v in values)


def test_bulk_datetimes_have_whole_seconds(sf_client):
    pages = sf_client.bulk2.Case.query(f"SELECT {DATETIMES['Case']} FROM Case", wait=0)
    values = [v for page in pages for row in csv.DictReader(io.StringIO(page)) for v in row.values() if v]
    assert values and all(v.endswith(".000Z") for v in values)


def test_written_datetimes_drop_their_milliseconds(emulator_reset, sf_client):
    freeze_clock(emulator_reset, "2030-05-06T07:08:09.999Z")
    new_id = sf_client.Contact.create({"LastName": "Nguyen", "EmailBouncedDate": "2029-01-02T03:04:05.678Z"})["id"]
    row = sf_client.Contact.get(new_id)
    assert (row["EmailBouncedDate"], row["CreatedDate"]) == ("2029-01-02T03:04:05.000+0000",
                                                             "2030-05-06T07:08:09.000+0000")


def test_audit_ids_name_users_and_writes_are_stamped_by_the_api_user(emulator_reset, sf_client):
    users = {r["Id"]: r["Name"] for r in _all(sf_client, "SELECT Id, Name FROM User")}
    for record in sf_client.query("SELECT CreatedById, CreatedBy.Name, LastModifiedBy.Name FROM Lead LIMIT 200")[
            "records"]:
        assert record["CreatedBy"]["Name"] == users[record["CreatedById"]]
        assert record["LastModifiedBy"]["Name"] in users.values()
    me = sf_client.query("SELECT Id FROM User ORDER BY Id LIMIT 1")["records"][0]["Id"]  # whom the token acts as
    case_id = _all(sf_client, "SELECT Id FROM Case WHERE IsClosed = false LIMIT 1")[0]["Id"]
    sf_client.Case.update(case_id, {"Priority": "High"})
    assert sf_client.Case.get(case_id)["LastModifiedById"] == me
    new_id = sf_client.Account.create({"Name": "Audit Trail Ltd."})["id"]
    created = sf_client.Account.get(new_id)
    assert created["CreatedById"] == created["LastModifiedById"] == created["OwnerId"] == me
    assert created["PhotoUrl"] == f"/services/images/photo/{new_id}"


@pytest.mark.parametrize("object_name", ["Account", "Contact", "Lead", "Case"])
def test_master_record_id_is_set_only_on_merged_away_records(sf_client, object_name):
    rows = _all(sf_client, f"SELECT Id, IsDeleted, MasterRecordId FROM {object_name}", deleted=True)
    merged = [r for r in rows if r["MasterRecordId"]]
    assert merged and all(r["IsDeleted"] for r in merged)
    ids = {r["Id"] for r in rows}
    assert all(r["MasterRecordId"] in ids and r["MasterRecordId"] != r["Id"] for r in merged)


def test_account_hierarchy_through_parent(sf_client):
    children = _all(sf_client, "SELECT Id, ParentId, Parent.Name FROM Account WHERE ParentId != null")
    names = {r["Id"]: r["Name"] for r in _all(sf_client, "SELECT Id, Name FROM Account", deleted=True)}
    assert children and all(r["Parent"]["Name"] == names[r["ParentId"]] for r in children)
    assert all(r["ParentId"] != r["Id"] for r in children)


@pytest.mark.parametrize("object_name", ["Account", "Contact", "Lead", "Opportunity"])
def test_last_activity_date_falls_between_creation_and_now(sf_client, object_name):
    rows = _all(sf_client, f"SELECT CreatedDate, LastActivityDate FROM {object_name}")
    active = [r for r in rows if r["LastActivityDate"]]
    assert 0 < len(active) < len(rows)  # many records have no activity
    assert all(date.fromisoformat(r["LastActivityDate"]) >= date.fromisoformat(r["CreatedDate"][:10])
               for r in active)


def test_opportunity_forecast_and_figures(sf_client):
    rows = _all(sf_client, "SELECT StageName, ForecastCategory, ForecastCategoryName, Amount, Probability, "
                           "ExpectedRevenue, CloseDate, FiscalYear, FiscalQuarter, Fiscal FROM Opportunity")
    labels = {"Omitted": "Omitted", "Pipeline": "Pipeline", "BestCase": "Best Case", "Forecast": "Commit",
              "Closed": "Closed"}
    assert {r["ForecastCategory"] for r in rows} == set(labels)
    assert all(r["ForecastCategoryName"] == labels[r["ForecastCategory"]] for r in rows)
    assert {r["ForecastCategory"] for r in rows if r["StageName"] == "Negotiation/Review"} == {"Forecast"}
    for r in rows:
        expected = None if r["Amount"] is None else round(r["Amount"] * r["Probability"] / 100, 2)
        assert r["ExpectedRevenue"] == pytest.approx(expected)
        close = date.fromisoformat(r["CloseDate"])
        quarter = (close.month - 1) // 3 + 1
        assert (r["FiscalYear"], r["FiscalQuarter"], r["Fiscal"]) == (close.year, quarter, f"{close.year} {quarter}")


def test_a_new_opportunity_gets_its_forecast_category_from_the_stage(emulator_reset, sf_client):
    new_id = sf_client.Opportunity.create({"Name": "Forecast", "StageName": "Proposal/Price Quote",
                                           "CloseDate": "2030-08-15", "Amount": 1000})["id"]
    row = sf_client.Opportunity.get(new_id)
    assert (row["ForecastCategory"], row["ForecastCategoryName"]) == ("BestCase", "Best Case")
    assert (row["ExpectedRevenue"], row["Fiscal"]) == (750.0, "2030 3")


def test_addresses_carry_their_geocodes(sf_client):
    rows = _all(sf_client, "SELECT BillingAddress, BillingLatitude, BillingCity FROM Account "
                           "WHERE BillingLatitude != null")
    assert rows and all(r["BillingAddress"]["latitude"] == r["BillingLatitude"] for r in rows)
    shipped = _all(sf_client, "SELECT BillingCity, ShippingCity FROM Account WHERE ShippingCity != null")
    assert shipped and all(r["ShippingCity"] == r["BillingCity"] for r in shipped)
