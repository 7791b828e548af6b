"""The pure QA checks on in-memory frames: clean vs with-defects pairs, no Prefect and no files."""

from __future__ import annotations

import json
import statistics
from datetime import date, datetime, timezone

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from configs.salesforce_objects import SALESFORCE_OBJECTS
from tasks.quality_checks import (
    CheckResult,
    compare_schema,
    completeness_required,
    count_values,
    crashed_result,
    deduplicate_latest,
    evaluate_validator,
    find_key_repeats,
    load_validator,
    non_empty,
    not_run_result,
    profile_frame,
    rowcount_drift,
    rowcount_sidecar,
    schema_conformance,
    skipped_result,
    uniqueness_primary_key,
)
from tasks.validators import amount_non_negative, close_date_present_when_closed
from utils.errors import ConfigError
from utils.raw_frame import DATE_FORMAT, DATETIME_FORMAT

UTC = timezone.utc
OPPORTUNITY = SALESFORCE_OBJECTS["Opportunity"]
OPPORTUNITY_SIDECAR = [
    ("Id", "id"), ("Name", "string"), ("StageName", "picklist"), ("Amount", "currency"),
    ("Probability", "percent"), ("CloseDate", "date"), ("IsClosed", "boolean"), ("IsWon", "boolean"),
    ("ForecastCategory", "picklist"), ("LeadSource", "picklist"), ("AccountId", "reference"),
    ("Account.Name", "string"), ("OwnerId", "reference"), ("Owner.Name", "string"),
    ("CreatedDate", "datetime"), ("SystemModstamp", "datetime"),
]
HEADER = [name for name, _ in OPPORTUNITY_SIDECAR]


def stamp(day: int) -> datetime:
    return datetime(2024, 1, day, 12, tzinfo=UTC)


def opportunities(rows: list[tuple]) -> pl.LazyFrame:
    """(Id, Name, StageName, Amount, CloseDate, SystemModstamp) rows as a typed frame."""
    schema = {"Id": pl.Utf8, "Name": pl.Utf8, "StageName": pl.Utf8, "Amount": pl.Float64, "CloseDate": pl.Date,
              "SystemModstamp": pl.Datetime("ms", "UTC")}
    return pl.LazyFrame(rows, schema=schema, orient="row")


CLEAN = [
    ("006A", "Big deal", "Prospecting", 1500.0, date(2024, 3, 1), stamp(1)),
    ("006B", "Small deal", "Closed Won", 42.0, date(2024, 3, 2), stamp(2)),
    ("006C", "Renewal", "Prospecting", None, date(2024, 3, 3), stamp(3)),
]
WITH_DEFECTS = [
    ("006A", "Big deal", "Prospecting", 1500.0, date(2024, 3, 1), stamp(1)),
    ("006A", "Big deal v2", "Negotiation", 1600.0, date(2024, 3, 1), stamp(5)),  # defect: duplicate Id, newer
    ("006B", None, "Closed Won", 42.0, date(2024, 3, 2), stamp(2)),              # defect: null required Name
    ("006C", "Refund", None, -10.0, None, stamp(3)),             # defects: null StageName/CloseDate, Amount < 0
    (None, "Orphan", "Prospecting", 5.0, date(2024, 3, 4), stamp(4)),              # defect: null Id
]


# ------------------------------------------------------------------------------------------ result type


def test_check_result_is_frozen_and_round_trips_through_json():
    result = CheckResult("Account", "non_empty", False, "warning", observed=0, threshold=1, sample_ids=("001",))

    data = json.loads(json.dumps(result.to_dict()))

    assert CheckResult.from_dict(data) == result
    with pytest.raises(AttributeError):
        result.passed = True  # type: ignore[misc]


def test_skipped_result_is_never_blocking():
    result = skipped_result("Account", "profile", "gate failed", severity="error")

    assert result.skipped and not result.passed and not result.is_blocking


# -------------------------------------------------------------------------------------------- schema


def test_schema_conformance_clean_extract_passes():
    report = compare_schema(OPPORTUNITY, header=HEADER, sidecar_columns=OPPORTUNITY_SIDECAR)

    result = schema_conformance("Opportunity", report)

    assert (result.passed, result.severity, result.observed) == (True, "info", None)
    assert report["columns"][5] == {"name": "CloseDate", "sf_type": "date", "polars_type": "Date"}


