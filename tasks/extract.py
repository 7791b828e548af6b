"""Extract: SOQL -> ``data/raw/<object>_<ts>_<run>.csv`` (+ schema sidecar), over REST or Bulk API 2.0.

Never loses a row: pages are streamed into a temp file that is renamed into place only when complete and its
row count matches what Salesforce reported; transient faults retry the same page (idempotent), a lost cursor
restarts the object from scratch, fatal errors fail at once with a message saying what to do.
Memory is bounded by one page. Retry layers (request, object restart, Prefect task), their limits and worst-case
budgets: docs/reliability.md, "Retry layers".
"""

from __future__ import annotations

import contextlib
import csv
import functools
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote_plus

import numpy as np
from prefect import task
from simple_salesforce.exceptions import SalesforceResourceNotFound

from configs.salesforce_objects import EVERY_FIELD, ApiPath, ObjectSpec, spec_for
from tasks.extract_plan import (
    EARLIEST_CURSOR,
    ExtractPlanItem,
    count_soql,
    halves,
    window_soql,
    with_select,
)
from tasks.extract_schema import check_metric_types, every_field, expand_compound, resolve_columns
from tasks.sf_records import build_page_converter
from utils.atomic import atomic_path
from utils.connection import SalesforceConnection
from utils.errors import (
    AuthError,
    ConfigError,
    FatalSourceError,
    PipelineError,
    QuotaExceededError,
    RetriableSourceError,
)
from utils.logs import log_event
from utils.paths import build_paths
from utils.progress import report_progress
from utils.raw_schema import RawSchema, write_raw_schema
from utils.settings import env_number
from utils.sf_errors import (
    Action,
    RetryPolicy,
    classify,
    error_code_of,
    error_label_of,
    error_message_of,
    outage_message,
    quota_message,
    retry_transient,
)
from utils.source import get_connection
from utils.timefmt import utc_seconds

__all__ = ["ExtractOptions", "ExtractResult", "QueryAllRefused", "extract_object", "extract_salesforce_to_csv"]

T = TypeVar("T")
# what Salesforce answers a queryAll of an object that does not support it (tap-salesforce's Blacklisting.md records
# it for such objects; no Salesforce document gives the exact answer): the extract reads the object with query instead
QUERY_ALL_REFUSED = "INVALID_TYPE_FOR_OPERATION"


@dataclass(frozen=True)
class ExtractOptions:
    """Tuning knobs; defaults suit a production org, env vars let tests and users shorten the waits."""

    rest_batch_size: int = 2000
    bulk_page_size: int = 50_000
    # per request, for transient faults: the one policy logins and the /limits check use too (SF_RETRY_BASE_SECONDS)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_restarts: int = 2           # whole-object restarts after a lost cursor / failed Bulk job
    api_request_reserve: int = field(default_factory=lambda: int(env_number("SF_API_RESERVE", 200, non_negative=True)))
    drop_missing_fields: bool = False
    include_deleted: bool = False
    bulk_poll_max_seconds: float = 5.0
    # a Bulk job still not complete after this long is aborted: a stuck job must not hang the run forever
    bulk_job_timeout_seconds: float = field(
        default_factory=lambda: env_number("SF_BULK_JOB_TIMEOUT_SECONDS", 3600.0, positive=True))
    bulk_progress_log_seconds: float = 30.0  # a `bulk_waiting` line at least this often while a job runs
    query_window_floor_seconds: float = 60.0  # a timing-out query is halved into cursor windows down to this
    describe_cache_seconds: float = 3600.0  # within one run (a describe is cached per run: schema changes between
                                            # runs are seen by the next one)
    limits_cache_seconds: float = 60.0      # one /limits read per run, not one per object
    expected_rows: int | None = None  # records the caller expects (a narrow pull: the replica's): see _first_look

    def __post_init__(self) -> None:
        timeout = self.bulk_job_timeout_seconds
        if not (math.isfinite(timeout) and timeout > 0):  # nan/inf would never abort a stuck job, <= 0 abort all
            msg = f"ExtractOptions.bulk_job_timeout_seconds must be a positive number of seconds, got {timeout!r}"
            raise ConfigError(msg)
        if not self.query_window_floor_seconds >= 1:  # windows are halved to the second: below it, never ending
            msg = ("ExtractOptions.query_window_floor_seconds must be at least 1 second, got "
                   f"{self.query_window_floor_seconds!r}")
            raise ConfigError(msg)


@dataclass(frozen=True)
class ExtractResult:
    object_name: str
    raw_csv: str
    raw_schema: str
    rows: int
    api_path: ApiPath
    seconds: float
    source: str
    run_id: str
    dropped_fields: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class QueryTimedOut(RetriableSourceError):
    """QUERY_TIMEOUT (or a Bulk job failed on it): the same query would time out again, a narrower one may not."""


