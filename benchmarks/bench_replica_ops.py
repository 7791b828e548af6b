"""Replica operations that join or compare a whole pull with the base of a big object, each in bounded memory.

Run: .venv/bin/python -m benchmarks.bench_replica_ops [--rows 20000000] [--repeat 3] [--quick]
(or ``python -m benchmarks --only replica_ops``; opt-in, not in the default run: the 20M-record data takes minutes
to build). Target (issues #17 and #18): at 20M records each operation stays under 1,500 MB peak RSS, so a whole
incremental run that includes one fits in 1.5 GB.

One synthetic Opportunity-shaped base (the registry's 16 columns and the stored hashes, sorted by Id, stamped) and
three pulls in a scattered key order are built once, in a child process, streamed chunk by chunk, under
``benchmarks/.work`` (deleted afterwards). Every value is a function of the record's number ``n``, so the data is
the same on every run and what each operation must produce is known without running it. Then, each in a fresh
child process (wall time of the operation alone, peak RSS of its process), rounds of:

1. ``schema_change``: ``evolve_replica`` with ``Type`` added, filled from a narrow pull (``Id``, ``Type``); it
   rewrites the base, so it runs on a fresh copy of it (copied before the timing);
2. ``refresh``: ``Replica.refresh`` with a pull of ``Id``, ``Account.Name``, ``Owner.Name`` for every record, one
   ``Account.Name`` in ``CHANGE_EVERY`` changed and one ``Owner.Name`` in ``OWNER_CHANGE_EVERY``;
3. ``compare_keys``: ``Replica.compare_keys`` (a reconciliation's comparison) with every live Id but
   ``VANISHED`` of the base's, plus ``MISSING`` Ids the base lacks.

Each result is checked in its child once the timing and the peak are taken: the new base holds every record, in
strictly increasing key order, each with the pull's ``Type``, its own other values and a row hash of its values;
the refresh counts exactly the changed values and its overlay holds exactly the changed records, whole; the
comparison finds exactly the vanished and the missing Ids. A failed check fails the child, and so the stage:
numbers of a wrong result are not reported.
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.harness import REPO, WORK, Case, load_average, measure_interleaved, run_child

OBJECT = "Opportunity"
KEY = "Id"
ADDED_FIELD = "Type"                          # the schema change: a picklist the base lacks
CHANGE_EVERY = 1_000     # the refresh pull's Account.Name differs from the base's on records n % CHANGE_EVERY == 0
OWNER_CHANGE_EVERY = 5_000  # ... and its Owner.Name on n % OWNER_CHANGE_EVERY == 0: two values on those records, so
#                             a count of records in place of values is caught
VANISHED = 1_000         # base Ids the comparison's live keys lack (hard deletes)
MISSING = 500            # live Ids the base lacks (records every delta missed)
TARGET_PEAK_MB = 1_500   # issue #18: a whole incremental run on 20M records under 1.5 GB
ROWS = 20_000_000
# --quick: the smallest base of more than one key range (tasks.replica_store.RANGE_ROWS, whole row groups), so the
# split of the pull and the per-range joins run, not the one-range shortcut a 1M-record base takes
QUICK_ROWS = 1_500_000
OPERATIONS = ("schema_change", "refresh", "compare_keys")
CHUNK_ROWS = 1_000_000   # records generated per streamed chunk
BUILD_TIMEOUT_S = 3_600.0
RESULTS = REPO / "benchmarks" / "results" / "replica_ops.json"
PARTIAL = WORK / "replica_ops.json"           # --quick, or another size than ROWS
# what an operation's child setup returns: the work to time, and its check (run after the timing and the peak)
Hooks = tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], dict[str, Any]]]
ID_PREFIX, ID_DIGITS, ID_SUFFIX = "006EM", 10, "AAA"
MISSING_SUFFIX = "AAM"   # a missing Id sorts right after the base Id of the same number: spread over every range
# Salesforce field types, stored in the base's stamp as a sync would
COLUMN_TYPES = {"Id": "id", "Name": "string", "StageName": "picklist", "Amount": "currency",
                "Probability": "percent", "CloseDate": "date", "IsClosed": "boolean", "IsWon": "boolean",
                "ForecastCategory": "picklist", "LeadSource": "picklist", "AccountId": "reference",
                "Account.Name": "string", "OwnerId": "reference", "Owner.Name": "string",
                "CreatedDate": "datetime", "SystemModstamp": "datetime"}
# the files of the work dir
BASE, TYPE_PULL, REFRESH_PULL, LIVE_KEYS = "Opportunity.parquet", "type_pull.parquet", "refresh_pull.parquet", \
    "live_keys.parquet"


# --- pure: the synthetic records --------------------------------------------------------------------------------


def key_of(n: int, suffix: str = ID_SUFFIX) -> str:
    """The Id of record number ``n`` (``key_expr`` in Python)."""
    return f"{ID_PREFIX}{n:0{ID_DIGITS}d}{suffix}"


def key_expr(n: pl.Expr, suffix: str = ID_SUFFIX) -> pl.Expr:
    """The Id of record number ``n``: 18 characters, in the order of ``n``."""
    return pl.lit(ID_PREFIX) + n.cast(pl.String).str.zfill(ID_DIGITS) + pl.lit(suffix)


def number_of(key: pl.Expr) -> pl.Expr:
    """Record number ``n`` back from an Id."""
    return key.str.slice(len(ID_PREFIX), ID_DIGITS).cast(pl.Int64)


def type_of(n: pl.Expr) -> pl.Expr:
    """The added field's value: one of seven, null on one record in ten (like the emulator's picklist)."""
    return pl.when(n % 10 != 9).then(pl.format("Type {}", n % 7)).alias(ADDED_FIELD)


def account_name_of(n: pl.Expr) -> pl.Expr:
    return pl.format("Account {}", n // 20).alias("Account.Name")


def refreshed_account_name_of(n: pl.Expr) -> pl.Expr:
    """``Account.Name`` in the refresh pull: renamed on every ``CHANGE_EVERY``-th record."""
    return (pl.when(n % CHANGE_EVERY == 0).then(pl.format("Account {} renamed", n // 20))
            .otherwise(account_name_of(n)).alias("Account.Name"))


def owner_name_of(n: pl.Expr) -> pl.Expr:
    return pl.format("User {}", n % 50).alias("Owner.Name")


def refreshed_owner_name_of(n: pl.Expr) -> pl.Expr:
    """``Owner.Name`` in the refresh pull: renamed on every ``OWNER_CHANGE_EVERY``-th record."""
    return (pl.when(n % OWNER_CHANGE_EVERY == 0).then(pl.format("User {} renamed", n % 50))
            .otherwise(owner_name_of(n)).alias("Owner.Name"))


def records_of(numbers: pl.LazyFrame) -> pl.LazyFrame:
    """The synthetic Opportunity of each record number (column ``n``), the registry entry's 16 columns."""
    n = pl.col("n")
    return numbers.select(
        key_expr(n).alias(KEY), pl.format("Opportunity {}", n).alias("Name"),
        pl.format("Stage {}", n % 7).alias("StageName"), (n % 100_000).cast(pl.Float64).alias("Amount"),
        (n % 100).cast(pl.Float64).alias("Probability"),
        (pl.date(2024, 1, 1) + pl.duration(days=n % 700)).alias("CloseDate"),
        (n % 3 == 0).alias("IsClosed"), (n % 5 == 0).alias("IsWon"),
        pl.format("Cat {}", n % 4).alias("ForecastCategory"), pl.format("Src {}", n % 9).alias("LeadSource"),
        pl.format("001EM{}AAA", (n // 20).cast(pl.String).str.zfill(10)).alias("AccountId"), account_name_of(n),
        pl.format("005EM{}AAA", (n % 50).cast(pl.String).str.zfill(10)).alias("OwnerId"),
        owner_name_of(n),
        (pl.datetime(2020, 1, 1, time_zone="UTC") + pl.duration(seconds=n)).dt.cast_time_unit("ms")
        .alias("CreatedDate"),
        (pl.datetime(2021, 1, 1, time_zone="UTC") + pl.duration(seconds=n)).dt.cast_time_unit("ms")
        .alias("SystemModstamp"),
    )


def scatter_multiplier(rows: int) -> int:
    """A multiplier ``a`` coprime with ``rows`` and far from 0 and 1 mod ``rows``, so ``i -> a*i mod rows`` visits
    every record number once, consecutive ones far apart: a pull's order, made without a sort."""
    a = max(2, int(rows * 0.618_033_988_7))  # the golden ratio spreads consecutive multiples evenly
    while math.gcd(a, rows) != 1:
        a += 1
    return a


def numbers(rows: int, *, scattered: bool) -> pl.LazyFrame:
    """Record numbers ``0..rows-1`` as a stream of ``CHUNK_ROWS`` chunks: in order, or scattered (a permutation)."""
    a = scatter_multiplier(rows)
    chunks = []
    for start in range(0, rows, CHUNK_ROWS):
        i = pl.int_range(start, min(rows, start + CHUNK_ROWS), dtype=pl.Int64)
        chunks.append(pl.LazyFrame().select(((i * a) % rows if scattered else i).alias("n")))
    return pl.concat(chunks) if chunks else pl.LazyFrame(schema={"n": pl.Int64})


def vanished_numbers(rows: int) -> list[int]:
    """``VANISHED`` record numbers (fewer for a tiny base) spread evenly over the base."""
    count = min(VANISHED, rows)
    return [k * rows // count for k in range(count)]


def expected_vanished(rows: int) -> list[str]:
    return sorted(key_of(n) for n in vanished_numbers(rows))


def expected_missing(rows: int) -> list[str]:
    """``MISSING`` Ids the base lacks, spread over its key ranges."""
    return sorted(key_of(k * rows // MISSING, MISSING_SUFFIX) for k in range(MISSING))


def expected_changed_values(rows: int) -> int:
    """Values the refresh changes: one ``Account.Name`` per ``CHANGE_EVERY`` records, one ``Owner.Name`` per
    ``OWNER_CHANGE_EVERY``."""
    return len(range(0, rows, CHANGE_EVERY)) + len(range(0, rows, OWNER_CHANGE_EVERY))


# --- building the data (in a child) -----------------------------------------------------------------------------


def build_data(folder: Path, rows: int) -> dict[str, Any]:
    """The base (sorted, hashed, stamped, keys checked as it is written) and the three pulls, each streamed."""
    from tasks.replica_store import new_base_id, sink_base
    from utils.replica_layers import ReplicaStamp, hashes

    folder.mkdir(parents=True, exist_ok=True)
    columns = list(COLUMN_TYPES)
    stamp = ReplicaStamp("BENCH-BASE", rows, None, dict(COLUMN_TYPES), base_id=new_base_id())
    sink_base(folder / BASE, records_of(numbers(rows, scattered=False)).with_columns(hashes(columns, KEY)),
              stamp.to_metadata(), check_keys=KEY)
    n = pl.col("n")
    scattered = numbers(rows, scattered=True)
    scattered.select(key_expr(n).alias(KEY), type_of(n)).sink_parquet(folder / TYPE_PULL)
    scattered.select(key_expr(n).alias(KEY), refreshed_account_name_of(n),
                     refreshed_owner_name_of(n)).sink_parquet(folder / REFRESH_PULL)
    gone = pl.Series("n", vanished_numbers(rows), dtype=pl.Int64).implode()
    live = scattered.filter(~n.is_in(gone)).select(key_expr(n).alias(KEY))
    missing = pl.LazyFrame({KEY: expected_missing(rows)})
    pl.concat([live, missing]).sink_parquet(folder / LIVE_KEYS)
    return {"bytes": {name: (folder / name).stat().st_size for name in (BASE, TYPE_PULL, REFRESH_PULL, LIVE_KEYS)}}


def build_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Child setup: the work is ``build_data``."""
    return lambda: build_data(Path(params["folder"]), params["rows"])


# --- checks (in the operation's child, after its timing and peak) -----------------------------------------------


def _fail(problems: Sequence[str], what: str) -> None:
    if problems:
        msg = f"the {what} is wrong: {'; '.join(problems)}"
        raise AssertionError(msg)


def check_schema_change(base: Path, rows: int) -> dict[str, Any]:
    """The new base: every record, keys strictly increasing, each record's ``Type`` the pull's (null included), its
    other columns its own and its row hash that of its values."""
    from utils.replica_layers import HASHES, ROW_HASH, row_hash

    facts = pl.scan_parquet(base).select(
        pl.len().alias("records"),
        pl.col(ADDED_FIELD).ne_missing(type_of(number_of(pl.col(KEY)))).sum().alias("wrong_values"),
        pl.col(ADDED_FIELD).null_count().alias("nulls"),
        (pl.col(ROW_HASH) != row_hash([*COLUMN_TYPES, ADDED_FIELD])).sum().alias("wrong_hashes"),
        (pl.col(KEY) <= pl.col(KEY).shift(1)).sum().alias("keys_out_of_order"),
    ).collect(engine="streaming").row(0, named=True)
    # every other column against the record's own values, computed from its Id's number
    own = records_of(pl.scan_parquet(base).select(number_of(pl.col(KEY)).alias("n")))
    stored = pl.scan_parquet(base).select(list(COLUMN_TYPES)).rename(lambda c: f"stored {c}")
    facts["other_values_changed"] = pl.concat([stored, own], how="horizontal").select(
        pl.sum_horizontal(pl.col(f"stored {c}").ne_missing(pl.col(c)).sum() for c in COLUMN_TYPES)
    ).collect(engine="streaming").item()
    problems = [f"{facts['records']:,} records, not {rows:,}"] if facts["records"] != rows else []
    problems += [f"{facts['wrong_values']:,} records with another {ADDED_FIELD} than the pull's"] \
        if facts["wrong_values"] else []
    problems += [f"{facts['other_values_changed']:,} values of other columns changed"] \
        if facts["other_values_changed"] else []
    problems += [f"{facts['wrong_hashes']:,} row hashes not of their record's values"] if facts["wrong_hashes"] else []
    problems += [f"{facts['keys_out_of_order']:,} keys out of order"] if facts["keys_out_of_order"] else []
    names = pl.read_parquet_schema(base)
    problems += [f"columns {list(names)}"] if list(names) != [*COLUMN_TYPES, ADDED_FIELD, *HASHES] else []
    _fail(problems, "new base")
    return facts


def expected_refresh_overlay(rows: int) -> pl.DataFrame:
    """The records the refresh must put in the overlay: the changed ones, whole, with their new ``Account.Name``."""
    changed = pl.LazyFrame({"n": range(0, rows, CHANGE_EVERY)}, schema={"n": pl.Int64})
    number = number_of(pl.col(KEY))
    return (records_of(changed).with_columns(refreshed_account_name_of(number), refreshed_owner_name_of(number))
            .collect())


def check_refresh(overlay: pl.DataFrame, changed_values: int, rows: int) -> dict[str, Any]:
    """The count of changed values and the overlay (the changed records, whole, flagged as replacing base
    records) against what the pull changed."""
    from polars.testing import assert_frame_equal

    from utils.replica_layers import IN_BASE, TOMBSTONE

    expected = expected_refresh_overlay(rows)
    problems = [f"{changed_values:,} changed values, not {expected_changed_values(rows):,}"] \
        if changed_values != expected_changed_values(rows) else []
    if not (overlay.get_column(IN_BASE).all() and not overlay.get_column(TOMBSTONE).any()):
        problems.append("overlay records not flagged as live replacements of base records")
    try:
        assert_frame_equal(overlay.select(expected.columns).sort(KEY), expected.sort(KEY))
    except AssertionError as err:
        problems.append(f"overlay records differ from the changed records: {' '.join(str(err).split())[:300]}")
    _fail(problems, "refresh")
    return {"changed_values": changed_values, "overlay_records": overlay.height}


def check_compare_keys(vanished: Sequence[str], missing: Sequence[str], rows: int) -> dict[str, Any]:
    """Exactly the vanished and the missing Ids, each sorted."""
    problems = []
    for name, found, wanted in (("vanished", list(vanished), expected_vanished(rows)),
                                ("missing", list(missing), expected_missing(rows))):
        if found != wanted:
            extra, lacking = sorted(set(found) - set(wanted)), sorted(set(wanted) - set(found))
            problems.append(f"{name}: {len(found):,} Ids, {len(wanted):,} expected (unexpected {extra[:3]}, "
                            f"not found {lacking[:3]}{', order differs' if not extra and not lacking else ''})")
    _fail(problems, "key comparison")
    return {"vanished": len(vanished), "missing": len(missing)}


# --- one operation (in a child) -----------------------------------------------------------------------------------


def _open(base: Path) -> Any:
    """The replica on ``base`` as a sync opens it (stamp, schema and rows from the footer, no overlay)."""
    from tasks.replica_store import open_replica
    from utils.replica_layers import read_stored

    stored = read_stored(base)
    return open_replica(base, stored, primary_key=KEY, schema=stored.base_schema)


def operation_case(params: dict[str, Any]) -> Hooks:
    """Child setup (untimed): a fresh folder for the operation (and a fresh copy of the base when it rewrites it),
    the replica opened, the pull as a scan. Returns the work (the operation alone) and its check."""
    data, folder, rows, operation = Path(params["data"]), Path(params["folder"]), params["rows"], params["operation"]
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "scratch").mkdir(parents=True)
    runs = {"schema_change": _schema_change, "refresh": _refresh, "compare_keys": _compare_keys}
    if operation not in runs:
        msg = f"unknown operation {operation!r}; use one of {', '.join(runs)}"
        raise ValueError(msg)
    return runs[operation](data, folder, rows)


def _schema_change(data: Path, folder: Path, rows: int) -> Hooks:
    from tasks.replica_evolve import evolve_replica

    base = folder / BASE
    shutil.copyfile(data / BASE, base)  # it rewrites the base: never the one the other operations read
    replica = _open(base)
    schema = {**replica.schema, ADDED_FIELD: pl.String()}
    types = {**COLUMN_TYPES, ADDED_FIELD: "picklist"}

    def work() -> dict[str, Any]:
        evolved = evolve_replica(replica, schema, pl.scan_parquet(data / TYPE_PULL), run_id="BENCH-EVOLVE",
                                 column_types=types, scratch=folder / "scratch")
        return {"base_rows": evolved.base_rows}

    return work, lambda _facts: {"checked": check_schema_change(base, rows)}


def _refresh(data: Path, folder: Path, rows: int) -> Hooks:
    replica, out = _open(data / BASE), {}

    def work() -> dict[str, Any]:
        out["replica"], out["changed"] = replica.refresh(pl.scan_parquet(data / REFRESH_PULL),
                                                         scratch=folder / "scratch")
        return {"changed_values": out["changed"]}

    return work, lambda _facts: {"checked": check_refresh(out["replica"].overlay, out["changed"], rows)}


def _compare_keys(data: Path, folder: Path, rows: int) -> Hooks:
    from tasks.replica_store import CREATED_FIELD

    replica, out = _open(data / BASE), {}

    def work() -> dict[str, Any]:
        vanished, missing = replica.compare_keys(pl.scan_parquet(data / LIVE_KEYS), created_field=CREATED_FIELD,
                                                 created_before=None, scratch=folder)
        out["vanished"], out["missing"] = vanished.to_list(), missing
        return {"vanished": len(vanished), "missing": len(missing)}

    return work, lambda _facts: {"checked": check_compare_keys(out["vanished"], out["missing"], rows)}


# --- the stage (parent) -------------------------------------------------------------------------------------------


def run_stage(*, rows: int = ROWS, repeat: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the data once, then ``repeat`` interleaved rounds of the three operations, one fresh child each."""
    folder = WORK / "replica_ops" / uuid.uuid4().hex[:12]
    started, load_start = time.perf_counter(), load_average()
    log(f"replica operations: {rows:,} {OBJECT} records, {repeat} round(s), one operation per child process")
    try:
        built = run_child(Case("build", "benchmarks.bench_replica_ops:build_case",
                               {"folder": str(folder / "data"), "rows": rows}), timeout=BUILD_TIMEOUT_S)
        log(f"  built the base and pulls in {built['seconds']:.1f} s (peak {built['peak_rss_mb']:.0f} MB)")
        cases = [Case(op, "benchmarks.bench_replica_ops:operation_case",
                      {"operation": op, "rows": rows, "data": str(folder / "data"), "folder": str(folder / op)})
                 for op in OPERATIONS]
        measured = measure_interleaved(cases, repeat, log=log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"rows": rows, "object": OBJECT, "repeat": repeat,
            "build": {"seconds": round(built["seconds"], 1), "peak_rss_mb": round(built["peak_rss_mb"], 1),
                      "bytes": built["bytes"]},
            "operations": measured, "load_average": {"start": load_start, "end": load_average()},
            "stage_seconds": round(time.perf_counter() - started, 1)}


def verdicts(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each operation's highest peak RSS over its runs, under ``TARGET_PEAK_MB``."""
    out = []
    for op in OPERATIONS:
        peak = section["operations"][op]["peak_rss_mb"]
        out.append({"target": f"replica ops: {op.replace('_', ' ')} at {section['rows']:,} records, peak RSS",
                    "measured": peak, "comparison": "<", "limit": TARGET_PEAK_MB, "unit": "MB",
                    "ok": None if peak is None else peak < TARGET_PEAK_MB})
    return out


def table(section: Mapping[str, Any]) -> str:
    """One row per operation: median seconds, every run's, the highest peak RSS, what the check saw."""
    from benchmarks.report import format_table

    rows = []
    for op in OPERATIONS:
        entry = section["operations"][op]
        checked = entry["raw"][-1]["checked"]
        rows.append([op, entry["median_s"], " ".join(f"{s:.1f}" for s in entry["runs_s"]), entry["peak_rss_mb"],
                     entry["rss_before_work_mb"], ", ".join(f"{k} {v:,}" for k, v in checked.items())])
    return format_table([f"replica ops ({section['rows']:,} records)", "median s", "runs s", "peak RSS MB",
                         "RSS before MB", "checked"], rows)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.harness import machine_info
    from benchmarks.report import targets_table, write_results

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS, help=f"records of the base (default {ROWS:,})")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds of the operations (medians)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} records, one round")
    parser.add_argument("--out", type=Path, help=f"results JSON (default {RESULTS.relative_to(REPO)}; --quick or "
                                                 f"other sizes: {PARTIAL.relative_to(REPO)})")
    args = parser.parse_args(argv)
    rows, repeat = (QUICK_ROWS, 1) if args.quick else (args.rows, args.repeat)
    machine = machine_info()
    section = run_stage(rows=rows, repeat=repeat)
    machine["load_average_at_end"] = load_average()
    found = verdicts(section)
    out = args.out or (RESULTS if rows == ROWS and not args.quick else PARTIAL)
    write_results(out, {"replica_ops": section, "machine": machine, "targets": found})
    print("\n" + table(section) + "\n\n" + targets_table(found))
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out} in {section['stage_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
