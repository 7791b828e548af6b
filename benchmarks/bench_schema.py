"""Schema changes on a 1M-row object: the run after a field is added, and a formula refresh run, against a backfill.

Run: .venv/bin/python -m benchmarks.bench_schema [--rows 1000000] [--out benchmarks/results/schema.json]
(``python -m benchmarks --only schema`` runs it as a stage.) Target (issue #17): the column backfill after one field is
added to the registry (one narrow ``SELECT Id, <field>`` pull merged by Id: the added-field run less an unchanged
incremental run of the same round) costs under 30% of a full backfill's wall time and API requests. The whole runs
(added field, formula/relationship refresh) are reported as shares of the backfill too.

One emulator org (Opportunity only, no living changes), one data root, one sync per fresh child process
(``benchmarks.child``: wall time of the sync alone, peak RSS of its process); the parent reads the emulator's API
usage counter around each child. In order:

1. ``backfill``: the registry's Opportunity entry, first run;
2. ``incremental``: the same entry again, nothing changed in the org: the floor every later run pays;
3. ``add_field``: the entry plus ``Type`` (a picklist the default entry lacks): delta + narrow pull of ``Type``;
4. ``refresh``: some Accounts renamed first (their Opportunities' ``Account.Name`` changes, their SystemModstamp
   does not), then ``formula_refresh_every_runs=1``: delta + narrow pull of ``Account.Name`` and ``Owner.Name``.

After each run the replica is checked against the org: its row count and unique Ids against ``SELECT COUNT()``,
the added column's non-null count against ``COUNT() ... WHERE Type != null``, and a sample of records (including
every renamed Account's Opportunities in it) read back by Id over REST, value for value. Inside each child the
phases of the sync (the narrow pull, the base rewritten with the new column, the replica write) are timed by
wrapping those functions, with the API requests each made, so a missed target says where the time went.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.harness import WORK, Case, median, ratio, run_child

OBJECT = "Opportunity"
ADDED_FIELD = "Type"          # a picklist of the emulator's Opportunity (10% null) the registry's entry lacks
RENAMED_ACCOUNTS = 50         # Accounts renamed before the refresh run: their Opportunities' Account.Name changes
SAMPLE_RECORDS = 1_000        # records read back by Id to compare values with the replica
ID_BATCH = 200                # Ids per `WHERE Id IN (...)` REST query (URL well under 16 KB)
TARGET_SHARE = 0.30           # issue #17: one column backfill under 30% of a full backfill
RUNS = ("backfill", "incremental", "add_field", "refresh")
# tasks.sync functions timed inside the child (each wrapped when present; none calls another): name -> phase.
# The rest of a run ("other") is the describe, the delta's REST query and its parsing, the lock and the state.
PHASES = {"_load_replica": "load_replica", "merge_delta": "merge_delta", "_narrow_pull": "narrow_pull",
          "evolve_replica": "evolve_replica", "refresh_columns": "refresh_columns",
          "_write_replica": "write_replica", "_count_live": "count"}


# --- pure -----------------------------------------------------------------------------------------------------


def fractions(run: Mapping[str, Any], backfill: Mapping[str, Any]) -> dict[str, float | None]:
    """Seconds and API requests of ``run`` as a share of the backfill's."""
    return {"seconds": ratio(run["seconds"], backfill["seconds"]),
            "api_requests": ratio(run["api_requests"], backfill["api_requests"])}


def column_backfill(add_field: Mapping[str, Any], incremental: Mapping[str, Any],
                    backfill: Mapping[str, Any]) -> dict[str, float | None]:
    """What filling the added column cost, as a share of a backfill: the added-field run less an unchanged
    incremental run of the same round (the describe, the delta and the count every run pays anyway)."""
    return {key: ratio(add_field[key] - incremental[key], backfill[key]) for key in ("seconds", "api_requests")}