class _BulkRefused(FatalSourceError):
    """Salesforce's Bulk APIs do not serve this object (INVALIDENTITY: some setup objects): REST can."""


class QueryAllRefused(FatalSourceError):
    """The object refuses queryAll (``QUERY_ALL_REFUSED`` on a REST queryAll or a Bulk queryAll job's creation): the
    caller can read it with query instead, without its deleted records (``tasks.sync`` does)."""


class _RestartObject(Exception):
    """The server lost our cursor or job: extract this object again from the beginning."""


class RequestRunner:
    """Runs one Salesforce request of an object's extract: a transient fault is retried with the policy's jittered
    backoff (``retry_transient``), an expired session is renewed and the same request sent again, and any other
    fault becomes the pipeline's error (restart the object, quota, fatal)."""

    max_renewals = 2  # a session that expires again right after each renewal is not a transient fault

    def __init__(self, conn: SalesforceConnection, object_name: str, options: ExtractOptions,
                 run_id: str | None = None) -> None:
        self.conn = conn
        self.object_name = object_name
        self.options = options
        self.run_id = run_id

    def __call__(self, request: Callable[[], T], what: str, *, split_timeouts: bool = False) -> T:
        """``split_timeouts``: a QUERY_TIMEOUT is not retried but raised as ``QueryTimedOut`` at once (the caller
        narrows the query; each retry of the same query would cost Salesforce's full two minutes again)."""
        renewals = 0
        classify_error = _timeouts_not_retried if split_timeouts else classify
        while True:
            try:
                return retry_transient(request, self.options.retry, what=what, exhausted=self._exhausted(what),
                                       classify_error=classify_error,
                                       log_fields={"run_id": self.run_id, "object": self.object_name})
            except (PipelineError, _RestartObject):
                raise  # already ours, with its message
            except Exception as err:  # noqa: BLE001 - classified right below; transient ones were retried
                if classify(err) is not Action.RENEW_SESSION:
                    raise self._failure(err, what) from None
                if not self.conn.can_renew_session or renewals >= self.max_renewals:
                    raise AuthError(self._expired_message(what, renewals)) from None
                renewals += 1
                log_event("session_expired", run_id=self.run_id, object=self.object_name, during=what)
                self.conn.renew_session()  # once for every thread that saw the same session expire

    def _expired_message(self, what: str, renewals: int) -> str:
        flow = self.conn.credentials.flow
        if not self.conn.can_renew_session:
            return (f"{self.object_name}: the Salesforce session expired during {what} and the '{flow}' flow "
                    "cannot renew it; use a login flow (password, client credentials, JWT) or paste a fresh "
                    "SF_ACCESS_TOKEN")
        return (f"{self.object_name}: the Salesforce session expired during {what} again right after each of "
                f"{renewals} renewals ('{flow}' login); something ends new sessions at once: check the connected "
                "app's and profile's session settings (timeout, IP restrictions, lock sessions to the IP) and "
                "whether another process logs out or revokes this user's sessions")

    def _exhausted(self, what: str) -> Callable[[BaseException, int], PipelineError]:
        return lambda err, attempts: RetriableSourceError(f"{self.object_name}: {outage_message(what, err, attempts)}")

    def _failure(self, err: BaseException, what: str) -> Exception:
        """The error to raise for a fault that retrying the same request cannot fix."""
        action = classify(err)
        if action is Action.RESTART:
            return _RestartObject(f"{error_label_of(err)}: {error_message_of(err)}")
        if action is Action.QUOTA:
            return QuotaExceededError(f"{self.object_name}: {quota_message(err)}")
        msg = f"{self.object_name}: Salesforce rejected {what}: {error_label_of(err)}: {error_message_of(err)}"
        if error_code_of(err) == "QUERY_TIMEOUT":
            return QueryTimedOut(msg)
        if error_code_of(err) == QUERY_ALL_REFUSED and self.options.include_deleted:
            return QueryAllRefused(msg)
        return _BulkRefused(msg) if error_code_of(err) == "INVALIDENTITY" else FatalSourceError(msg)


def _timeouts_not_retried(err: BaseException) -> Action:
    return Action.FATAL if error_code_of(err) == "QUERY_TIMEOUT" else classify(err)


# ----------------------------------------------------------------------------------------------- REST path


def _query_more(conn: SalesforceConnection, next_url: str, headers: dict[str, str]) -> dict[str, Any]:
    """The next REST page; ``conn.sf`` is read at call time, so a retry after a session renewal uses the new one."""
    return conn.sf.query_more(next_url, identifier_is_url=True, headers=headers)


