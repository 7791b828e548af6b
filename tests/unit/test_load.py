"""tasks/load: summary.csv + summary.schema.json -> summary.json, typed, ordered, UTF-8 and atomic."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import polars as pl
import pytest

from tasks.load import load_csv_to_json, load_summary_file, read_summary_csv
from tasks.process import process_object_file, summary_schema_path_for
from tests.fixtures_raw import write_raw_fixture
from utils.atomic import is_temp_path

CASE_COLUMNS = [("Id", "id"), ("Status", "picklist"), ("Priority", "picklist"), ("IsEscalated", "boolean"),
                ("ClosedDate", "datetime"), ("SystemModstamp", "datetime")]
CASE_ROWS = [
    ["500A", "New", "High", "true", None, "2024-01-01T00:00:00.000Z"],
    ["500B", "Closed", "High", "false", "2024-05-06T07:08:09.123Z", "2024-01-01T00:00:00.000Z"],
    ["500C", "Closed", "High", "true", "2024-05-06T07:08:00.000Z", "2024-01-01T00:00:00.000Z"],
    ["500D", "Closed", None, "true", None, "2024-01-01T00:00:00.000Z"],
]
CONTACT_COLUMNS = [("Id", "id"), ("LeadSource", "picklist"), ("AccountId", "reference"), ("Email", "email"),
                   ("Birthdate", "date"), ("SystemModstamp", "datetime")]


def _summary_for(tmp_path, object_name, columns, rows):
    raw = write_raw_fixture(tmp_path / "raw", object_name, columns, rows)
    return process_object_file(object_name, raw, data_root=tmp_path / "data")


def test_case_summary_json_has_expected_values_types_and_key_order(tmp_path):
    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, CASE_ROWS)
    out = load_summary_file("Case", summary_csv, data_root=tmp_path / "data")
    assert out == tmp_path / "data" / "output" / "Case" / "summary.json"
    records = json.loads(out.read_text(encoding="utf-8"))
    assert records == [
        {"Status": "Closed", "Priority": None, "Id_count": 1, "IsEscalated_sum": 1,
         "ClosedDate_null_count": 1, "ClosedDate_max": None},
        {"Status": "Closed", "Priority": "High", "Id_count": 2, "IsEscalated_sum": 1,
         "ClosedDate_null_count": 0, "ClosedDate_max": "2024-05-06T07:08:09.123Z"},
        {"Status": "New", "Priority": "High", "Id_count": 1, "IsEscalated_sum": 1,
         "ClosedDate_null_count": 1, "ClosedDate_max": None},
    ]
    assert all(list(r) == ["Status", "Priority", "Id_count", "IsEscalated_sum", "ClosedDate_null_count",
                           "ClosedDate_max"] for r in records)
    assert all(type(r["Id_count"]) is int for r in records)


def test_dates_floats_and_unicode(tmp_path):
    rows = [
        ["003A", "Messe München", "001X", None, "1990-02-28", "2024-01-01T00:00:00.000Z"],
        ["003B", "Messe München", "001X", "a@b.c", "1985-07-01", "2024-01-01T00:00:00.000Z"],
        ["003C", 'Web, "organic"', None, None, None, "2024-01-01T00:00:00.000Z"],
    ]
    summary_csv = _summary_for(tmp_path, "Contact", CONTACT_COLUMNS, rows)
    out = load_summary_file("Contact", summary_csv, data_root=tmp_path / "data")
    text = out.read_text(encoding="utf-8")
    assert "Messe München" in text  # written as UTF-8, not \u escapes
    assert json.loads(text) == [
        {"LeadSource": "Messe München", "Id_count": 2, "AccountId_n_unique": 1, "Email_null_count": 1,
         "Birthdate_min": "1985-07-01", "Birthdate_max": "1990-02-28"},
        {"LeadSource": 'Web, "organic"', "Id_count": 1, "AccountId_n_unique": 0, "Email_null_count": 1,
         "Birthdate_min": None, "Birthdate_max": None},
    ]


def test_float_metrics_round_trip_exactly(tmp_path):
    columns = [("Id", "id"), ("StageName", "picklist"), ("Amount", "currency"), ("Probability", "percent")]
    rows = [["1", "A", "0.1", "33.3"], ["2", "A", "0.2", "66.6"], ["3", "A", "1e-07", None]]
    summary_csv = _summary_for(tmp_path, "Opportunity", columns, rows)
    frame = read_summary_csv(summary_csv)
    out = load_summary_file("Opportunity", summary_csv, data_root=tmp_path / "data")
    record = json.loads(out.read_text(encoding="utf-8"))[0]
    assert record["Amount_sum"] == frame["Amount_sum"][0]  # shortest repr both ways: no digits lost
    assert record["Amount_std"] == frame["Amount_std"][0]
    assert type(record["Amount_mean"]) is float and record["Amount_min"] == 1e-07


def test_boolean_group_keys_become_json_booleans(tmp_path):
    columns = [("Id", "id"), ("Status", "picklist"), ("IsConverted", "boolean"), ("AnnualRevenue", "currency"),
               ("Company", "string"), ("SystemModstamp", "datetime")]
    rows = [
        ["00QA", "Open", "false", "10.0", "Acme", "2024-01-01T00:00:00.000Z"],
        ["00QB", "Open", "true", None, "Acme", "2024-01-01T00:00:00.000Z"],
        ["00QC", "Open", None, "5.0", "Globex", "2024-01-01T00:00:00.000Z"],
        ["00QD", "Open", "false", "2.5", "Globex", "2024-01-01T00:00:00.000Z"],
    ]
    summary_csv = _summary_for(tmp_path, "Lead", columns, rows)
    out = load_summary_file("Lead", summary_csv, data_root=tmp_path / "data")
    assert json.loads(out.read_text(encoding="utf-8")) == [
        {"Status": "Open", "IsConverted": None, "Id_count": 1, "AnnualRevenue_sum": 5.0,
         "AnnualRevenue_mean": 5.0, "Company_n_unique": 1},
        {"Status": "Open", "IsConverted": False, "Id_count": 2, "AnnualRevenue_sum": 12.5,
         "AnnualRevenue_mean": 6.25, "Company_n_unique": 2},
        {"Status": "Open", "IsConverted": True, "Id_count": 1, "AnnualRevenue_sum": None,
         "AnnualRevenue_mean": None, "Company_n_unique": 1},
    ]


def test_empty_summary_becomes_empty_array(tmp_path):
    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, [])
    out = load_summary_file("Case", summary_csv, data_root=tmp_path / "data")
    assert json.loads(out.read_text(encoding="utf-8")) == []


def test_no_temp_files_and_rerun_replaces(tmp_path):
    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, CASE_ROWS)
    out = load_summary_file("Case", summary_csv, data_root=tmp_path / "data")
    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, CASE_ROWS[:1])
    load_summary_file("Case", summary_csv, data_root=tmp_path / "data")
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 1
    assert [p for p in out.parent.iterdir() if is_temp_path(p)] == []


def test_schema_that_disagrees_with_the_csv_fails_and_keeps_the_old_json(tmp_path):
    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, CASE_ROWS)
    out = load_summary_file("Case", summary_csv, data_root=tmp_path / "data")
    before = out.read_bytes()
    schema_path = summary_schema_path_for(summary_csv)
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    schema["columns"]["Renamed"] = schema["columns"].pop("Id_count")
    schema_path.write_text(json.dumps(schema), encoding="utf-8")
    with pytest.raises(ValueError, match="re-run processing"):
        load_summary_file("Case", summary_csv, data_root=tmp_path / "data")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["summary.json"]


def test_values_that_do_not_match_the_schema_type_fail(tmp_path):
    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, CASE_ROWS)
    schema_path = summary_schema_path_for(summary_csv)
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    schema["columns"]["Status"] = "Date"  # "Closed" is not a date: never silently nulled
    schema_path.write_text(json.dumps(schema), encoding="utf-8")
    with pytest.raises(pl.exceptions.PolarsError, match="Closed"):
        load_summary_file("Case", summary_csv, data_root=tmp_path / "data")


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run processing for this object first"):
        load_summary_file("Case", tmp_path / "nope" / "summary.csv", data_root=tmp_path)
    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, CASE_ROWS)
    summary_schema_path_for(summary_csv).unlink()
    with pytest.raises(FileNotFoundError, match="re-run processing"):
        load_summary_file("Case", summary_csv, data_root=tmp_path / "data")


def test_task_fn_returns_the_json_path_as_str(tmp_path):
    from prefect.logging import disable_run_logger

    summary_csv = _summary_for(tmp_path, "Case", CASE_COLUMNS, CASE_ROWS)
    with disable_run_logger():
        result = load_csv_to_json.fn("Case", str(summary_csv), data_root=str(tmp_path / "data"))
    assert result == str(tmp_path / "data" / "output" / "Case" / "summary.json")
    assert load_csv_to_json.task_run_name == "load-{object_name}"


@pytest.mark.slow
@pytest.mark.integration
def test_tasks_run_inside_a_flow_with_their_run_names(tmp_path, prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client

    from tasks.process import process_object_data

    raw = write_raw_fixture(tmp_path / "raw", "Case", CASE_COLUMNS, CASE_ROWS)

    @flow
    def phase1(object_name: str, raw_csv: str, data_root: str) -> str:
        summary = process_object_data(object_name, raw_csv, data_root=data_root)
        return load_csv_to_json(object_name, summary, data_root=data_root)

    state = phase1("Case", str(raw), str(tmp_path / "data"), return_state=True)
    out = state.result()
    assert json.loads(Path(out).read_text(encoding="utf-8"))[0]["Status"] == "Closed"

    async def task_run_names():
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        async with get_client() as client:  # filter server-side: the session's DB holds many other runs
            flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            runs = await client.read_task_runs(flow_run_filter=flow_runs)
            return {r.name for r in runs}

    deadline = time.monotonic() + 20  # on a loaded machine the run records can trail the flow's return
    while (names := asyncio.run(task_run_names())) != {"process-Case", "load-Case"} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert names == {"process-Case", "load-Case"}
