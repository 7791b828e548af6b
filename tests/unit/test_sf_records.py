"""REST record -> raw CSV row: the Salesforce quirks, one by one."""

from __future__ import annotations

import pytest

from tasks.sf_records import build_row_converter, format_datetime, format_number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T12:00:00.000+0000", "2024-01-01T12:00:00.000Z"),  # REST
        ("2024-01-01T12:00:00.000Z", "2024-01-01T12:00:00.000Z"),      # Bulk
        ("2024-01-01T14:00:00.500+02:00", "2024-01-01T12:00:00.500Z"),  # any offset -> UTC
        ("2024-01-01T12:00:00+00:00", "2024-01-01T12:00:00.000Z"),      # format_soql style
        (None, ""),
    ],
)
def test_datetimes_become_one_utc_form(value, expected):
    assert format_datetime(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(1500000.0, "1500000.0"), (42, "42"), (0.1, "0.1"), (None, "")])
def test_numbers_keep_json_text(value, expected):
    assert format_number(value) == expected


# doubles as Salesforce writes them in REST JSON and Bulk CSV alike (Java's Double.toString)
@pytest.mark.parametrize(("value", "expected"), [
    (465590000.0, "4.6559E8"), (1e7, "1.0E7"), (123456789.0, "1.23456789E8"), (-465590000.0, "-4.6559E8"),
    (9999999.0, "9999999.0"), (0.001, "0.001"), (0.0001, "1.0E-4"), (0.0, "0.0"), (12345678.9, "1.23456789E7"),
    (1e16, "1.0E16"), (2e23, "2.0E23"),
])
def test_doubles_are_written_as_salesforce_writes_them(value, expected):
    assert format_number(value) == expected
    assert build_row_converter(["AnnualRevenue"], ["currency"])({"AnnualRevenue": value}) == [expected]


def test_row_converter_flattens_relationships_and_null_parents():
    convert = build_row_converter(
        ["Id", "Owner.Name", "Account.Owner.Name", "IsWon", "Amount", "CloseDate", "BillingAddress", "Name"],
        ["id", "string", "string", "boolean", "currency", "date", "address", "string"],
    )
    record = {
        "attributes": {"type": "Opportunity"},
        "Id": "006000000000001AAA",
        "Owner": {"attributes": {"type": "User"}, "Name": "Zoë Ångström"},
        "Account": None,
        "IsWon": False,
        "Amount": None,
        "CloseDate": "2024-02-29",
        "BillingAddress": {"city": "Paris", "street": "1, rue \"X\""},
        "Name": 'Deal, "big"\nsecond line',
    }
    assert convert(record) == [
        "006000000000001AAA", "Zoë Ångström", "", "false", "", "2024-02-29",
        '{"city":"Paris","street":"1, rue \\"X\\""}', 'Deal, "big"\nsecond line',
    ]
