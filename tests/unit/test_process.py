"""tasks/process: aggregation semantics, edge cases, type checks and the summary files."""

from __future__ import annotations

import math
import random
import statistics
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from configs.salesforce_objects import SALESFORCE_OBJECTS, ObjectSpec
from tasks import process
from tasks.load import read_summary_csv
from tasks.process import (
    build_summary,
    check_summary_spec,
    metric_columns,
    process_object_data,
    process_object_file,
    read_summary_schema,
    sink_summary_csv,
    summary_schema,
    summary_schema_path_for,
    write_summary_schema,
)
from tests.fixtures_raw import write_raw_fixture
from utils.atomic import is_temp_path
from utils.errors import ConfigError
from utils.raw_frame import scan_dataset
from utils.raw_schema import RawColumn, RawSchema

# Describe types of every field the registry uses (what a real describe call returns).
REGISTRY_SF_TYPES = {
    "Id": "id", "Name": "string", "Type": "picklist", "Industry": "picklist", "BillingCountry": "string",
    "AnnualRevenue": "currency", "NumberOfEmployees": "int", "Rating": "picklist", "OwnerId": "reference",
    "Owner.Name": "string", "CreatedDate": "datetime", "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime", "FirstName": "string", "LastName": "string", "Email": "email",
    "Title": "string", "LeadSource": "picklist", "MailingCountry": "string", "Birthdate": "date",
    "HasOptedOutOfEmail": "boolean", "AccountId": "reference", "Account.Name": "string",
    "StageName": "picklist", "Amount": "currency", "Probability": "percent", "CloseDate": "date",
    "IsClosed": "boolean", "IsWon": "boolean", "ForecastCategory": "picklist", "Company": "string",
    "Status": "picklist", "IsConverted": "boolean", "CaseNumber": "string", "Subject": "string",
    "Priority": "picklist", "Origin": "picklist", "IsEscalated": "boolean", "ContactId": "reference",
    "ClosedDate": "datetime",
}

OPP_COLUMNS = [("Id", "id"), ("StageName", "picklist"), ("Amount", "currency"), ("Probability", "percent")]


def _schema(object_name: str, columns: list[tuple[str, str]]) -> RawSchema:
    return RawSchema(object=object_name, columns=tuple(RawColumn(n, t) for n, t in columns), row_count=0)


def _summarise(tmp_path, spec, columns, rows, object_name="Thing") -> pl.DataFrame:
    raw = write_raw_fixture(tmp_path, object_name, columns, rows)
    raw_schema = _schema(object_name, columns)
    return build_summary(scan_dataset(raw, raw_schema), spec, raw_schema, object_name=object_name).collect()


def _spec(fields, group_by=(), metrics=None) -> ObjectSpec:
    fields = tuple(dict.fromkeys(("Id", "SystemModstamp", *fields)))
    return ObjectSpec(fields=fields, group_by=group_by, metrics=metrics or {})


# --- hand-computed small fixture (the real Opportunity registry entry) --------------------------------------


def test_opportunity_summary_matches_hand_computed_values(tmp_path):
    rows = [
        ["006A", "Prospecting", "100.0", "10.0"],
        ["006B", "Prospecting", "300.0", "30.0"],
        ["006C", "Prospecting", None, "20.0"],
        ["006D", "Closed Won", "1000.0", "100.0"],
        ["006E", None, "50.5", None],
    ]
    out = _summarise(tmp_path, SALESFORCE_OBJECTS["Opportunity"], OPP_COLUMNS, rows, "Opportunity")
    assert out.columns == SALESFORCE_OBJECTS["Opportunity"].summary_columns()
    assert out.rows() == [
        # StageName, Id_count, Amount_sum, _mean, _median, _min, _max, _std, Probability_mean
        (None, 1, 50.5, 50.5, 50.5, 50.5, 50.5, None, None),  # null key first; std of one value is null
        ("Closed Won", 1, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, None, 100.0),
        ("Prospecting", 3, 400.0, 200.0, 200.0, 100.0, 300.0, pytest.approx(math.sqrt(20000.0)), 20.0),
    ]


