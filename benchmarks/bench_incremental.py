"""Incremental sync vs a full pull on a 1M-row object with 1% of rows changed: wall time and API requests.

Run: .venv/bin/python -m benchmarks.bench_incremental [--rows 1000000] [--changed-pct 1]
Target (issue "Incremental sync"): the incremental run costs <= 5% of a full run's wall time and API requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from emulator import emulator_session, get_state, run_emulator
from tasks.extract import ExtractOptions
from tasks.sync import sync_object
from utils.connection import SalesforceConnection
from utils.paths import build_sync_paths
from utils.settings import Credentials


def _used(info) -> int:
    return int(get_state(info)["api_usage"]["used"])


def _timed_sync(conn, info, root, run_id, **kw) -> dict:
    before = _used(info)
    started = time.perf_counter()
    result = sync_object("Opportunity", run_id=run_id, connection=conn, data_root=root,
                         options=ExtractOptions(), **kw)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "api_requests": _used(info) - before, "mode": result.mode,
            "api_path": result.extracted.api_path, "delta_rows": result.extracted.rows, **result.sync.as_dict()}


def _touch(info, ids: list[str], stamp: int) -> None:
    """Change one field of each record through the real REST sObject endpoint (two workers)."""
    def patch(chunk):
        with emulator_session(info) as http:
            headers = {"Authorization": f"Bearer {info.access_token}", "Content-Type": "application/json"}
            base = f"{info.instance_url}/services/data/v{info.api_version}/sobjects/Opportunity/"
            for record_id in chunk:
                http.patch(base + record_id, headers=headers, json={"NextStep": f"bench {stamp}"}).raise_for_status()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(patch, [ids[0::2], ids[1::2]]))


def run(rows: int, changed_pct: float, repeats: int) -> dict:
    with run_emulator(rows={"Opportunity": rows}, living_rate=0) as info, tempfile.TemporaryDirectory() as tmp:
        conn = SalesforceConnection(Credentials(flow="access_token", instance_url=info.instance_url,
                                                access_token=info.access_token, ca_bundle=info.ca_bundle))
        root = Path(tmp)
        backfill = _timed_sync(conn, info, root, "BACKFILL")
        ids = pl.read_parquet(build_sync_paths("Opportunity", data_root=root).replica)["Id"]
        n_changed = int(len(ids) * changed_pct / 100)
        full, incremental = [], []
        for i in range(repeats):  # interleaved: a noisy machine hurts both sides alike
            _touch(info, ids.sample(n_changed, seed=i).to_list(), i)
            incremental.append(_timed_sync(conn, info, root, f"INC{i}"))
            full.append(_timed_sync(conn, info, root, f"FULL{i}", full_refresh=True))
        med = {k: statistics.median(r[k] for r in full) for k in ("seconds", "api_requests")}
        inc = {k: statistics.median(r[k] for r in incremental) for k in ("seconds", "api_requests")}
        return {
            "rows": rows, "changed_rows": n_changed, "repeats": repeats, "backfill": backfill,
            "full_runs": full, "incremental_runs": incremental,
            "full_median": med, "incremental_median": inc,
            "ratio_seconds": inc["seconds"] / med["seconds"],
            "ratio_api_requests": inc["api_requests"] / med["api_requests"],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed-pct", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/incremental.json")
    args = parser.parse_args(argv)
    result = run(args.rows, args.changed_pct, args.repeats)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    f, i = result["full_median"], result["incremental_median"]
    print(f"{result['rows']:,} rows, {result['changed_rows']:,} changed, median of {result['repeats']}")
    print(f"  full pull:    {f['seconds']:8.2f} s  {f['api_requests']:6.0f} API requests")
    print(f"  incremental:  {i['seconds']:8.2f} s  {i['api_requests']:6.0f} API requests")
    print(f"  ratio:        {result['ratio_seconds']:8.1%} of wall time, "
          f"{result['ratio_api_requests']:.1%} of requests (target <= 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
