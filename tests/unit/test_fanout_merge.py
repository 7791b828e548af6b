"""The fan-out's pure parts: what each object run is given, when an object run is lost (and re-submitted once), and
how the object runs' parts (or why there is none) become one run summary and one QA branch."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled, Completed, Crashed, Failed, Pending, Running, Scheduled

from flows.run_summary import BranchOutcome
from flows.sf_etl_fanout_flow import (
    Lost,
    after_loss,
    failed_row,
    lost_run,
    merge_run,
    object_run_parameters,
    part_or_reason,
    run_label,
    seconds_since_taken,
)
from flows.sf_etl_object_flow import RunPart

SOURCE = {"kind": "salesforce", "instance_url": "https://example.my.salesforce.com", "auth_flow": "access_token"}


def _part(name: str, *, qa_ok: bool = True, landed: bool = True) -> RunPart:
    row = replace(failed_row(name, "x"), status="ok", error=None, mode="backfill", rows=10, qa="7/7 passed",
                  dataset=f"/data/replica/{name}.parquet" if landed else None)
    qa = BranchOutcome(qa_ok, {"run_id": "R1", "objects": {name: {"results": [{"check": "gate"}]}},
                               "blocking_failures": [], "crashed": [] if qa_ok else [f"{name}.gate crashed"]},
                       None if qa_ok else "QA task(s) crashed")
    return RunPart(row, SOURCE, True, qa)


def _run(state) -> FlowRun:
    return FlowRun(name="Lead R1", flow_id=uuid4(), state=state)


def test_each_object_run_gets_the_fanout_options_that_are_set_and_its_own_query():
    options = {"full_refresh": True, "api": None, "data_root": None, "credentials_block": "sf-prod"}
    params = object_run_parameters("Lead", "R1", {"Lead": "SELECT Id FROM Lead"}, options)
    assert params == {"object_name": "Lead", "run_id": "R1", "full_refresh": True, "credentials_block": "sf-prod",
                      "soql": "SELECT Id FROM Lead"}
    assert "soql" not in object_run_parameters("Account", "R1", {"Lead": "SELECT Id FROM Lead"}, options)


def test_parts_merge_into_rows_in_plan_order_and_one_qa_branch():
    summary, qa = merge_run("R1", {"Lead": _part("Lead"), "Account": _part("Account")}, "2026-01-01T00:00:00Z", 3.14)
    assert [r.object for r in summary.objects] == ["Lead", "Account"]
    assert summary.source == SOURCE and summary.phase1_ok and summary.qa_ok and summary.failed_objects == []
    assert qa.ok and set(qa.part("objects")) == {"Lead", "Account"}


def test_an_object_run_without_a_part_is_a_failed_row_and_the_others_still_count():
    reason = part_or_reason("R1", "Lead", None, 60, "/nowhere")
    summary, qa = merge_run("R1", {"Account": _part("Account"), "Lead": reason}, "2026-01-01T00:00:00Z", 61)
    assert summary.failed_objects == ["Lead"]
    lead = summary.objects[1]
    assert lead.error == "its flow run did not finish within 60 s; cancelled" and lead.qa == "skipped (no result)"
    assert qa.ok and summary.qa_ok  # QA ran, and passed, on what landed


def test_a_qa_failure_in_one_object_run_fails_the_merged_qa_branch():
    summary, qa = merge_run("R1", {"Account": _part("Account"), "Lead": _part("Lead", qa_ok=False)}, "t", 1)
    assert not qa.ok and qa.error == "Lead: QA task(s) crashed" and summary.qa_error == qa.error
    assert qa.result is not None and qa.result["crashed"] == ["Lead.gate crashed"]


def test_nothing_landed_means_no_qa_and_an_unknown_source():
    summary, qa = merge_run("R1", {"Lead": "its flow run Lead R1 ended Crashed: killed"}, "t", 1)
    assert not qa.ok and qa.error == "no object was extracted" and summary.source["kind"] == "unknown"
    assert not summary.phase1_ok


def test_why_an_object_run_left_no_part(tmp_path):
    crashed = part_or_reason("R1", "Lead", _run(Crashed(message="Flow run infrastructure exited with non-zero "
                                                                 "status code -9.")), 60, str(tmp_path))
    assert crashed == "its flow run Lead R1 ended Crashed: Flow run infrastructure exited with non-zero status code -9."
    completed = part_or_reason("R1", "Lead", _run(Completed()), 60, str(tmp_path))
    assert isinstance(completed, str) and "completed but left no Lead.json" in completed
    assert "SF_PIPELINE_DATA_DIR" in completed


def test_a_crashed_first_run_is_lost_at_once_and_a_second_run_never_is():
    run = _run(Crashed(message="Flow run infrastructure exited with non-zero status code -9."))
    lost = lost_run("Lead", run, elapsed=1, timeout_seconds=60, resubmitted=False)
    assert lost == Lost("Lead", f"its flow run Lead R1 ({run.id}) ended Crashed: Flow run infrastructure exited "
                                "with non-zero status code -9.")
    assert lost_run("Lead", run, elapsed=1, timeout_seconds=60, resubmitted=True) is None


def test_a_run_still_running_or_pending_at_half_the_timeout_is_lost_a_scheduled_one_is_not():
    for state in (Running(), Pending()):
        run = _run(state)
        assert lost_run("Lead", run, elapsed=29.9, timeout_seconds=60, resubmitted=False) is None
        lost = lost_run("Lead", run, elapsed=30, timeout_seconds=60, resubmitted=False)
        assert lost is not None and lost.object == "Lead"
        assert f"was still {state.name} 30 s after a worker took it" in lost.reason
        assert str(run.id) in lost.reason
        assert lost_run("Lead", run, elapsed=59, timeout_seconds=60, resubmitted=True) is None
    # no worker took it yet: another submission would wait just the same; the deadline cancels it
    assert lost_run("Lead", _run(Scheduled()), elapsed=59, timeout_seconds=60, resubmitted=False) is None


def test_the_time_a_run_waits_for_a_free_worker_does_not_count():
    """Scheduled for 100 s (every worker busy), then taken: its clock starts when it is first seen Pending."""
    taken: dict = {}
    run = _run(Scheduled())
    assert seconds_since_taken(taken, run, 100.0) == 0
    pending = run.copy(update={"state": Pending()})
    assert seconds_since_taken(taken, pending, 100.0) == 0
    running = run.copy(update={"state": Running()})
    assert seconds_since_taken(taken, running, 129.0) == 29.0
    assert lost_run("Lead", running, elapsed=29.0, timeout_seconds=60, resubmitted=False) is None
    assert seconds_since_taken(taken, running, 130.0) == 30.0


def test_runs_that_ended_otherwise_are_not_lost():
    for state in (Completed(), Failed(message="boom"), Cancelled()):
        assert lost_run("Lead", _run(state), elapsed=59, timeout_seconds=60, resubmitted=False) is None


def test_a_second_loss_fails_the_object_naming_both_runs_and_a_success_hides_the_first():
    first, second = _run(Running()), _run(Crashed(message="killed"))
    lost = lost_run("Lead", first, elapsed=30, timeout_seconds=60, resubmitted=False)
    failure = after_loss(part_or_reason("R1", "Lead", second, 60, "/nowhere"), lost, second)
    assert isinstance(failure, str)
    assert failure.startswith(f"its flow run {run_label(first)} was still Running 30 s after a worker took it")
    assert f"re-submitted as {run_label(second)}, which failed too: its flow run Lead R1 ended Crashed: killed" \
        in failure
    timed_out = after_loss(part_or_reason("R1", "Lead", None, 60, "/nowhere"), lost, None)
    assert isinstance(timed_out, str) and timed_out.endswith("its flow run did not finish within 60 s; cancelled")
    part = _part("Lead")
    assert after_loss(part, lost, second) is part
    assert after_loss("why", None, None) == "why"
    summary, _ = merge_run("R1", {"Account": _part("Account"), "Lead": failure}, "t", 1)
    assert summary.failed_objects == ["Lead"] and summary.objects[0].status == "ok"
