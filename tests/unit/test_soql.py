"""The emulator's SOQL engine: parsing, validation errors and execution over a tiny in-test org."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from emulator.soql import RelativeDate, SoqlError, execute, parse_soql, relative_date_range

NOW = datetime(2024, 5, 15, 10, 0, tzinfo=timezone.utc)  # a Wednesday; the week started Sunday 2024-05-12
UTC = timezone.utc


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    compound_field_name: str | None = None
    filterable: bool = True
    sortable: bool = True


def sid(prefix: str, n: int) -> str:
    """An 18-char Id whose 15-char form is case-sensitive ('Em')."""
    return f"{prefix}Em{n:010d}AAA"


U1, U2, U3 = sid("005", 1), sid("005", 2), sid("005", 3)
A1, A2, A3, A4, A5, A6 = (sid("001", i) for i in range(1, 7))
DANGLING_USER = sid("005", 999)


def _dt(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


FIELDS = {
    "User": [Field("Id", "id"), Field("IsDeleted", "boolean"), Field("Name", "string"), Field("Email", "email"),
             Field("IsActive", "boolean"), Field("ManagerId", "reference", ("User",), "Manager")],
    "Account": [
        Field("Id", "id"), Field("IsDeleted", "boolean"), Field("OwnerId", "reference", ("User",), "Owner"),
        Field("Name", "string"), Field("Industry", "picklist"),
        Field("BillingStreet", "textarea", compound_field_name="BillingAddress", filterable=False, sortable=False),
        Field("BillingCity", "string", compound_field_name="BillingAddress"),
        Field("BillingAddress", "address", filterable=False, sortable=False),
        Field("AnnualRevenue", "currency"), Field("NumberOfEmployees", "int"),
        Field("Tags__c", "multipicklist", sortable=False), Field("Score__c", "double"),
        Field("FoundedDate__c", "date"), Field("CreatedDate", "datetime"),
    ],
    "Contact": [Field("Id", "id"), Field("IsDeleted", "boolean"),
                Field("AccountId", "reference", ("Account",), "Account"), Field("LastName", "string"),
                Field("Birthdate", "date"), Field("Description", "textarea", filterable=False, sortable=False)],
}

USERS = pl.DataFrame({
    "Id": [U1, U2, U3], "IsDeleted": [False, False, False], "Name": ["Ann Admin", "bob builder", "Cy Inactive"],
    "Email": ["ann@example.com", "bob@example.com", "cy@example.com"], "IsActive": [True, True, False],
    "ManagerId": [None, U1, U1],
})
ACCOUNTS = pl.DataFrame({
    "Id": [A1, A2, A3, A4, A5, A6],
    "IsDeleted": [False, False, False, False, True, False],
    "OwnerId": [U1, U2, None, U1, U2, DANGLING_USER],
    "Name": ["Acme", "globex", "O'Brien & Sons", "50% Off_Shop", "Zeta Deleted", "acme"],
    "Industry": ["Tech", "Finance", None, "Retail", "Tech", "Tech"],
    "BillingStreet": ["1 Main St", None, None, "2 Via Roma", "3 Fjord", None],
    "BillingCity": ["Paris", "Berlin", None, "Rome", "Oslo", None],
    "AnnualRevenue": [1_000_000.0, 250_000.5, None, 0.0, 5.0, 75.0],
    "NumberOfEmployees": [50, 10, None, 0, 5, 3],
    "Tags__c": ["Gold;Silver", "Silver", None, "Bronze;Gold;Silver", "Gold", None],
    "Score__c": [4.5, None, 1.0, -2.5, 3.0, 0.5],
    "FoundedDate__c": [date(2024, 5, 15), date(2024, 5, 14), date(2024, 4, 10), date(2023, 12, 31),
                       date(2024, 5, 16), None],
    "CreatedDate": [_dt(2024, 5, 15, 9), _dt(2024, 5, 12), datetime(2024, 4, 30, 23, 59, 59, 999000, tzinfo=UTC),
                    _dt(2023, 6, 1), _dt(2024, 5, 15, 10), _dt(2024, 5, 20)],
}).with_columns(pl.col("CreatedDate").cast(pl.Datetime("ms", "UTC")), pl.col("NumberOfEmployees").cast(pl.Int64))
CONTACTS = pl.DataFrame({
    "Id": [sid("003", i) for i in range(1, 6)],
    "IsDeleted": [False, False, False, False, True],
    "AccountId": [A1, A3, None, A2, A1],
    "LastName": ["Smith", "Jones", "Nobody", "Brown", "Gone"],
    "Birthdate": [date(1990, 1, 1), None, None, date(1985, 6, 30), None],
    "Description": ["x", None, None, "y", None],
})


class TinyOrg:
    """A Catalog: three objects, describe-order fields, frames with soft-deleted rows."""

    def __init__(self, frames: dict[str, pl.DataFrame] | None = None,
                 fields: dict[str, list[Field]] | None = None) -> None:
        self._frames = frames or {"User": USERS, "Account": ACCOUNTS, "Contact": CONTACTS}
        self._fields = fields or FIELDS

    def object_names(self) -> list[str]:
        return list(self._fields)

    def fields(self, object_name: str) -> list[Field]:
        return self._fields[object_name]

    def frame(self, object_name: str) -> pl.DataFrame:
        return self._frames[object_name]


ORG = TinyOrg()


def run(soql: str, *, include_deleted: bool = False, catalog: TinyOrg = ORG):
    return execute(parse_soql(soql, catalog), catalog, include_deleted=include_deleted, now=NOW)


def names(where: str, **kw) -> set[str]:
    return set(run(f"SELECT Name FROM Account WHERE {where}", **kw).frame["Name"])


def error_of(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as err:
        parse_soql(soql, ORG)
    return err.value


# ------------------------------------------------------------------------------------------------- parse shape

def test_names_are_case_insensitive_and_come_back_canonical():
    q = parse_soql("select id, NAME, owner.name, owner.MANAGER.name from ACCOUNT", ORG)
    assert q.object_name == "Account"
    assert [i.column for i in q.items] == ["Id", "Name", "Owner.Name", "Owner.Manager.Name"]
    assert q.items[2].path == ("Owner", "Name")
    assert q.relationship_object("Owner.Manager") == "User"
    assert not (q.is_count or q.uses_fields_function or q.selects_compound)


def test_execute_returns_typed_columns_in_select_order_plus_parent_ref_columns():
    frame = run("SELECT CreatedDate, Name, Owner.Name, AnnualRevenue, NumberOfEmployees, FoundedDate__c, "
                "IsDeleted FROM Account WHERE Name = 'Acme'").frame
    assert frame.columns == ["CreatedDate", "Name", "Owner.Name", "AnnualRevenue", "NumberOfEmployees",
                             "FoundedDate__c", "IsDeleted", "__ref__.Owner"]
    assert frame.dtypes == [pl.Datetime("ms", "UTC"), pl.String, pl.String, pl.Float64, pl.Int64, pl.Date,
                            pl.Boolean, pl.String]
    assert frame.row(0) == (_dt(2024, 5, 15, 9), "Acme", "Ann Admin", 1_000_000.0, 50, date(2024, 5, 15), False, U1)


def test_without_order_by_rows_keep_insertion_order_and_soft_deleted_rows_are_hidden():
    assert run("SELECT Id FROM Account").frame["Id"].to_list() == [A1, A2, A3, A4, A6]
    assert run("SELECT Id FROM Account", include_deleted=True).frame["Id"].to_list() == [A1, A2, A3, A4, A5, A6]


def test_query_all_can_select_only_deleted_rows():
    result = run("SELECT Name FROM Account WHERE IsDeleted = true", include_deleted=True)
    assert result.frame["Name"].to_list() == ["Zeta Deleted"] and result.total_size == 1
    assert run("SELECT Name FROM Account WHERE IsDeleted = true").total_size == 0


# -------------------------------------------------------------------------------------------------- operators

@pytest.mark.parametrize(("where", "expected"), [
    ("Name = 'ACME'", {"Acme", "acme"}),
    ("Name != 'acme'", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("Name <> 'acme'", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("Name > 'N'", {"O'Brien & Sons"}),
    ("AnnualRevenue > 250000", {"Acme", "globex"}),
    ("AnnualRevenue >= 250000.5", {"Acme", "globex"}),
    ("AnnualRevenue < 75", {"50% Off_Shop"}),
    ("AnnualRevenue <= 75", {"50% Off_Shop", "acme"}),
    ("NumberOfEmployees = 10", {"globex"}),
    ("Score__c < 0", {"50% Off_Shop"}),
    ("Score__c > -3", {"Acme", "O'Brien & Sons", "50% Off_Shop", "acme"}),
    ("Score__c = 0.5", {"acme"}),
    ("Name LIKE 'a%'", {"Acme", "acme"}),
    ("Name LIKE '%C%'", {"Acme", "acme"}),
    ("Name LIKE '_lobex'", {"globex"}),
    ("Name LIKE '%\\%%'", {"50% Off_Shop"}),
    ("Name LIKE '%\\_%'", {"50% Off_Shop"}),
    ("Name LIKE 'o\\'brien%'", {"O'Brien & Sons"}),
    ("Name LIKE 'Acm'", set()),
    ("Name = 'O\\'Brien & Sons'", {"O'Brien & Sons"}),
    ("Industry IN ('tech', 'Retail')", {"Acme", "50% Off_Shop", "acme"}),
    ("Industry NOT IN ('Tech')", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("Industry IN ('Finance', null)", {"globex", "O'Brien & Sons"}),
    ("Industry = null", {"O'Brien & Sons"}),
    ("Industry != null", {"Acme", "globex", "50% Off_Shop", "acme"}),
    ("Tags__c INCLUDES ('Gold')", {"Acme", "50% Off_Shop"}),
    ("Tags__c INCLUDES ('gold;silver')", {"Acme", "50% Off_Shop"}),
    ("Tags__c INCLUDES ('Bronze', 'Silver')", {"Acme", "globex", "50% Off_Shop"}),
    ("Tags__c INCLUDES ('Bronze;Tin')", set()),
    ("Tags__c EXCLUDES ('Gold')", {"globex", "O'Brien & Sons", "acme"}),
    ("Tags__c = 'Silver;Gold'", {"Acme"}),
    ("Owner.Name = 'ann admin'", {"Acme", "50% Off_Shop"}),
    ("Owner.Name != 'Ann Admin'", {"globex", "O'Brien & Sons", "acme"}),
    ("Owner.Manager.Name = 'Ann Admin'", {"globex"}),
    ("OwnerId = null", {"O'Brien & Sons"}),
    ("IsDeleted = false", {"Acme", "globex", "O'Brien & Sons", "50% Off_Shop", "acme"}),
    ("IsDeleted != true", {"Acme", "globex", "O'Brien & Sons", "50% Off_Shop", "acme"}),
    (f"Id = '{A2.lower()}'", {"globex"}),
    (f"Id = '{A2[:15]}'", {"globex"}),
    (f"Id = '{A2[:15].lower()}'", set()),  # 15-char Ids are case-sensitive
    (f"Id IN ('{A1}', '{A4[:15]}')", {"Acme", "50% Off_Shop"}),
])
def test_operator(where, expected):
    assert names(where) == expected


@pytest.mark.parametrize(("where", "expected"), [
    ("FoundedDate__c = 2024-05-14", {"globex"}),
    ("FoundedDate__c > 2024-05-14", {"Acme"}),
    ("FoundedDate__c <= 2024-04-10", {"O'Brien & Sons", "50% Off_Shop"}),
    ("CreatedDate = 2024-05-15T09:00:00Z", {"Acme"}),
    ("CreatedDate = 2024-05-15T09:00:00.000Z", {"Acme"}),
    ("CreatedDate = 2024-05-15T11:00:00+02:00", {"Acme"}),
    ("CreatedDate = 2024-05-15T05:00:00-04:00", {"Acme"}),
    ("CreatedDate = 2024-05-15T09:00:00.000+0000", {"Acme"}),
    ("CreatedDate = 2024-05-15T09:00:00+00:00", {"Acme"}),
    ("CreatedDate = 2024-04-30T23:59:59.999Z", {"O'Brien & Sons"}),
    ("CreatedDate > 2024-05-15T09:00:00Z", {"acme"}),
    ("CreatedDate >= 2024-05-15T09:00:00Z", {"Acme", "acme"}),
    ("CreatedDate < 2024-01-01T00:00:00Z", {"50% Off_Shop"}),
])
def test_date_and_datetime_literals(where, expected):
    assert names(where) == expected


# ------------------------------------------------------------------------------------------- logic and nulls

@pytest.mark.parametrize(("where", "expected"), [
    ("Industry = 'Tech' AND AnnualRevenue > 100", {"Acme"}),
    ("Industry = 'Tech' OR Industry = 'Retail' OR Name = 'globex'", {"Acme", "acme", "50% Off_Shop", "globex"}),
    ("(Industry = 'Tech' AND AnnualRevenue > 100) OR Name = 'globex'", {"Acme", "globex"}),
    ("Industry = 'Tech' AND (AnnualRevenue > 100 OR Name = 'globex')", {"Acme"}),
    ("NOT Industry = 'Tech'", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("NOT (Industry = 'Tech' OR Industry = 'Finance')", {"O'Brien & Sons", "50% Off_Shop"}),
    ("Name != 'x' AND (NOT Name LIKE 'a%')", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("((Name = 'Acme'))", {"Acme", "acme"}),
])
def test_boolean_logic_and_parentheses(where, expected):
    assert names(where) == expected


@pytest.mark.parametrize(("where", "expected"), [
    # Salesforce: != / NOT IN / NOT ... match null values; = < > LIKE IN never do.
    ("Industry != 'Tech'", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("Industry NOT IN ('Tech', 'Retail')", {"globex", "O'Brien & Sons"}),
    ("NOT Industry LIKE 'T%'", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("Industry LIKE '%'", {"Acme", "globex", "50% Off_Shop", "acme"}),
    ("AnnualRevenue < 1000000000", {"Acme", "globex", "50% Off_Shop", "acme"}),
    ("AnnualRevenue > null", set()),
    ("Owner.Name = null", {"O'Brien & Sons", "acme"}),  # null lookup and dangling lookup alike
])
def test_null_semantics(where, expected):
    assert names(where) == expected


# ------------------------------------------------------------------------------------------- relative dates

@pytest.mark.parametrize(("literal", "today", "start", "end"), [
    ("TODAY", date(2024, 5, 15), date(2024, 5, 15), date(2024, 5, 16)),
    ("YESTERDAY", date(2024, 5, 15), date(2024, 5, 14), date(2024, 5, 15)),
    ("TOMORROW", date(2024, 5, 15), date(2024, 5, 16), date(2024, 5, 17)),
    ("THIS_WEEK", date(2024, 5, 15), date(2024, 5, 12), date(2024, 5, 19)),
    ("THIS_WEEK", date(2024, 5, 12), date(2024, 5, 12), date(2024, 5, 19)),  # Sunday starts the week
    ("THIS_WEEK", date(2024, 5, 18), date(2024, 5, 12), date(2024, 5, 19)),  # Saturday ends it
    ("LAST_WEEK", date(2024, 5, 15), date(2024, 5, 5), date(2024, 5, 12)),
    ("NEXT_WEEK", date(2024, 5, 15), date(2024, 5, 19), date(2024, 5, 26)),
    ("THIS_MONTH", date(2024, 5, 15), date(2024, 5, 1), date(2024, 6, 1)),
    ("LAST_MONTH", date(2024, 1, 15), date(2023, 12, 1), date(2024, 1, 1)),
    ("NEXT_MONTH", date(2024, 12, 15), date(2025, 1, 1), date(2025, 2, 1)),
    ("LAST_90_DAYS", date(2024, 5, 15), date(2024, 2, 15), date(2024, 5, 16)),
    ("NEXT_90_DAYS", date(2024, 5, 15), date(2024, 5, 16), date(2024, 8, 14)),
    ("LAST_N_DAYS:7", date(2024, 5, 15), date(2024, 5, 8), date(2024, 5, 16)),
    ("LAST_N_DAYS:1", date(2024, 5, 15), date(2024, 5, 14), date(2024, 5, 16)),
    ("NEXT_N_DAYS:7", date(2024, 5, 15), date(2024, 5, 16), date(2024, 5, 23)),
    ("N_DAYS_AGO:3", date(2024, 5, 15), date(2024, 5, 12), date(2024, 5, 13)),
    ("LAST_N_WEEKS:2", date(2024, 5, 15), date(2024, 4, 28), date(2024, 5, 12)),
    ("NEXT_N_WEEKS:2", date(2024, 5, 15), date(2024, 5, 19), date(2024, 6, 2)),
    ("N_WEEKS_AGO:1", date(2024, 5, 15), date(2024, 5, 5), date(2024, 5, 12)),
    ("LAST_N_MONTHS:2", date(2024, 5, 15), date(2024, 3, 1), date(2024, 5, 1)),
    ("NEXT_N_MONTHS:2", date(2024, 5, 15), date(2024, 6, 1), date(2024, 8, 1)),
    ("N_MONTHS_AGO:1", date(2024, 5, 15), date(2024, 4, 1), date(2024, 5, 1)),
    ("THIS_QUARTER", date(2024, 5, 15), date(2024, 4, 1), date(2024, 7, 1)),
    ("LAST_QUARTER", date(2024, 5, 15), date(2024, 1, 1), date(2024, 4, 1)),
    ("NEXT_QUARTER", date(2024, 11, 15), date(2025, 1, 1), date(2025, 4, 1)),
    ("LAST_N_QUARTERS:2", date(2024, 5, 15), date(2023, 10, 1), date(2024, 4, 1)),
    ("NEXT_N_QUARTERS:2", date(2024, 5, 15), date(2024, 7, 1), date(2025, 1, 1)),
    ("N_QUARTERS_AGO:4", date(2024, 5, 15), date(2023, 4, 1), date(2023, 7, 1)),
    ("THIS_FISCAL_QUARTER", date(2024, 5, 15), date(2024, 4, 1), date(2024, 7, 1)),
    ("THIS_YEAR", date(2024, 5, 15), date(2024, 1, 1), date(2025, 1, 1)),
    ("LAST_YEAR", date(2024, 5, 15), date(2023, 1, 1), date(2024, 1, 1)),
    ("NEXT_YEAR", date(2024, 5, 15), date(2025, 1, 1), date(2026, 1, 1)),
    ("LAST_N_YEARS:2", date(2024, 5, 15), date(2022, 1, 1), date(2024, 1, 1)),
    ("NEXT_N_YEARS:2", date(2024, 5, 15), date(2025, 1, 1), date(2027, 1, 1)),
    ("N_YEARS_AGO:1", date(2024, 5, 15), date(2023, 1, 1), date(2024, 1, 1)),
])
def test_relative_date_ranges(literal, today, start, end):
    q = parse_soql(f"SELECT Id FROM Account WHERE FoundedDate__c = {literal}", ORG)
    assert isinstance(q.where.value, RelativeDate)
    assert relative_date_range(q.where.value, today) == (start, end)


@pytest.mark.parametrize(("where", "expected"), [
    ("FoundedDate__c = TODAY", {"Acme"}),
    ("FoundedDate__c = YESTERDAY", {"globex"}),
    ("FoundedDate__c < TODAY", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("FoundedDate__c > YESTERDAY", {"Acme"}),
    ("FoundedDate__c <= YESTERDAY", {"globex", "O'Brien & Sons", "50% Off_Shop"}),
    ("FoundedDate__c >= YESTERDAY", {"Acme", "globex"}),
    ("FoundedDate__c = LAST_MONTH", {"O'Brien & Sons"}),
    ("FoundedDate__c = LAST_YEAR", {"50% Off_Shop"}),
    ("FoundedDate__c != THIS_MONTH", {"O'Brien & Sons", "50% Off_Shop", "acme"}),
    ("FoundedDate__c = LAST_N_DAYS:1", {"Acme", "globex"}),
    ("CreatedDate = TODAY", {"Acme"}),
    ("CreatedDate = THIS_WEEK", {"Acme", "globex"}),
    ("CreatedDate = LAST_WEEK", set()),
    ("CreatedDate = NEXT_WEEK", {"acme"}),
    ("CreatedDate = LAST_MONTH", {"O'Brien & Sons"}),
    ("CreatedDate < THIS_YEAR", {"50% Off_Shop"}),
    ("CreatedDate IN (TODAY, LAST_MONTH)", {"Acme", "O'Brien & Sons"}),
    ("CreatedDate > LAST_N_DAYS:3", {"acme"}),
])
def test_relative_dates_filter_date_and_datetime_fields(where, expected):
    assert names(where) == expected


def test_relative_dates_follow_now():
    later = execute(parse_soql("SELECT Name FROM Account WHERE FoundedDate__c = TODAY", ORG), ORG,
                    include_deleted=False, now=datetime(2024, 5, 14, 23, 0, tzinfo=UTC))
    assert later.frame["Name"].to_list() == ["globex"]


# ---------------------------------------------------------------------------------------------------- ORDER BY

@pytest.mark.parametrize(("order_by", "expected"), [
    ("Name", ["50% Off_Shop", "Acme", "acme", "globex", "O'Brien & Sons"]),  # case-insensitive, stable ties
    ("Name DESC", ["O'Brien & Sons", "globex", "Acme", "acme", "50% Off_Shop"]),
    ("Industry, Name", ["O'Brien & Sons", "globex", "50% Off_Shop", "Acme", "acme"]),  # nulls first by default
    ("Industry NULLS LAST, Name DESC", ["globex", "50% Off_Shop", "Acme", "acme", "O'Brien & Sons"]),
    ("Industry DESC, Name", ["Acme", "acme", "50% Off_Shop", "globex", "O'Brien & Sons"]),  # DESC: nulls last
    ("Industry DESC NULLS FIRST, Name", ["O'Brien & Sons", "Acme", "acme", "50% Off_Shop", "globex"]),
    ("AnnualRevenue ASC NULLS LAST", ["50% Off_Shop", "acme", "globex", "Acme", "O'Brien & Sons"]),
    ("Owner.Name, Name", ["acme", "O'Brien & Sons", "50% Off_Shop", "Acme", "globex"]),
    ("CreatedDate DESC", ["acme", "Acme", "globex", "O'Brien & Sons", "50% Off_Shop"]),
    ("FoundedDate__c", ["acme", "50% Off_Shop", "O'Brien & Sons", "globex", "Acme"]),
])
def test_order_by(order_by, expected):
    assert run(f"SELECT Name FROM Account ORDER BY {order_by}").frame["Name"].to_list() == expected


def test_order_by_keeps_insertion_order_for_equal_keys():
    assert run("SELECT Id FROM Account ORDER BY Industry").frame["Id"].to_list() == [A3, A2, A4, A1, A6]


@pytest.mark.parametrize(("tail", "expected", "total"), [
    ("LIMIT 2", ["50% Off_Shop", "Acme"], 2),
    ("LIMIT 2 OFFSET 3", ["globex", "O'Brien & Sons"], 2),
    ("OFFSET 4", ["O'Brien & Sons"], 1),
    ("LIMIT 10 OFFSET 10", [], 0),
    ("LIMIT 0", [], 0),
])
def test_limit_and_offset(tail, expected, total):
    result = run(f"SELECT Name FROM Account ORDER BY Name {tail}")
    assert result.frame["Name"].to_list() == expected and result.total_size == total


# ------------------------------------------------------------------------------------------ COUNT() and FIELDS()

@pytest.mark.parametrize(("soql", "include_deleted", "count"), [
    ("SELECT COUNT() FROM Account", False, 5),
    ("SELECT COUNT() FROM Account", True, 6),
    ("select count() from account where Industry = 'Tech'", False, 2),
    ("SELECT COUNT() FROM Account WHERE Industry = 'Tech'", True, 3),
    ("SELECT COUNT() FROM Contact WHERE Account.Owner.Name = 'Ann Admin'", False, 1),
    ("SELECT COUNT() FROM Account LIMIT 3", False, 3),
])
def test_count(soql, include_deleted, count):
    q = parse_soql(soql, ORG)
    assert q.is_count and q.items == ()
    result = execute(q, ORG, include_deleted=include_deleted, now=NOW)
    assert result.total_size == count and result.frame.is_empty()


@pytest.mark.parametrize(("soql", "columns"), [
    ("SELECT FIELDS(ALL) FROM Account LIMIT 200",
     ["Id", "IsDeleted", "OwnerId", "Name", "Industry", "BillingStreet", "BillingCity", "AnnualRevenue",
      "NumberOfEmployees", "Tags__c", "Score__c", "FoundedDate__c", "CreatedDate"]),
    ("SELECT FIELDS(CUSTOM) FROM Account LIMIT 5", ["Tags__c", "Score__c", "FoundedDate__c"]),
    ("SELECT FIELDS(STANDARD), Owner.Name FROM Account",
     ["Id", "IsDeleted", "OwnerId", "Name", "Industry", "BillingStreet", "BillingCity", "AnnualRevenue",
      "NumberOfEmployees", "CreatedDate", "Owner.Name", "__ref__.Owner"]),
])
def test_fields_function_expands_to_non_compound_fields_in_describe_order(soql, columns):
    q = parse_soql(soql, ORG)
    assert q.uses_fields_function and not q.selects_compound
    assert execute(q, ORG, include_deleted=False, now=NOW).frame.columns == columns


# ---------------------------------------------------------------------------------------- relationship paths

def test_relationship_paths_with_null_and_two_level_parents():
    frame = run("SELECT LastName, Account.Name, Account.Owner.Name, Account.Owner.Manager.Name FROM Contact").frame
    assert frame.columns == ["LastName", "Account.Name", "Account.Owner.Name", "Account.Owner.Manager.Name",
                             "__ref__.Account", "__ref__.Account.Owner", "__ref__.Account.Owner.Manager"]
    assert frame.rows() == [
        ("Smith", "Acme", "Ann Admin", None, A1, U1, None),          # owner without a manager
        ("Jones", "O'Brien & Sons", None, None, A3, None, None),     # account without an owner
        ("Nobody", None, None, None, None, None, None),              # no account at all
        ("Brown", "globex", "bob builder", "Ann Admin", A2, U2, U1),
    ]


def test_dangling_lookup_reads_as_null_parent():
    frame = run(f"SELECT Name, OwnerId, Owner.Name FROM Account WHERE Id = '{A6}'").frame
    assert frame.row(0) == ("acme", DANGLING_USER, None, None)


def test_where_and_order_by_on_a_parent_that_is_not_selected():
    frame = run("SELECT LastName FROM Contact WHERE Account.Name != null ORDER BY Account.Owner.Name DESC").frame
    assert frame.columns == ["LastName"]
    assert frame["LastName"].to_list() == ["Brown", "Smith", "Jones"]


def test_compound_address_is_a_struct_of_its_components_and_null_when_all_are_null():
    q = parse_soql("SELECT Name, BillingAddress FROM Account ORDER BY Name LIMIT 3", ORG)
    assert q.selects_compound
    frame = execute(q, ORG, include_deleted=False, now=NOW).frame
    assert frame.schema["BillingAddress"] == pl.Struct({"BillingStreet": pl.String, "BillingCity": pl.String})
    assert frame["BillingAddress"].to_list() == [
        {"BillingStreet": "2 Via Roma", "BillingCity": "Rome"},
        {"BillingStreet": "1 Main St", "BillingCity": "Paris"},
        None,
    ]


def test_parent_compound_field():
    frame = run("SELECT LastName, Account.BillingAddress FROM Contact WHERE LastName = 'Brown'").frame
    assert frame["Account.BillingAddress"].to_list() == [{"BillingStreet": None, "BillingCity": "Berlin"}]


# ------------------------------------------------------------------------------------------------------ errors

def test_error_message_shape_matches_salesforce():
    err = error_of("SELECT Idd FROM Account")
    assert err.error_code == "INVALID_FIELD"
    assert err.message == (
        "\nSELECT Idd FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column 'Idd' on entity 'Account'. "
        "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "
        "Please reference your WSDL or the describe call for the appropriate names.")
    assert str(err) == err.message


def test_error_row_and_column_on_a_multi_line_query():
    err = error_of("SELECT Id\nFROM Account\nWHERE Nme = 'x'")
    assert err.message.startswith("\nWHERE Nme = 'x'\n      ^\nERROR at Row:3:Column:7\nNo such column 'Nme'")


@pytest.mark.parametrize(("soql", "code", "detail"), [
    ("SELECT Id FROM Foo__c", "INVALID_TYPE", "sObject type 'Foo__c' is not supported."),
    ("SELECT Owner.Nme FROM Account", "INVALID_FIELD", "No such column 'Nme' on entity 'User'."),
    ("SELECT Own.Name FROM Account", "INVALID_FIELD", "Didn't understand relationship 'Own' in field path."),
    ("SELECT Owner FROM Account", "INVALID_FIELD", "No such column 'Owner' on entity 'Account'."),
    ("SELECT Id FORM Account", "MALFORMED_QUERY", "unexpected token: 'FORM'"),
    ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
    ("", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
    ("SELECT Id, FIELDS(ALL) FROM Account LIMIT 10", "MALFORMED_QUERY", "duplicate field selected: Id"),
    ("SELECT Id, id FROM Account", "MALFORMED_QUERY", "duplicate field selected: Id"),
    ("SELECT FIELDS(ALL) FROM Account", "MALFORMED_QUERY",
     "The SOQL FIELDS function must have a LIMIT of at most 200"),
    ("SELECT FIELDS(CUSTOM) FROM Account LIMIT 201", "MALFORMED_QUERY", "must have a LIMIT of at most 200"),
    ("SELECT FIELDS(SOME) FROM Account", "MALFORMED_QUERY", "unexpected token: 'SOME'"),
    ("SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
    ("SELECT COUNT(), Name FROM Account", "MALFORMED_QUERY", "COUNT() must be the only item"),
    ("SELECT COUNT() FROM Account ORDER BY Name", "MALFORMED_QUERY",
     "Ordered field must be grouped or aggregated: Name"),
    # aggregates and parent-to-child subqueries are supported (tests/emulator/test_soql_aggregate.py, _subquery.py):
    # what stays refused is what Salesforce refuses
    ("SELECT COUNT(Id) FROM Account LIMIT 1", "MALFORMED_QUERY", "You can't use a LIMIT clause"),
    ("SELECT SUM(Name) FROM Account", "MALFORMED_QUERY", "field Name does not support aggregate operator SUM"),
    ("SELECT Industry, Name FROM Account GROUP BY Industry", "MALFORMED_QUERY",
     "Field must be grouped or aggregated: Name"),
    ("SELECT Id FROM Account WHERE Name = 'a' HAVING", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
    ("SELECT Id, (SELECT Id FROM Contactz) FROM Account", "INVALID_TYPE", "Didn't understand relationship 'Contactz'"),
    ("SELECT TYPEOF Owner WHEN User THEN Name END FROM Account", "MALFORMED_QUERY", "TYPEOF is not supported"),
    ("SELECT Id FROM Account WITH SECURITY_ENFORCED", "MALFORMED_QUERY", "WITH is not supported"),
    ("SELECT Id FROM Account FOR UPDATE", "MALFORMED_QUERY", "FOR VIEW/REFERENCE/UPDATE is not supported"),
    ("SELECT toLabel(Industry) FROM Account", "MALFORMED_QUERY", "function TOLABEL() is not supported"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)", "MALFORMED_QUERY",
     "semi-join subquery is not supported"),
    ("SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) = 2024", "MALFORMED_QUERY",
     "function CALENDAR_YEAR() in WHERE is not supported"),
    ("SELECT Id FROM Account WHERE Name = :name", "MALFORMED_QUERY", "bind variable is not supported"),
    ('SELECT Id FROM Account WHERE Name = "x"', "MALFORMED_QUERY", "no viable alternative at character '\"'"),
    ("SELECT Id FROM Account WHERE Name = 'x", "MALFORMED_QUERY", "mismatched character '<EOF>'"),
    ("SELECT Id FROM Account WHERE Name = 'a\\qb'", "MALFORMED_QUERY", "Illegal character sequence '\\q'"),
    ("SELECT Id FROM Account WHERE Name = 'a' AND Industry = 'b' OR Name = 'c'", "MALFORMED_QUERY",
     "unexpected token: 'OR'"),
    ("SELECT Id FROM Account WHERE Name = 'a' AND NOT Industry = 'b'", "MALFORMED_QUERY",
     "unexpected token: 'NOT'"),
    ("SELECT Id FROM Account WHERE Name NOT LIKE 'a%'", "MALFORMED_QUERY", "unexpected token: 'NOT'"),
    ("SELECT Id FROM Account WHERE (Name = 'a'", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS", "MALFORMED_QUERY", "LAST_N_DAYS needs ':n'"),
    ("SELECT Id FROM Account WHERE CreatedDate = SOMEDAY", "MALFORMED_QUERY", "unexpected token: 'SOMEDAY'"),
    ("SELECT Id FROM Account WHERE CreatedDate = 2024-13-01T00:00:00Z", "MALFORMED_QUERY", "invalid dateTime"),
    ("SELECT Id FROM Account WHERE FoundedDate__c = 2024-02-30", "MALFORMED_QUERY", "invalid date"),
    ("SELECT Id FROM Account LIMIT -1", "MALFORMED_QUERY", "unexpected token: '-1'"),
    ("SELECT Id FROM Account LIMIT 5 LIMIT 5", "MALFORMED_QUERY", "unexpected token: 'LIMIT'"),
    ("SELECT Id FROM Account OFFSET 5 LIMIT 5", "MALFORMED_QUERY", "unexpected token: 'LIMIT'"),
    ("SELECT Id FROM Account ORDER Name", "MALFORMED_QUERY", "unexpected token: 'Name'"),
    ("SELECT Id FROM Account ORDER BY Name NULLS", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
    ("SELECT Id, FROM Account", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
    ("SELECT Account.Owner.Manager.Manager.Manager.Manager.Name FROM Contact", "MALFORMED_QUERY",
     "at most 5 relationships"),
    ("SELECT Id FROM Account WHERE AnnualRevenue LIKE '1%'", "INVALID_FIELD", "invalid operator on currency field"),
    ("SELECT Id FROM Account WHERE Tags__c LIKE 'G%'", "INVALID_FIELD", "invalid operator on multipicklist field"),
    ("SELECT Id FROM Account WHERE IsDeleted > false", "INVALID_FIELD", "invalid operator on boolean field"),
    ("SELECT Id FROM Account WHERE Industry INCLUDES ('Tech')", "INVALID_FIELD",
     "includes or excludes operator only valid on multipicklist field"),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01", "INVALID_FIELD",
     "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in "
     "quotes"),
    ("SELECT Id FROM Account WHERE FoundedDate__c > 2024-01-01T00:00:00Z", "INVALID_FIELD",
     "field 'FoundedDate__c' must be of type date and should not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD",
     "field 'Name' must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Name LIKE 5", "INVALID_FIELD", "must be of type string"),
    ("SELECT Id FROM Account WHERE Owner.Name IN ('a', 5)", "INVALID_FIELD",
     "field 'Owner.Name' must be of type string"),
    ("SELECT Id FROM Account WHERE AnnualRevenue = '5'", "INVALID_FIELD", "must be of type double"),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = TODAY", "INVALID_FIELD", "must be of type integer"),
    ("SELECT Id FROM Account WHERE IsDeleted = 'true'", "INVALID_FIELD", "must be of type boolean"),
    ("SELECT Id FROM Account WHERE Tags__c INCLUDES (null)", "INVALID_FIELD", "must be of type string"),
    ("SELECT Id FROM Account WHERE BillingStreet = 'x'", "INVALID_FIELD",
     "field 'BillingStreet' can not be filtered in a query call"),
    ("SELECT Id FROM Account WHERE BillingAddress = 'x'", "INVALID_FIELD", "can not be filtered"),
    ("SELECT Id FROM Account ORDER BY Tags__c", "INVALID_FIELD", "field 'Tags__c' can not be sorted in a query call"),
    ("SELECT Id FROM Contact ORDER BY Account.BillingAddress", "INVALID_FIELD", "can not be sorted"),
])
def test_rejected_query(soql, code, detail):
    err = error_of(soql)
    assert err.error_code == code
    assert "\nERROR at Row:1:Column:" in err.message and "^" in err.message
    assert detail in err.message


def test_error_caret_points_at_the_offending_token():
    err = error_of("SELECT Id FROM Account WHERE Name = 'a' AND Industry = 'b' OR Name = 'c'")
    assert "ERROR at Row:1:Column:60\n" in err.message
    assert err.message.splitlines()[2] == " " * 59 + "^"


def test_every_prefix_of_a_valid_query_parses_or_raises_soql_error():
    soql = ("SELECT Id, Name, Owner.Name, BillingAddress FROM Account WHERE (Name LIKE 'a\\%%' OR Industry IN "
            "('Tech', null)) AND CreatedDate > LAST_N_DAYS:30 AND Tags__c INCLUDES ('a;b') "
            "ORDER BY Owner.Name DESC NULLS FIRST, Name LIMIT 10 OFFSET 2")
    parse_soql(soql, ORG)
    for end in range(len(soql)):
        try:
            parse_soql(soql[:end], ORG)
        except SoqlError as err:
            assert err.error_code in ("MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE")


# ----------------------------------------------------------------------------------------------------- volume

@pytest.mark.slow
def test_million_rows_filter_sort_and_join_match_an_independent_polars_computation():
    rng = np.random.default_rng(7)
    n, n_accounts = 1_000_000, 20_000
    accounts = pl.DataFrame({
        "Id": [sid("001", i) for i in range(n_accounts)], "IsDeleted": rng.random(n_accounts) < 0.01,
        "OwnerId": [U1] * n_accounts, "Name": [f"Account {i % 5000}" for i in range(n_accounts)],
    })
    account_ids = accounts["Id"].to_numpy()
    contacts = pl.DataFrame({
        "Id": [sid("003", i) for i in range(n)], "IsDeleted": rng.random(n) < 0.01,
        "AccountId": pl.Series(account_ids[rng.integers(0, n_accounts, n)]).scatter(np.arange(0, n, 97), None),
        "LastName": pl.Series(rng.choice(["smith", "Smith", "jones", "Brown", "Émile", None], n)),
        "Birthdate": pl.Series(rng.integers(0, 20_000, n)).cast(pl.Date),
        "Description": [None] * n,
    })
    org = TinyOrg({"User": USERS, "Account": accounts, "Contact": contacts}, FIELDS)
    result = execute(parse_soql(
        "SELECT Id, LastName, Birthdate, Account.Name FROM Contact WHERE Birthdate >= 1990-01-01 AND "
        "(LastName = 'SMITH' OR LastName LIKE 'b%') ORDER BY LastName DESC, Birthdate NULLS LAST LIMIT 5000 "
        "OFFSET 17", org), org, include_deleted=False, now=NOW)

    parents = accounts.select(pl.col("Id").alias("__ref__.Account"), pl.col("Name").alias("Account.Name"))
    expected = (
        contacts.with_row_index("row")
        .filter(~pl.col("IsDeleted"), pl.col("Birthdate") >= date(1990, 1, 1),
                pl.col("LastName").str.to_lowercase().is_in(["smith"])
                | pl.col("LastName").str.to_lowercase().str.starts_with("b"))
        .sort([pl.col("LastName").str.to_lowercase(), "Birthdate", "row"], descending=[True, False, False],
              nulls_last=[True, True, False])
        .slice(17, 5000)
        .join(parents, left_on="AccountId", right_on="__ref__.Account", how="left", coalesce=False,
              maintain_order="left")
        .select("Id", "LastName", "Birthdate", "Account.Name", "__ref__.Account")
    )
    assert result.total_size == 5000
    assert_frame_equal(result.frame, expected)


def test_random_well_formed_and_ill_typed_queries_never_crash():
    """Generated queries over every field, operator and literal form: each runs or raises SoqlError."""
    fields = ["Id", "Name", "Owner.Name", "Owner.Manager.Name", "Industry", "Tags__c", "CreatedDate",
              "FoundedDate__c", "AnnualRevenue", "NumberOfEmployees", "IsDeleted", "Score__c", "BillingCity"]
    ops = ["=", "!=", "<", ">=", "LIKE", "IN", "NOT IN", "INCLUDES", "EXCLUDES"]
    values = ["'a%'", "'Gold;Silver'", "5", "-1.5", "null", "true", "TODAY", "LAST_N_DAYS:3", "2024-01-01",
              "2024-01-01T00:00:00Z", "('Tech', null)", "(1, 2)", "(TODAY, 2024-01-01)"]
    rng = random.Random(3)
    executed = 0
    for _ in range(400):
        where = " AND ".join(f"{rng.choice(fields)} {rng.choice(ops)} {rng.choice(values)}"
                             for _ in range(rng.randint(1, 2)))
        soql = (f"SELECT {', '.join(rng.sample(fields, 3))} FROM Account WHERE {where} "
                f"ORDER BY {rng.choice(fields)} DESC LIMIT 3")
        try:
            result = run(soql, include_deleted=True)
        except SoqlError as err:
            assert err.error_code in ("MALFORMED_QUERY", "INVALID_FIELD")
        else:
            executed += 1
            assert result.total_size == result.frame.height <= 3
    assert executed > 10


def test_hashed_lookup_join_equals_the_string_key_join_it_replaces():
    from emulator.soql_exec import hashed_lookup_join, string_key_join

    rel = parse_soql("SELECT Owner.Name FROM Account", ORG).relationships[0]
    for parent in (USERS, USERS.clear()):
        expected = string_key_join(ACCOUNTS.lazy(), rel, parent, ["Email", "Name"]).collect()
        assert_frame_equal(hashed_lookup_join(ACCOUNTS.lazy(), rel, parent, ["Email", "Name"]).collect(), expected)


def test_duplicate_parent_ids_do_not_duplicate_children():
    users = pl.concat([USERS, USERS.with_columns(pl.lit("Impostor").alias("Name"))])
    org = TinyOrg({"User": users, "Account": ACCOUNTS, "Contact": CONTACTS}, FIELDS)
    frame = run("SELECT Name, Owner.Name FROM Account", catalog=org).frame
    assert frame["Owner.Name"].to_list() == ["Ann Admin", "bob builder", None, "Ann Admin", None]
