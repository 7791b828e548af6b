"""Real-org objects and schema changes end to end (issue #17 items 1 and 4), against an emulator org that has them
(emulator/optional_objects.py): a *History object synced on CreatedDate, objects without IsDeleted, a setup object
the Bulk APIs refuse, and fields an admin hides, shows again or retypes between runs. Every run ends with the
replica equal to the org, through the real client over HTTPS."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from emulator import EmulatorInfo, build_org, change_field, reset_state, run_emulator
from tests.reliability_helpers import expected_ids
from tests.sync_helpers import FAST, connect, live_records, ranges_of, replica_of, sync, with_spec
from utils.connection import SalesforceConnection
from utils.errors import ConfigError
from utils.paths import build_sync_paths

pytestmark = [pytest.mark.integration]
ROWS = {"User": 10, "Group": 4, "Account": 200, "Contact": 20, "Opportunity": 20, "Lead": 20, "Case": 20,
        "Invoice__c": 150, "AccountHistory": 120, "CaseStatus": 4, "Wide__c": 40}
HISTORY_FIELDS = ("Id", "AccountId", "Field", "DataType", "CreatedDate")
INVOICE_FIELDS = ("Id", "Name", "Account__c", "Amount__c", "Quantity__c", "Status__c", "Due_Date__c",
                  "CreatedDate", "SystemModstamp")


@pytest.fixture(scope="module")
def org() -> Iterator[EmulatorInfo]:
    with run_emulator(rows=ROWS, faults="", living_rate=0, in_process=True) as info:
        yield info


@pytest.fixture()
def conn(org: EmulatorInfo) -> Iterator[SalesforceConnection]:
    yield connect(org)
    reset_state(org)  # writes and schema changes undone for the next test


@pytest.fixture(autouse=True)
def _fresh_run_ids(monkeypatch):
    """A describe is cached per run id (tasks/extract.py): the tests' R1, R2... would share one across tests whose
    schema changes differ, so each test's run ids are its own, as every real run's are."""
    import tests.sync_helpers

    monkeypatch.setattr(tests.sync_helpers, "RUN_PREFIX", uuid.uuid4().hex[:6].upper())


def _events(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={name} ")]


def _files(root: Path, name: str) -> dict[Path, bytes]:
    paths = build_sync_paths(name, data_root=root)
    return {p: p.read_bytes() for p in (paths.replica, paths.state, paths.replica_schema)}


def test_a_history_object_syncs_incrementally_on_created_date(conn, tmp_path, monkeypatch):
    """AccountHistory has no SystemModstamp or LastModifiedDate: the registry picks CreatedDate from its fields."""
    with_spec(monkeypatch, "AccountHistory", fields=HISTORY_FIELDS)
    root = tmp_path / "data"
    first = sync(conn, "AccountHistory", root, "R1")
    account = conn.sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
    conn.sf.Account.update(account, {"Name": "Renamed for the history", "AccountNumber": "HIST-0001"})  # 2 rows

    second = sync(conn, "AccountHistory", root, "R2")

    assert (first["mode"], second["mode"]) == ("backfill", "incremental")
    assert second["sync"]["inserts"] == 2 and second["rows"] < first["rows"]  # a delta, not the whole object
    assert replica_of("AccountHistory", root).equals(live_records(conn, "AccountHistory", tmp_path))


def test_objects_without_is_deleted_sync_and_one_the_bulk_api_refuses_is_read_over_rest(conn, tmp_path, monkeypatch,
                                                                                       caplog):
    """User and CaseStatus have no IsDeleted (the delta must not ask for it); CaseStatus, asked for over Bulk 2.0,
    is refused by the Bulk API (INVALIDENTITY) and read over REST instead, with a warning that says how to skip the
    attempt."""
    with_spec(monkeypatch, "User", fields=("Id", "Name", "Title", "IsActive", "SystemModstamp"))
    with_spec(monkeypatch, "CaseStatus", fields=("Id", "MasterLabel", "SortOrder", "IsClosed", "SystemModstamp"),
              api="bulk2")
    root = tmp_path / "data"
    caplog.set_level(logging.INFO)
    sync(conn, "User", root, "R1")
    first = sync(conn, "CaseStatus", root, "R1")
    user = replica_of("User", root)["Id"][3]
    conn.sf.User.update(user, {"Title": "Changed between the runs"})

    second = sync(conn, "User", root, "R2")

    assert (second["mode"], second["sync"]["updates"]) == ("incremental", 1)
    assert replica_of("User", root).equals(live_records(conn, "User", tmp_path))
    assert (first["mode"], first["api_path"]) == ("backfill", "rest")
    (override,) = _events(caplog, "api_override")
    assert "INVALIDENTITY" in override and "set api 'rest' for this object" in override
    assert sync(conn, "CaseStatus", root, "R2")["mode"] == "incremental"
    assert replica_of("CaseStatus", root).equals(live_records(conn, "CaseStatus", tmp_path))


def test_a_field_hidden_by_an_admin_is_kept_then_refilled_when_shown_again(conn, org, tmp_path):
    """Field-level security on Account.Rating is revoked between runs: without drop_missing_fields the run stops
    before writing anything; with it, the column stays with its last values (null for records changed since) and
    is reported; once access is granted again, one narrow query fills it for every record."""
    root = tmp_path / "data"
    sync(conn, "Account", root, "R1")
    before = _files(root, "Account")
    change_field(org, "Account", "Rating", "hide")

    with pytest.raises(ConfigError, match=r"^Account\.Rating: not found in the org's describe"):
        sync(conn, "Account", root, "R2")
    assert _files(root, "Account") == before

    changed = replica_of("Account", root).filter(replica_of("Account", root)["Rating"].is_not_null())["Id"][0]
    conn.sf.Account.update(changed, {"Name": "Changed while Rating is hidden"})
    options = replace(FAST, drop_missing_fields=True)
    hidden = sync(conn, "Account", root, "R2", options=options)
    assert (hidden["mode"], hidden["schema_changes"]) == ("incremental", "~Rating (hidden)")
    assert hidden["rows"] < 10  # a delta: dropping a field from the query keeps its cursor filter
    replica = replica_of("Account", root)
    assert replica.filter(replica["Id"] == changed)["Rating"].item() is None
    assert replica["Rating"].null_count() < replica.height  # the other records keep their last values
    still = sync(conn, "Account", root, "R2B", options=options)  # still hidden: no change to report, values kept
    assert (still["mode"], still["schema_changes"]) == ("incremental", None)
    assert replica_of("Account", root)["Rating"].equals(replica["Rating"])

    change_field(org, "Account", "Rating", "show")
    shown = sync(conn, "Account", root, "R3", options=options)
    assert (shown["mode"], shown["schema_changes"]) == ("incremental", "+Rating")
    assert replica_of("Account", root).equals(live_records(conn, "Account", tmp_path))


def test_a_field_retyped_by_an_admin_is_refilled_with_its_new_type(conn, org, tmp_path, monkeypatch, key_ranges):
    with_spec(monkeypatch, "Invoice__c", fields=INVOICE_FIELDS)
    root = tmp_path / "data"
    sync(conn, "Invoice__c", root, "R1")
    assert (ranges_of("Invoice__c", root) > 2) == (key_ranges == "key ranges")
    assert replica_of("Invoice__c", root).schema["Quantity__c"].is_float()
    change_field(org, "Invoice__c", "Quantity__c", "retype", type="string", length=20)

    second = sync(conn, "Invoice__c", root, "R2")

    assert (second["mode"], second["schema_changes"]) == ("incremental", "Quantity__c: double -> string")
    replica = replica_of("Invoice__c", root)
    assert replica.schema["Quantity__c"] == replica.schema["Name"]  # text now
    assert replica.equals(live_records(conn, "Invoice__c", tmp_path))


def test_formula_and_relationship_values_are_refreshed_every_n_runs(conn, tmp_path, monkeypatch, caplog, key_ranges):
    """Renaming an Account changes its invoices' formula (Account__r.Name) and relationship (Account__r.Name read
    through the path) values without moving their SystemModstamp: no delta sees it; the refresh every
    ``formula_refresh_every_runs`` runs re-reads those columns for every record and counts what changed."""
    with_spec(monkeypatch, "Invoice__c", fields=(*INVOICE_FIELDS, "Account_Name__c", "Account__r.Name"),
              formula_refresh_every_runs=2)
    root = tmp_path / "data"
    sync(conn, "Invoice__c", root, "R1")
    assert (ranges_of("Invoice__c", root) > 2) == (key_ranges == "key ranges")
    invoices = replica_of("Invoice__c", root)
    account = invoices["Account__c"][0]
    children = invoices.filter(invoices["Account__c"] == account).height
    conn.sf.Account.update(account, {"Name": "Renamed Parent Ltd"})
    caplog.set_level(logging.INFO)

    second = sync(conn, "Invoice__c", root, "R2")  # one run since the backfill: no refresh due yet
    stale = replica_of("Invoice__c", root)
    third = sync(conn, "Invoice__c", root, "R3")

    assert second["sync"]["refreshed"] == 0 and second["rows"] < 5  # the rename moved no invoice's cursor
    assert set(stale.filter(stale["Account__c"] == account)["Account_Name__c"]) != {"Renamed Parent Ltd"}
    assert third["sync"]["refreshed"] == 2 * children  # both columns of each of the account's invoices
    (refresh,) = _events(caplog, "sync_formulas_refreshed")
    assert "columns=Account_Name__c,Account__r.Name" in refresh and f"records={len(invoices)}" in refresh
    fresh = replica_of("Invoice__c", root)
    assert set(fresh.filter(fresh["Account__c"] == account)["Account_Name__c"]) == {"Renamed Parent Ltd"}
    assert fresh.equals(live_records(conn, "Invoice__c", tmp_path))


TIMEOUT_ROWS = {"User": 10, "Group": 4, "Account": 50, "Contact": 10, "Opportunity": 3000, "Lead": 10, "Case": 10}


@pytest.fixture(scope="module")
def slow_org() -> Iterator[EmulatorInfo]:
    """An org where any query matching more than 700 rows times out (QUERY_TIMEOUT, or a Failed Bulk job)."""
    with run_emulator(rows=TIMEOUT_ROWS, faults="", living_rate=0, in_process=True, query_timeout_rows=700) as info:
        yield info


@pytest.mark.parametrize("api", ["rest", "bulk2"])
def test_a_query_that_times_out_is_split_into_cursor_windows(slow_org, api, tmp_path, caplog):
    """The backfill of 3,000 Opportunities times out as one query: it is halved on SystemModstamp until every
    window passes, the windows join into one raw CSV, and the replica holds exactly the org's live records. A delta
    over the limit is split too, from its own lower bound. (The COUNT() of the reconciliation check times out as
    well: it is summed over CreatedDate windows.)"""
    conn = connect(slow_org)
    root = tmp_path / "data"
    caplog.set_level(logging.INFO)
    first = sync(conn, "Opportunity", root, "R1", api=api)
    (split,) = _events(caplog, "extract_windows")
    assert "QUERY_TIMEOUT" in split and "cursor=SystemModstamp" in split
    (done,) = _events(caplog, "extract_windows_done")
    assert first["rows"] == TIMEOUT_ROWS["Opportunity"] and f"rows={first['rows']}" in done
    live = expected_ids(build_org(rows=TIMEOUT_ROWS), "Opportunity").live
    replica = replica_of("Opportunity", root)
    assert replica["Id"].n_unique() == replica.height and set(replica["Id"]) == live
    _assert_sample_matches_the_org(conn, replica)

    # the state's watermark set back so that the next delta matches ~1,000 rows: it times out and is split
    paths = build_sync_paths("Opportunity", data_root=root)
    state = json.loads(paths.state.read_text())
    state["watermark"] = replica["SystemModstamp"].sort(descending=True)[1000].isoformat()
    paths.state.write_text(json.dumps(state))
    changed = replica["Id"][5]
    conn.sf.Opportunity.update(changed, {"Name": "Renamed after the windows"})
    second = sync(conn, "Opportunity", root, "R2", api=api)
    assert second["mode"] == "incremental" and 1000 <= second["rows"] < TIMEOUT_ROWS["Opportunity"]
    assert len(_events(caplog, "extract_windows")) == 2 and second["sync"]["updates"] == 1
    replica = replica_of("Opportunity", root)
    assert set(replica["Id"]) == live
    _assert_sample_matches_the_org(conn, replica, [changed])


def _assert_sample_matches_the_org(conn: SalesforceConnection, replica: pl.DataFrame, ids: list[str] = ()) -> None:
    """Values of a sample of records (a query small enough not to time out) equal the replica's."""
    sample = [*ids, *replica["Id"].gather_every(150).to_list()]
    quoted = ", ".join(f"'{i}'" for i in sample)
    rows = conn.sf.query(f"SELECT Id, Name, StageName, Amount, Probability FROM Opportunity WHERE Id IN ({quoted})")
    org = {r["Id"]: (r["Name"], r["StageName"], r["Amount"], r["Probability"]) for r in rows["records"]}
    mine = {r["Id"]: (r["Name"], r["StageName"], r["Amount"], r["Probability"])
            for r in replica.filter(pl.col("Id").is_in(sample)).iter_rows(named=True)}
    assert len(org) == len(set(sample)) and mine == org


