"""sObject create/update/delete through simple-salesforce, visible to query/queryAll, plus admin undelete/purge."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from emulator import freeze_clock, purge, undelete

pytestmark = pytest.mark.integration


def _ids(sf, soql: str, *, deleted: bool = False) -> list[str]:
    return [r["Id"] for r in sf.query_all(soql, include_deleted=deleted)["records"]]


def test_create_update_delete_are_visible_to_queries(emulator_reset, sf_client):
    created = sf_client.Account.create({"Name": 'Zoë "Neu", GmbH', "Industry": "Banking", "AnnualRevenue": 1500})
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("001")
    new_id = created["id"]
    record = sf_client.Account.get(new_id)
    assert record["Name"] == 'Zoë "Neu", GmbH' and record["AnnualRevenue"] == 1500.0
    assert record["attributes"]["url"].endswith(f"/sobjects/Account/{new_id}")
    assert new_id in _ids(sf_client, "SELECT Id FROM Account WHERE Industry = 'Banking'")

    assert sf_client.Account.update(new_id, {"Industry": "Energy"}) == 204
    assert sf_client.query(f"SELECT Industry FROM Account WHERE Id = '{new_id}'")["records"][0]["Industry"] == (
        "Energy")

    assert sf_client.Account.delete(new_id) == 204
    assert new_id not in _ids(sf_client, "SELECT Id FROM Account WHERE Industry = 'Energy'")
    assert new_id in _ids(sf_client, "SELECT Id FROM Account WHERE IsDeleted = true", deleted=True)
    with pytest.raises(SalesforceResourceNotFound):
        sf_client.Account.get(new_id)


def test_writes_stamp_the_server_clock(emulator_reset, sf_client):
    freeze_clock(emulator_reset, "2030-05-06T07:08:09.123Z")
    new_id = sf_client.Contact.create({"LastName": "Ångström", "FirstName": "Zoë"})["id"]
    row = sf_client.query(f"SELECT Name, CreatedDate, SystemModstamp FROM Contact WHERE Id = '{new_id}'")["records"][0]
    assert row["Name"] == "Zoë Ångström"
    # Salesforce stores datetimes in whole seconds: the clock's milliseconds are dropped
    assert row["CreatedDate"] == row["SystemModstamp"] == "2030-05-06T07:08:09.000+0000"
    since = sf_client.query_all("SELECT Id FROM Contact WHERE SystemModstamp > 2030-01-01T00:00:00Z")
    assert [r["Id"] for r in since["records"]] == [new_id]


def test_admin_undelete_and_purge(emulator_reset, sf_client):
    new_id = sf_client.Lead.create({"LastName": "Nguyen", "Company": "株式会社 山田"})["id"]
    sf_client.Lead.delete(new_id)
    undelete(emulator_reset, [new_id])
    assert new_id in _ids(sf_client, "SELECT Id FROM Lead WHERE LastName = 'Nguyen'")
    purge(emulator_reset, [new_id])
    assert new_id not in _ids(sf_client, "SELECT Id FROM Lead WHERE LastName = 'Nguyen'", deleted=True)


def test_reset_restores_the_generated_data(emulator, sf_client):
    from emulator import reset_state

    before = sf_client.query("SELECT COUNT() FROM Opportunity")["totalSize"]
    try:
        sf_client.Opportunity.create({"Name": "Temp", "StageName": "Prospecting", "CloseDate": "2024-01-31"})
        assert sf_client.query("SELECT COUNT() FROM Opportunity")["totalSize"] == before + 1
    finally:
        reset_state(emulator)
    assert sf_client.query("SELECT COUNT() FROM Opportunity")["totalSize"] == before


@pytest.mark.parametrize(("values", "code"), [
    ({"Industry": "Banking"}, "REQUIRED_FIELD_MISSING"),
    ({"Name": "x", "Bogus__c": 1}, "INVALID_FIELD"),
    ({"Name": "x", "IsDeleted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
])
def test_bad_writes_raise_malformed_request(emulator_reset, sf_client, values, code):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.Account.create(values)
    assert err.value.content[0]["errorCode"] == code


def test_unknown_record_is_not_found(sf_client):
    with pytest.raises(SalesforceResourceNotFound):
        sf_client.Account.get("001EM00000zzzzzYAA")
