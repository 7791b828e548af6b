"""Doubles as real orgs write them (issue #16): Java's ``Double.toString`` (``4.6559E8``) in REST JSON, the sObject
GET, subqueries and aggregates, Bulk 2.0 CSV and Bulk 1.0 CSV and JSON; checked on the bytes the emulator sends and
through the real client."""

from __future__ import annotations

import re
import time

import polars as pl
import pytest

from emulator.numbers import dumps_json, java_double, java_double_series

pytestmark = pytest.mark.integration

# (double, the text Salesforce writes for it): plain from 1e-3 up to 1e7, else one digit, a point, the shortest
# round-trip rest and an exponent without '+'
REAL_DOUBLE_TEXT = [
    (465590000.0, "4.6559E8"),
    (10_000_000.0, "1.0E7"),
    (123456789.0, "1.23456789E8"),
    (12345678.9, "1.23456789E7"),
    (-465590000.0, "-4.6559E8"),
    (440716010000.0, "4.4071601E11"),
    (1e16, "1.0E16"),
    (2e23, "2.0E23"),
    (9999999.0, "9999999.0"),
    (465590.0, "465590.0"),
    (1500000.5, "1500000.5"),
    (10.0, "10.0"),
    (0.001, "0.001"),
    (0.0001, "1.0E-4"),
    (0.00012345, "1.2345E-4"),
    (0.0, "0.0"),
    (-0.0, "-0.0"),
]
BIG_REVENUE, BIG_REVENUE_TEXT = 465590000.0, "4.6559E8"
BIG_AMOUNT, BIG_AMOUNT_TEXT = 12345678.5, "1.23456785E7"
_TOKEN = re.compile(rb'"AnnualRevenue":(-?[0-9][^,}]*)')


@pytest.mark.parametrize(("value", "text"), REAL_DOUBLE_TEXT)
def test_a_double_is_written_as_java_writes_it(value, text):
    assert java_double(value) == text
    assert dumps_json({"AnnualRevenue": value}) == f'{{"AnnualRevenue":{text}}}'.encode()


def test_the_vectorised_form_writes_the_same_text():
    values = [v for v, _ in REAL_DOUBLE_TEXT]
    series = pl.Series("x", [*values, None], dtype=pl.Float64)
    assert java_double_series(series).to_list() == [t for _, t in REAL_DOUBLE_TEXT] + [None]


def _get(http, info, path: str, **params) -> bytes:
    response = http.get(f"{info.instance_url}/services/data/v59.0/{path}", params=params,
                        headers={"Authorization": f"Bearer {info.access_token}"})
    assert response.status_code == 200, response.text
    return response.content


def test_every_rest_double_of_the_org_is_in_java_text(emulator, emulator_http):
    body = _get(emulator_http, emulator, "query/", q="SELECT Id, AnnualRevenue FROM Account")
    tokens = _TOKEN.findall(body)
    assert len(tokens) > 1000 and any(b"E" in t for t in tokens) and any(b"E" not in t for t in tokens)
    assert all(t.decode() == java_double(float(t)) for t in tokens)


def test_aggregates_of_doubles_are_in_java_text(emulator, emulator_http):
    body = _get(emulator_http, emulator, "query/", q="SELECT SUM(AnnualRevenue) total FROM Account")
    (token,) = re.findall(rb'"total":([^,}]+)', body)
    assert b"E" in token and token.decode() == java_double(float(token))


@pytest.fixture()
def big_account(emulator_reset, sf_client):
    """An Account with AnnualRevenue 465,590,000 and an Opportunity of 12,345,678.5 under it (reset afterwards)."""
    account_id = sf_client.Account.create({"Name": "Big Revenue", "AnnualRevenue": BIG_REVENUE})["id"]
    sf_client.Opportunity.create({"Name": "Big Deal", "StageName": "Prospecting", "CloseDate": "2024-01-01",
                                  "AccountId": account_id, "Amount": BIG_AMOUNT})
    return account_id


def test_rest_query_record_get_and_subquery_write_java_text(emulator, emulator_http, sf_client, big_account):
    soql = f"SELECT Id, AnnualRevenue, (SELECT Amount FROM Opportunities) FROM Account WHERE Id = '{big_account}'"
    body = _get(emulator_http, emulator, "query/", q=soql)
    assert f'"AnnualRevenue":{BIG_REVENUE_TEXT},'.encode() in body
    assert f'"Amount":{BIG_AMOUNT_TEXT}}}'.encode() in body
    record = _get(emulator_http, emulator, f"sobjects/Account/{big_account}")
    assert f'"AnnualRevenue":{BIG_REVENUE_TEXT},'.encode() in record
    (parsed,) = sf_client.query(soql)["records"]
    assert parsed["AnnualRevenue"] == BIG_REVENUE and parsed["Opportunities"]["records"][0]["Amount"] == BIG_AMOUNT


def test_bulk2_csv_writes_java_text(sf_client, big_account):
    (page,) = sf_client.bulk2.Account.query(f"SELECT Id, AnnualRevenue FROM Account WHERE Id = '{big_account}'",
                                            wait=0)
    assert page == f'"Id","AnnualRevenue"\n"{big_account}","{BIG_REVENUE_TEXT}"\n'


def _bulk1_result(emulator, http, content_type: str, soql: str) -> str:
    """One Bulk API 1.0 query job's single result, as text (a CSV job answers batch requests in XML)."""
    base = f"{emulator.instance_url}/services/async/59.0/job"
    headers = {"X-SFDC-Session": emulator.access_token, "Content-Type": "application/json"}
    job = http.post(base, json={"operation": "query", "object": "Account", "contentType": content_type},
                    headers=headers).json()["id"]

    def field(path: str, name: str) -> str:
        text = http.get(f"{base}/{job}/{path}", headers=headers).text
        return re.search(rf'"{name}":\[?"(\w+)"|<{name}>(\w+)</{name}>', text).group(1, 2)[content_type == "CSV"]

    batch = re.search(r'"id":"(\w+)"|<id>(\w+)</id>', http.post(f"{base}/{job}/batch", data=soql,
                                                                  headers=headers).text).group(1, 2)
    batch = batch[content_type == "CSV"]
    deadline = time.monotonic() + 30
    while field(f"batch/{batch}", "state") != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = field(f"batch/{batch}/result", "result") if content_type == "CSV" else http.get(
        f"{base}/{job}/batch/{batch}/result", headers=headers).json()[0]
    return http.get(f"{base}/{job}/batch/{batch}/result/{result}", headers=headers).text


def test_bulk1_csv_and_json_write_java_text(emulator, emulator_http, sf_client, big_account):
    soql = f"SELECT Id, AnnualRevenue FROM Account WHERE Id = '{big_account}'"
    assert _bulk1_result(emulator, emulator_http, "CSV", soql) == (
        f'"Id","AnnualRevenue"\n"{big_account}","{BIG_REVENUE_TEXT}"\n')
    assert f'"AnnualRevenue":{BIG_REVENUE_TEXT}}}' in _bulk1_result(emulator, emulator_http, "JSON", soql)
    (row,) = sf_client.bulk.Account.query(soql, wait=0)
    assert row["AnnualRevenue"] == BIG_REVENUE