def test_schema_conformance_missing_required_column_is_an_error():
    sidecar = [c for c in OPPORTUNITY_SIDECAR if c[0] != "StageName"]  # defect: required column missing
    report = compare_schema(OPPORTUNITY, header=[n for n, _ in sidecar], sidecar_columns=sidecar)

    result = schema_conformance("Opportunity", report)

    assert report["missing_required"] == ["StageName"]
    assert (result.passed, result.severity) == (False, "error")
    assert "missing required columns: StageName" in result.message


def test_schema_conformance_optional_drift_is_only_a_warning():
    sidecar = [c for c in OPPORTUNITY_SIDECAR if c[0] != "LeadSource"] + [("Extra__c", "string")]  # defects
    report = compare_schema(OPPORTUNITY, header=[n for n, _ in sidecar], sidecar_columns=sidecar)

    result = schema_conformance("Opportunity", report)

    assert (result.passed, result.severity) == (False, "warning")
    assert result.observed == {"registry fields missing": ["LeadSource"], "columns not in the registry": ["Extra__c"]}


@pytest.mark.parametrize(
    ("header", "sidecar", "expected"),
    [
        (HEADER[:-1], OPPORTUNITY_SIDECAR, "sidecar columns not in the header: SystemModstamp"),  # header short
        (HEADER, [*OPPORTUNITY_SIDECAR[:-1], ("SystemModstamp", "hologram")], "unknown Salesforce types"),
        (list(reversed(HEADER)), OPPORTUNITY_SIDECAR, "header order differs"),
    ],
)
def test_schema_conformance_header_and_type_problems_are_errors(header, sidecar, expected):
    result = schema_conformance("Opportunity", compare_schema(OPPORTUNITY, header=header, sidecar_columns=sidecar))

    assert (result.passed, result.severity) == (False, "error")
    assert expected in result.message


def test_schema_conformance_reports_values_that_do_not_parse():
    report = compare_schema(OPPORTUNITY, header=HEADER, sidecar_columns=OPPORTUNITY_SIDECAR,
                            unparseable_columns=["Amount"])

    result = schema_conformance("Opportunity", report)

    assert result.severity == "error" and "do not parse as their type: Amount" in result.message


def test_rowcount_sidecar_passes_when_the_counts_agree_and_is_an_error_naming_file_and_counts_otherwise():
    intact = rowcount_sidecar("Lead", dataset="Lead_x.csv", rows=9899, expected=9899)
    assert (intact.passed, intact.severity) == (True, "info")
    cut = rowcount_sidecar("Lead", dataset="Lead_x.csv", rows=9889, expected=9899)  # defect: 10 rows removed
    assert (cut.passed, cut.severity, cut.observed, cut.threshold, cut.is_blocking) == (False, "error", 9889, 9899,
                                                                                         True)
    assert "Lead_x.csv has 9889 rows but its schema sidecar says 9899" in cut.message
    assert "re-run the extract" in cut.message


def test_a_crash_fails_in_every_mode_and_a_task_that_never_ran_is_only_skipped():
    crash = crashed_result("Lead", "qa-dedup-Lead", "OSError: [Errno 28] No space left on device")
    assert crash.is_crash and crash.is_blocking and crash.check == "task_crashed"
    assert crash.message == ("qa-dedup-Lead crashed (OSError: [Errno 28] No space left on device); "
                             "see the task run's logs")
    waiting = not_run_result("Lead", "qa-profile-Lead", "upstream failed")
    assert (waiting.check, waiting.skipped, waiting.is_crash, waiting.is_blocking) == ("task_not_run", True, False,
                                                                                      False)
    assert waiting.message == "qa-profile-Lead did not run (upstream failed)"


def test_non_empty_flags_headers_only_extract_as_warning():
    assert non_empty("Case", 3).passed
    empty = non_empty("Case", 0)
    assert (empty.passed, empty.severity, empty.observed) == (False, "warning", 0)


# ------------------------------------------------------------------------------------ completeness


def test_completeness_required_clean_passes():
    result = completeness_required("Opportunity", opportunities(CLEAN), required=OPPORTUNITY.required,
                                   primary_key="Id")

    assert result.passed and result.observed == {"Id": 0, "Name": 0, "StageName": 0, "CloseDate": 0}


