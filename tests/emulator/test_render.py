"""REST JSON records and Bulk CSV rendering: nesting, null parents, value formats, quoting, number text."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone

import polars as pl

from emulator.render import ROOT_ID, csv_chunks, record_plan, rest_records

DT = pl.Datetime("ms", "UTC")


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "Name": ['Acme, "West"\nline 2', None],
        "Amount": [1500000.0, 0.5],
        "Probability": [10.0, None],
        "Owner.Name": ["Zoë Ångström", None],
        "Account.Owner.Name": ["株式会社", None],
        "CloseDate": [date(2024, 2, 29), None],
        "CreatedDate": [datetime(2024, 1, 1, 12, 0, 0, 5000, tzinfo=timezone.utc)] * 2,
        "IsWon": [True, False],
        "__ref__.Owner": ["005EM0000000001YAA", None],
        "__ref__.Account": ["001EM0000000001YAA", "001EM0000000002YAA"],
        "__ref__.Account.Owner": ["005EM0000000002YAA", None],
        ROOT_ID: ["006EM0000000001YAA", "006EM0000000002YAA"],
    }, schema_overrides={"CreatedDate": DT})


def test_rest_records_nest_relationships_and_null_parents():
    paths = [("Name",), ("Owner", "Name"), ("Amount",), ("Account", "Owner", "Name"), ("CloseDate",),
             ("CreatedDate",), ("IsWon",)]
    records = json.loads(rest_records(_frame(), record_plan("Opportunity", paths, "59.0")))
    first, second = records
    assert list(first) == ["attributes", "Name", "Owner", "Amount", "Account", "CloseDate", "CreatedDate", "IsWon"]
    assert first["attributes"] == {"type": "Opportunity",
                                   "url": "/services/data/v59.0/sobjects/Opportunity/006EM0000000001YAA"}
    assert first["Owner"] == {"attributes": {"type": "User",
                                             "url": "/services/data/v59.0/sobjects/User/005EM0000000001YAA"},
                              "Name": "Zoë Ångström"}
    assert first["Account"]["Owner"]["Name"] == "株式会社"
    assert first["Account"]["attributes"]["type"] == "Account"
    assert first["CreatedDate"] == "2024-01-01T12:00:00.005+0000" and first["CloseDate"] == "2024-02-29"
    assert second["Owner"] is None and second["Account"]["Owner"] is None and second["Name"] is None


def test_rest_records_of_an_empty_page():
    assert rest_records(_frame().head(0), record_plan("Opportunity", [("Name",)], "59.0")) == b"[]"


def test_bulk_csv_quotes_everything_and_matches_json_number_text():
    frame = _frame()
    columns = ["Name", "Amount", "Probability", "Owner.Name", "CloseDate", "CreatedDate", "IsWon"]
    text = b"".join(csv_chunks(frame, columns, chunk_rows=1)).decode()
    assert text.startswith('"Name","Amount","Probability","Owner.Name","CloseDate","CreatedDate","IsWon"\n'
                           '"Acme, ""West""\nline 2","1500000.0","10.0",')
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ['Acme, "West"\nline 2', json.dumps(1500000.0), json.dumps(10.0), "Zoë Ångström",
                       "2024-02-29", "2024-01-01T12:00:00.005Z", "true"]
    assert rows[2] == ["", json.dumps(0.5), "", "", "", "2024-01-01T12:00:00.005Z", "false"]
    assert '"","0.5","","",""' in text  # null is an empty quoted value
    assert text.count('"Name"') == 1


def test_bulk_csv_delimiter_line_ending_and_header_only():
    frame = _frame().select("Name", "IsWon").head(1)
    text = b"".join(csv_chunks(frame, ["Name", "IsWon"], delimiter="PIPE", line_ending="CRLF")).decode()
    assert text.startswith('"Name"|"IsWon"\r\n"Acme, ""West""\nline 2"|"true"\r\n')
    assert b"".join(csv_chunks(frame.head(0), ["Name", "IsWon"])) == b'"Name","IsWon"\n'
