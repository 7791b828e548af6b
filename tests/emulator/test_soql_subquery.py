"""Parent-to-child subqueries through the real simple-salesforce client: each parent's nested query result
(null with no children, else totalSize/done/records with attributes) checked against the child rows fetched with a
plain query; the subquery's WHERE, ORDER BY and per-parent LIMIT; names from describe; paging; refusals."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from emulator import emulator_session

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sf(emulator) -> Iterator[Salesforce]:
    with emulator_session(emulator) as session:
        yield Salesforce(instance_url=emulator.instance_url, session_id=emulator.access_token, session=session)


@pytest.fixture(scope="module")
def contacts(sf) -> pl.DataFrame:
    """Every live Contact through a plain query: the independent side."""
    records = sf.query_all("SELECT Id, LastName, AccountId, Owner.Name FROM Contact")["records"]
    return pl.DataFrame([{"Id": r["Id"], "LastName": r["LastName"], "AccountId": r["AccountId"],
                          "OwnerName": r["Owner"]["Name"]} for r in records])


def _children(parent: dict, relationship: str) -> list[dict]:
    """A parent's child records after checking the nested query result's shape (null when there are none)."""
    nested = parent[relationship]
    if nested is None:
        return []
    assert list(nested) == ["totalSize", "done", "records"]
    assert nested["done"] is True and nested["totalSize"] == len(nested["records"]) > 0
    return nested["records"]


def test_children_match_the_child_rows_fetched_plainly(sf, contacts):
    accounts = sf.query_all("SELECT Id, Name, (SELECT Id, LastName FROM Contacts) FROM Account")["records"]
    expected = {a: set(zip(ids, names, strict=True)) for a, ids, names in
                contacts.group_by("AccountId").agg("Id", "LastName").iter_rows()}
    assert any(a["Contacts"] is None for a in accounts) and any(a["Contacts"] for a in accounts)
    for account in accounts:
        assert list(account) == ["attributes", "Id", "Name", "Contacts"]
        children = _children(account, "Contacts")
        assert {(c["Id"], c["LastName"]) for c in children} == expected.get(account["Id"], set())
        assert all(list(c) == ["attributes", "Id", "LastName"] for c in children)
    assert sum(len(_children(a, "Contacts")) for a in accounts) == contacts["AccountId"].is_in(
        [a["Id"] for a in accounts]).sum()


def test_child_records_carry_attributes_and_nested_parents(sf, contacts):
    account = next(a for a in sf.query("SELECT Id, (SELECT Id, Owner.Name FROM Contacts) FROM Account")["records"]
                   if a["Contacts"])
    owners = dict(contacts.select("Id", "OwnerName").iter_rows())
    for child in _children(account, "Contacts"):
        assert child["attributes"] == {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{child['Id']}"}
        assert child["Owner"]["attributes"]["type"] == "User"
        assert child["Owner"]["attributes"]["url"].startswith("/services/data/v59.0/sobjects/User/005")
        assert child["Owner"]["Name"] == owners[child["Id"]]


def test_subquery_where_order_by_and_limit_apply_per_parent(sf):
    plain = sf.query_all("SELECT Id, AccountId, Amount FROM Opportunity WHERE StageName = 'Closed Won'")["records"]
    won = pl.DataFrame([{k: r[k] for k in ("Id", "AccountId", "Amount")} for r in plain],
                       schema={"Id": pl.String, "AccountId": pl.String, "Amount": pl.Float64})
    top = (won.sort("Amount", descending=True, nulls_last=True, maintain_order=True)
           .group_by("AccountId", maintain_order=True).agg(pl.col("Amount").head(2)))
    expected = dict(top.iter_rows())
    soql = ("SELECT Id, (SELECT Id, Amount FROM Opportunities WHERE StageName = 'Closed Won' "
            "ORDER BY Amount DESC NULLS LAST LIMIT 2) FROM Account")
    accounts = sf.query_all(soql)["records"]
    assert any(len(_children(a, "Opportunities")) == 2 for a in accounts)
    for account in accounts:
        amounts = [c["Amount"] for c in _children(account, "Opportunities")]
        assert amounts == expected.get(account["Id"], [])


def test_parent_limit_where_and_order_by_still_apply(sf, contacts):
    soql = ("SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account "
            "WHERE Name LIKE 'A%' ORDER BY Name LIMIT 25")
    accounts = sf.query(soql)["records"]
    plain = sf.query("SELECT Id, Name FROM Account WHERE Name LIKE 'A%' ORDER BY Name LIMIT 25")["records"]
    assert [a["Name"] for a in accounts] == [a["Name"] for a in plain]
    by_account = {a: sorted(names, key=str.lower) for a, names in
                  contacts.group_by("AccountId").agg("LastName").iter_rows()}
    for account, parent in zip(accounts, plain, strict=True):
        names = [c["LastName"] for c in _children(account, "Contacts")]
        assert [n.lower() for n in names] == [n.lower() for n in by_account.get(parent["Id"], [])]


def test_relationship_name_is_case_insensitive_and_canonical_in_results(sf):
    [account] = sf.query("SELECT Id, (SELECT id FROM contacts) FROM Account LIMIT 1")["records"]
    assert list(account) == ["attributes", "Id", "Contacts"]


def test_every_child_relationship_in_describe_can_be_queried(sf):
    for parent in ("Account", "Contact"):
        names = [r["relationshipName"] for r in getattr(sf, parent).describe()["childRelationships"]
                 if r["relationshipName"]]
        assert names, parent
        for name in names:
            records = sf.query(f"SELECT Id, (SELECT Id FROM {name}) FROM {parent} LIMIT 5")["records"]
            assert len(records) == 5 and all(name in r for r in records)


def test_pages_of_parents_carry_their_children(sf):
    soql = "SELECT Id, (SELECT Id FROM Cases) FROM Account"
    whole = {a["Id"]: a["Cases"] for a in sf.query_all(soql)["records"]}
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert first["done"] is False and len(first["records"]) == 200
    paged = {a["Id"]: a["Cases"] for a in sf.query_all_iter(soql, headers={"Sforce-Query-Options": "batchSize=200"})}
    assert paged == whole


@pytest.mark.parametrize(("soql", "code", "message"), [
    ("SELECT Id, (SELECT Id FROM Contactz) FROM Account", "INVALID_TYPE",
     "Didn't understand relationship 'Contactz' in FROM part of query call"),
    ("SELECT Id, (SELECT Id FROM Contacts) FROM Opportunity", "INVALID_TYPE",
     "Didn't understand relationship 'Contacts' in FROM part of query call"),
    ("SELECT Id, (SELECT Nope FROM Contacts) FROM Account", "INVALID_FIELD",
     "No such column 'Nope' on entity 'Contact'"),
    ("SELECT Id, (SELECT Id, (SELECT Id FROM Cases) FROM Contacts) FROM Account", "MALFORMED_QUERY",
     "nested in a subquery"),
    ("SELECT Id, (SELECT COUNT(Id) FROM Contacts) FROM Account", "MALFORMED_QUERY",
     "not supported in a parent-to-child subquery"),
    ("SELECT Industry, (SELECT Id FROM Contacts) FROM Account GROUP BY Industry", "MALFORMED_QUERY",
     "subquery can't be used with GROUP BY"),
    ("SELECT Id, (SELECT Id FROM Contacts LIMIT 5 OFFSET 1) FROM Account", "MALFORMED_QUERY", "OFFSET"),
])
def test_salesforce_refusals(sf, soql, code, message):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query(soql)
    error = err.value.content[0]
    assert error["errorCode"] == code and message in error["message"]


def test_bulk_rejects_subqueries(sf):
    with pytest.raises(SalesforceMalformedRequest) as err:
        list(sf.bulk2.Account.query("SELECT Id, (SELECT Id FROM Contacts) FROM Account", wait=0))
    assert err.value.content[0] == {"errorCode": "API_ERROR", "message": "Aggregate Relationships not supported in "
                                                                         "Bulk V2 Query with CSV content type"}