def test_completeness_required_counts_nulls_and_samples_ids_or_row_numbers():
    result = completeness_required("Opportunity", opportunities(WITH_DEFECTS), required=OPPORTUNITY.required,
                                   primary_key="Id")

    assert (result.passed, result.severity) == (False, "error")
    assert result.observed == {"Id": 1, "Name": 1, "StageName": 1, "CloseDate": 1}
    assert result.sample_ids == ("006B", "006C", "row 5")


# -------------------------------------------------------------------------------------- uniqueness


def test_uniqueness_primary_key_clean_passes():
    result = uniqueness_primary_key("Opportunity", opportunities(CLEAN), primary_key="Id")

    assert (result.passed, result.observed, result.sample_ids) == (True, 0, ())


def test_uniqueness_primary_key_reports_dropped_rows_and_sample_ids():
    result = uniqueness_primary_key("Opportunity", opportunities(WITH_DEFECTS), primary_key="Id")

    assert (result.passed, result.severity, result.observed, result.sample_ids) == (False, "warning", 1, ("006A",))


def test_uniqueness_samples_at_most_five_ids():
    rows = [(f"006{i}", "n", "s", 1.0, None, stamp(1)) for i in range(7)] * 2  # defect: 7 Ids twice each

    result = uniqueness_primary_key("Opportunity", opportunities(rows), primary_key="Id")

    assert result.observed == 7 and len(result.sample_ids) == 5


def test_deduplicate_latest_keeps_newest_by_cursor_in_file_order():
    frame = opportunities([
        ("006A", "old", "s", 1.0, None, stamp(1)),
        ("006B", "only", "s", 2.0, None, stamp(1)),
        ("006A", "newest", "s", 3.0, None, stamp(9)),
        ("006A", "middle", "s", 4.0, None, stamp(5)),
        ("006C", "null cursor", "s", 5.0, None, None),     # a null cursor counts as older than any date
        ("006C", "dated", "s", 6.0, None, stamp(2)),
        ("006D", "tie first", "s", 7.0, None, stamp(3)),
        ("006D", "tie last", "s", 8.0, None, stamp(3)),    # tie: the last in file order wins
        (None, "keyless", "s", 9.0, None, stamp(1)),        # no Id: kept, completeness reports it
    ])

    deduped = deduplicate_latest(frame, primary_key="Id", cursor_field="SystemModstamp").collect()

    assert deduped["Name"].to_list() == ["only", "newest", "dated", "tie last", "keyless"]
    assert deduped.schema == frame.collect_schema()


def test_deduplicate_latest_is_identity_on_clean_data():
    frame = opportunities(CLEAN)

    assert_frame_equal(deduplicate_latest(frame, primary_key="Id", cursor_field="SystemModstamp").collect(),
                       frame.collect())


def test_deduplicate_latest_gives_the_same_rows_one_hash_bucket_at_a_time():
    rows = [(f"006{i % 13}", f"n{i}", "s", float(i), None, stamp(1 + i % 5) if i % 7 else None) for i in range(60)]
    frame = opportunities([*rows, (None, "keyless", "s", 0.0, None, None)])  # defects: 47 repeats, a null Id
    whole = find_key_repeats(frame, primary_key="Id", cursor_field="SystemModstamp")

    bucketed = find_key_repeats(frame, primary_key="Id", cursor_field="SystemModstamp", rows_per_bucket=4)

    assert whole.dropped == 47 and whole.repeated_keys == ("0060", "0061", "00610", "00611", "00612")
    assert (bucketed.dropped_rows.to_list(), bucketed.repeated_keys) == (whole.dropped_rows.to_list(),
                                                                          whole.repeated_keys)
    assert_frame_equal(
        deduplicate_latest(frame, primary_key="Id", cursor_field="SystemModstamp", repeats=bucketed).collect(),
        deduplicate_latest(frame, primary_key="Id", cursor_field="SystemModstamp").collect())