def test_a_500_field_object_is_synced_through_bulk_when_its_query_is_too_long_for_a_get(conn, tmp_path, monkeypatch,
                                                                                          caplog):
    """Wide__c's 500 fields make a SOQL GET URL longer than Salesforce takes (414): the backfill and the deltas,
    REST by default, go through Bulk 2.0 instead (a POST body), with one line saying why."""
    assert len(conn.sf.Wide__c.describe()["fields"]) == 500
    with_spec(monkeypatch, "Wide__c", fields=("*",))  # every field of the describe
    root = tmp_path / "data"
    caplog.set_level(logging.INFO)
    first = sync(conn, "Wide__c", root, "R1")
    conn.sf.Wide__c.update(replica_of("Wide__c", root)["Id"][0], {"Name": "Changed wide record"})
    second = sync(conn, "Wide__c", root, "R2")

    assert (first["api_path"], second["api_path"]) == ("bulk2", "bulk2")
    assert (second["mode"], second["sync"]["updates"]) == ("incremental", 1)
    overrides = _events(caplog, "api_override")
    assert overrides and all("too long for a REST GET" in e for e in overrides)
    replica = replica_of("Wide__c", root)
    assert replica.width == 500  # every field of the describe, IsDeleted too
    assert replica.equals(live_records(conn, "Wide__c", tmp_path))


