"""Aggregate SOQL through the real simple-salesforce client: AggregateResult rows (grouped fields by their field
name, aliases, implied expr0, expr1, ...), each checked against Polars over the same rows fetched with a plain query;
nulls, HAVING / ORDER BY, and Salesforce's refusals (wrong field type, ungrouped field, more than 2,000 rows)."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from emulator import emulator_session

pytestmark = pytest.mark.integration

AGGREGATE = {"type": "AggregateResult"}
PLAIN_SOQL = ("SELECT Id, Name, StageName, LeadSource, Amount, AccountId, CloseDate, CreatedDate, Owner.Name "
              "FROM Opportunity")


@pytest.fixture(scope="module")
def sf(emulator) -> Iterator[Salesforce]:
    """One client for the module (the plain rows below are fetched once)."""
    with emulator_session(emulator) as session:
        yield Salesforce(instance_url=emulator.instance_url, session_id=emulator.access_token, session=session)


@pytest.fixture(scope="module")
def opportunities(sf) -> pl.DataFrame:
    """Every live Opportunity through a plain REST query, Owner.Name flattened: the independent side."""
    records = sf.query_all(PLAIN_SOQL)["records"]
    rows = [{**{k: v for k, v in r.items() if k not in ("attributes", "Owner")},
             "OwnerName": r["Owner"]["Name"] if r["Owner"] else None} for r in records]
    return pl.DataFrame(rows, schema={"Id": pl.String, "Name": pl.String, "StageName": pl.String,
                                      "LeadSource": pl.String, "Amount": pl.Float64, "AccountId": pl.String,
                                      "CloseDate": pl.String, "CreatedDate": pl.String, "OwnerName": pl.String})


def _rows(result: dict) -> list[dict]:
    """AggregateResult rows without attributes, after checking each one's attributes and the envelope."""
    assert result["done"] is True and "nextRecordsUrl" not in result
    assert result["totalSize"] == len(result["records"])
    assert all(r["attributes"] == AGGREGATE for r in result["records"])
    return [{k: v for k, v in r.items() if k != "attributes"} for r in result["records"]]


def _error(sf: Salesforce, soql: str) -> dict:
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query(soql)
    return err.value.content[0]


def test_group_by_counts_and_sums_match_the_plain_rows(sf, opportunities):
    rows = _rows(sf.query("SELECT StageName, COUNT(Id), SUM(Amount) total FROM Opportunity GROUP BY StageName"))
    expected = opportunities.group_by("StageName").agg(pl.len().alias("expr0"), pl.col("Amount").sum().alias("total"))
    assert len(rows) == expected.height == 9
    by_stage = {r["StageName"]: r for r in rows}
    for stage, count, total in expected.iter_rows():
        assert list(by_stage[stage]) == ["StageName", "expr0", "total"]
        assert by_stage[stage]["expr0"] == count
        assert by_stage[stage]["total"] == pytest.approx(total, rel=1e-12)


def test_implied_aliases_count_only_unaliased_aggregates_in_select_order(sf, opportunities):
    rows = _rows(sf.query("SELECT MAX(Amount), MIN(Amount) low, SUM(Amount), COUNT(Id) FROM Opportunity"))
    amount = opportunities["Amount"]
    assert rows == [{"expr0": amount.max(), "low": amount.min(), "expr1": pytest.approx(amount.sum(), rel=1e-12),
                     "expr2": opportunities.height}]
    assert list(rows[0]) == ["expr0", "low", "expr1", "expr2"]


def test_relationship_group_is_keyed_by_the_fields_own_name(sf, opportunities):
    rows = _rows(sf.query("SELECT Owner.Name, COUNT(Id) n FROM Opportunity GROUP BY Owner.Name"))
    expected = dict(opportunities.group_by("OwnerName").len().iter_rows())
    assert all(list(r) == ["Name", "n"] for r in rows)
    assert {r["Name"]: r["n"] for r in rows} == expected


