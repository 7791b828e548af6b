"""Fault spec parsing and the per-request decision (after/times/p/latency/patterns)."""

from __future__ import annotations

import pytest

from emulator.faults import FaultPlan, FaultSpecError, parse_faults


def _actions(plan: FaultPlan, kind: str, n: int) -> list[str | None]:
    return [d.fault.action if d.fault else None for d in (plan.decide(kind) for _ in range(n))]


def test_example_spec_parses_into_rules():
    rules = parse_faults("bulk.results:reset:after=1:times=2;rest.query_more:503:times=3;*:latency=200")
    assert [(r.kind, r.action, r.after, r.times) for r in rules] == [
        ("bulk.results", "reset", 1, 2), ("rest.query_more", "503", 0, 3), ("*", "latency", 0, None)]
    assert rules[2].latency_ms == 200


def test_after_and_times_select_which_requests_fail():
    plan = FaultPlan("rest.query:503:after=2:times=2")
    assert _actions(plan, "rest.query", 6) == [None, None, "503", "503", None, None]
    assert _actions(plan, "rest.describe", 2) == [None, None]


def test_times_zero_means_every_request():
    plan = FaultPlan("bulk.*:500:times=0")
    assert _actions(plan, "bulk.status", 4) == ["500"] * 4


def test_error_details_and_status_override():
    decision = FaultPlan("rest.query_more:locator:status=404").decide("rest.query_more")
    assert decision.fault is not None
    assert (decision.fault.status, decision.fault.error_code) == (404, "INVALID_QUERY_LOCATOR")
    daily = FaultPlan("*:daily").decide("rest.limits").fault
    assert daily is not None and (daily.status, daily.message) == (403, "TotalRequests Limit exceeded.")


def test_latency_adds_up_and_does_not_block_an_error():
    plan = FaultPlan("*:latency=100;rest.*:latency=50;rest.query:concurrent")
    decision = plan.decide("rest.query")
    assert decision.latency_ms == 150
    assert decision.fault is not None and decision.fault.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert plan.decide("rest.query").fault is None  # times defaults to 1 for errors
    assert plan.decide("rest.query").latency_ms == 150  # latency is unlimited


def test_probability_is_reproducible_from_the_seed():
    first = _actions(FaultPlan("sobject:500:p=0.5:times=0", seed=3), "sobject", 40)
    again = _actions(FaultPlan("sobject:500:p=0.5:times=0", seed=3), "sobject", 40)
    other = _actions(FaultPlan("sobject:500:p=0.5:times=0", seed=4), "sobject", 40)
    assert first == again and first != other
    assert 5 < first.count("500") < 35


def test_replace_resets_counters_and_keeps_old_rules_on_a_bad_spec():
    plan = FaultPlan("auth:503")
    assert _actions(plan, "auth", 2) == ["503", None]
    plan.replace("auth:503")
    assert _actions(plan, "auth", 1) == ["503"]
    with pytest.raises(FaultSpecError):
        plan.replace("auth:boom")
    assert plan.spec == "auth:503"
    plan.replace(None)
    assert _actions(plan, "auth", 1) == [None]


@pytest.mark.parametrize("spec", [
    "rest.query", "nothing.here:503", "rest.query:explode", "rest.query:503:after=x", "rest.query:503:p=2",
    "rest.query:503:color=red", "*:latency=fast",
])
def test_bad_specs_name_the_rule(spec):
    with pytest.raises(FaultSpecError, match="fault rule"):
        parse_faults(spec)


@pytest.mark.parametrize("spec", ["bulk.*:hold", "*:hold:times=0", "bulk.statu?:hold", "rest.query:hold"])
def test_hold_takes_exactly_bulk_status_not_a_pattern(spec):
    """Under a pattern, creates and result pages would use up the rule's times while no job is held."""
    with pytest.raises(FaultSpecError, match="its kind must be exactly bulk.status"):
        parse_faults(spec)
    (rule,) = parse_faults("bulk.status:hold:times=0")
    assert (rule.kind, rule.action, rule.times) == ("bulk.status", "hold", None)