def test_every_field_follows_the_describe_without_compound_parents_or_excluded_fields(conn, org, tmp_path,
                                                                                       monkeypatch, caplog):
    """``fields: "*"``: the replica has every field of the describe in its order, compound parents replaced by
    their components and ``exclude_fields`` left out; a field an admin adds is filled for every record by the next
    run, not a backfill."""
    with_spec(monkeypatch, "Invoice__c", fields=("*",), exclude_fields=("Days_Open__c", "LastViewedDate"))
    root = tmp_path / "data"
    sync(conn, "Invoice__c", root, "R1")
    described = [f["name"] for f in conn.sf.Invoice__c.describe()["fields"]]
    expected = [c for c in described if c not in ("Site_Location__c", "Days_Open__c", "LastViewedDate")]
    assert replica_of("Invoice__c", root).columns == expected
    assert "Site_Location__Latitude__s" in expected  # the geolocation's components
    change_field(org, "Invoice__c", "Priority__c", "add", type="string", length=20)
    invoice = replica_of("Invoice__c", root)["Id"][0]
    conn.sf.Invoice__c.update(invoice, {"Priority__c": "High"})

    second = sync(conn, "Invoice__c", root, "R2")

    assert (second["mode"], second["schema_changes"]) == ("incremental", "+Priority__c")
    replica = replica_of("Invoice__c", root)
    assert replica.columns == [*expected, "Priority__c"]
    assert replica.filter(replica["Id"] == invoice)["Priority__c"].item() == "High"
    assert replica.equals(live_records(conn, "Invoice__c", tmp_path))


