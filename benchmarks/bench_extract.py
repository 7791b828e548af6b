"""Extract from the emulator: REST vs Bulk 2.0 vs a plain download of the same Bulk pages; emulator throughput.

The emulator runs in its own process (own GIL), as in production; each measurement is a fresh child process
holding the real client, so its peak RSS is the extracting process's own.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.harness import WORK, Case, measure_interleaved, per_second, ratio, run_child

OBJECT = "Opportunity"
BULK_PAGE_SIZE = 50_000   # ExtractOptions.bulk_page_size: the plain download asks for the same pages
REST_BATCH_SIZE = 2_000   # ExtractOptions.rest_batch_size
DATASETS = WORK / "datasets"
_ENV_URL, _ENV_TOKEN, _ENV_CA = "BENCH_SF_INSTANCE_URL", "BENCH_SF_ACCESS_TOKEN", "BENCH_SF_CA_BUNDLE"


# --- inside a child: setup hooks (untimed) returning the timed work --------------------------------------------


def _credentials():
    from utils.settings import Credentials

    return Credentials(flow="access_token", instance_url=os.environ[_ENV_URL], access_token=os.environ[_ENV_TOKEN],
                       ca_bundle=os.environ[_ENV_CA])


def _http_session():
    import requests

    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = os.environ[_ENV_CA]
    session.headers["Authorization"] = f"Bearer {os.environ[_ENV_TOKEN]}"
    return session


def _registry_soql() -> str:
    from tasks.extract_plan import resolve_extract_plan

    return resolve_extract_plan([OBJECT])[0].soql


def setup_extract(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The real ``extract_object`` on the registry's Opportunity entry, forced to one API path."""
    from dataclasses import replace

    from tasks.extract import ExtractOptions, extract_object
    from tasks.extract_plan import resolve_extract_plan
    from utils.connection import SalesforceConnection
    from utils.sf_errors import RetryPolicy

    item = replace(resolve_extract_plan([OBJECT])[0], api=params["api"])
    conn = SalesforceConnection(_credentials(), source="emulator")
    options = ExtractOptions(retry=RetryPolicy(backoff_base_seconds=0.05))

    def work() -> dict[str, Any]:
        result = extract_object(item, run_id=params["run_id"], connection=conn, options=options,
                                data_root=params["data_root"])
        return {"rows": result.rows, "bytes": Path(result.raw_csv).stat().st_size, "raw_csv": result.raw_csv}

    return work


def _bulk_job(session, base: str, soql: str) -> str:
    job = session.post(f"{base}/jobs/query", json={"operation": "query", "query": soql, "contentType": "CSV",
                                                   "columnDelimiter": "COMMA", "lineEnding": "LF"})
    job.raise_for_status()
    job_id = job.json()["id"]
    while session.get(f"{base}/jobs/query/{job_id}").json()["state"] != "JobComplete":
        time.sleep(0.05)
    return job_id