def _stream_rest(call: RequestRunner, soql: str, columns: Sequence[str], types: Sequence[str], target: Path,
                 options: ExtractOptions, progress: Callable[[int, int], None], *,
                 split_timeouts: bool = False) -> tuple[int, int]:
    """All REST pages -> CSV rows. Returns (rows written, totalSize reported)."""
    headers = {"Sforce-Query-Options": f"batchSize={options.rest_batch_size}"}
    convert = build_page_converter(columns, types)
    with open(target, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(columns)
        page = call(lambda: call.conn.sf.query(soql, include_deleted=options.include_deleted, headers=headers),
                    "the query", split_timeouts=split_timeouts)
        total, written = int(page.get("totalSize", 0)), 0
        while True:
            writer.writerows(convert(page["records"]))
            written += len(page["records"])
            progress(written, total)
            if page.get("done", True):
                return written, total
            next_url = page["nextRecordsUrl"]
            page = call(functools.partial(_query_more, call.conn, next_url, headers), "the next query page")


# ----------------------------------------------------------------------------------------------- Bulk 2.0 path


# No Bulk query job of N records completes in under N / this many seconds (an assumption, far above what Salesforce
# reads: millions of records take it minutes): a job's first status look waits that long when N is known
BULK_ROWS_PER_SECOND_BOUND = 1_000_000
BULK_FIRST_LOOK_SECONDS = 0.25  # then each wait 1.5x the one before, up to bulk_poll_max_seconds


def _first_look(options: ExtractOptions, expected_rows: int | None) -> float:
    """Seconds before a job's first status request: ``BULK_FIRST_LOOK_SECONDS``, or the least time ``expected_rows``
    records can take (a 1M-record narrow pull was looked at twice in its first second), never over the cap."""
    least = (expected_rows or 0) / BULK_ROWS_PER_SECOND_BOUND
    return min(max(BULK_FIRST_LOOK_SECONDS, least), options.bulk_poll_max_seconds)


def _bulk_wait(call: RequestRunner, job_id: str, options: ExtractOptions, *, expected_rows: int | None = None,
               split_timeouts: bool = False) -> dict[str, Any]:
    """Poll the job until it completes, saying so every ``bulk_progress_log_seconds``; abort it at the timeout."""
    # a job is never complete the moment it is created: each look waits first, 0.25 s then 1.5x longer each time
    # (0.05 s at first cost 4-5 status requests per job where 2 do; short jobs are still noticed within a second). A
    # job known to be big is first looked at once it can be complete, then as if it had just been created: growing
    # from that longer first wait noticed a 1.2 s job at 2.5 s
    delay = _first_look(options, expected_rows)
    step = min(BULK_FIRST_LOOK_SECONDS, options.bulk_poll_max_seconds)
    started = last_logged = time.monotonic()
    while True:
        time.sleep(delay)
        delay = step = min(step * 1.5, options.bulk_poll_max_seconds)
        job = call(lambda: call.conn.request("GET", f"jobs/query/{job_id}").json(), "the Bulk job status")
        state = job.get("state")
        if state == "JobComplete":
            return job
        if state == "Failed":
            message = job.get("errorMessage", "no message")
            if split_timeouts and "QUERY_TIMEOUT" in message:
                raise QueryTimedOut(f"{call.object_name}: Bulk job {job_id} failed: {message}")
            raise _RestartObject(f"Bulk job {job_id} failed: {message}")
        if state == "Aborted":
            msg = (f"{call.object_name}: the Bulk 2.0 job {job_id} was aborted (by a user or admin); "
                   "re-run when that was not intended")
            raise FatalSourceError(msg)
        now = time.monotonic()
        if now - started >= options.bulk_job_timeout_seconds:
            _abort_stuck_job(call, job_id, state, now - started, options)
        if now - last_logged >= options.bulk_progress_log_seconds:
            last_logged = now
            log_event("bulk_waiting", run_id=call.run_id, object=call.object_name, job_id=job_id, state=state,
                      seconds_waited=round(now - started, 1))


def _abort_stuck_job(call: RequestRunner, job_id: str, state: str | None, waited: float,
                     options: ExtractOptions) -> NoReturn:
    """Abort a job that outlived ``bulk_job_timeout_seconds`` (as Salesforce does: PATCH state=Aborted) and fail."""
    try:
        answer = call(lambda: call.conn.request("PATCH", f"jobs/query/{job_id}",
                                                json={"state": "Aborted"}).json(), "the Bulk job abort")
        after, outcome = answer.get("state"), "it was aborted"
    except (PipelineError, _RestartObject) as err:  # the timeout is the news; the abort is best effort
        after, outcome = "unknown", f"aborting it failed too ({err})"
    log_event("bulk_job_timeout", level=logging.WARNING, run_id=call.run_id, object=call.object_name,
              job_id=job_id, state=state, seconds_waited=round(waited, 1), state_after_abort=after)
    msg = (f"{call.object_name}: the Bulk 2.0 job {job_id} was still {state} after {waited:.0f} s, past the Bulk "
           f"job time limit ({options.bulk_job_timeout_seconds:g} s); {outcome}. If the object needs longer, raise "
           "the limit (SF_BULK_JOB_TIMEOUT_SECONDS, or ExtractOptions.bulk_job_timeout_seconds when calling "
           "extract_object), else the next run starts a new job")
    raise FatalSourceError(msg)


def _stream_bulk_page(conn: SalesforceConnection, job_id: str, locator: str, page_size: int, fh,
                      columns: Sequence[str], object_name: str) -> tuple[int, str]:
    """Append one result page (minus its header line) to ``fh`` as it streams in; (rows reported, next locator).

    No page is held in memory. If the transfer breaks, the file is cut back to where the page started, so a
    retry of the same locator never duplicates rows.
    """
    params: dict[str, int | str] = {"maxRecords": page_size}
    if locator:
        params["locator"] = locator
    start = fh.tell()
    try:
        response = conn.request("GET", f"jobs/query/{job_id}/results", params=params, stream=True,
                                 headers={"Accept": "text/csv; charset=UTF-8"})
        with response:
            reported = int(response.headers["Sforce-NumberOfRecords"])
            next_locator = response.headers.get("Sforce-Locator", "")
            header: bytes | None = b""
            last, records, in_quotes = b"\n", 0, False
            for chunk in response.iter_content(chunk_size=1 << 20):
                if header is not None:  # still inside the page's header line
                    header += chunk
                    newline = header.find(b"\n")
                    if newline < 0:
                        continue
                    _check_bulk_header(object_name, header[:newline], columns)
                    chunk, header = header[newline + 1:], None
                if chunk:
                    fh.write(chunk)
                    found, in_quotes = count_records(chunk, in_quotes)
                    records, last = records + found, chunk[-1:]
            if last != b"\n":
                fh.write(b"\n")
                records += 1
        if records != reported:
            msg = f"Bulk page had {records} rows, Sforce-NumberOfRecords said {reported}"
            raise _RestartObject(msg)
    except BaseException:
        fh.seek(start)
        fh.truncate()
        raise
    return reported, "" if next_locator in ("", "null") else next_locator


def count_records(chunk: bytes, in_quotes: bool) -> tuple[int, bool]:
    """Record ends (newlines outside quotes) in a chunk of CSV, and whether the chunk ends inside quotes.

    Vectorised over the bytes, so counting a streamed page costs no parse and no page-sized memory. Only the
    quote *parity* between consecutive newlines is needed (a doubled quote inside a value flips it twice, so
    RFC 4180 quoting is handled); xor-reducing per line keeps it to a few passes and one byte per input byte.
    """
    newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
    if newlines.size == 0:
        return 0, bool((chunk.count(b'"') + in_quotes) & 1)
    quotes = (np.frombuffer(chunk, dtype=np.uint8, count=int(newlines[-1]) + 1) == 34).view(np.uint8)
    line_starts = np.concatenate(([0], newlines[:-1]))
    parity_before = np.bitwise_xor.accumulate(np.bitwise_xor.reduceat(quotes, line_starts)) ^ np.uint8(in_quotes)
    tail_quotes = chunk.count(b'"', int(newlines[-1]))
    return int(np.count_nonzero(parity_before == 0)), bool((int(parity_before[-1]) + tail_quotes) & 1)


def _check_bulk_header(object_name: str, header: bytes, columns: Sequence[str]) -> None:
    got = [h.strip().strip('"') for h in header.decode("utf-8").rstrip("\r\n").split(",")]
    if [g.lower() for g in got] != [c.lower() for c in columns]:
        msg = f"{object_name}: Bulk result columns {got} differ from the query's {list(columns)}"
        raise FatalSourceError(msg)


def _stream_bulk(call: RequestRunner, soql: str, columns: Sequence[str], target: Path, options: ExtractOptions,
                 progress: Callable[[int, int], None], *, split_timeouts: bool = False,
                 expected_rows: int | None = None) -> tuple[int, int]:
    """Bulk 2.0 query job -> the same CSV the REST path writes. Returns (rows written, rows reported)."""
    body = {"operation": "queryAll" if options.include_deleted else "query", "query": soql,
            "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"}
    job = call(lambda: call.conn.request("POST", "jobs/query", json=body).json(), "the Bulk job creation")
    job_id = job["id"]
    try:
        done = _bulk_wait(call, job_id, options, expected_rows=expected_rows, split_timeouts=split_timeouts)
        expected = int(done.get("numberRecordsProcessed", -1))
        reported_total, locator = 0, ""
        with open(target, "wb") as fh:
            fh.write((",".join(f'"{c}"' for c in columns) + "\n").encode("utf-8"))
            while True:
                reported, locator = call(
                    functools.partial(_stream_bulk_page, call.conn, job_id, locator, options.bulk_page_size, fh,
                                      columns, call.object_name),
                    "a Bulk result page")
                reported_total += reported
                progress(reported_total, expected)
                if not locator:
                    break
        return reported_total, expected if expected >= 0 else reported_total
    finally:
        with contextlib.suppress(Exception):  # Salesforce keeps jobs 7 days otherwise; cleanup is best effort
            call.conn.request("DELETE", f"jobs/query/{job_id}")


# ----------------------------------------------------------------------------------------------- one object


class _TtlCache:
    """Process-wide memo for metadata that changes rarely (describes, /limits): saves API requests per run.
    Expired entries are dropped whenever one is stored, so a long-lived serve process does not accumulate them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple, tuple[float, Any]] = {}  # key -> (expires at, value)

    def get(self, key: tuple, ttl_seconds: float, load: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit and now < hit[0]:
            return hit[1]
        value = load()
        with self._lock:
            self._items = {k: item for k, item in self._items.items() if now < item[0]}
            self._items[key] = (now + ttl_seconds, value)
        return value


_METADATA = _TtlCache()


def _check_api_budget(call: RequestRunner, options: ExtractOptions) -> None:
    limits = _METADATA.get(("limits", call.conn.instance_url), options.limits_cache_seconds,
                           lambda: call(lambda: call.conn.sf.limits(), "the /limits read"))
    daily = limits.get("DailyApiRequests", {})
    remaining, maximum = daily.get("Remaining"), daily.get("Max")
    log_event("api_budget", run_id=call.run_id, object=call.object_name, remaining=remaining, max=maximum)
    if remaining is not None and remaining < options.api_request_reserve:
        msg = (f"{call.object_name}: skipped, only {remaining} of {maximum} daily API requests left "
               f"(reserve {options.api_request_reserve}, SF_API_RESERVE); the next run will try again")
        raise QuotaExceededError(msg)


def _choose_api(call: RequestRunner, item: ExtractPlanItem, bulk_ok: bool,
                threshold: int) -> tuple[ApiPath, int | None]:
    """The API for ``auto``: Bulk 2.0 from ``threshold`` rows (a COUNT() that times out means a big object). A
    query too long for a REST GET (a wide object) goes through Bulk 2.0, which takes it in a POST body."""
    if bulk_ok and rest_url_too_long(item.soql):
        log_event("api_override", run_id=call.run_id, object=item.object_name, chosen="bulk2",
                  reason=f"the query is too long for a REST GET ({len(quote_plus(item.soql)):,} bytes encoded, "
                         f"over {REST_QUERY_BUDGET:,}): {len(item.columns)} columns")
        return "bulk2", None
    if rest_url_too_long(item.soql):
        msg = (f"{item.object_name}: {len(item.columns)} columns make a query too long for a REST GET, and compound "
               "or base64 fields keep it off Bulk 2.0; list the compound fields' components (BillingStreet, ...) "
               "instead of BillingAddress, or fewer fields, in configs/salesforce_objects.py")
        raise ConfigError(msg)
    if item.api == "rest" or not bulk_ok:
        if item.api == "bulk2" and not bulk_ok:
            log_event("api_override", run_id=call.run_id, object=item.object_name, chosen="rest",
                      reason="compound fields cannot be selected through Bulk 2.0")
        return "rest", None
    if item.api == "bulk2":
        return "bulk2", None
    try:
        count = call(lambda: call.conn.sf.query(count_soql(item))["totalSize"], "the row count", split_timeouts=True)
    except QueryTimedOut:
        log_event("api_choice", run_id=call.run_id, object=item.object_name, chosen="bulk2",
                  reason="the row count timed out (QUERY_TIMEOUT): a big object")
        return "bulk2", None
    return ("bulk2" if count >= threshold else "rest"), int(count)


# Salesforce refuses a request whose URI (414), or URI and headers (431), exceed 16,384 bytes; the encoded query
# gets this much of it, the rest is left to the path, the session header and the others
REST_QUERY_BUDGET = 14_000


def rest_url_too_long(soql: str) -> bool:
    return len(quote_plus(soql)) > REST_QUERY_BUDGET


def _describe(conn: SalesforceConnection, object_name: str, name: str) -> dict:
    """The describe of ``name`` (the object, or a parent on a relationship path); NOT_FOUND is a config error."""
    try:
        return getattr(conn.sf, name).describe()
    except SalesforceResourceNotFound:
        if name == object_name:
            msg = (f"{object_name}: the org has no object of that name (describe returned NOT_FOUND); check the "
                   "object's API name in configs/salesforce_objects.py (the API name, not the label; custom objects "
                   "end in __c) or the integration user's access to it")
        else:
            msg = (f"{object_name}: the org has no related object {name} (describe returned NOT_FOUND); check the "
                   f"relationship fields in configs/salesforce_objects.py or the integration user's access to {name}")
        raise ConfigError(msg) from None


def _cached_describe(call: RequestRunner, name: str, options: ExtractOptions) -> dict:
    """The describe of ``name``, shared by the steps of one run (delta, narrow pulls, reconciliation): read afresh
    by every run, so a field an admin added, hid or retyped since the last run is seen at once."""
    return _METADATA.get(("describe", call.conn.instance_url, name, call.run_id), options.describe_cache_seconds,
                         lambda: call(lambda: _describe(call.conn, call.object_name, name), f"the {name} describe"))


def describe_object(conn: SalesforceConnection, object_name: str, options: ExtractOptions, run_id: str) -> dict:
    """The object's describe, retried like any request and cached like the extract's own (no extra API call)."""
    return _cached_describe(RequestRunner(conn, object_name, options, run_id), object_name, options)


def _resolve_schema(call: RequestRunner, item: ExtractPlanItem, options: ExtractOptions):
    resolved = resolve_columns(item.object_name, item.columns, lambda name: _cached_describe(call, name, options))
    if not resolved.missing:
        return item, resolved
    where = ", ".join(f"{item.object_name}.{m}" for m in resolved.missing)
    if not options.drop_missing_fields or item.custom_soql:
        msg = (f"{where}: not found in the org's describe (typo, or the integration user cannot see it); "
               "fix configs/salesforce_objects.py, grant field access, or run with drop_missing_fields=True")
        raise ConfigError(msg)
    log_event("fields_dropped", level=30, run_id=call.run_id, object=item.object_name,
              fields=",".join(resolved.missing),
              reason="not in describe")
    return with_select(item, [c.name for c in resolved.columns]), resolved


def resolve_fields(spec: ObjectSpec, conn: SalesforceConnection, object_name: str, options: ExtractOptions,
                   run_id: str) -> ObjectSpec:
    """The entry's field list for this run's describe: ``"*"`` resolved, compound parents expanded to their
    components (with a warning: list the components instead)."""
    call = RequestRunner(conn, object_name, options, run_id)
    columns = _run_fields(spec.fields, spec.exclude_fields, call, options)
    # describe's spelling (``industry`` -> ``Industry``): the replica's columns, its state and the registry's list
    # must compare equal, or a column would be dropped and pulled again on every run (an extract's own columns are
    # spelled by _resolve_schema already)
    canonical = resolve_columns(object_name, columns, lambda name: _cached_describe(call, name, options))
    spelled = {c.name.lower(): c.name for c in canonical.columns}
    return spec.with_fields(tuple(spelled.get(c.lower(), c) for c in columns))


def _run_fields(fields: tuple[str, ...], exclude: Sequence[str], call: RequestRunner,
                options: ExtractOptions) -> tuple[str, ...]:
    describe = _cached_describe(call, call.object_name, options)  # an unknown object fails here, naming itself
    if fields == (EVERY_FIELD,):
        return every_field(describe, exclude)
    columns, expanded = expand_compound(fields, describe)
    for parent, parts in expanded.items():
        log_event("compound_expanded", level=30, run_id=call.run_id, object=call.object_name, field=parent,
                  components=",".join(parts), action="list the components in configs/salesforce_objects.py instead "
                  "(Bulk cannot select a compound field)")
    return columns


def _preflight(call: RequestRunner, item: ExtractPlanItem, options: ExtractOptions):
    """Everything checked before the first query: API budget, columns against describe, metrics against types.

    A metric that cannot fit its column's type would otherwise fail processing only after the whole extract.
    """
    _check_api_budget(call, options)
    if not item.custom_soql:  # the registry's fields: "*" and compound parents resolved on this describe
        exclude = spec_for(item.object_name).exclude_fields if item.columns == (EVERY_FIELD,) else ()
        columns = _run_fields(item.columns, exclude, call, options)
        if columns != item.columns:
            item = with_select(item, columns)
    item, resolved = _resolve_schema(call, item, options)
    check_metric_types(item.object_name, spec_for(item.object_name), resolved.columns)
    return item, resolved


class _ProgressLog:
    """``extract_progress`` lines: at most one every 2 s, and always the last. Every call also updates the run's
    progress display (``utils.progress``: a no-op when none is attached), from the moment the extract starts."""

    def __init__(self, object_name: str, run_id: str) -> None:
        self.object_name, self.run_id, self.last = object_name, run_id, 0.0
        report_progress(object_name, "extract", rows=0)  # shown while the first page or a Bulk job is on its way

    def __call__(self, done: int, total: int) -> None:
        # a Bulk job that did not say how many records it processed reports -1: expected unknown
        report_progress(self.object_name, "extract", rows=done, expected=total if total >= 0 else None)
        now = time.monotonic()
        if now - self.last >= 2.0 or done >= total:
            self.last = now
            log_event("extract_progress", object=self.object_name, run_id=self.run_id, rows=done,
                      expected_rows=total)

    def finished(self, rows: int) -> None:
        """The raw CSV and its sidecar are in place: the display marks the extract done (a failure is marked by
        whoever catches it, which also sees failures before the first page)."""
        report_progress(self.object_name, "extract", rows=rows, status="done")


def _land_raw(call: RequestRunner, item: ExtractPlanItem, resolved, api: ApiPath, raw_csv: Path, raw_schema: Path,
              moment: datetime, options: ExtractOptions) -> int:
    """Stream the object into ``raw_csv`` (+ sidecar), again from scratch after a lost cursor; rows written."""
    columns, types = [c.name for c in resolved.columns], [c.type for c in resolved.columns]
    progress = _ProgressLog(item.object_name, call.run_id or "")
    splittable = item.cursor is not None

    def stream(soql: str, target: Path, report: Callable[[int, int], None], *,
               expected_rows: int | None = None) -> tuple[int, int]:
        if api == "bulk2":
            return _stream_bulk(call, soql, columns, target, options, report, split_timeouts=splittable,
                                expected_rows=expected_rows)
        return _stream_rest(call, soql, columns, types, target, options, report, split_timeouts=splittable)

    restarts = 0
    while True:
        try:
            with atomic_path(raw_csv, upload_while_written=True) as tmp:
                try:
                    written, reported = stream(item.soql, tmp, progress, expected_rows=options.expected_rows)
                except QueryTimedOut as timed_out:
                    written, reported = _stream_windows(call, item, stream, tmp, progress, str(timed_out), options)
                if written != reported:
                    msg = (f"{item.object_name}: wrote {written} rows but Salesforce reported {reported}; "
                           "the extract was discarded, re-run it")
                    raise FatalSourceError(msg)
                schema = RawSchema(
                    object=item.object_name, columns=resolved.columns, row_count=written, api_path=api,
                    source=call.conn.source, soql=item.soql, run_id=call.run_id or "",
                    extracted_at=utc_seconds(moment),
                )
                # the sidecar lands first: whoever sees the CSV can rely on its schema being there
                write_raw_schema(raw_schema, schema)
            progress.finished(written)
            return written
        except _RestartObject as why:
            if restarts >= options.max_restarts:
                msg = (f"{item.object_name}: Salesforce kept losing the query ({why}) after "
                       f"{restarts + 1} attempts; the next run will try again")
                raise RetriableSourceError(msg) from None
            restarts += 1
            log_event("extract_restart", level=30, object=item.object_name, run_id=call.run_id, reason=str(why))


def _stream_windows(call: RequestRunner, item: ExtractPlanItem,
                    stream: Callable[[str, Path, Callable[[int, int], None]], tuple[int, int]], target: Path,
                    progress: Callable[[int, int], None], why: str, options: ExtractOptions) -> tuple[int, int]:
    """The query again as consecutive windows of its cursor, each halved while it times out (down to
    ``query_window_floor_seconds``), streamed to part files and joined in order into ``target``.

    Windows run from the query's own lower bound (a delta's) to a day past now: records updated during the
    extract move to a later window and may be read twice, which the replica's merge by key absorbs.
    """
    cursor = item.cursor
    assert cursor is not None  # only splittable items raise QueryTimedOut
    log_event("extract_windows", level=30, object=item.object_name, run_id=call.run_id, cursor=cursor,
              reason=why, action="split the query into cursor windows, halving each that times out")
    parts: list[Path] = []
    counts: list[tuple[int, int]] = []

    def read(low: datetime, high: datetime) -> None:
        part = target.with_name(f"{target.name}.w{len(parts)}")
        parts.append(part)
        so_far = sum(w for w, _ in counts)
        try:
            counts.append(stream(window_soql(item.soql, cursor, low, high), part,
                                 functools.partial(_offset_progress, progress, so_far)))
        except QueryTimedOut:
            parts.pop().unlink(missing_ok=True)
            raise

    try:
        read_in_windows(read, item.cursor_since or EARLIEST_CURSOR, _windows_end(), what=f"{item.object_name}'s "
                        f"query", cursor=cursor, floor_seconds=options.query_window_floor_seconds)
        written, reported = sum(w for w, _ in counts), sum(r for _, r in counts)
        log_event("extract_windows_done", object=item.object_name, run_id=call.run_id, windows=len(parts),
                  rows=written)
        _join_parts(parts, target)
        return written, reported
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def _windows_end() -> datetime:
    """Where windows stop: a day past now, so that no clock skew leaves a record's cursor beyond the last one."""
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)