@pytest.mark.parametrize("api", ["bulk2", "rest"])
def test_a_compound_field_is_expanded_to_its_components_on_every_api(conn, api, tmp_path, monkeypatch, caplog):
    """Bulk 2.0 refuses a job selecting BillingAddress (API_ERROR): the entry's compound field is replaced by its
    components (with a warning) on Bulk and REST alike, so the job runs and the dataset does not depend on the API."""
    with_spec(monkeypatch, "Account", fields=("Id", "Name", "BillingAddress", "BillingCity", "SystemModstamp"),
              api=api)
    root = tmp_path / "data"
    caplog.set_level(logging.INFO)

    first = sync(conn, "Account", root, "R1")

    assert first["api_path"] == api
    (expanded,) = _events(caplog, "compound_expanded")  # once: the delta's query is built from the expanded list
    assert "field=BillingAddress" in expanded and "components=BillingStreet,BillingCity,BillingState" in expanded
    replica = replica_of("Account", root)
    assert replica.columns == ["Id", "Name", "BillingStreet", "BillingState", "BillingPostalCode", "BillingCountry",
                               "BillingLatitude", "BillingLongitude", "BillingGeocodeAccuracy", "BillingCity",
                               "SystemModstamp"]
    assert replica.equals(live_records(conn, "Account", tmp_path))