def test_counting_aggregations_and_boolean_semantics(tmp_path):
    columns = [("Id", "id"), ("G", "string"), ("X", "int"), ("B", "boolean")]
    spec = _spec(["G", "X", "B"], group_by=("G",), metrics={
        "X": ("count", "n_unique", "null_count", "sum"),
        "B": ("sum", "mean", "count", "min", "max"),
    })
    rows = [
        ["1", "a", "5", "true"],
        ["2", "a", "5", "false"],
        ["3", "a", None, "true"],
        ["4", "a", "7", None],
        ["5", "b", None, None],  # group whose metric values are all null
    ]
    out = _summarise(tmp_path, spec, columns, rows)
    assert out.rows(named=True) == [
        {"G": "a", "X_count": 3, "X_n_unique": 2, "X_null_count": 1, "X_sum": 17,
         "B_sum": 2, "B_mean": pytest.approx(2 / 3), "B_count": 3, "B_min": False, "B_max": True},
        # n_unique ignores null (SQL COUNT DISTINCT); sums over no values are null, not 0
        {"G": "b", "X_count": 0, "X_n_unique": 0, "X_null_count": 1, "X_sum": None,
         "B_sum": None, "B_mean": None, "B_count": 0, "B_min": None, "B_max": None},
    ]
    assert out.schema["X_sum"] == pl.Int64() and out.schema["B_sum"] == pl.Int64()
    assert out.schema["B_mean"] == pl.Float64()


def test_metric_column_entirely_null(tmp_path):
    columns = [("Id", "id"), ("G", "string"), ("Amount", "currency"), ("D", "date")]
    spec = _spec(["G", "Amount", "D"], group_by=("G",), metrics={
        "Amount": ("count", "null_count", "n_unique", "sum", "mean", "median", "min", "max", "std"),
        "D": ("min", "max"),
    })
    rows = [["1", "x", None, None], ["2", "x", None, None], ["3", "y", None, None]]
    out = _summarise(tmp_path, spec, columns, rows)
    expected_nulls = dict.fromkeys(["Amount_sum", "Amount_mean", "Amount_median", "Amount_min", "Amount_max",
                                    "Amount_std", "D_min", "D_max"])
    assert out.rows(named=True) == [
        {"G": "x", "Amount_count": 0, "Amount_null_count": 2, "Amount_n_unique": 0, **expected_nulls},
        {"G": "y", "Amount_count": 0, "Amount_null_count": 1, "Amount_n_unique": 0, **expected_nulls},
    ]
    assert dict(out.schema) == summary_schema(spec, _schema("Thing", columns))


def test_text_date_and_datetime_min_max(tmp_path):
    columns = [("Id", "id"), ("Name", "string"), ("D", "date"), ("T", "datetime")]
    spec = _spec(["Name", "D", "T"], metrics={"Name": ("min", "max", "n_unique"), "D": ("min", "max"),
                                              "T": ("min", "max")})
    rows = [
        ["1", "beta", "2024-03-01", "2024-01-01T00:00:00.500Z"],
        ["2", "Alpha", "2023-12-31", "2025-06-30T23:59:59.999Z"],
        ["3", "älpha", None, None],
        ["4", "beta", "2024-02-29", "2024-01-01T00:00:00.000Z"],
    ]
    out = _summarise(tmp_path, spec, columns, rows)
    utc = timezone.utc
    assert out.rows() == [(
        "Alpha", "älpha", 3,  # bytewise: uppercase < lowercase < non-ASCII
        date(2023, 12, 31), date(2024, 3, 1),
        datetime(2024, 1, 1, tzinfo=utc), datetime(2025, 6, 30, 23, 59, 59, 999000, tzinfo=utc),
    )]


# --- edge cases ---------------------------------------------------------------------------------------------


def test_headers_only_with_group_by_gives_empty_summary_with_exact_columns(tmp_path):
    spec = SALESFORCE_OBJECTS["Opportunity"]
    out = _summarise(tmp_path, spec, OPP_COLUMNS, [], "Opportunity")
    assert out.height == 0
    assert dict(out.schema) == summary_schema(spec, _schema("Opportunity", OPP_COLUMNS))
    assert out.columns == spec.summary_columns()


def test_headers_only_without_group_by_gives_one_sql_like_row(tmp_path):
    columns = [("Id", "id"), ("Amount", "currency"), ("B", "boolean")]
    spec = _spec(["Amount", "B"], metrics={
        "Id": ("count", "n_unique"),
        "Amount": ("sum", "mean", "max", "std", "null_count"),
        "B": ("sum", "mean"),
    })
    out = _summarise(tmp_path, spec, columns, [])
    assert out.rows(named=True) == [{
        "Id_count": 0, "Id_n_unique": 0, "Amount_sum": None, "Amount_mean": None, "Amount_max": None,
        "Amount_std": None, "Amount_null_count": 0, "B_sum": None, "B_mean": None,
    }]