def read_in_windows(read: Callable[[datetime, datetime], T], low: datetime, high: datetime, *, what: str,
                    cursor: str, floor_seconds: float) -> list[T]:
    """``read(start, end)`` over consecutive windows covering [low, high), each halved while it raises
    ``QueryTimedOut``, down to ``floor_seconds``; the results in window order."""
    pending: list[tuple[datetime, datetime]] = halves(low, high)
    results: list[T] = []
    while pending:
        start, end = pending.pop(0)
        try:
            results.append(read(start, end))
        except QueryTimedOut:
            if (end - start).total_seconds() <= floor_seconds:
                msg = (f"{what}: QUERY_TIMEOUT even for the window {utc_seconds(start)} to {utc_seconds(end)} of "
                       f"{cursor}; the next run will try again (ask Salesforce support about the object's indexes, "
                       "or narrow the registry's fields)")
                raise RetriableSourceError(msg) from None
            pending[0:0] = halves(start, end)
    return results


def _offset_progress(progress: Callable[[int, int], None], offset: int, done: int, total: int) -> None:
    """A window's progress as the whole extract's: the rows of earlier windows count too (the object's total is
    not known, only the windows' so far)."""
    progress(offset + done, offset + total if total >= 0 else -1)


def _join_parts(parts: Sequence[Path], target: Path) -> None:
    """Concatenate CSV part files with one header (the first part's) into ``target``, streaming."""
    with open(target, "wb") as out:
        for n, part in enumerate(parts):
            with open(part, "rb") as fh:
                header = fh.readline()
                if n == 0:
                    out.write(header)
                shutil.copyfileobj(fh, out, length=1 << 20)