def test_group_by_two_fields_keeps_null_as_a_group(sf, opportunities):
    rows = _rows(sf.query("SELECT StageName, LeadSource, AVG(Amount) avg FROM Opportunity "
                          "GROUP BY StageName, LeadSource"))
    expected = opportunities.group_by("StageName", "LeadSource").agg(pl.col("Amount").mean())
    assert None in {r["LeadSource"] for r in rows}
    got = {(r["StageName"], r["LeadSource"]): r["avg"] for r in rows}
    assert got == {(s, lead): pytest.approx(avg, rel=1e-12) for s, lead, avg in expected.iter_rows()}


def test_count_field_counts_non_nulls_and_count_distinct_distinct_values(sf, opportunities):
    rows = _rows(sf.query("SELECT COUNT(Id), COUNT(Amount), COUNT(AccountId), COUNT_DISTINCT(AccountId) "
                          "FROM Opportunity"))
    assert opportunities["Amount"].null_count() > 0 and opportunities["AccountId"].null_count() > 0
    assert rows == [{"expr0": opportunities.height, "expr1": opportunities["Amount"].count(),
                     "expr2": opportunities["AccountId"].count(),
                     "expr3": opportunities["AccountId"].drop_nulls().n_unique()}]


def test_min_and_max_of_dates_and_datetimes_are_in_rest_formats(sf, opportunities):
    rows = _rows(sf.query("SELECT MIN(CloseDate), MAX(CloseDate), MIN(CreatedDate), MAX(CreatedDate) "
                          "FROM Opportunity"))
    # REST date and datetime strings sort like the values they encode
    assert rows == [{"expr0": opportunities["CloseDate"].min(), "expr1": opportunities["CloseDate"].max(),
                     "expr2": opportunities["CreatedDate"].min(), "expr3": opportunities["CreatedDate"].max()}]
    assert rows[0]["expr3"].endswith("+0000")


def test_no_matching_row_is_one_row_of_nulls_and_zero_counts(sf):
    rows = _rows(sf.query("SELECT SUM(Amount), AVG(Amount), MAX(CloseDate), COUNT(Id), COUNT_DISTINCT(Name) "
                          "FROM Opportunity WHERE Name = 'no such opportunity'"))
    assert rows == [{"expr0": None, "expr1": None, "expr2": None, "expr3": 0, "expr4": 0}]


def test_sum_of_a_group_with_only_null_amounts_is_null(sf, opportunities):
    no_amount = opportunities.filter(pl.col("Amount").is_null())["Id"][0]
    soql = (f"SELECT StageName, SUM(Amount), COUNT(Amount), COUNT(Id) FROM Opportunity WHERE Id = '{no_amount}' "
            "GROUP BY StageName")
    [row] = _rows(sf.query(soql))
    assert {k: row[k] for k in ("expr0", "expr1", "expr2")} == {"expr0": None, "expr1": 0, "expr2": 1}


def test_having_and_order_by_aggregates(sf, opportunities):
    soql = ("SELECT AccountId, COUNT(Id) n, SUM(Amount) FROM Opportunity WHERE AccountId != null "
            "GROUP BY AccountId HAVING COUNT(Id) > 8 ORDER BY COUNT(Id) DESC, AccountId LIMIT 20")
    rows = _rows(sf.query(soql))
    expected = (opportunities.filter(pl.col("AccountId").is_not_null())
                .group_by("AccountId").agg(pl.len().alias("n"), pl.col("Amount").sum().alias("sum"))
                .filter(pl.col("n") > 8).sort(["n", "AccountId"], descending=[True, False]).head(20))
    assert 0 < len(rows) <= 20
    assert [(r["AccountId"], r["n"]) for r in rows] == [(a, n) for a, n, _ in expected.iter_rows()]
    assert [r["expr0"] for r in rows] == [pytest.approx(s, rel=1e-12) for *_, s in expected.iter_rows()]


def test_count_without_group_by_keeps_total_size_only(sf, opportunities):
    assert sf.query("SELECT COUNT() FROM Opportunity") == {"totalSize": opportunities.height, "done": True,
                                                            "records": []}


def test_query_all_aggregates_soft_deleted_rows_too(sf):
    live = _rows(sf.query("SELECT COUNT(Id) FROM Opportunity"))[0]["expr0"]
    every = _rows(sf.query_all("SELECT COUNT(Id) FROM Opportunity", include_deleted=True))[0]["expr0"]
    deleted = sf.query_all("SELECT Id FROM Opportunity WHERE IsDeleted = true", include_deleted=True)["totalSize"]
    assert deleted > 0 and every == live + deleted