def setup_plain_download(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The limit for the Bulk path: same job and pages, bytes streamed and discarded, nothing parsed."""
    session, soql = _http_session(), _registry_soql()
    base = f"{os.environ[_ENV_URL]}/services/data/v{params.get('api_version', '59.0')}"

    def work() -> dict[str, Any]:
        job_id = _bulk_job(session, base, soql)
        total_bytes, rows, locator = 0, 0, ""
        while True:
            query = {"maxRecords": BULK_PAGE_SIZE, **({"locator": locator} if locator else {})}
            with session.get(f"{base}/jobs/query/{job_id}/results", params=query, stream=True) as response:
                response.raise_for_status()
                for chunk in response.iter_content(chunk_size=1 << 20):
                    total_bytes += len(chunk)
                rows += int(response.headers["Sforce-NumberOfRecords"])
                locator = response.headers.get("Sforce-Locator", "")
            if locator in ("", "null"):
                break
        session.delete(f"{base}/jobs/query/{job_id}")
        return {"rows": rows, "bytes": total_bytes}

    return work


def setup_rest_raw_paging(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Emulator capacity over REST: query + nextRecordsUrl loop with requests, JSON decoded, nothing else."""
    session, soql = _http_session(), _registry_soql()
    url = os.environ[_ENV_URL]
    headers = {"Sforce-Query-Options": f"batchSize={REST_BATCH_SIZE}"}

    def work() -> dict[str, Any]:
        response = session.get(f"{url}/services/data/v59.0/query/", params={"q": soql}, headers=headers)
        rows, total_bytes = 0, 0
        while True:
            response.raise_for_status()
            page = response.json()
            rows, total_bytes = rows + len(page["records"]), total_bytes + len(response.content)
            if page["done"]:
                return {"rows": rows, "bytes": total_bytes}
            response = session.get(url + page["nextRecordsUrl"], headers=headers)

    return work


# --- in the parent: emulator, datasets, the stage ------------------------------------------------------------


@contextmanager
def serve_opportunities(rows: int):
    """An emulator subprocess serving ``rows`` Opportunities; yields the env a child needs to reach it."""
    from emulator import run_emulator

    with run_emulator(rows={OBJECT: rows}, faults="", living_rate=0) as info:
        yield {_ENV_URL: info.instance_url, _ENV_TOKEN: info.access_token, _ENV_CA: info.ca_bundle}


def dataset_dir(rows: int) -> Path:
    return DATASETS / f"opportunity-{rows}"


def cached_raw_extract(rows: int) -> Path | None:
    """The raw CSV a previous run kept for this size (with its sidecar), if any."""
    raw_dir = dataset_dir(rows) / "raw"
    found = sorted(p for p in raw_dir.glob(f"{OBJECT}_*.csv") if p.with_suffix(".schema.json").exists()) \
        if raw_dir.is_dir() else []
    return found[-1] if found else None


def ensure_raw_extract(rows: int, *, log=print) -> Path:
    """A real Bulk 2.0 extract of ``rows`` emulator Opportunities (the raw format + sidecar), made once."""
    cached = cached_raw_extract(rows)
    if cached:
        return cached
    log(f"  generating the {rows:,}-row raw extract once (emulator + real Bulk 2.0 extract)")
    shutil.rmtree(dataset_dir(rows), ignore_errors=True)
    with serve_opportunities(rows) as env:
        run_child(Case("dataset", "benchmarks.bench_extract:setup_extract",
                       {"api": "bulk2", "run_id": f"BENCH{rows}", "data_root": str(dataset_dir(rows))}, env))
    return cached_raw_extract(rows)  # type: ignore[return-value]


def _keep_as_dataset(rows: int, raw_csv: str) -> None:
    """Move one Bulk output into the dataset cache so process/QA reuse a real extract instead of re-extracting."""
    if cached_raw_extract(rows):
        return
    target = dataset_dir(rows) / "raw"
    target.mkdir(parents=True, exist_ok=True)
    source = Path(raw_csv)
    shutil.move(source.with_suffix(".schema.json"), target / source.with_suffix(".schema.json").name)
    shutil.move(source, target / source.name)


def _extract_case(name: str, api: str, rows: int, env: dict[str, str]) -> Case:
    root = WORK / "extract" / f"{name}-{rows}"
    return Case(name, "benchmarks.bench_extract:setup_extract",
                {"api": api, "run_id": f"B{api.upper().replace('2', '')}{rows}", "data_root": str(root)}, env)


def _rates(result: dict[str, Any]) -> dict[str, Any]:
    last = result["raw"][-1]
    rows, nbytes = last.get("rows"), last.get("bytes")
    return {"rows": rows, "mb": round(nbytes / 1e6, 1) if nbytes else None,
            "rows_per_s": per_second(rows, result["median_s"]),
            "mb_per_s": per_second(nbytes / 1e6 if nbytes else None, result["median_s"])}


def _measure_size(rows: int, variants: list[str], repeat: int, log) -> dict[str, Any]:
    with serve_opportunities(rows) as env:
        cases = []
        for name in variants:
            if name in ("rest", "bulk2"):
                cases.append(_extract_case(name, name, rows, env))
            elif name == "plain_download":
                cases.append(Case(name, "benchmarks.bench_extract:setup_plain_download", {}, env))
            elif name == "emulator_rest_raw":
                cases.append(Case(name, "benchmarks.bench_extract:setup_rest_raw_paging", {}, env))
        results = measure_interleaved(cases, repeat, log=log)
    for name, result in results.items():
        result.update(_rates(result))
        for run in result["raw"]:
            if name == "bulk2" and run.get("raw_csv"):
                _keep_as_dataset(rows, run["raw_csv"])
            run.pop("raw_csv", None)
    shutil.rmtree(WORK / "extract", ignore_errors=True)
    return results


def run_stage(*, sizes: list[int], rest_sizes: list[int], rss_sizes: list[int], repeat: int,
              rest_repeat_large: int, log=print) -> dict[str, Any]:
    """Every extract comparison; returns the JSON-able section of latest.json."""
    by_size: dict[str, Any] = {}
    for rows in sorted(set(sizes) | set(rss_sizes)):
        variants = ["bulk2", "plain_download"]
        if rows == min(sizes):
            variants += ["rest", "emulator_rest_raw"]
        log(f"extract: {rows:,} Opportunity rows ({', '.join(variants)})")
        by_size[str(rows)] = _measure_size(rows, variants, repeat if rows in sizes else 1, log)  # 5M: 1 (budget)
        if rows in rest_sizes and rows != min(sizes):
            log(f"extract: {rows:,} rows over REST ({rest_repeat_large} run(s): the REST path is slow, see README)")
            by_size[str(rows)].update(_measure_size(rows, ["rest"], rest_repeat_large, log))
    return {"by_size": by_size, "summary": summarize_extract(by_size)}


def summarize_extract(by_size: dict[str, Any]) -> dict[str, Any]:
    """Ratios the targets use: Bulk vs plain download throughput per size, and RSS flatness of the Bulk path."""
    bulk_vs_download = {size: ratio(r["plain_download"]["median_s"], r["bulk2"]["median_s"])
                        for size, r in by_size.items() if "bulk2" in r and "plain_download" in r}
    rss = {size: r["bulk2"]["peak_rss_mb"] for size, r in by_size.items() if "bulk2" in r}
    sizes = sorted(rss, key=int)
    flat = ratio(rss[sizes[-1]], rss[sizes[0]]) if len(sizes) > 1 else None
    return {"bulk_share_of_plain_download": bulk_vs_download, "bulk_peak_rss_mb": rss,
            "bulk_rss_largest_over_smallest": flat}