def extract_object(
    item: ExtractPlanItem,
    *,
    run_id: str,
    connection: SalesforceConnection | None = None,
    options: ExtractOptions | None = None,
    data_root: str | os.PathLike[str] | None = None,
    bulk_threshold_rows: int = 50_000,
    moment: datetime | None = None,
) -> ExtractResult:
    """Extract one object to its raw CSV + schema sidecar; see the module docstring for the guarantees."""
    options = options or ExtractOptions()
    conn = connection or get_connection()
    call = RequestRunner(conn, item.object_name, options, run_id)
    started = time.monotonic()
    moment = moment or datetime.now(timezone.utc)
    item, resolved = _preflight(call, item, options)
    api, counted = _choose_api(call, item, resolved.bulk_compatible, bulk_threshold_rows)
    if counted is not None:
        options = replace(options, expected_rows=counted)
    paths = build_paths(item.object_name, run_id, moment=moment, data_root=data_root)
    log_event("extract_start", object=item.object_name, run_id=run_id, api=api, expected_rows=counted,
              source=conn.source)
    try:
        written = _land_raw(call, item, resolved, api, paths.raw_csv, paths.raw_schema, moment, options)
    except _BulkRefused as refused:
        if api != "bulk2":
            raise
        log_event("api_override", level=30, run_id=run_id, object=item.object_name, chosen="rest", reason=str(refused),
                  action="set api 'rest' for this object in configs/salesforce_objects.py to skip the Bulk attempt")
        api = "rest"
        written = _land_raw(call, item, resolved, api, paths.raw_csv, paths.raw_schema, moment, options)
    seconds = time.monotonic() - started
    usage = conn.api_usage  # the last Sforce-Limit-Info Salesforce sent
    log_event("extract_done", object=item.object_name, run_id=run_id, api=api, rows=written,
              seconds=round(seconds, 3), rows_per_second=round(written / seconds) if seconds else None,
              file=paths.raw_csv.name, api_usage=f"{usage.used}/{usage.total}" if usage else None)
    return ExtractResult(item.object_name, str(paths.raw_csv), str(paths.raw_schema), written, api, seconds,
                         conn.source, run_id, resolved.missing)


