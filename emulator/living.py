"""A living org: records are inserted, updated, soft-deleted, undeleted and purged as time passes, as a pure
function of the seed and the time.

The generated history ends at the org's epoch (``Org.epoch``); from there on every change has a scheduled time,
drawn from hashes of (seed, object, record), never from the wall clock of a run. ``LivingOrg.advance`` applies
the changes scheduled up to a time, in any number of steps: an emulator restarted at time T serves the same org
as one that ran through T, and a client syncing incrementally sees real ``+ins ~upd -del`` between runs.

What changes, per object (rates scale with the base size, capped; ``rate`` multiplies them all):
* **hot records** (2%, at least one): updated every 2-10 hours; each update rewrites one or more field groups
  with values of another generated record, whole groups so that derived fields agree (StageName with Probability);
* **kept inserts** (0.02% of the object a day, about 7% a year) that stay;
* **churn** (1% a day): records inserted, soft-deleted 1-47 hours later and purged from the recycle bin 15 days
  after that, as on real orgs;
* **flappers** (0.2%, at least one): records soft-deleted for 1-24 hours every 2-6 days, then undeleted;
* **deaths**: every other record is soft-deleted at a time spread over 40 years (at most 200 a day), then
  purged 15 days later.
Changes carry whole-second timestamps; a change is visible from its second on, never earlier, so a client that
read up to a time never misses a change stamped at or before it. Deletes do not cascade to children.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from emulator import schema as s
from emulator.generate import DATETIME, generate_object
from emulator.ids import make_ids

LIVING_OBJECTS = ("Account", "Contact", "Opportunity", "Lead", "Case")
DAY_S = 86_400
RECYCLE_BIN_S = 15 * DAY_S  # a soft-deleted record is purged after 15 days, as on real orgs
KEPT_FIRST_NUMBER = 1_000_000_000  # record numbers of living inserts: far from the generated rows and API creates
CHURN_FIRST_NUMBER = 2_000_000_000
BLOCK = 4096  # living inserts are generated in blocks of this many rows, each block from its own seed

# field groups an update rewrites together (each from one other record, so derived fields stay consistent)
MUTABLE_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Account": (("Rating",), ("AnnualRevenue",), ("NumberOfEmployees",), ("Description",), ("Type",)),
    "Contact": (("Title",), ("Email",), ("Description",), ("HasOptedOutOfEmail",)),
    "Opportunity": (("StageName", "Probability", "IsClosed", "IsWon", "ForecastCategory", "ForecastCategoryName",
                     "Amount", "ExpectedRevenue"),  # ExpectedRevenue = Amount x Probability: one group
                    ("NextStep",), ("CloseDate", "FiscalQuarter", "FiscalYear", "Fiscal")),
    "Lead": (("Status", "IsConverted", "ConvertedDate", "ConvertedAccountId", "ConvertedContactId",
              "ConvertedOpportunityId"), ("Rating",), ("AnnualRevenue",)),
    "Case": (("Status", "IsClosed", "ClosedDate"), ("Priority",), ("IsEscalated",)),
}
_LOOKBACK = 16  # a group keeps the value of its latest touching update among the last this many


@dataclass(frozen=True)
class Rates:
    """Per object and day, as fractions of the generated size (with a floor and a cap), times ``rate``."""

    hot_fraction: float = 0.02
    hot_cap: int = 2_000
    hot_period_s: tuple[int, int] = (2 * 3_600, 10 * 3_600)
    kept_per_day: float = 0.0002
    kept_cap: int = 200
    churn_per_day: float = 0.01
    churn_cap: int = 2_000
    churn_life_s: tuple[int, int] = (3_600, 47 * 3_600)
    flapper_fraction: float = 0.002
    flapper_cap: int = 50
    flap_cycle_s: tuple[int, int] = (2 * DAY_S, 6 * DAY_S)
    flap_down_s: tuple[int, int] = (3_600, DAY_S)
    death_horizon_s: int = 40 * 365 * DAY_S
    death_cap: int = 200  # deaths a day at most: a 5M-row object would otherwise lose 340 records a day


# --- deterministic draws ------------------------------------------------------------------------------------------
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised: well-spread uint64s from any uint64s."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _key(*parts: object) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big"))


def _unit(key: np.uint64, *arrays: np.ndarray) -> np.ndarray:
    """A uniform draw in [0, 1) per element, a pure function of ``key`` and the integer arrays."""
    x = np.full(np.broadcast(*arrays).shape if arrays else (), key, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for a in arrays:
            x = _mix(x ^ (np.asarray(a).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _between(u: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    low, high = bounds
    return (low + u * (high - low)).astype(np.int64)


def _scaled(n: int, per_day: float, cap: int, rate: float) -> float:
    """Events a day for an object of ``n`` generated rows."""
    return max(0.1, min(float(cap), n * per_day)) * rate if n else 0.0


# --- one object's schedule ---------------------------------------------------------------------------------------
class _Schedule:
    """When each change of one object happens (seconds after the org's epoch) and what it writes."""

    def __init__(self, seed: int, name: str, base: pl.DataFrame, sizes: Mapping[str, int], rates: Rates,
                 rate: float):
        self.name, self.seed, self.base, self.sizes = name, seed, base, sizes
        self.prefix = s.OBJECTS[name].key_prefix
        n = base.height
        numbers = np.arange(n)
        # each record's role by a random order: the first are hot, the next flap, the rest may die
        order = np.argsort(_unit(_key(seed, name, "role"), numbers), kind="stable")
        order = order[~base["IsDeleted"].to_numpy()[order]]  # the recycle bin's generated rows keep still
        hot_count = min(max(1, round(n * rates.hot_fraction)), rates.hot_cap, len(order))
        flap_count = min(max(1, round(n * rates.flapper_fraction)), rates.flapper_cap, len(order) - hot_count)
        self.hot = np.sort(order[:hot_count])
        self.hot_period = (_between(_unit(_key(seed, name, "period"), self.hot), rates.hot_period_s) / rate
                           ).astype(np.int64) if rate else np.zeros(0, np.int64)
        self.hot_phase = (_unit(_key(seed, name, "phase"), self.hot) * self.hot_period).astype(np.int64)
        self.flappers = np.sort(order[hot_count:hot_count + flap_count])
        self.flap_cycle = (_between(_unit(_key(seed, name, "cycle"), self.flappers), rates.flap_cycle_s) / rate
                           ).astype(np.int64)
        self.flap_down = _between(_unit(_key(seed, name, "down"), self.flappers), rates.flap_down_s)
        self.flap_phase = (_unit(_key(seed, name, "flap"), self.flappers) * self.flap_cycle).astype(np.int64)
        mortal = order[hot_count + flap_count:]
        horizon = max(rates.death_horizon_s, len(mortal) * DAY_S // rates.death_cap)
        death = (_unit(_key(seed, name, "death"), mortal) * horizon / rate).astype(np.int64)
        order = np.argsort(death, kind="stable")
        self.mortal, self.death = mortal[order], death[order]  # sorted by time: a window is a searchsorted slice
        self.kept_step = int(DAY_S / _scaled(n, rates.kept_per_day, rates.kept_cap, rate))
        self.churn_step = int(DAY_S / _scaled(n, rates.churn_per_day, rates.churn_cap, rate))
        self.churn_life = rates.churn_life_s
        self.groups = MUTABLE_GROUPS[name]
        self._blocks: dict[tuple[str, int], pl.DataFrame] = {}

    # --- hot updates ---
    def hot_updates(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Rows (generated numbers) updated in (t0, t1], the time of their last update, and for each group a
        donor row (-1: the generated value) whose values the group holds after that update."""
        last1 = np.floor_divide(t1 - self.hot_phase, self.hot_period)
        last0 = np.floor_divide(t0 - self.hot_phase, self.hot_period)
        changed = (last1 >= 0) & (last1 > last0)
        rows, period, phase, k = self.hot[changed], self.hot_period[changed], self.hot_phase[changed], last1[changed]
        donors: dict[str, np.ndarray] = {}
        if not rows.size:  # most calls: a request a second apart from the last one
            return rows, k, donors
        n = self.base.height
        forced_key, touch_key, donor_key = (_key(self.seed, self.name, w) for w in ("forced", "touch", "donor"))
        for g in range(len(self.groups)):
            donor = np.full(rows.shape, -1, dtype=np.int64)
            found = np.zeros(rows.shape, dtype=bool)
            group = np.full(rows.shape, g)
            for back in range(_LOOKBACK):
                kk = k - back
                forced = (_unit(forced_key, rows, kk) * len(self.groups)).astype(np.int64) == g
                touched = (kk >= 0) & ~found & (forced | (_unit(touch_key, rows, kk, group) < 0.5))
                donor = np.where(touched, (_unit(donor_key, rows, kk, group) * n).astype(np.int64), donor)
                found |= touched
            donors[str(g)] = donor
        return rows, phase + k * period, donors

    # --- soft delete and undelete cycles ---
    def flaps(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flappers whose state changed in (t0, t1]: rows, deleted at t1?, time of the last transition."""
        m = np.floor_divide(t1 - self.flap_phase, self.flap_cycle)
        start = self.flap_phase + m * self.flap_cycle
        down = (t1 - start) < self.flap_down
        last = np.where(down, start, start + self.flap_down)
        changed = (m >= 0) & (last > t0)
        return self.flappers[changed], down[changed], last[changed]

    # --- deaths of generated records ---
    def deaths(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows soft-deleted in (t0, t1] and still in the bin at t1, their death times, rows purged in it)."""
        lo, hi = np.searchsorted(self.death, [t0, t1], side="right")
        plo, phi = np.searchsorted(self.death + RECYCLE_BIN_S, [t0, t1], side="right")
        died = np.arange(lo, hi)
        died = died[self.death[died] + RECYCLE_BIN_S > t1]
        return self.mortal[died], self.death[died], self.mortal[plo:phi]

    # --- inserts ---
    def kept(self, t0: int, t1: int) -> np.ndarray:
        """Indices of the kept inserts created in (t0, t1] (index i is created at (i + 1) * kept_step)."""
        return np.arange(t0 // self.kept_step, t1 // self.kept_step)

    def churn(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Creation and soft-deletion times of churn records ``j``."""
        created = (j + 1) * self.churn_step
        return created, created + _between(_unit(_key(self.seed, self.name, "life"), j), self.churn_life)

    def churn_candidates(self, t0: int, t1: int) -> np.ndarray:
        """Every churn index that may be created, deleted or purged in (t0, t1]."""
        first = max(0, (t0 - self.churn_life[1] - RECYCLE_BIN_S) // self.churn_step - 1)
        return np.arange(first, max(first, t1 // self.churn_step))

    def inserted_rows(self, kind: str, indices: np.ndarray, created: np.ndarray) -> pl.DataFrame:
        """Rows of living inserts ``indices`` (of ``kind`` kept/churn) created at ``created`` (seconds)."""
        first = KEPT_FIRST_NUMBER if kind == "kept" else CHURN_FIRST_NUMBER
        parts = []
        for block in np.unique(indices // BLOCK):
            rows = self._block(kind, int(block))
            parts.append(rows[(indices[indices // BLOCK == block] % BLOCK).tolist()])
        frame = pl.concat(parts) if parts else self.base.clear()
        numbers = first + indices
        stamps = pl.Series(created * 1000).cast(DATETIME)
        changes: list[pl.Series | pl.Expr] = [
            make_ids(self.prefix, numbers), pl.Series("IsDeleted", np.zeros(len(indices), dtype=bool)),
            stamps.alias("CreatedDate"), stamps.alias("LastModifiedDate"), stamps.alias("SystemModstamp")]
        # activity, view and stage dates of a record created just now cannot lie in its block's generated past
        changes += [pl.lit(None, dtype=frame.schema[c]).alias(c) for c in frame.columns
                    if c.startswith("Last") and c not in ("LastModifiedDate", "LastModifiedById", "LastName")
                    and frame.schema[c] in (pl.Date(), DATETIME)]
        if self.name == "Case":
            changes.append(pl.Series("CaseNumber", [f"{number:010d}" for number in numbers]))
        return frame.with_columns(changes)

    def _block(self, kind: str, block: int) -> pl.DataFrame:
        if (kind, block) not in self._blocks:
            block_seed = int(_key(self.seed, self.name, kind, block) >> np.uint64(1))
            self._blocks[kind, block] = generate_object(self.name, BLOCK, seed=block_seed, sizes=self.sizes)
        return self._blocks[kind, block]


# --- the org over time -------------------------------------------------------------------------------------------
class LivingOrg:
    """Moves an ``Org`` forward in time: ``advance(org, now)`` applies every change scheduled up to ``now``."""

    def __init__(self, org: Any, *, rate: float = 1.0, rates: Rates | None = None):
        self.rate = rate
        self.anchor: datetime = org.epoch
        rates = rates or Rates()
        self._schedules = {name: _Schedule(org.spec.seed, name, org.initial_frame(name), org.spec.sizes, rates, rate)
                           for name in LIVING_OBJECTS if name in org.object_names()}
        self._applied = 0  # seconds after the anchor up to which changes are applied
        self._lock = threading.Lock()

    def rewind(self) -> None:
        """The org went back to its generated data (an admin reset): apply everything again from the epoch."""
        with self._lock:
            self._applied = 0

    def advance(self, org: Any, now: datetime) -> None:
        """Apply the changes scheduled in (last applied, now]; a clock set back changes nothing."""
        target = int((now - self.anchor).total_seconds())
        with self._lock:
            if target <= self._applied:
                return
            for schedule in self._schedules.values():
                org.apply_changes(schedule.name, *_changes(schedule, self._applied, target, self.anchor))
            self._applied = target


def _stamp(anchor: datetime, seconds: int) -> datetime:
    return anchor + timedelta(seconds=int(seconds))


def _changes(schedule: _Schedule, t0: int, t1: int, anchor: datetime
             ) -> tuple[pl.DataFrame | None, dict[str, dict[str, Any]], set[str]]:
    """What (t0, t1] does to one object: rows to append, field changes by Id, Ids to purge."""
    base, ids = schedule.base, schedule.base["Id"]
    epoch_s = int(anchor.timestamp())  # the inserted rows' stamps are absolute
    updates: dict[str, dict[str, Any]] = {}
    rows, times, donors = schedule.hot_updates(t0, t1)
    for i, (row, when) in enumerate(zip(rows.tolist(), times.tolist(), strict=True)):
        stamp = _stamp(anchor, when)
        change: dict[str, Any] = {"LastModifiedDate": stamp, "SystemModstamp": stamp,
                                  # made by the user who last modified the record giving the first group its values
                                  "LastModifiedById": base["LastModifiedById"][int(donors["0"][i]) % base.height]}
        for g, columns in enumerate(schedule.groups):
            source = int(donors[str(g)][i])
            change.update(base.select(columns).row(source if source >= 0 else row, named=True))
        if schedule.name == "Case":  # closed by this update's status change, not the donor's history
            change["ClosedDate"] = stamp if change["IsClosed"] else None
        updates[ids[row]] = change
    flap_rows, down, last = schedule.flaps(t0, t1)
    for row, deleted, when in zip(flap_rows.tolist(), down.tolist(), last.tolist(), strict=True):
        updates.setdefault(ids[row], {}).update(IsDeleted=deleted, SystemModstamp=_stamp(anchor, when))
    died, death, purged_rows = schedule.deaths(t0, t1)
    for row, when in zip(died.tolist(), death.tolist(), strict=True):
        updates.setdefault(ids[row], {}).update(IsDeleted=True, SystemModstamp=_stamp(anchor, when))
    purged = {ids[row] for row in purged_rows.tolist()}
    appended = []
    kept = schedule.kept(t0, t1)
    if len(kept):
        appended.append(schedule.inserted_rows("kept", kept, epoch_s + (kept + 1) * schedule.kept_step))
    j = schedule.churn_candidates(t0, t1)
    created, deleted_at = schedule.churn(j)
    gone_at = deleted_at + RECYCLE_BIN_S
    before, after = (created <= t0) & (gone_at > t0), (created <= t1) & (gone_at > t1)
    new = ~before & after
    if new.any():
        rows_new = schedule.inserted_rows("churn", j[new], epoch_s + created[new])
        dead = deleted_at[new] <= t1
        stamps = pl.Series(np.where(dead, deleted_at[new], created[new]) * 1000 + epoch_s * 1000)
        appended.append(rows_new.with_columns(pl.Series("IsDeleted", dead), stamps.cast(DATETIME)
                                              .alias("SystemModstamp")))
    dying = before & after & (deleted_at > t0) & (deleted_at <= t1)
    for record_id, when in zip(make_ids(schedule.prefix, CHURN_FIRST_NUMBER + j[dying]), deleted_at[dying].tolist(),
                               strict=True):
        updates[record_id] = {"IsDeleted": True, "SystemModstamp": _stamp(anchor, when)}
    purged |= set(make_ids(schedule.prefix, CHURN_FIRST_NUMBER + j[before & ~after]).to_list())
    frame = pl.concat(appended) if appended else None
    return frame, {k: v for k, v in updates.items() if k not in purged}, purged