def test_no_group_by_summarises_the_whole_table(tmp_path):
    columns = [("Id", "id"), ("Amount", "currency")]
    spec = _spec(["Amount"], metrics={"Id": ("count",), "Amount": ("sum", "median")})
    rows = [["1", "1.0"], ["2", "2.0"], ["3", None], ["4", "10.0"]]
    assert _summarise(tmp_path, spec, columns, rows).rows() == [(4, 13.0, 2.0)]


def test_tricky_text_keys_survive_the_summary_csv(tmp_path):
    columns = [("Id", "id"), ("StageName", "picklist"), ("Amount", "currency"), ("Probability", "percent")]
    keys = ['Closed, "Won"', "multi\nline\r\nkey", "東京 ✓", "Zoë", " leading space", "'single'", "=1+1"]
    rows = [[str(i), key, str(float(i)), "50.0"] for i, key in enumerate(keys)] + [["99", None, "1.0", None]]
    raw = write_raw_fixture(tmp_path / "raw", "Opportunity", columns, rows)
    summary_csv = process_object_file("Opportunity", raw, data_root=tmp_path / "data")
    back = read_summary_csv(summary_csv)
    assert back["StageName"].to_list() == [None, *sorted(keys, key=lambda k: k.encode("utf-8"))]
    assert dict(zip(back["StageName"], back["Amount_sum"], strict=True)) == {
        None: 1.0, **{key: float(i) for i, key in enumerate(keys)}
    }


@pytest.mark.parametrize("batch_rows", [2_000_000, 1, 2])
def test_medians_join_back_on_null_text_and_boolean_keys(tmp_path, monkeypatch, batch_rows):
    # Medians are held per batch of groups (text keys as categorical codes) and joined back on the group keys;
    # tiny batches read the groups back one or two at a time, with the same result.
    monkeypatch.setattr(process, "HOLD_BATCH_ROWS", batch_rows)
    columns = [("Id", "id"), ("StageName", "picklist"), ("IsWon", "boolean"), ("Amount", "currency")]
    spec = _spec(["StageName", "IsWon", "Amount"], group_by=("StageName", "IsWon"), metrics={"Amount": ("median",)})
    rows = [["1", None, None, "1.0"], ["2", None, None, "3.0"], ["3", "Won", None, "5.0"], ["4", "Won", "true", "7.0"],
            ["5", None, "true", None], ["6", "Won", "true", "9.0"]]
    out = _summarise(tmp_path, spec, columns, rows)
    assert out.rows() == [(None, None, 2.0), (None, True, None), ("Won", None, 5.0), ("Won", True, 8.0)]
    assert out.schema["StageName"] == pl.Utf8() and out.schema["Amount_median"] == pl.Float64()


def test_boolean_and_date_group_keys_sort_nulls_first(tmp_path):
    columns = [("Id", "id"), ("IsWon", "boolean"), ("CloseDate", "date"), ("Amount", "currency")]
    spec = _spec(["IsWon", "CloseDate", "Amount"], group_by=("IsWon", "CloseDate"),
                 metrics={"Id": ("count",), "Amount": ("sum",)})
    rows = [
        ["1", "true", "2024-01-02", "1.0"],
        ["2", "false", "2024-01-02", "2.0"],
        ["3", "true", "2024-01-01", "4.0"],
        ["4", None, "2024-01-02", "8.0"],
        ["5", "true", None, "16.0"],
        ["6", "true", "2024-01-02", "32.0"],
    ]
    out = _summarise(tmp_path, spec, columns, rows)
    assert out.rows() == [
        (None, date(2024, 1, 2), 1, 8.0),
        (False, date(2024, 1, 2), 1, 2.0),
        (True, None, 1, 16.0),
        (True, date(2024, 1, 1), 1, 4.0),
        (True, date(2024, 1, 2), 2, 33.0),
    ]
    assert out.schema["IsWon"] == pl.Boolean() and out.schema["CloseDate"] == pl.Date()


