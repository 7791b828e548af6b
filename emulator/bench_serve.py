"""Throughput of the emulator as a server (not a test): REST query paging in records/s, Bulk 2.0 results in MB/s.

Run: ``.venv/bin/python -m emulator.bench_serve [--rows 1000000]``. The emulator runs in its own process, as in
production; the client side here is the real simple-salesforce plus a raw ``requests`` reader (so the numbers show
the server's capacity, not only the client's JSON/CSV parsing).
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import datetime, timezone

from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import SFBulk2Handler

from emulator import emulator_session, run_emulator

SOQL = ("SELECT Id, Name, StageName, Amount, Probability, CloseDate, IsClosed, IsWon, ForecastCategory, LeadSource, "
        "AccountId, Account.Name, OwnerId, Owner.Name, CreatedDate, SystemModstamp FROM Opportunity")

_NEXT_URL = re.compile(rb'"nextRecordsUrl":"([^"]+)"')


def _rate(label: str, amount: float, unit: str, seconds: float) -> None:
    print(f"{label:<48} {amount / seconds:>14,.0f} {unit}/s   ({amount:,.0f} {unit} in {seconds:.2f} s)")


def bench_rest(sf: Salesforce, http, instance_url: str, token: str, limit: int) -> None:
    soql = f"{SOQL} LIMIT {limit}"
    start = time.perf_counter()
    count = sum(1 for _ in sf.query_all_iter(soql))
    _rate("REST query paging, simple-salesforce", count, "records", time.perf_counter() - start)

    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    response = http.get(f"{instance_url}/services/data/v59.0/query/", params={"q": soql}, headers=headers)
    count, body_bytes = 0, 0
    while True:
        page = response.json()
        count += len(page["records"])
        body_bytes += len(response.content)
        if page["done"]:
            break
        response = http.get(instance_url + page["nextRecordsUrl"], headers=headers)
    seconds = time.perf_counter() - start
    _rate("REST query paging, raw requests + json", count, "records", seconds)

    # server capacity: read each page's bytes, find nextRecordsUrl in its head, decode nothing else
    start, body_bytes, pages = time.perf_counter(), 0, 0
    response = http.get(f"{instance_url}/services/data/v59.0/query/", params={"q": soql}, headers=headers)
    while True:
        body_bytes, pages = body_bytes + len(response.content), pages + 1
        match = _NEXT_URL.search(response.content[:400])
        if match is None:
            break
        response = http.get(instance_url + match.group(1).decode(), headers=headers)
    seconds = time.perf_counter() - start
    _rate("REST query paging, raw requests, no JSON decode", count, "records", seconds)
    _rate("  (same, bytes)", body_bytes / 1e6, "MB", seconds)


def bench_bulk(sf: Salesforce, http, instance_url: str, token: str, max_records: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{instance_url}/services/data/v59.0/jobs/query"
    job = http.post(base, json={"operation": "query", "query": SOQL}, headers=headers).json()
    while http.get(f"{base}/{job['id']}", headers=headers).json()["state"] != "JobComplete":
        time.sleep(0.05)
    start, total, locator = time.perf_counter(), 0, ""
    while True:
        params = {"maxRecords": max_records, **({"locator": locator} if locator else {})}
        with http.get(f"{base}/{job['id']}/results", params=params, headers=headers, stream=True) as response:
            for chunk in response.iter_content(chunk_size=1 << 20):
                total += len(chunk)
            locator = response.headers["Sforce-Locator"]
        if locator in ("", "null"):
            break
    _rate("Bulk 2.0 results, raw requests stream", total / 1e6, "MB", time.perf_counter() - start)

    start, total = time.perf_counter(), 0
    bulk2 = sf.bulk2
    assert isinstance(bulk2, SFBulk2Handler)  # Salesforce.__getattr__ is typed as the union of all its handlers
    for page in bulk2.Opportunity.query(SOQL, max_records=max_records, wait=0):
        assert isinstance(page, str)  # each page is CSV text; simple-salesforce annotates it as str | int
        total += len(page.encode())
    _rate("Bulk 2.0 results, simple-salesforce bulk2.query", total / 1e6, "MB", time.perf_counter() - start)


def bench_render(rows: int) -> None:
    """The server's own share, in-process without sockets: REST record JSON and Bulk CSV rendering."""
    import polars as pl

    from emulator.org import build_org
    from emulator.render import ROOT_ID, csv_chunks, csv_ready, record_plan, rest_records
    from emulator.soql import execute, parse_soql

    org = build_org(rows={"Opportunity": rows})
    query = parse_soql(SOQL, org)
    frame = execute(query, org, include_deleted=False, now=datetime.now(timezone.utc)).frame
    plan = record_plan("Opportunity", [item.path for item in query.items], "59.0")
    with_id = frame.with_columns(pl.col("Id").alias(ROOT_ID))
    start, n = time.perf_counter(), min(rows, 200_000)
    for offset in range(0, n, 2000):
        rest_records(with_id.slice(offset, 2000), plan)
    _rate("render only: REST records (one core)", n, "records", time.perf_counter() - start)
    csv_frame = csv_ready(frame.select([item.column for item in query.items]))
    start = time.perf_counter()
    total = sum(len(chunk) for chunk in csv_chunks(csv_frame, csv_frame.columns))
    _rate("render only: Bulk CSV (one core)", total / 1e6, "MB", time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Opportunity rows served")
    parser.add_argument("--rest-limit", type=int, default=200_000, help="rows read over REST paging")
    parser.add_argument("--max-records", type=int, default=100_000, help="Bulk maxRecords per page")
    args = parser.parse_args()
    with run_emulator(rows={"Opportunity": args.rows}, living_rate=0) as info, emulator_session(info) as http:
        sf = Salesforce(instance_url=info.instance_url, session_id=info.access_token, session=http)
        bench_rest(sf, http, info.instance_url, info.access_token, args.rest_limit)
        bench_bulk(sf, http, info.instance_url, info.access_token, args.max_records)
    bench_render(args.rows)


if __name__ == "__main__":
    main()
