"""When a Bulk job's first status request is sent: soon for a job of unknown or few records, later for one known to
hold many (it cannot be complete before then), never past the polling cap."""

from __future__ import annotations

import pytest

from tasks.extract import BULK_ROWS_PER_SECOND_BOUND, ExtractOptions, _first_look


@pytest.mark.parametrize(("expected_rows", "seconds"), [
    (None, 0.25), (0, 0.25), (50_000, 0.25),          # unknown, or small: the usual first look
    (BULK_ROWS_PER_SECOND_BOUND, 1.0),                # 1M records: not before a second
    (3 * BULK_ROWS_PER_SECOND_BOUND, 3.0),
    (20 * BULK_ROWS_PER_SECOND_BOUND, 5.0),           # capped at bulk_poll_max_seconds
])
def test_the_first_look_waits_for_the_least_time_the_job_can_take(expected_rows, seconds):
    assert _first_look(ExtractOptions(), expected_rows) == pytest.approx(seconds)


def test_a_lower_polling_cap_bounds_it_too():
    assert _first_look(ExtractOptions(bulk_poll_max_seconds=0.1), 10 * BULK_ROWS_PER_SECOND_BOUND) == 0.1


class _Job:
    """A stand-in for RequestRunner: each status request answers the next state."""

    object_name, run_id, conn = "Opportunity", "R1", None

    def __init__(self, states: list[str]) -> None:
        self.states = states

    def __call__(self, request, what, **kwargs):  # noqa: ARG002 - RequestRunner's signature
        return {"state": self.states.pop(0)}


@pytest.mark.parametrize(("expected_rows", "waits"), [
    (None, [0.25, 0.375, 0.5625]),                          # the usual schedule
    (2 * BULK_ROWS_PER_SECOND_BOUND, [2.0, 0.375, 0.5625]),  # first once it can be done, then as if just created
])
def test_status_looks_wait_first_then_grow_from_the_usual_step(monkeypatch, expected_rows, waits):
    from tasks import extract

    slept: list[float] = []
    monkeypatch.setattr(extract.time, "sleep", slept.append)
    job = _Job(["InProgress", "InProgress", "JobComplete"])
    assert extract._bulk_wait(job, "750X", ExtractOptions(), expected_rows=expected_rows)["state"] == "JobComplete"
    assert slept == pytest.approx(waits)