def test_process_writes_csv_and_schema_that_read_back_identically(tmp_path):
    columns = [("Id", "id"), ("Status", "picklist"), ("Priority", "picklist"), ("IsEscalated", "boolean"),
               ("ClosedDate", "datetime"), ("CaseNumber", "string"), ("SystemModstamp", "datetime")]
    rows = [
        ["500A", "New", "High", "true", None, "0001", "2024-01-01T00:00:00.000Z"],
        ["500B", "Closed", "High", "false", "2024-05-06T07:08:09.123Z", "0002", "2024-01-01T00:00:00.000Z"],
        ["500C", "Closed", None, "true", "2024-05-06T07:08:10.000Z", "0003", "2024-01-01T00:00:00.000Z"],
    ]
    raw = write_raw_fixture(tmp_path / "raw", "Case", columns, rows)
    summary_csv = process_object_file("Case", raw, data_root=tmp_path / "data")
    assert summary_csv == tmp_path / "data" / "processed" / "Case" / "summary.csv"
    raw_schema = _schema("Case", columns)
    spec = SALESFORCE_OBJECTS["Case"]
    expected = build_summary(scan_dataset(raw, raw_schema), spec, raw_schema, object_name="Case").collect()
    assert read_summary_schema(summary_schema_path_for(summary_csv)) == summary_schema(spec, raw_schema)
    assert read_summary_csv(summary_csv).equals(expected)
    assert [p for p in summary_csv.parent.iterdir() if is_temp_path(p)] == []


def test_rerun_replaces_the_summary(tmp_path):
    data = tmp_path / "data"
    first = write_raw_fixture(tmp_path / "r1", "Opportunity", OPP_COLUMNS, [["1", "A", "1.0", "1.0"]])
    second = write_raw_fixture(tmp_path / "r2", "Opportunity", OPP_COLUMNS, [["1", "B", "2.0", "1.0"]])
    process_object_file("Opportunity", first, data_root=data)
    out = process_object_file("Opportunity", second, data_root=data)
    assert read_summary_csv(out)["StageName"].to_list() == ["B"]


def test_failure_while_streaming_keeps_the_old_summary(tmp_path):
    data = tmp_path / "data"
    good = write_raw_fixture(tmp_path / "good", "Opportunity", OPP_COLUMNS, [["1", "A", "1.0", "1.0"]])
    out = process_object_file("Opportunity", good, data_root=data)
    before = out.read_bytes()
    # A currency cell that is not a number only fails once Polars reads it, i.e. mid-write.
    bad = write_raw_fixture(tmp_path / "bad", "Opportunity", OPP_COLUMNS, [["1", "A", "lots", "1.0"]])
    with pytest.raises(pl.exceptions.PolarsError):
        process_object_file("Opportunity", bad, data_root=data)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["summary.csv", "summary.schema.json"]


# --- configuration errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sf_type", "aggregation", "advice"),
    [
        ("string", "sum", "choose a numeric column"),
        ("picklist", "mean", "choose a numeric column"),
        ("date", "median", "use count, n_unique, null_count, min or max"),
        ("datetime", "std", "use count, n_unique, null_count, min or max"),
        ("date", "sum", "use count, n_unique, null_count, min or max"),
        ("boolean", "median", "use sum (number of trues) or mean (share of trues)"),
        ("boolean", "std", "use sum (number of trues) or mean (share of trues)"),
    ],
)
def test_aggregation_that_does_not_fit_the_type_is_a_config_error(sf_type, aggregation, advice):
    raw_schema = _schema("Widget", [("Id", "id"), ("Col", sf_type)])
    spec = _spec(["Col"], metrics={"Col": (aggregation,)})
    # A plan over a file that does not exist: the check must fire before anything is read.
    lf = pl.scan_csv("/nonexistent/never-read.csv", schema={"Id": pl.Utf8, "Col": pl.Utf8})
    with pytest.raises(ConfigError) as info:
        build_summary(lf, spec, raw_schema, object_name="Widget")
    message = str(info.value)
    assert "Widget" in message and "'Col'" in message and f"'{aggregation}'" in message and advice in message


def test_the_aggregation_rule_sees_each_salesforce_type_as_processing_reads_it():
    """utils/aggregations judges describe types; it must agree with the dtype processing reads each type as."""
    from utils import sf_types
    from utils.aggregations import column_kind

    kind_of_dtype = {pl.Int64(): "numeric", pl.Float64(): "numeric", pl.Boolean(): "boolean", pl.Date(): "date",
                     sf_types.DATETIME_DTYPE: "datetime", pl.Utf8(): "text"}
    known = {*sf_types.STRING_TYPES, *sf_types.NUMERIC_TYPES, "boolean", "date", "datetime"}
    for sf_type in sorted(known):
        assert column_kind(sf_type) == kind_of_dtype[sf_types.polars_dtype_for(sf_type)], sf_type
        assert column_kind(sf_type.upper()) == column_kind(sf_type)


