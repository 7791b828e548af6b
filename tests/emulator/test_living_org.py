"""The living org: it changes with time (inserts, updates, soft deletes, undeletes, purges) as a pure function of
seed and time, reaches up to the server's clock, and a restarted server serves the same org as one that ran on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from emulator.living import LivingOrg
from emulator.org import build_org
from emulator.runner import EmulatorInfo, emulator_session, freeze_clock, run_emulator
from emulator.state import living_rate_of

pytestmark = [pytest.mark.integration]
SIZES = {"User": 10, "Account": 400, "Contact": 600, "Opportunity": 1_000, "Lead": 500, "Case": 500}
OBJECTS = ("Account", "Contact", "Opportunity", "Lead", "Case")


def _at(hours: float) -> str:
    """A time ``hours`` after the next whole hour: ahead of every server's clock in this test."""
    base = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return (base + timedelta(hours=hours)).isoformat()


@contextmanager
def _living(seed: int = 5) -> Iterator[EmulatorInfo]:
    with run_emulator(seed=seed, rows=SIZES, in_process=True, living_rate=1) as info:
        yield info


def _query_all(info: EmulatorInfo, soql: str) -> list[dict]:
    records: list[dict] = []
    with emulator_session(info) as http:
        url = f"{info.instance_url}/services/data/v59.0/queryAll"
        page = http.get(url, params={"q": soql}, headers={"Authorization": f"Bearer {info.access_token}"}).json()
        records += page["records"]
        while not page["done"]:
            page = http.get(f"{info.instance_url}{page['nextRecordsUrl']}",
                            headers={"Authorization": f"Bearer {info.access_token}"}).json()
            records += page["records"]
    for record in records:
        record.pop("attributes")
    return sorted(records, key=lambda r: r["Id"])


def _snapshot(info: EmulatorInfo, name: str) -> list[dict]:
    return _query_all(info, f"SELECT Id, IsDeleted, Name, LastModifiedDate, SystemModstamp FROM {name}"
                      if name != "Case" else
                      "SELECT Id, IsDeleted, Status, IsClosed, ClosedDate, LastModifiedDate, SystemModstamp FROM Case")


def test_a_restarted_server_serves_the_same_org_as_one_that_ran_on():
    """One server steps through a day of frozen clock times; another, started later, jumps straight to the end:
    every object answers the same, record for record."""
    with _living() as ran_on:
        for hours in (1, 5, 11, 17):
            freeze_clock(ran_on, _at(hours))
            _snapshot(ran_on, "Opportunity")  # any request moves the org to the clock
        end = _at(24)  # once: a second server starting across the hour would otherwise be an hour ahead
        freeze_clock(ran_on, end)
        with _living() as restarted:
            freeze_clock(restarted, end)
            for name in OBJECTS:
                assert _snapshot(ran_on, name) == _snapshot(restarted, name), name


def test_the_org_changes_with_time_and_reaches_the_servers_clock():
    with _living() as info:
        freeze_clock(info, _at(0))
        before = {name: {r["Id"]: r for r in _snapshot(info, name)} for name in OBJECTS}
        freeze_clock(info, _at(7 * 24))  # a week: every flapper's cycle (2-6 days) deletes and undeletes in it
        after = {name: {r["Id"]: r for r in _snapshot(info, name)} for name in OBJECTS}
    start = _at(0)
    newest = max(r["SystemModstamp"] for rows in after.values() for r in rows.values())
    assert newest[:13] >= (datetime.fromisoformat(start) + timedelta(hours=7 * 24 - 4)).strftime("%Y-%m-%dT%H")
    totals = {"inserted": 0, "updated": 0, "deleted": 0, "undeleted": 0, "purged": 0}
    for name in OBJECTS:
        for record_id, record in after[name].items():
            old = before[name].get(record_id)
            if old is None:
                totals["inserted"] += 1
            elif record["LastModifiedDate"] != old["LastModifiedDate"]:
                totals["updated"] += 1
            elif record["IsDeleted"] and not old["IsDeleted"]:
                totals["deleted"] += 1
            elif not record["IsDeleted"] and (old["IsDeleted"] or record["SystemModstamp"] != old["SystemModstamp"]):
                # back from the bin: deleted at the start, or deleted and undeleted within the week (an undelete
                # stamps SystemModstamp, not LastModifiedDate); which of the two depends on the hour the test runs
                totals["undeleted"] += 1
        totals["purged"] += len(before[name].keys() - after[name].keys())
    assert all(count > 0 for count in totals.values()), totals
    case_changes = [r for r in after["Case"].values() if r["LastModifiedDate"] > start]
    assert all((r["ClosedDate"] is not None) == r["IsClosed"] for r in case_changes)  # derived fields agree


def test_advancing_in_steps_equals_advancing_at_once():
    """The pure core: any split of the time range applies the same changes (no server, no clock)."""
    start, end = datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 9, 7, 30, tzinfo=timezone.utc)
    stepped, direct = build_org(seed=3, rows=SIZES), build_org(seed=3, rows=SIZES)
    stepped_life, direct_life = LivingOrg(stepped), LivingOrg(direct)
    # uneven steps, from a second to days (every step applies its changes one by one: ~0.1 s per 2 hours of them)
    for offset in (1, 61, 3_601, 7_777, 30_000, 86_400, 200_000, 200_001, 450_000, 600_000):
        stepped_life.advance(stepped, start + timedelta(seconds=offset))
    stepped_life.advance(stepped, end)
    direct_life.advance(direct, end)
    for name in OBJECTS:
        assert stepped.frame(name).sort("Id").equals(direct.frame(name).sort("Id")), name
    generated = build_org(seed=3, rows=SIZES)
    assert not stepped.frame("Opportunity").equals(generated.frame("Opportunity"))
    assert stepped.frame("Opportunity")["SystemModstamp"].max() > start.replace(tzinfo=None).replace(
        tzinfo=timezone.utc) - timedelta(days=1)


def test_rate_zero_is_a_still_org_and_a_bad_rate_is_refused():
    with run_emulator(seed=5, rows=SIZES, in_process=True, living_rate=0) as info:
        freeze_clock(info, _at(48))
        rows = _query_all(info, "SELECT Id, SystemModstamp FROM Opportunity")
    generated = build_org(seed=5, rows=SIZES).frame("Opportunity")
    assert len(rows) == generated.height
    assert max(r["SystemModstamp"] for r in rows) <= generated["SystemModstamp"].max().strftime("%Y-%m-%dT%H:%M:%S.999")
    for bad in ("-1", "fast"):
        with pytest.raises(ValueError, match="living rate"):
            living_rate_of(bad)
    assert living_rate_of(None, {"SF_EMULATOR_LIVING_RATE": "0"}) == 0
    assert pl.Series([living_rate_of(None, {})]).item() == 1
