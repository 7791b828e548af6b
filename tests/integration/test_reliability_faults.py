"""Faults injected by the emulator during full orchestrator runs: each run ends in exact row parity or a clear
failure that leaves no partial output. (Single faults at the extract level: tests/integration/test_extract.py.)"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from emulator import build_org, get_state, set_faults
from flows.sf_etl_orchestrator_flow import PipelineRunError, sf_etl_orchestrator_flow
from tests.reliability_helpers import audit_data_root, expected_ids, ids_in, summary_id_count, temp_files

pytestmark = [pytest.mark.integration]

LOGIN = {"SF_USERNAME": "etl@emulator.local", "SF_PASSWORD": "emulator-password", "SF_TOKEN": "EMULATORTOKEN"}


@functools.lru_cache(maxsize=1)
def _org():
    return build_org()  # what the session emulator serves


def _rows(summary: dict) -> dict[str, dict]:
    return {r["object"]: r for r in summary["objects"]}


def _failed_summary(state) -> dict:
    assert state.is_failed(), "the run should have failed"
    err = state.result(raise_on_failure=False)
    assert isinstance(err, PipelineRunError), err
    return err.summary


def assert_exact_parity(summary: dict, data_root: Path, name: str) -> None:
    """Raw extract = every row the org has (queryAll), replica/snapshot/summary = exactly the live rows."""
    row = _rows(summary)[name]
    assert row["status"] == "ok", row
    ids = expected_ids(_org(), name)
    raw = ids_in(row["raw_csv"])
    assert len(raw) == len(set(raw)) and set(raw) == ids.all, "raw extract lost or duplicated rows"
    for dataset in (row["dataset"], data_root / "processed" / "qa" / name / "snapshot.parquet"):
        got = ids_in(dataset)
        assert len(got) == len(set(got)) and set(got) == ids.live, f"{dataset}: not exactly the live rows"
    assert summary_id_count(data_root / "output" / name / "summary.json") == len(ids.live)
    assert temp_files(data_root) == [] and audit_data_root(data_root) == []


def assert_no_output_for(data_root: Path, name: str) -> None:
    """A failed object leaves nothing a reader could mistake for data."""
    assert list((data_root / "raw").glob(f"{name}_*.csv")) == [] if (data_root / "raw").exists() else True
    for where in ("output", "replica", "processed"):
        assert not list((data_root / where).glob(f"{name}*")), f"{where}/{name} was written"
    assert temp_files(data_root) == [] and audit_data_root(data_root) == []


def _fired(info) -> list[dict]:
    rules = get_state(info)["fault_rules"]
    assert rules and all(r["fired"] >= 1 for r in rules), rules  # the fault really happened
    return rules


RECOVERABLE = [
    # (test id, object, api, fault spec, extra env)
    ("rest-5xx-burst", "Lead", "rest", "rest.query:500:times=1;rest.query_more:503:times=3", {}),
    ("bulk-5xx-burst", "Lead", "bulk2", "bulk.results:503:times=3;bulk.status:500:times=2", {}),
    ("rest-connection-reset-mid-page", "Lead", "rest", "rest.query_more:reset:times=2", {}),
    ("bulk-connection-reset-mid-page", "Lead", "bulk2", "bulk.results:reset:times=2", {}),
    ("latency-beyond-client-timeout", "Lead", "rest", "rest.query_more:latency=2500:times=2",
     {"SF_TIMEOUT_SECONDS": "1"}),
    ("concurrent-request-limit", "Lead", "rest", "rest.query:concurrent:times=2;rest.query_more:concurrent:times=2",
     {}),
    ("invalid-query-locator", "Lead", "rest", "rest.query_more:locator:after=1:times=1", {}),
    ("query-timeout-large-object", "Opportunity", "rest", "rest.query:timeout:times=2;rest.query_more:timeout:times=1",
     {}),
    ("bulk-job-failed", "Lead", "bulk2", "bulk.status:job_failed:times=1", {}),
    ("session-expiry-renewed-by-login", "Lead", "rest", "rest.query_more:expire:times=1", LOGIN),
]


@pytest.mark.parametrize(("name", "api", "faults", "extra_env"), [r[1:] for r in RECOVERABLE],
                         ids=[r[0] for r in RECOVERABLE])
@pytest.mark.slow
def test_run_recovers_with_exact_row_parity(prefect_harness, faulty_org, data_root, monkeypatch, name, api, faults,
                                            extra_env):
    if extra_env is LOGIN:  # a login flow instead of the pasted token: it can renew the session
        monkeypatch.delenv("SF_INSTANCE_URL")
        monkeypatch.delenv("SF_ACCESS_TOKEN")
        monkeypatch.setenv("SF_LOGIN_URL", faulty_org.instance_url)
    for key, value in extra_env.items():
        monkeypatch.setenv(key, value)
    set_faults(faulty_org, faults)
    state = sf_etl_orchestrator_flow(objects=[name], api=api, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert _rows(summary)[name]["api"] == api
    assert_exact_parity(summary, data_root, name)
    _fired(faulty_org)
    if extra_env is LOGIN:
        assert summary["source"]["auth_flow"] == "password"
        assert get_state(faulty_org)["tokens_issued"] >= 2  # the first login plus the renewal


def _outputs(data_root) -> dict:
    """The data files (run summaries and run reports excluded: every run adds one, a skipped run too)."""
    return {p: p.read_bytes() for p in data_root.rglob("*") if p.is_file() and not {"runs", "reports"} & set(p.parts)}


@pytest.mark.slow  # two runs
def test_daily_limit_is_not_retried_objects_skipped_and_previous_outputs_kept(prefect_harness, faulty_org,
                                                                             data_root):
    first = sf_etl_orchestrator_flow(objects=["Lead", "Case"], api="rest", return_state=True)
    assert first.is_completed(), first.message
    before = _outputs(data_root)

    set_faults(faulty_org, "rest.query_more:daily:times=1")
    # full_refresh: a whole backfill again, so the query has more pages than the incremental delta would
    summary = _failed_summary(sf_etl_orchestrator_flow(objects=["Lead", "Case"], api="rest", full_refresh=True,
                                                       max_concurrent_extracts=1, return_state=True))
    for row in summary["objects"]:
        assert row["status"] == "failed" and "daily API request limit is exhausted" in row["error"], row
        assert row["qa"] == "skipped (no extract)"
    # not retried: the one page that hit the limit was asked for exactly once
    assert get_state(faulty_org)["requests_by_kind"]["rest.query_more"] == 1 + 4  # first run's 2+2 pages
    assert _outputs(data_root) == before, "a skipped run changed earlier outputs"
    run_files = sorted((data_root / "runs").glob("*.json"))
    assert len(run_files) == 2 and "daily API request limit" in run_files[-1].read_text()


def test_session_expiry_with_access_token_is_a_clear_error(prefect_harness, faulty_org, data_root):
    set_faults(faulty_org, "rest.query_more:expire:times=1")
    summary = _failed_summary(sf_etl_orchestrator_flow(objects=["Lead"], api="rest", return_state=True))
    error = _rows(summary)["Lead"]["error"]
    assert "session expired" in error and "'access_token' flow cannot renew it" in error
    assert_no_output_for(data_root, "Lead")


def test_bulk_job_aborted_is_a_clear_failure_with_no_partial_output(prefect_harness, faulty_org, data_root):
    set_faults(faulty_org, "bulk.status:job_aborted:times=1")
    summary = _failed_summary(sf_etl_orchestrator_flow(objects=["Lead"], api="bulk2", return_state=True))
    assert "was aborted (by a user or admin)" in _rows(summary)["Lead"]["error"]
    assert_no_output_for(data_root, "Lead")


@pytest.mark.slow  # the extract task's own retry waits 5 s before its second round of 6 attempts
@pytest.mark.parametrize(("api", "faults", "message"), [
    ("rest", "rest.query_more:503:times=0", "still failing after 6 attempts"),
    ("bulk2", "bulk.status:job_failed:times=0", "Salesforce kept losing the query"),
], ids=["rest-5xx-never-ends", "bulk-job-always-fails"])
def test_persistent_fault_fails_clearly_with_no_partial_output(prefect_harness, faulty_org, data_root, api, faults,
                                                               message):
    set_faults(faulty_org, faults)
    summary = _failed_summary(sf_etl_orchestrator_flow(objects=["Lead"], api=api, return_state=True))
    assert message in _rows(summary)["Lead"]["error"]
    assert_no_output_for(data_root, "Lead")