def test_every_problem_is_listed_at_once():
    raw_schema = _schema("Widget", [("Id", "id"), ("Name", "string"), ("D", "date")])
    spec = _spec(["Name", "D", "Missing", "Gone"], group_by=("Gone",),
                 metrics={"Name": ("sum",), "D": ("mean",), "Missing": ("count",)})
    with pytest.raises(ConfigError) as info:
        check_summary_spec(spec, raw_schema, object_name="Widget")
    message = str(info.value)
    for fragment in ("group_by: column 'Gone'", "metrics['Name']: 'sum'", "metrics['D']: 'mean'",
                     "metrics: column 'Missing'"):
        assert fragment in message


def test_unknown_object_and_mismatched_raw_file_are_config_errors(tmp_path):
    raw = write_raw_fixture(tmp_path, "Opportunity", OPP_COLUMNS, [])
    with pytest.raises(ConfigError, match="'Invoice__c' is not in configs/salesforce_objects.py"):
        process_object_file("Invoice__c", raw, data_root=tmp_path)
    with pytest.raises(ConfigError, match="holds 'Opportunity' rows, not 'Account'"):
        process_object_file("Account", raw, data_root=tmp_path)


# --- schema without data, for every registry object ---------------------------------------------------------


def _random_cell(sf_type: str, rng: random.Random) -> str | None:
    if rng.random() < 0.2:
        return None
    if sf_type in ("currency", "percent", "double"):
        return repr(round(rng.uniform(-1e6, 1e6), 2))
    if sf_type == "int":
        return str(rng.randint(0, 10_000))
    if sf_type == "boolean":
        return rng.choice(["true", "false"])
    if sf_type == "date":
        return (date(2020, 1, 1) + timedelta(days=rng.randint(0, 2000))).isoformat()
    if sf_type == "datetime":
        moment = datetime(2020, 1, 1) + timedelta(milliseconds=rng.randint(0, 10**11))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return rng.choice(["alpha", "Beta", "gamma, δ", 'say "hi"'])


@pytest.mark.parametrize("object_name", sorted(SALESFORCE_OBJECTS))
def test_summary_schema_matches_the_computed_summary_for_every_registry_object(tmp_path, object_name):
    spec = SALESFORCE_OBJECTS[object_name]
    columns = [(f, REGISTRY_SF_TYPES[f]) for f in spec.fields]
    rng = random.Random(object_name)
    for n_rows in (0, 1, 50):
        rows = [[_random_cell(t, rng) for _, t in columns] for _ in range(n_rows)]
        out = _summarise(tmp_path / str(n_rows), spec, columns, rows, object_name)
        assert dict(out.schema) == summary_schema(spec, _schema(object_name, columns))
        assert out.columns == spec.summary_columns()


# --- 10k generated rows against a plain-Python computation --------------------------------------------------

BIG_COLUMNS = [("Id", "id"), ("StageName", "picklist"), ("IsClosed", "boolean"), ("Qty", "int"),
               ("Amount", "currency"), ("IsWon", "boolean"), ("CloseDate", "date"), ("Name", "string")]
BIG_SPEC = _spec(
    [c for c, _ in BIG_COLUMNS],
    group_by=("StageName", "IsClosed"),
    metrics={
        "Id": ("count", "n_unique"),
        "Qty": ("sum", "mean", "median", "min", "max", "std", "null_count", "n_unique"),
        "Amount": ("sum", "mean", "median", "min", "max", "std", "count"),
        "IsWon": ("sum", "mean", "min", "max"),
        "CloseDate": ("min", "max", "n_unique", "null_count"),
        "Name": ("min", "max", "n_unique"),
    },
)
_EXACT = {"count", "n_unique", "null_count", "min", "max"}


def _generate_rows(n: int, seed: int = 7) -> list[list[str | None]]:
    rng = random.Random(seed)
    stages = ["Prospecting", "Qualification", "Closed Won", "Closed Lost", "Négociation", None]
    names = ["Acme", "acme", "Ötzi GmbH", "東京", 'A "quoted", name', "multi\nline"]

    def maybe(value):
        return None if rng.random() < 0.1 else value

    rows = []
    for i in range(n):
        rows.append([
            f"006{i:012d}", rng.choice(stages), maybe(rng.choice(["true", "false"])),
            maybe(str(rng.randint(-50, 5000))), maybe(repr(round(rng.uniform(0, 250_000), 2))),
            maybe(rng.choice(["true", "false"])),
            maybe((date(2022, 1, 1) + timedelta(days=rng.randint(0, 1500))).isoformat()),
            maybe(rng.choice(names)),
        ])
    return rows