def verdicts(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stage's target in ``benchmarks.report``'s verdict shape (issue #17: a column backfill under 30% of a full
    backfill), on the median of the rounds' paired shares: each round's runs ran minutes apart, under one load."""
    out = []
    for key in ("seconds", "api_requests"):
        measured = median(r[key] for r in section["column_backfill_by_round"])
        out.append({"target": f"schema {section['rows']:,} rows: one column backfill / full backfill, "
                              f"{key.replace('_', ' ')}",
                    "measured": None if measured is None else round(measured, 3), "comparison": "<=",
                    "limit": TARGET_SHARE, "unit": "x", "ok": None if measured is None else measured <= TARGET_SHARE})
    return out


def phase_seconds(run: Mapping[str, Any]) -> dict[str, float]:
    """Seconds per phase of one run, ``other`` being the rest of its wall time."""
    seconds = {name: run["phases"].get(name, {}).get("seconds", 0.0) for name in PHASES.values()}
    return {**seconds, "other": max(0.0, run["seconds"] - sum(seconds.values()))}


def table(section: Mapping[str, Any]) -> str:
    """One row per run (seconds, requests, both as a share of the backfill, the narrow pull's part, peak RSS), then
    where each run's time went."""
    from benchmarks.report import format_table

    rows, phases = [], []
    for name in RUNS:
        r, f = section["runs"][name], section["fractions"].get(name, {})
        pull = r["phases"].get("narrow_pull", {})
        rows.append([name, r["seconds"], r["api_requests"], f.get("seconds"), f.get("api_requests"),
                     pull.get("seconds"), pull.get("api_requests"), r["peak_rss_mb"], bool(r["checked"])])
        phases.append([name, *phase_seconds(r).values()])
    runs = format_table([f"schema changes ({section['rows']:,} rows)", "s", "requests", "s / backfill",
                         "req / backfill", "narrow pull s", "pull req", "peak RSS MB", "replica = org"], rows)
    paired = section["column_backfill_by_round"]
    column = format_table(["column backfill / full backfill (added field - incremental)", "s", "requests"],
                          [[f"round {i + 1}", r["seconds"], r["api_requests"]] for i, r in enumerate(paired)])
    return runs + "\n\n" + column + "\n\n" + format_table(["seconds by phase", *PHASES.values(), "other"], phases)


# --- inside a child -------------------------------------------------------------------------------------------


def _patch_registry(fields: list[str], refresh_every: int) -> None:
    """This process's registry with the Opportunity entry changed (the registry is frozen: swap the mapping where
    it is read, as tests/sync_helpers.py:with_spec does)."""
    import configs.salesforce_objects as registry
    import tasks.sync

    patched = dict(registry.SALESFORCE_OBJECTS)
    patched[OBJECT] = patched[OBJECT].model_copy(update={"fields": tuple(fields),
                                                         "formula_refresh_every_runs": refresh_every})
    registry.SALESFORCE_OBJECTS = patched
    tasks.sync.SALESFORCE_OBJECTS = patched


def _time_phases(info: Any, phases: dict[str, dict[str, float]]) -> None:
    """Wrap the sync's phases (``PHASES``) to add up their seconds and the API requests they made."""
    import tasks.sync
    from emulator import get_state

    def wrap(name: str, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            before, started = get_state(info)["api_usage"]["used"], time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                entry = phases.setdefault(phase, {"seconds": 0.0, "api_requests": 0, "calls": 0})
                entry["seconds"] += seconds
                entry["api_requests"] += get_state(info)["api_usage"]["used"] - before
                entry["calls"] += 1
        return timed

    for name, phase in PHASES.items():
        if hasattr(tasks.sync, name):
            setattr(tasks.sync, name, wrap(name, phase, getattr(tasks.sync, name)))


def sync_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Child setup: the registry entry of this run, a client on the emulator; the work is one ``sync_object``."""
    from emulator.runner import EmulatorInfo
    from tasks.extract import ExtractOptions
    from tasks.sync import sync_object
    from utils.connection import SalesforceConnection
    from utils.settings import Credentials

    info = EmulatorInfo(**params["emulator"])
    _patch_registry(params["fields"], params["refresh_every"])
    phases: dict[str, dict[str, float]] = {}
    _time_phases(info, phases)
    conn = SalesforceConnection(Credentials(flow="access_token", instance_url=info.instance_url,
                                            access_token=info.access_token, ca_bundle=info.ca_bundle))

    def work() -> dict[str, Any]:
        result = sync_object(OBJECT, run_id=params["run_id"], connection=conn, data_root=params["data_root"],
                             options=ExtractOptions(), full_refresh=params.get("full_refresh", False))
        return {"mode": result.mode, "api_path": result.extracted.api_path, "schema_changes": result.schema_changes,
                "sync": result.sync.as_dict(), "phases": phases}

    return work


# --- the org's side (parent) ----------------------------------------------------------------------------------


class Org:
    """The emulator org read and changed through its real REST API, independently of the pipeline's code."""

    def __init__(self, info: Any) -> None:
        from emulator import emulator_session

        self.info, self.http = info, emulator_session(info)
        self.http.headers.update({"Authorization": f"Bearer {info.access_token}"})
        self.base = f"{info.instance_url}/services/data/v{info.api_version}"

    def used(self) -> int:
        from emulator import get_state

        return int(get_state(self.info)["api_usage"]["used"])

    def query(self, soql: str) -> dict[str, Any]:
        response = self.http.get(f"{self.base}/query", params={"q": soql}, timeout=120)
        response.raise_for_status()
        return response.json()

    def count(self, where: str = "") -> int:
        return int(self.query(f"SELECT COUNT() FROM {OBJECT}" + (f" WHERE {where}" if where else ""))["totalSize"])

    def records(self, fields: list[str], ids: list[str]) -> pl.DataFrame:
        """``fields`` of the given records, flattened like the replica (``Account.Name``), a few hundred per query."""
        rows = []
        for start in range(0, len(ids), ID_BATCH):
            batch = ", ".join(f"'{i}'" for i in ids[start:start + ID_BATCH])
            answer = self.query(f"SELECT {', '.join(fields)} FROM {OBJECT} WHERE Id IN ({batch})")
            assert answer["done"], "a sample batch must fit one page"
            rows += [{f: _path(r, f) for f in fields} for r in answer["records"]]
        return pl.DataFrame(rows, schema={f: pl.String for f in fields})

    def sample(self, n: int, *, seed: int) -> pl.DataFrame:
        """``n`` Opportunities (Id, AccountId) picked at random among 2,000 spread over the org (first by Name)."""
        answer = self.query(f"SELECT Id, AccountId FROM {OBJECT} ORDER BY Name LIMIT 2000")
        rows = [{"Id": r["Id"], "AccountId": r["AccountId"]} for r in answer["records"]]
        return pl.DataFrame(rows, schema={"Id": pl.String, "AccountId": pl.String}).sample(min(n, len(rows)), seed=seed)

    def live_accounts(self, account_ids: list[str]) -> list[str]:
        """Those of ``account_ids`` that are not deleted (the org has Opportunities of soft-deleted Accounts)."""
        live: set[str] = set()
        for start in range(0, len(account_ids), ID_BATCH):
            batch = ", ".join(f"'{i}'" for i in account_ids[start:start + ID_BATCH])
            live |= {r["Id"] for r in self.query(f"SELECT Id FROM Account WHERE Id IN ({batch})")["records"]}
        return [i for i in account_ids if i in live]

    def rename_accounts(self, account_ids: list[str], stamp: str) -> None:
        for account_id in account_ids:
            url = f"{self.base}/sobjects/Account/{account_id}"
            self.http.patch(url, json={"Name": f"Renamed {stamp} {account_id}"}, timeout=30).raise_for_status()


def _path(record: Mapping[str, Any], field: str) -> Any:
    value: Any = record
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def check_replica(org: Org, replica_path: Path, *, sample_ids: list[str], columns: list[str],
                  added: str | None) -> dict[str, Any]:
    """The replica against the org: row count and unique Ids vs COUNT(), the added column's non-nulls vs COUNT(),
    and the sample's values (as text) record by record. Raises on any difference: numbers of a wrong run are
    worthless."""
    replica = pl.read_parquet(replica_path)
    facts: dict[str, Any] = {"replica_rows": replica.height, "org_rows": org.count()}
    problems = []
    if replica.height != facts["org_rows"] or replica["Id"].n_unique() != replica.height:
        problems.append(f"rows: replica {replica.height} ({replica['Id'].n_unique()} unique Ids), "
                        f"org {facts['org_rows']}")
    if added:
        facts["added_non_null"] = replica[added].drop_nulls().len()
        facts["org_added_non_null"] = org.count(f"{added} != null")
        if facts["added_non_null"] != facts["org_added_non_null"]:
            problems.append(f"{added} non-null: replica {facts['added_non_null']}, org {facts['org_added_non_null']}")
    truth = org.records(["Id", *columns], sample_ids).sort("Id")
    mine = (replica.filter(pl.col("Id").is_in(sample_ids)).select("Id", *columns)
            .with_columns(pl.all().cast(pl.String)).sort("Id"))
    if not truth.equals(mine):
        diff = truth.join(mine, on="Id", how="full", suffix="_replica").head(3).to_dicts()
        problems.append(f"sample values differ, e.g. {diff}")
    facts["sample_records"] = truth.height
    if problems:
        msg = f"the replica does not match the org after this run: {'; '.join(problems)}"
        raise AssertionError(msg)
    return facts


# --- the stage ------------------------------------------------------------------------------------------------


def _timed_child(org: Org, name: str, params: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    before = org.used()
    result = run_child(Case(name, "benchmarks.bench_schema:sync_case", params))
    result["api_requests"] = org.used() - before
    log(f"  {name:<12} {result['seconds']:8.2f} s  {result['api_requests']:4d} requests  "
        f"peak {result['peak_rss_mb']:6.0f} MB  mode {result['mode']}  ({result['api_path']})"
        + (f"  columns {result['schema_changes']}" if result["schema_changes"] else "")
        + (f"  refreshed {result['sync']['refreshed']}" if result["sync"].get("refreshed") else ""))
    return result


def _whole(value: float | None) -> float | int | None:
    """A median request count as an int when it is one (an even number of rounds can give a half)."""
    return int(value) if value is not None and float(value).is_integer() else value


def summarize_step(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of one step (seconds, requests, each phase), the highest peak RSS, every round."""
    phases = {p for r in rounds for p in r["phases"]}
    return {
        "seconds": median(r["seconds"] for r in rounds),
        "api_requests": _whole(median(r["api_requests"] for r in rounds)),
        "runs_s": [round(r["seconds"], 3) for r in rounds], "api_requests_runs": [r["api_requests"] for r in rounds],
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rounds), 1),
        "phases": {p: {"seconds": median(r["phases"].get(p, {}).get("seconds", 0.0) for r in rounds),
                       "api_requests": _whole(median(r["phases"].get(p, {}).get("api_requests", 0) for r in rounds))}
                   for p in sorted(phases)},
        "checked": all(r["checked"] for r in rounds), "raw": rounds,
    }


def _one_round(org: Org, params: Callable[..., dict[str, Any]], fields: list[str], replica_path: Path, *,
               round_no: int, sample: pl.DataFrame, renamed: list[str],
               log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Backfill, unchanged incremental run, added field, refresh: each run checked against the org."""
    sample_ids, wider = sample["Id"].to_list(), [*fields, ADDED_FIELD]
    related = [c for c in fields if c in ("Account.Name", "Owner.Name")]
    steps = (("backfill", fields, 0, None), ("incremental", fields, 0, None), ("add_field", wider, 0, ADDED_FIELD))
    out = {}
    for step, step_fields, every, added in steps:  # a backfill of ``fields`` drops the column added last round
        out[step] = _timed_child(org, step, params(f"{step}{round_no}", step_fields, every, step == "backfill"), log)
        out[step]["checked"] = check_replica(org, replica_path, sample_ids=sample_ids,
                                             columns=[*([added] if added else []), *related], added=added)
    affected = pl.read_parquet(replica_path, columns=["AccountId"]).filter(pl.col("AccountId").is_in(renamed)).height
    org.rename_accounts(renamed, f"round {round_no}")
    out["refresh"] = refresh = _timed_child(org, "refresh", params(f"refresh{round_no}", wider, 1, False), log)
    refresh["checked"] = check_replica(org, replica_path, sample_ids=sample_ids, columns=[ADDED_FIELD, *related],
                                       added=ADDED_FIELD)
    # a renamed Account's Opportunity the delta repeated (the overlap) is an update, not a refreshed value
    merged = refresh["sync"]
    if merged.get("refreshed", 0) + merged["updates"] != affected:
        msg = (f"the refresh changed {merged.get('refreshed')} values and the delta updated {merged['updates']} "
               f"records; renaming {len(renamed)} Accounts changed Account.Name on {affected} Opportunities")
        raise AssertionError(msg)
    refresh["checked"] |= {"renamed_accounts": len(renamed), "opportunities_affected": affected}
    return out


def run_stage(*, rows: int, repeat: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``repeat`` rounds of backfill, unchanged incremental run, added field and refresh on one org and data root
    (interleaved: load on this shared machine hits every step alike); medians, and fractions of the backfill's."""
    from configs.salesforce_objects import SALESFORCE_OBJECTS
    from emulator import run_emulator
    from utils.paths import build_sync_paths

    fields = list(SALESFORCE_OBJECTS[OBJECT].fields)
    if ADDED_FIELD in fields:
        msg = f"the registry's {OBJECT} entry already lists {ADDED_FIELD}: pick another field for this benchmark"
        raise RuntimeError(msg)
    root = WORK / "schema" / uuid.uuid4().hex[:12]
    log(f"schema changes: {rows:,} {OBJECT} rows, {repeat} round(s), one sync per child process")
    started = time.perf_counter()
    rounds: dict[str, list[dict[str, Any]]] = {step: [] for step in RUNS}
    try:
        with run_emulator(rows={OBJECT: rows}, living_rate=0, faults="") as info:
            org = Org(info)
            emulator = {"instance_url": info.instance_url, "access_token": info.access_token,
                        "ca_bundle": info.ca_bundle, "api_version": info.api_version}
            replica_path = build_sync_paths(OBJECT, data_root=root).replica

            def params(run: str, step_fields: list[str], refresh_every: int, full: bool) -> dict[str, Any]:
                return {"emulator": emulator, "data_root": str(root), "run_id": run.replace("_", "").upper(),
                        "fields": step_fields, "refresh_every": refresh_every, "full_refresh": full}

            # the sample (and the Accounts renamed before each refresh: theirs) from the org's Opportunities
            sample = org.sample(SAMPLE_RECORDS, seed=17)
            accounts = org.live_accounts(sample["AccountId"].drop_nulls().unique(maintain_order=True).to_list())
            if len(accounts) < repeat * RENAMED_ACCOUNTS:
                msg = f"the sample has {len(accounts)} live Accounts; {repeat} rounds need {repeat * RENAMED_ACCOUNTS}"
                raise RuntimeError(msg)
            for i in range(repeat):
                renamed = accounts[i * RENAMED_ACCOUNTS:(i + 1) * RENAMED_ACCOUNTS]
                for step, result in _one_round(org, params, fields, replica_path, round_no=i, sample=sample,
                                               renamed=renamed, log=log).items():
                    rounds[step].append(result)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    runs = {step: summarize_step(results) for step, results in rounds.items()}
    backfills = rounds["backfill"]
    return {"rows": rows, "object": OBJECT, "added_field": ADDED_FIELD, "repeat": repeat, "runs": runs,
            "fractions": {step: fractions(runs[step], runs["backfill"]) for step in RUNS if step != "backfill"},
            "fractions_by_round": {step: [fractions(r, b) for r, b in zip(rounds[step], backfills, strict=True)]
                                   for step in RUNS if step != "backfill"},
            "column_backfill_by_round": [column_backfill(a, i, b) for a, i, b in
                                         zip(rounds["add_field"], rounds["incremental"], backfills, strict=True)],
            "stage_seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the four runs (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, one round")
    parser.add_argument("--out", type=Path, default=WORK / "schema.json")
    args = parser.parse_args(argv)
    section = run_stage(rows=100_000 if args.quick else args.rows, repeat=1 if args.quick else args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"schema": section, "targets": verdicts(section)}, indent=2, default=str) + "\n")
    print("\n" + table(section))
    for v in verdicts(section):
        print(f"{v['target']}: {v['measured']} (limit {v['limit']}) {'met' if v['ok'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