def test_up_to_2000_groups_come_in_one_page(sf, opportunities):
    rows = _rows(sf.query("SELECT AccountId, COUNT(Id) FROM Opportunity GROUP BY AccountId"))
    assert 1000 < len(rows) == opportunities["AccountId"].n_unique() <= 2000


def test_an_aggregate_answer_is_one_page_whatever_the_batch_size(sf):
    """Salesforce gives aggregate results no query locator: queryMore does not apply to them."""
    page = sf.query("SELECT AccountId, COUNT(Id) FROM Opportunity GROUP BY AccountId",
                    headers={"Sforce-Query-Options": "batchSize=200"})
    assert page["done"] is True and "nextRecordsUrl" not in page and len(page["records"]) == page["totalSize"] > 200


@pytest.mark.parametrize(("soql", "code", "message"), [
    ("SELECT SUM(Name) FROM Opportunity", "MALFORMED_QUERY", "field Name does not support aggregate operator SUM"),
    ("SELECT AVG(CloseDate) FROM Opportunity", "MALFORMED_QUERY",
     "field CloseDate does not support aggregate operator AVG"),
    ("SELECT COUNT(IsWon) FROM Opportunity", "MALFORMED_QUERY",
     "field IsWon does not support aggregate operator COUNT"),
    ("SELECT StageName, COUNT(Id) FROM Opportunity", "MALFORMED_QUERY",
     "Field must be grouped or aggregated: StageName"),
    ("SELECT StageName FROM Opportunity GROUP BY StageName ORDER BY Name", "MALFORMED_QUERY",
     "Ordered field must be grouped or aggregated: Name"),
    ("SELECT Amount, COUNT(Id) FROM Opportunity GROUP BY Amount", "INVALID_FIELD",
     "field 'Amount' can not be grouped in a query call"),
    ("SELECT COUNT(Id) total, SUM(Amount) total FROM Opportunity", "MALFORMED_QUERY", "duplicate alias: total"),
    ("SELECT Name n FROM Opportunity", "MALFORMED_QUERY", "Only aggregate expressions use field aliasing"),
    ("SELECT COUNT() FROM Opportunity GROUP BY StageName", "MALFORMED_QUERY", "use COUNT(fieldName)"),
    ("SELECT COUNT(Id) FROM Opportunity LIMIT 1", "MALFORMED_QUERY", "LIMIT clause"),
    ("SELECT CALENDAR_YEAR(CloseDate), COUNT(Id) FROM Opportunity GROUP BY CALENDAR_YEAR(CloseDate)",
     "MALFORMED_QUERY", "function CALENDAR_YEAR() is not supported"),
    ("SELECT SUM(Nope) FROM Opportunity", "INVALID_FIELD", "No such column 'Nope' on entity 'Opportunity'"),
])
def test_salesforce_refusals(sf, soql, code, message):
    error = _error(sf, soql)
    assert error["errorCode"] == code and message in error["message"]
    assert "ERROR at Row:1:Column:" in error["message"]


def test_more_than_2000_groups_need_a_limit(sf):
    error = _error(sf, "SELECT Id, COUNT(Name) FROM Contact GROUP BY Id")
    assert error == {"errorCode": "EXCEEDED_ID_LIMIT", "message": "Aggregate query does not support queryMore(), "
                                                                  "use LIMIT to restrict the results to a single batch"}
    assert sf.query("SELECT Id, COUNT(Name) FROM Contact GROUP BY Id LIMIT 2000")["totalSize"] == 2000


def test_bulk_rejects_aggregate_queries(sf):
    with pytest.raises(SalesforceMalformedRequest) as err:
        list(sf.bulk2.Opportunity.query("SELECT StageName, COUNT(Id) FROM Opportunity GROUP BY StageName", wait=0))
    assert err.value.content[0] == {"errorCode": "API_ERROR", "message": "Aggregate Relationships not supported in "
                                                                         "Bulk V2 Query with CSV content type"}