def retry_only_transient(task, task_run, state) -> bool:  # noqa: ARG001 - Prefect's signature
    try:
        state.result()
    except RetriableSourceError:
        return True
    except Exception:  # noqa: BLE001
        return False
    return False


# Prefect retries of a task that lands an object (this one, sync_salesforce_object, tasks.land.land_object): one
# more attempt, 5 s later, for a transient source fault only; pages and lost cursors are retried inside extract_object.
LANDING_TASK_RETRIES: dict[str, Any] = {"retries": 1, "retry_delay_seconds": 5,
                                        "retry_condition_fn": retry_only_transient}


@task(task_run_name="extract-{item.object_name}", **LANDING_TASK_RETRIES)
def extract_salesforce_to_csv(
    item: ExtractPlanItem,
    run_id: str,
    data_root: str | None = None,
    drop_missing_fields: bool = False,
) -> dict[str, Any]:
    """Prefect task: extract one planned object; returns the ExtractResult as a dict (paths as strings).
    The flows land objects with ``tasks.land.land_object`` instead; this stays for direct use."""
    options = ExtractOptions(drop_missing_fields=drop_missing_fields)
    return extract_object(item, run_id=run_id, options=options, data_root=data_root,
                          bulk_threshold_rows=spec_for(item.object_name).bulk_threshold_rows).as_dict()

