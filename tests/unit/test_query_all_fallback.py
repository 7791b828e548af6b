"""An object that refuses queryAll, pure part: which refusal lets the sync fall back to query, and where the run
summary says that the object's deletes were not tracked by its delta."""

from __future__ import annotations

from dataclasses import astuple, replace

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from flows.common import StepOutcome
from flows.run_summary import BranchOutcome, build_run_summary
from tasks.extract import QUERY_ALL_REFUSED, ExtractOptions, ExtractResult, QueryAllRefused, RequestRunner
from tasks.land import LandingResult
from tasks.replica import MergeStats
from tasks.sync import SyncResult
from utils.errors import FatalSourceError


def _refusal(code: str) -> SalesforceMalformedRequest:
    return SalesforceMalformedRequest("u", 400, "queryAll", [{"errorCode": code, "message": "no"}])


def _failure(err: Exception, *, include_deleted: bool) -> Exception:
    runner = RequestRunner(None, "Snapshot__c", ExtractOptions(include_deleted=include_deleted))  # type: ignore[arg-type]
    return runner._failure(err, "the query")


def test_a_query_all_refusal_is_its_own_error_only_when_query_all_was_asked_for():
    refused = _failure(_refusal(QUERY_ALL_REFUSED), include_deleted=True)
    assert isinstance(refused, QueryAllRefused) and isinstance(refused, FatalSourceError)
    assert "INVALID_TYPE_FOR_OPERATION" in str(refused)
    plain = _failure(_refusal(QUERY_ALL_REFUSED), include_deleted=False)  # query refused too: nothing to fall back to
    assert isinstance(plain, FatalSourceError) and not isinstance(plain, QueryAllRefused)


@pytest.mark.parametrize("code", ["MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"])
def test_other_refusals_of_a_query_all_stay_fatal(code):
    failure = _failure(_refusal(code), include_deleted=True)
    assert isinstance(failure, FatalSourceError) and not isinstance(failure, QueryAllRefused)


def test_merge_stats_summed_over_a_backfill_s_ranges_do_not_claim_untracked_deletes():
    summed = MergeStats(*(a + b for a, b in zip(astuple(MergeStats(1, 1, 0, 0)), astuple(MergeStats(2, 2, 0, 0)),
                                                 strict=True)))  # as tasks/replica_store.write_backfill sums them
    assert not summed.deletes_untracked and summed.inserts == 3


def test_the_run_summary_row_says_the_delta_did_not_track_deletes():
    extracted = ExtractResult("Snapshot__c", "raw/S.csv", "raw/S.schema.json", 3, "rest", 0.5, "emulator", "R1")
    stats = MergeStats(3, 1, 1, 0, 1, 300, 0, unchanged=1)
    rows = {name: StepOutcome(name, "extract", True, 1.0, value=LandingResult.from_sync(
        SyncResult(extracted, "incremental", "replica/S.parquet", replace(stats, deletes_untracked=untracked))))
        for name, untracked in (("Snapshot__c", True), ("Lead", False))}
    done = BranchOutcome(True, {})
    snapshot, lead = build_run_summary("R1", {}, rows, done, done, "t", 1.0).as_dict()["objects"]
    assert (snapshot["deletes_untracked"], snapshot["hard_deletes"]) == (True, 1)
    assert lead["deletes_untracked"] is False
    synced = SyncResult(extracted, "incremental", "d", replace(stats, deletes_untracked=True))
    assert synced.as_dict()["sync"]["deletes_untracked"] is True  # the sync task's dict says it too