@pytest.mark.parametrize("slice_rows", [1, 4, 1_000])
def test_dedup_csv_written_slice_by_slice_matches_the_streamed_dedup(tmp_path, monkeypatch, slice_rows):
    from tasks import quality_parallel

    monkeypatch.setattr(quality_parallel, "DEDUP_SLICE_ROWS", slice_rows)
    frame = opportunities([*WITH_DEFECTS, ("006B", "Small deal v2", "Closed Won", 43.0, None, stamp(2))])  # tie
    repeats = find_key_repeats(frame, primary_key="Id", cursor_field="SystemModstamp")
    streamed = tmp_path / "streamed.csv"
    deduplicate_latest(frame, primary_key="Id", cursor_field="SystemModstamp", repeats=repeats).sink_csv(
        streamed, quote_style="always", null_value="", date_format=DATE_FORMAT, datetime_format=DATETIME_FORMAT)

    sliced = quality_parallel.write_csv_without_rows(frame, repeats.dropped_rows, tmp_path / "sliced.csv")

    assert repeats.dropped_rows.to_list() == [0, 2]
    assert sliced.read_bytes() == streamed.read_bytes()


# ----------------------------------------------------------------------------------------- rowcount


def test_rowcount_drift_first_run_has_no_baseline():
    result = rowcount_drift("Lead", current=10, previous=None, tolerance_pct=50)

    assert result.passed and "no baseline" in result.message and result.observed["previous"] is None


@pytest.mark.parametrize(
    ("previous", "current", "passed", "change"),
    [(100, 150, True, 50.0), (100, 151, False, 51.0), (100, 40, False, -60.0), (0, 0, True, 0.0), (0, 5, False, None)],
)
def test_rowcount_drift_against_tolerance(previous, current, passed, change):
    result = rowcount_drift("Lead", current=current, previous=previous, tolerance_pct=50)

    assert result.passed is passed and result.observed["change_pct"] == change
    assert result.severity == ("info" if passed else "warning")
    json.dumps(result.to_dict(), allow_nan=False)  # inf never leaks into the JSON


# ------------------------------------------------------------------------------------------ profile


def test_profile_frame_reports_types_nulls_ranges_and_top_values():
    sf_types = {"Id": "id", "Name": "string", "StageName": "picklist", "Amount": "currency", "CloseDate": "date",
                "SystemModstamp": "datetime"}

    profile = profile_frame(opportunities(WITH_DEFECTS), sf_types)

    columns = profile["columns"]
    assert profile["rows"] == 5
    assert columns["Amount"] | {"std": None} == {
        "sf_type": "currency", "polars_type": "Float64", "rows": 5, "nulls": 0, "null_rate": 0.0, "distinct": 5,
        "min": -10.0, "max": 1600.0, "mean": 627.4, "std": None}
    assert columns["Amount"]["std"] == pytest.approx(statistics.stdev([1500.0, 1600.0, 42.0, -10.0, 5.0]))  # sample std
    assert columns["CloseDate"]["earliest"] == "2024-03-01" and columns["CloseDate"]["latest"] == "2024-03-04"
    assert columns["SystemModstamp"]["latest"] == "2024-01-05T12:00:00Z"
    assert columns["StageName"]["top_values"] == [
        {"value": "Prospecting", "count": 2}, {"value": "Closed Won", "count": 1}, {"value": "Negotiation", "count": 1}]
    assert columns["StageName"]["null_rate"] == 0.2
    assert "top_values" not in columns["Id"]  # ids are unique by nature: no top values
    json.dumps(profile, allow_nan=False)


def test_profile_frame_on_empty_frame_has_no_rates():
    profile = profile_frame(opportunities([]), {"Amount": "currency"})

    assert profile["rows"] == 0 and profile["columns"]["Amount"]["null_rate"] is None


# --------------------------------------------------------------------------------------- validators


def test_amount_non_negative_passes_on_clean_data():
    result = evaluate_validator("Opportunity", "tasks.validators:amount_non_negative", amount_non_negative,
                                opportunities(CLEAN), primary_key="Id")

    assert (result.check, result.passed, result.severity) == ("custom_amount_non_negative", True, "info")


def test_amount_non_negative_flags_negative_amounts():
    result = evaluate_validator("Opportunity", "tasks.validators:amount_non_negative", amount_non_negative,
                                opportunities(WITH_DEFECTS), primary_key="Id")

    assert (result.passed, result.severity, result.observed, result.sample_ids) == (False, "error", 1, ("006C",))
    assert "must not be negative" in result.message