def test_a_whole_run_of_an_every_field_entry_lands_processes_and_passes_qa(prefect_harness, conn, org, data_root,
                                                                           monkeypatch):
    """The orchestrator on ``fields: "*"``: the raw CSV, the replica, Phase 1's summary and the QA schema report all
    follow the describe (no column reported missing or unexpected), and every QA check passes."""
    from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
    from tests.emulator_fixtures import point_pipeline_at
    from utils.paths import build_qa_paths

    point_pipeline_at(org, monkeypatch)
    with_spec(monkeypatch, "Invoice__c", fields=("*",), exclude_fields=("Days_Open__c",), group_by=("Status__c",),
              metrics={"Id": ("count",), "Amount__c": ("sum", "max")})

    state = sf_etl_orchestrator_flow(objects=["Invoice__c"], return_state=True)

    assert state.is_completed(), state.message
    (row,) = state.result()["objects"]
    assert (row["status"], row["mode"]) == ("ok", "backfill") and row["qa"].endswith("passed"), row
    described = [f["name"] for f in conn.sf.Invoice__c.describe()["fields"]]
    expected = [c for c in described if c not in ("Site_Location__c", "Days_Open__c")]
    assert replica_of("Invoice__c", data_root).columns == expected
    assert Path(row["raw_csv"]).read_text(encoding="utf-8").splitlines()[0] == ",".join(f'"{c}"' for c in expected)
    report = json.loads(build_qa_paths("Invoice__c", data_root=data_root).schema_report.read_text(encoding="utf-8"))
    assert report["missing_fields"] == [] and report["unexpected_columns"] == []
    assert [c["name"] for c in report["columns"]] == expected
    summary = json.loads(Path(row["summary_json"]).read_text(encoding="utf-8"))
    assert {r["Status__c"] for r in summary} <= {"Draft", "Sent", "Paid", "Void", None}
    assert sum(r["Id_count"] for r in summary) == row["replica_rows"]
