"""Multi-record and replication resources through simple-salesforce: sObject Collections (composite/sobjects
create, update, upsert, retrieve, delete, allOrNone), upsert by external id, getUpdated / getDeleted; every write
checked through a plain REST query."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from emulator import emulator_session, freeze_clock, run_emulator
from emulator import schema as s

pytestmark = [pytest.mark.integration]
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def _collection(sf: Salesforce, method: str, records: list[dict], *, all_or_none: bool = False) -> list[dict]:
    return sf.restful("composite/sobjects", method=method, json={"allOrNone": all_or_none, "records": records})


def _account(name: str | None = None, **values: object) -> dict:
    return {"attributes": {"type": "Account"}, **({"Name": name} if name else {}), **values}


def _codes(result: dict) -> list[str]:
    return [e["statusCode"] for e in result["errors"]]


# --- create ---------------------------------------------------------------------------------------------------
def test_create_records_of_two_types(emulator_reset, sf_client):
    results = _collection(sf_client, "POST", [
        _account("Zoë Collective", Industry="Energy", AnnualRevenue=1500),
        {"attributes": {"type": "Contact"}, "LastName": "Ångström", "FirstName": "Zoë"},
    ])
    assert [(r["success"], r["errors"]) for r in results] == [(True, []), (True, [])]
    assert list(results[0]) == ["id", "success", "errors"]
    account = sf_client.Account.get(results[0]["id"])
    assert (account["Name"], account["Industry"], account["AnnualRevenue"]) == ("Zoë Collective", "Energy", 1500.0)
    contact = sf_client.query(f"SELECT Name FROM Contact WHERE Id = '{results[1]['id']}'")["records"]
    assert contact[0]["Name"] == "Zoë Ångström"


def test_create_reports_each_failure_without_an_id(emulator_reset, sf_client):
    results = _collection(sf_client, "POST", [
        _account("Kept"), _account(Industry="Banking"), _account("Has Id", Id="001EM0000000001YAA"),
        _account("Bad field", Bogus__c=1),
    ])
    assert results[0]["success"] is True
    assert [r.get("id") for r in results[1:]] == [None, None, None]
    assert [_codes(r) for r in results[1:]] == [["REQUIRED_FIELD_MISSING"], ["INVALID_FIELD_FOR_INSERT_UPDATE"],
                                                ["INVALID_FIELD"]]
    assert results[1]["errors"][0] == {"statusCode": "REQUIRED_FIELD_MISSING",
                                       "message": "Required fields are missing: [Name]", "fields": ["Name"]}
    assert sf_client.query("SELECT COUNT() FROM Account WHERE Name = 'Kept'")["totalSize"] == 1


def test_all_or_none_creates_nothing_when_one_record_fails(emulator_reset, sf_client):
    results = _collection(sf_client, "POST", [_account("All or none 1"), _account(Industry="Banking"),
                                              _account("All or none 2")], all_or_none=True)
    assert [_codes(r) for r in results] == [[ROLLED_BACK], ["REQUIRED_FIELD_MISSING"], [ROLLED_BACK]]
    assert not any(r["success"] for r in results)
    assert sf_client.query("SELECT COUNT() FROM Account WHERE Name LIKE 'All or none%'")["totalSize"] == 0
    created = _collection(sf_client, "POST", [_account("All or none 1"), _account("All or none 2")], all_or_none=True)
    assert all(r["success"] for r in created)
    assert sf_client.query("SELECT COUNT() FROM Account WHERE Name LIKE 'All or none%'")["totalSize"] == 2


def test_more_than_200_records_is_refused(sf_client):
    with pytest.raises(SalesforceMalformedRequest) as err:
        _collection(sf_client, "POST", [_account(f"n{i}") for i in range(201)])
    assert err.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_a_record_without_its_type_is_refused(sf_client):
    with pytest.raises(SalesforceMalformedRequest) as err:
        _collection(sf_client, "POST", [{"Name": "no attributes"}])
    assert err.value.content[0]["errorCode"] == "INVALID_TYPE"


# --- update / retrieve / delete -------------------------------------------------------------------------------
def _first_ids(sf: Salesforce, object_name: str, n: int) -> list[str]:
    return [r["Id"] for r in sf.query(f"SELECT Id FROM {object_name} ORDER BY Id LIMIT {n}")["records"]]


def test_update_records_and_per_record_errors(emulator_reset, sf_client):
    accounts, contacts = _first_ids(sf_client, "Account", 2), _first_ids(sf_client, "Contact", 1)
    results = _collection(sf_client, "PATCH", [
        _account(id=accounts[0], Rating="Hot"), _account(id=accounts[1], Rating="Warm"),
        {"attributes": {"type": "Contact"}, "id": contacts[0], "Title": "CFO"},
        {"attributes": {"type": "Contact"}, "id": accounts[0], "Title": "CFO"},
        _account(Rating="Cold"),
    ])
    assert [r["success"] for r in results] == [True, True, True, False, False]
    assert [r["id"] for r in results[:3]] == [*accounts, contacts[0]]
    assert results[3]["errors"][0] == {"statusCode": "MALFORMED_ID", "fields": ["Id"],
                                       "message": f"Contact ID: id value of incorrect type: {accounts[0]}"}
    assert _codes(results[4]) == ["MISSING_ARGUMENT"]
    rows = sf_client.query(f"SELECT Id, Rating FROM Account WHERE Id IN ('{accounts[0]}', '{accounts[1]}') "
                           "ORDER BY Id")["records"]
    assert [r["Rating"] for r in rows] == ["Hot", "Warm"]
    assert sf_client.Contact.get(contacts[0])["Title"] == "CFO"


def test_retrieve_by_get_and_post_equals_rest(sf_client):
    ids = _first_ids(sf_client, "Account", 5)
    missing = "001EM00000000zzAAA"
    by_get = sf_client.restful("composite/sobjects/Account", params={"ids": ",".join([*ids, missing]),
                                                                      "fields": "Id,Name,Industry,CreatedDate"})
    by_post = sf_client.restful("composite/sobjects/Account", method="POST",
                                json={"ids": [*ids, missing], "fields": ["Id", "Name", "Industry", "CreatedDate"]})
    rest = sf_client.query(f"SELECT Id, Name, Industry, CreatedDate FROM Account WHERE Id IN "
                           f"({','.join(repr(i) for i in ids)}) ORDER BY Id")["records"]
    assert by_get == by_post == [*rest, None]


def test_retrieve_needs_known_fields(sf_client):
    ids = ",".join(_first_ids(sf_client, "Account", 2))
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.restful("composite/sobjects/Account", params={"ids": ids})
    assert err.value.content[0]["errorCode"] == "MISSING_ARGUMENT"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.restful("composite/sobjects/Account", params={"ids": ids, "fields": "Nope"})
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_delete_records(emulator_reset, sf_client):
    account, contact = _first_ids(sf_client, "Account", 1)[0], _first_ids(sf_client, "Contact", 1)[0]
    results = sf_client.restful("composite/sobjects", method="DELETE",
                                params={"ids": f"{account},{contact},001xx", "allOrNone": "false"})
    assert results[:2] == [{"id": account, "success": True, "errors": []},
                           {"id": contact, "success": True, "errors": []}]
    assert results[2] == {"success": False, "errors": [{"statusCode": "MALFORMED_ID", "message": "malformed id 001xx",
                                                        "fields": []}]}
    deleted = sf_client.query_all(f"SELECT Id FROM Account WHERE Id = '{account}' AND IsDeleted = true",
                                  include_deleted=True)
    assert deleted["totalSize"] == 1 and sf_client.query(f"SELECT Id FROM Account WHERE Id = '{account}'")[
        "totalSize"] == 0
    again = sf_client.restful("composite/sobjects", method="DELETE", params={"ids": account})
    assert again == [{"id": account, "success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED",
                                                                   "message": "entity is deleted", "fields": []}]}]


def test_delete_all_or_none_keeps_everything(emulator_reset, sf_client):
    accounts = _first_ids(sf_client, "Account", 2)
    results = sf_client.restful("composite/sobjects", method="DELETE",
                                params={"ids": ",".join([*accounts, "001xx"]), "allOrNone": "true"})
    assert [_codes(r) for r in results] == [[ROLLED_BACK], [ROLLED_BACK], ["MALFORMED_ID"]]
    assert sf_client.query(f"SELECT COUNT() FROM Account WHERE Id IN ('{accounts[0]}', '{accounts[1]}')")[
        "totalSize"] == 2


# --- upsert by external id ------------------------------------------------------------------------------------
def test_upsert_by_id_updates(emulator_reset, sf_client):
    contact = _first_ids(sf_client, "Contact", 1)[0]
    assert sf_client.Contact.upsert(f"Id/{contact}", {"Title": "Chief Data Officer"}) == 200
    answer = sf_client.Contact.upsert(f"Id/{contact}", {"Title": "CDO"}, raw_response=True).json()
    assert answer == {"id": contact, "success": True, "errors": [], "created": False}
    assert sf_client.query(f"SELECT Title FROM Contact WHERE Id = '{contact}'")["records"][0]["Title"] == "CDO"


def test_upsert_before_v46_answers_204(emulator_reset, emulator, emulator_http):
    sf = Salesforce(instance_url=emulator.instance_url, session_id=emulator.access_token, session=emulator_http,
                    version="45.0")
    contact = _first_ids(sf, "Contact", 1)[0]
    assert sf.Contact.upsert(f"Id/{contact}", {"Title": "CFO"}) == 204


def test_create_with_id_as_the_external_id(emulator_reset, sf_client):
    created = sf_client.restful("sobjects/Contact/Id", method="POST", json={"LastName": "Nguyen"})
    assert created["success"] is True and created["created"] is True and created["id"].startswith("003")
    assert sf_client.Contact.get(created["id"])["LastName"] == "Nguyen"


def test_upsert_errors(emulator_reset, sf_client):
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf_client.Contact.upsert("Email/someone@example.com", {"Title": "CFO"})
    assert err.value.content == [{"message": "Provided external ID field does not exist or is not accessible: Email",
                                  "errorCode": "NOT_FOUND"}]
    with pytest.raises(SalesforceResourceNotFound):  # an Id that names no record cannot be created
        sf_client.Contact.upsert("Id/003EM00000000zzAAA", {"Title": "CFO"})
    contact = _first_ids(sf_client, "Contact", 1)[0]
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf_client.Contact.upsert(f"Id/{contact}", {"Id": contact, "Title": "CFO"})
    assert bad.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_upsert_collection_by_id(emulator_reset, sf_client):
    contact = _first_ids(sf_client, "Contact", 1)[0]
    results = sf_client.restful("composite/sobjects/Contact/Id", method="PATCH", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, "Id": contact, "Title": "VP"},
        {"attributes": {"type": "Contact"}, "LastName": "Brand New"}]})
    assert results[0] == {"id": contact, "success": True, "errors": [], "created": False}
    assert results[1]["success"] is True and results[1]["created"] is True
    assert sf_client.Contact.get(contact)["Title"] == "VP"
    assert sf_client.Contact.get(results[1]["id"])["LastName"] == "Brand New"


@pytest.fixture()
def email_as_external_id(monkeypatch):
    """An org whose describe marks Contact.Email as an external id (what a custom External ID field gives),
    served in this process so the marking applies."""
    plain = s.describe_field

    def described(f: s.FieldDef) -> dict:
        return {**plain(f), "externalId": plain(f)["externalId"] or f.name == "Email"}

    monkeypatch.setattr(s, "describe_field", described)
    rows = {"User": 5, "Account": 20, "Contact": 30, "Opportunity": 0, "Lead": 0, "Case": 0}
    with run_emulator(in_process=True, rows=rows) as info, emulator_session(info) as http:
        yield Salesforce(instance_url=info.instance_url, session_id=info.access_token, session=http)


def test_upsert_by_an_external_id_field(email_as_external_id):
    sf = email_as_external_id
    created = sf.Contact.upsert("Email/new.person@example.com", {"LastName": "Person"}, raw_response=True)
    assert created.status_code == 201 and created.json()["created"] is True
    new_id = created.json()["id"]
    assert sf.Contact.get(new_id)["Email"] == "new.person@example.com"
    assert sf.Contact.upsert("Email/NEW.PERSON@example.com", {"Title": "CTO"}) == 200  # matched case-insensitively
    assert sf.Contact.get_by_custom_id("Email", "new.person@example.com")["Title"] == "CTO"

    twin = sf.Contact.create({"LastName": "Twin", "Email": "new.person@example.com"})["id"]
    with pytest.raises(SalesforceMoreThanOneRecord) as err:
        sf.Contact.upsert("Email/new.person@example.com", {"Title": "CEO"})
    assert sorted(err.value.content) == sorted(f"/services/data/v59.0/sobjects/Contact/{i}" for i in (new_id, twin))
    rows = sf.query("SELECT Title FROM Contact WHERE Email = 'new.person@example.com'")["records"]
    assert sorted(str(r["Title"]) for r in rows) == ["CTO", "None"]  # the 300 changed nothing


# --- getUpdated / getDeleted ----------------------------------------------------------------------------------
NOW = datetime(2024, 11, 20, 12, 0, tzinfo=timezone.utc)  # just after the default org's data (its epoch)


def test_get_updated_equals_a_system_modstamp_query(emulator_reset, sf_client):
    freeze_clock(emulator_reset, "2024-11-20T12:00:00Z")
    start, end = NOW - timedelta(days=29, hours=1), NOW - timedelta(days=1)
    updated = sf_client.Account.updated(start, end)
    soql = ("SELECT Id FROM Account WHERE SystemModstamp >= 2024-10-22T11:00:00Z "
            "AND SystemModstamp < 2024-11-19T12:00:00Z")
    assert updated["ids"] and sorted(updated["ids"]) == sorted(r["Id"] for r in sf_client.query_all(soql)["records"])
    assert updated["latestDateCovered"] == "2024-11-19T12:00:00.000+0000"


def test_writes_show_up_in_updated_and_deleted(emulator_reset, sf_client):
    freeze_clock(emulator_reset, "2024-11-20T12:00:30Z")
    new_id = sf_client.Account.create({"Name": "Replicated"})["id"]
    gone = _first_ids(sf_client, "Account", 1)[0]
    sf_client.Account.delete(gone)
    freeze_clock(emulator_reset, "2024-11-20T12:05:00Z")
    updated = sf_client.Account.updated(NOW, NOW + timedelta(hours=1))
    assert updated == {"ids": [new_id], "latestDateCovered": "2024-11-20T12:05:00.000+0000"}
    deleted = sf_client.Account.deleted(NOW, NOW + timedelta(hours=1))
    assert deleted == {"deletedRecords": [{"id": gone, "deletedDate": "2024-11-20T12:00:30.000+0000"}],
                       "earliestDateAvailable": "2024-10-21T12:05:00.000+0000",
                       "latestDateCovered": "2024-11-20T12:05:00.000+0000"}


@pytest.mark.parametrize(("start", "end", "fragment"), [
    (NOW - timedelta(days=31), NOW, "more than 30 days ago"),
    (NOW - timedelta(hours=1), NOW - timedelta(hours=2), "precede endDate"),
    (NOW - timedelta(hours=1), NOW - timedelta(hours=1, seconds=-30), "precede endDate"),
])
def test_replication_window_errors(emulator_reset, sf_client, start, end, fragment):
    freeze_clock(emulator_reset, "2024-11-20T12:00:00Z")
    for call in (sf_client.Account.updated, sf_client.Account.deleted):
        with pytest.raises(SalesforceMalformedRequest) as err:
            call(start, end)
        assert err.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
        assert fragment in err.value.content[0]["message"]


def test_replication_needs_start_and_end(sf_client):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf_client.restful("sobjects/Account/updated/", params={"start": "2024-11-01T00:00:00Z"})
    assert err.value.content[0]["errorCode"] == "MISSING_ARGUMENT"