def test_validator_severity_attribute_makes_it_advisory():
    frame = pl.LazyFrame({"Id": ["006A"], "IsClosed": [True], "CloseDate": [None]},
                         schema={"Id": pl.Utf8, "IsClosed": pl.Boolean, "CloseDate": pl.Date})

    result = evaluate_validator("Opportunity", "tasks.validators:close_date_present_when_closed",
                                close_date_present_when_closed, frame, primary_key="Id")

    assert (result.passed, result.severity) == (False, "warning")


def test_validator_may_return_its_own_check_result():
    own = CheckResult("Opportunity", "custom_x", True, "info", message="fine")

    assert evaluate_validator("Opportunity", "m:x", lambda frame: own, opportunities(CLEAN), primary_key="Id") is own


def test_validator_returning_something_else_is_a_config_error():
    with pytest.raises(ConfigError, match="Opportunity: validator 'm:x' returned int"):
        evaluate_validator("Opportunity", "m:x", lambda frame: 3, opportunities(CLEAN), primary_key="Id")


def test_load_validator_resolves_the_registry_entry():
    assert load_validator("Opportunity", OPPORTUNITY.validators[0]) is amount_non_negative


@pytest.mark.parametrize("dotted", ["tasks.no_such_module:rule", "tasks.validators:no_such_rule", "tasks.validators"])
def test_load_validator_errors_name_object_and_validator(dotted):
    with pytest.raises(ConfigError) as excinfo:
        load_validator("Opportunity", dotted)

    assert str(excinfo.value).startswith(f"Opportunity: validator {dotted!r} cannot be loaded")


def test_schema_conformance_missing_cursor_field_is_an_error():
    sidecar = [c for c in OPPORTUNITY_SIDECAR if c[0] != "SystemModstamp"]  # defect: dedup cannot pick the latest
    report = compare_schema(OPPORTUNITY, header=[n for n, _ in sidecar], sidecar_columns=sidecar)

    assert report["missing_required"] == ["SystemModstamp"]
    assert schema_conformance("Opportunity", report).severity == "error"


def test_profile_distinct_count_ignores_nulls():
    profile = profile_frame(opportunities(WITH_DEFECTS), {"Name": "string"})

    assert profile["columns"]["Name"]["distinct"] == 4 and profile["columns"]["Name"]["nulls"] == 1


def test_count_values_is_exact_one_hash_bucket_at_a_time():
    frame = pl.LazyFrame({"StageName": ["b", "a", None, "c", "a", "b", "d", "a", None, "e"]})

    assert count_values(frame, "StageName", buckets=3) == count_values(frame, "StageName") == (5, [
        {"value": "a", "count": 3}, {"value": "b", "count": 2}, {"value": "c", "count": 1},
        {"value": "d", "count": 1}, {"value": "e", "count": 1}])


def test_every_field_lists_the_describe_minus_compound_parents_base64_and_exclusions():
    from tasks.extract_schema import every_field

    describe = {"fields": [{"name": n, "type": t} for n, t in (
        ("Id", "id"), ("Name", "string"), ("BillingStreet", "textarea"), ("BillingCity", "string"),
        ("BillingAddress", "address"), ("Logo__c", "base64"), ("Site__Latitude__s", "double"), ("Site__c", "location"),
        ("Notes__c", "textarea"), ("SystemModstamp", "datetime"))]}
    assert every_field(describe, exclude=("notes__C",)) == (
        "Id", "Name", "BillingStreet", "BillingCity", "Site__Latitude__s", "SystemModstamp")


def test_compound_parents_are_expanded_to_the_components_not_listed_already():
    from tasks.extract_schema import expand_compound

    describe = {"fields": [
        {"name": "Id", "type": "id"},
        {"name": "BillingStreet", "type": "textarea", "compoundFieldName": "BillingAddress"},
        {"name": "BillingCity", "type": "string", "compoundFieldName": "BillingAddress"},
        {"name": "BillingAddress", "type": "address"}, {"name": "Name", "type": "string"}]}
    assert expand_compound(("Id", "billingaddress", "BillingCity", "Account.BillingAddress"), describe) == (
        ("Id", "BillingStreet", "BillingCity", "Account.BillingAddress"),
        {"billingaddress": ("BillingStreet", "BillingCity")})
    assert expand_compound(("Id", "Name"), describe) == (("Id", "Name"), {})
