"""Lead and Case owners are users or queues (issue #16): Group rows, queue-owned records, and the polymorphic
Owner relationship through the real simple-salesforce client (REST and Bulk 2.0)."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

pytestmark = pytest.mark.integration

GROUP_PREFIX, USER_PREFIX = "00G", "005"


def _names(sf_client, object_name: str) -> dict[str, str]:
    return {r["Id"]: r["Name"] for r in sf_client.query_all(f"SELECT Id, Name FROM {object_name}")["records"]}


def test_queues_are_groups_of_type_queue(sf_client):
    queues = sf_client.query("SELECT Id, Name, DeveloperName FROM Group WHERE Type = 'Queue'")["records"]
    assert queues and all(q["Id"].startswith(GROUP_PREFIX) for q in queues)
    assert all(q["DeveloperName"] == q["Name"].replace(" ", "_") for q in queues)


@pytest.mark.parametrize("object_name", ["Lead", "Case"])
def test_a_share_of_leads_and_cases_is_owned_by_a_queue(sf_client, object_name):
    owners = [r["OwnerId"] for r in sf_client.query_all(f"SELECT OwnerId FROM {object_name}")["records"]]
    queue_owned = sum(o.startswith(GROUP_PREFIX) for o in owners) / len(owners)
    assert 0.15 < queue_owned < 0.5
    assert all(o.startswith((GROUP_PREFIX, USER_PREFIX)) for o in owners)


@pytest.mark.parametrize("object_name", ["Lead", "Case"])
def test_owner_name_resolves_users_and_queues_alike(sf_client, object_name):
    names = {**_names(sf_client, "User"), **_names(sf_client, "Group")}
    records = sf_client.query(f"SELECT Id, OwnerId, Owner.Name, Owner.Type FROM {object_name} LIMIT 300")["records"]
    for record in records:
        owner = record["Owner"]
        assert owner["Name"] == names[record["OwnerId"]]
        queue = record["OwnerId"].startswith(GROUP_PREFIX)
        assert owner["Type"] == ("Queue" if queue else "User")
        # a polymorphic parent is typed Name; its url is the owner's own record
        assert owner["attributes"]["type"] == "Name"
        assert owner["attributes"]["url"].endswith(f"/sobjects/{'Group' if queue else 'User'}/{record['OwnerId']}")
    assert {r["OwnerId"][:3] for r in records} == {GROUP_PREFIX, USER_PREFIX}


def test_filtering_on_the_owner_type(sf_client):
    queue_owned = sf_client.query_all("SELECT Id, OwnerId FROM Case WHERE Owner.Type = 'Queue'")["records"]
    assert queue_owned and all(r["OwnerId"].startswith(GROUP_PREFIX) for r in queue_owned)


def test_owner_reaches_only_the_fields_of_the_name_entity(sf_client):
    with pytest.raises(SalesforceMalformedRequest, match="No such column 'Department' on entity 'Name'"):
        sf_client.query("SELECT Id, Owner.Department FROM Lead LIMIT 1")
    account = sf_client.query("SELECT Owner.Department FROM Account LIMIT 1")["records"][0]  # single-target: User
    assert account["Owner"]["attributes"]["type"] == "User"


def test_bulk_owner_name_column_holds_queue_names(sf_client):
    pages = sf_client.bulk2.Lead.query("SELECT Id, OwnerId, Owner.Name FROM Lead", wait=0)
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    queues = _names(sf_client, "Group")
    queue_rows = [r for r in rows if r["OwnerId"].startswith(GROUP_PREFIX)]
    assert queue_rows and all(r["Owner.Name"] == queues[r["OwnerId"]] for r in queue_rows)