def _parse(sf_type: str, text: str | None):
    if text is None:
        return None
    return {"int": int, "currency": float, "boolean": lambda s: s == "true", "date": date.fromisoformat}.get(
        sf_type, str)(text)


def _python_aggregate(values: list, aggregation: str):
    present = [v for v in values if v is not None]
    if aggregation == "count":
        return len(present)
    if aggregation == "null_count":
        return len(values) - len(present)
    if aggregation == "n_unique":
        return len(set(present))
    if not present:
        return None
    numbers = [int(v) if isinstance(v, bool) else v for v in present]
    return {
        "sum": lambda: sum(numbers), "mean": lambda: statistics.fmean(numbers),
        "median": lambda: float(statistics.median(numbers)), "min": lambda: min(present),
        "max": lambda: max(present), "std": lambda: statistics.stdev(numbers) if len(numbers) > 1 else None,
    }[aggregation]()


def _expected_summary(rows: list[list[str | None]]) -> list[dict]:
    typed = [{n: _parse(t, cell) for (n, t), cell in zip(BIG_COLUMNS, row, strict=True)} for row in rows]
    groups: dict[tuple, list[dict]] = {}
    for record in typed:
        groups.setdefault(tuple(record[g] for g in BIG_SPEC.group_by), []).append(record)
    expected = []
    for key in sorted(groups, key=lambda k: [(v is not None, v if v is not None else 0) for v in k]):
        row = dict(zip(BIG_SPEC.group_by, key, strict=True))
        for column, aggregations in BIG_SPEC.metrics.items():
            values = [r[column] for r in groups[key]]
            for aggregation in aggregations:
                row[f"{column}_{aggregation}"] = _python_aggregate(values, aggregation)
        expected.append(row)
    return expected


@pytest.mark.parametrize("batch_rows", [2_000_000, 1_500])  # medians held all at once, or ~3 groups at a time
def test_10k_rows_match_an_independent_python_computation(tmp_path, monkeypatch, batch_rows):
    monkeypatch.setattr(process, "HOLD_BATCH_ROWS", batch_rows)
    rows = _generate_rows(10_000)
    raw = write_raw_fixture(tmp_path / "raw", "Widget", BIG_COLUMNS, rows)
    raw_schema = _schema("Widget", BIG_COLUMNS)
    summary_csv = tmp_path / "processed" / "summary.csv"
    sink_summary_csv(build_summary(scan_dataset(raw, raw_schema), BIG_SPEC, raw_schema, object_name="Widget"),
                     summary_csv)
    write_summary_schema(summary_schema_path_for(summary_csv), "Widget", summary_schema(BIG_SPEC, raw_schema))
    got = read_summary_csv(summary_csv).rows(named=True)  # through the CSV: checks its round trip too
    expected = _expected_summary(rows)
    aggregation_of = {name: (column, agg) for column, agg, name in metric_columns(BIG_SPEC)}
    assert [tuple(r[g] for g in BIG_SPEC.group_by) for r in got] == [
        tuple(r[g] for g in BIG_SPEC.group_by) for r in expected
    ]
    for got_row, want_row in zip(got, expected, strict=True):
        assert list(got_row) == list(want_row)
        for name, want in want_row.items():
            column, aggregation = aggregation_of.get(name, (name, "key"))
            # Exact: keys, counts, extremes and integer sums; float results within 1e-9 relative.
            exact = aggregation in _EXACT or (aggregation == "sum" and column != "Amount")
            if want is None or exact or aggregation == "key":
                assert got_row[name] == want, (got_row["StageName"], name)
            else:
                assert got_row[name] == pytest.approx(want, rel=1e-9), (got_row["StageName"], name)


# --- Prefect task wrapper -----------------------------------------------------------------------------------


def test_task_fn_returns_the_summary_path_as_str(tmp_path):
    from prefect.logging import disable_run_logger

    raw = write_raw_fixture(tmp_path / "raw", "Opportunity", OPP_COLUMNS, [["1", "A", "1.0", "1.0"]])
    with disable_run_logger():
        result = process_object_data.fn("Opportunity", raw, data_root=tmp_path / "data")
    assert result == str(tmp_path / "data" / "processed" / "Opportunity" / "summary.csv")
    assert process_object_data.task_run_name == "process-{object_name}"
