"""Bulk query job stores: Bulk API 2.0 jobs (create, state progression, abort/delete, CSV result pages) and
Bulk API 1.0 jobs with their batches (``ClassicJobs``; the ``/services/async`` protocol is in ``bulk1.py``).

States follow the clock as on a real org: a Bulk 2.0 job is ``UploadComplete`` (queued) for its first moments, then
``InProgress``, then ``JobComplete`` once the configured delay has passed (and its rows are formatted); a Bulk 1.0
batch goes ``Queued``, ``InProgress``, ``Completed``. Job dates have Salesforce's second precision
(``...T12:00:00.000+0000``), and ``systemModstamp`` is the time of the last state change (the time it happened,
whenever it is looked at)."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from emulator.auth import ADMIN_USER_ID
from emulator.ids import make_id
from emulator.render import DELIMITERS, LINE_ENDINGS, csv_chunks, csv_ready, rest_value
from emulator.soql import SoqlQuery
from emulator.web import ApiError, not_found

DEFAULT_MAX_RECORDS = 50_000  # simple-salesforce's default page size; it always sends maxRecords anyway
TERMINAL = ("JobComplete", "Failed", "Aborted")
MAX_QUEUED_S = 0.1  # a job waits at most this long (a third of its delay if shorter) in the queue before it runs


def whole_seconds(when: datetime) -> datetime:
    """A job date at Salesforce's precision (``.000``)."""
    return when.replace(microsecond=0)


@dataclass(frozen=True)
class Schedule:
    """When a job (or batch) created now leaves the queue and finishes, on the monotonic clock, and its created date."""

    created: datetime
    started: float  # monotonic time it leaves the queue (UploadComplete / Queued -> InProgress)
    ready: float  # monotonic time it may finish (-> JobComplete / Completed)
    origin: float  # monotonic time of creation

    @classmethod
    def starting(cls, now: datetime, delay_s: float) -> Schedule:
        origin = time.monotonic()
        return cls(whole_seconds(now), origin + min(MAX_QUEUED_S, delay_s / 3), origin + delay_s, origin)

    def stamp(self, at: float) -> datetime:
        """The date of a state change that happened at monotonic time ``at``."""
        return whole_seconds(self.created + timedelta(seconds=max(at - self.origin, 0.0)))


@dataclass
class BulkJob:
    id: str
    operation: str
    object_name: str
    schedule: Schedule
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    api_version: str = "59.0"
    state: str = "UploadComplete"
    frame: pl.DataFrame | None = None  # result rows, columns in SELECT order, temporal columns as CSV text
    error_message: str | None = None
    modstamp: datetime | None = None
    held: bool = False  # a ``hold`` fault keeps the job InProgress (a stuck job) while set
    failure: str | None = None  # the errorMessage of a job that ends Failed when it finishes (a query timeout)
    processed: threading.Event = field(default_factory=threading.Event)
    processed_at: float = 0.0  # monotonic time its rows were ready

    @property
    def created(self) -> datetime:
        return self.schedule.created

    def advance(self) -> None:
        """Bring a running job's state up to now: queued, running, or complete once its delay has passed."""
        if self.state not in ("UploadComplete", "InProgress"):
            return
        now = time.monotonic()
        if not self.held and self.processed.is_set() and now >= self.schedule.ready:
            finished = max(self.schedule.ready, self.processed_at)
            self.state, self.modstamp = "JobComplete", self.schedule.stamp(finished)
            if self.failure is not None:
                self.state, self.error_message, self.frame = "Failed", self.failure, None
        elif self.held or now >= self.schedule.started:
            self.state, self.modstamp = "InProgress", self.schedule.stamp(self.schedule.started)

    def info(self, *, full: bool = True) -> dict[str, Any]:
        """The job JSON: the create response (``full=False``) or ``GET /jobs/query/{id}``."""
        stamp = rest_value(self.modstamp or self.created)
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object_name,
            "createdById": ADMIN_USER_ID, "createdDate": rest_value(self.created),
            "systemModstamp": stamp, "state": self.state, "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": float(self.api_version), "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if full:
            rows = self.frame.height if self.frame is not None and self.state == "JobComplete" else 0
            body.update(jobType="V2Query", numberRecordsProcessed=rows, retries=0, totalProcessingTime=0,
                        isPkChunkingSupported=True)
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


def bulk_query_problem(query: SoqlQuery, *, version2: bool,
                       reject_limit_order_by: bool = False) -> tuple[str, str] | None:
    """Why a Bulk query refuses this SOQL, as (errorCode, message), or None (fact sheet 6.6): no compound fields,
    COUNT(), aggregates or parent-to-child subqueries ("aggregate relationships"), OFFSET or FIELDS(); LIMIT and
    ORDER BY only where some Bulk 2.0 doc releases rejected them. ``version2``: Bulk API 2.0's codes and wording,
    else Bulk API 1.0's (its batch fails with the code in its stateMessage)."""
    unsupported = "API_ERROR" if version2 else "FUNCTIONALITY_NOT_ENABLED"
    if query.selects_compound:
        return unsupported, "Selecting compound data not supported in Bulk Query"
    if query.is_count:
        return "MALFORMED_QUERY", "Aggregate Relationships not supported in Bulk Query with CSV content type"
    if query.aggregation is not None or query.subqueries:
        bulk = "Bulk V2 Query" if version2 else "Bulk Query"
        return unsupported, f"Aggregate Relationships not supported in {bulk} with CSV content type"
    if query.offset is not None:
        return "MALFORMED_QUERY", "OFFSET clause is not supported in Bulk Query"
    if query.uses_fields_function:
        return "MALFORMED_QUERY", "FIELDS() is not supported in Bulk Query"
    if reject_limit_order_by and (query.limit is not None or query.order_by):
        return "MALFORMED_QUERY", "LIMIT and ORDER BY clauses are not supported in Bulk Query"
    return None


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from err


def _process(job: BulkJob, frame: pl.DataFrame) -> None:
    job.frame = csv_ready(frame)
    job.processed_at = time.monotonic()
    job.processed.set()


@dataclass
class ResultPage:
    number_of_records: int
    next_locator: str  # "null" on the last page, as Salesforce sends it
    chunks: Iterator[bytes] = field(repr=False)


class BulkJobs:
    """Every query job of the org, by id."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.created_count = 0
        self.v1 = ClassicJobs(delay_s)  # Bulk API 1.0 jobs: same org, same reset
        self._jobs: dict[str, BulkJob] = {}
        self._lock = threading.Lock()
        self._next = 0

    def add(self, *, operation: str, object_name: str, frame: pl.DataFrame, now: datetime, body: dict[str, Any],
            version: str, failure: str | None = None) -> BulkJob:
        delimiter, line_ending = body.get("columnDelimiter") or "COMMA", body.get("lineEnding") or "LF"
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", f"Invalid columnDelimiter/lineEnding: {delimiter}/{line_ending}")
        with self._lock:
            self._next += 1
            self.created_count += 1
            job = BulkJob(make_id("750", self._next), operation, object_name,
                          Schedule.starting(now, self.delay_s), delimiter, line_ending, version, failure=failure)
            self._jobs[job.id] = job
        # Like Salesforce, the job "runs" after the create call returns: format the result for CSV in the
        # background (InProgress meanwhile), so result pages are then only sliced and written.
        threading.Thread(target=_process, args=(job, frame), name=f"bulk-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> BulkJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise not_found()
        job.advance()
        return job

    def hold(self, job_id: str, held: bool) -> None:
        """Hold a running job InProgress (the ``hold`` fault) or release it; a finished or unknown job is left alone."""
        job = self._jobs.get(job_id)
        if job is not None and job.state in ("UploadComplete", "InProgress"):
            job.held = held

    def end(self, job_id: str, state: str, message: str | None, now: datetime, *, force: bool = False) -> BulkJob:
        """Move a job to Aborted or Failed (an abort request, or an injected failure with ``force``)."""
        job = self.get(job_id)
        if job.state in TERMINAL and not force:
            raise ApiError(400, "INVALIDJOBSTATE", f"Job with ID {job_id} is already {job.state}")
        job.state, job.error_message, job.modstamp, job.frame = state, message, whole_seconds(now), None
        return job

    def delete(self, job_id: str) -> None:
        with self._lock:
            if self._jobs.pop(job_id, None) is None:
                raise not_found()

    def all(self) -> list[BulkJob]:
        """Every job, each brought up to date (the job list shows the states a GET of each would)."""
        jobs = list(self._jobs.values())
        for job in jobs:
            job.advance()
        return jobs

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()
        self.v1.clear()

    def page(self, job_id: str, *, locator: str | None, max_records: int | None, version: str) -> ResultPage:
        """A result page; ``version``: the API version of the request, which must be the job's (else 409)."""
        job = self.get(job_id)
        if version != job.api_version:
            raise ApiError(409, "INVALIDVERSION", f"Job {job_id} was created with API version {job.api_version}: "
                           f"get its results with that version (/services/data/v{job.api_version}/jobs/query/"
                           f"{job_id}/results), not {version}")
        if job.state != "JobComplete" or job.frame is None:
            raise ApiError(412, "JOB_NOT_COMPLETE", f"Job {job_id} is in state {job.state}; results need JobComplete")
        start = decode_locator(locator) if locator else 0
        size = max_records if max_records and max_records > 0 else DEFAULT_MAX_RECORDS
        if start > job.frame.height:
            raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}")
        rows = job.frame.slice(start, size)
        end = start + rows.height
        next_locator = encode_locator(end) if end < job.frame.height else "null"
        chunks = csv_chunks(rows, job.frame.columns, delimiter=job.column_delimiter, line_ending=job.line_ending)
        return ResultPage(rows.height, next_locator, chunks)


# --- Bulk API 1.0 -------------------------------------------------------------------------------------------------
JOB_TRANSITIONS_V1 = {("Open", "Closed"), ("Open", "Aborted"), ("Closed", "Aborted")}
BATCH_DONE_V1 = ("Completed", "Failed", "NotProcessed")


class Bulk1Error(Exception):
    """A Bulk API 1.0 refusal, answered in that API's own format: HTTP status, exceptionCode, exceptionMessage."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class ClassicBatch:
    """One batch of a Bulk API 1.0 query job: its SOQL and its result rows, or why it failed."""

    id: str
    job_id: str
    soql: str
    schedule: Schedule
    query: SoqlQuery | None = None  # the parsed SOQL (None when it did not parse)
    rows: pl.DataFrame | None = None  # executed result (the SELECT columns, the root Id and parent-Id columns)
    failure: str | None = None  # stateMessage of a batch that fails
    state: str = "Queued"
    modstamp: datetime | None = None
    result_ids: tuple[str, ...] = ()

    @property
    def created(self) -> datetime:
        return self.schedule.created

    @property
    def records_processed(self) -> int:
        return self.rows.height if self.rows is not None and self.state == "Completed" else 0


@dataclass
class ClassicJob:
    """A Bulk API 1.0 job; query batches are added while it is Open."""

    id: str
    operation: str
    object_name: str
    content_type: str
    concurrency_mode: str
    api_version: str
    created: datetime
    pk_chunk_size: int | None = None
    state: str = "Open"
    modstamp: datetime | None = None
    batches: dict[str, ClassicBatch] = field(default_factory=dict)


class ClassicJobs:
    """Every Bulk API 1.0 job of the org and its batches, by id. Batches run when added (like Salesforce's queue);
    a batch becomes Completed or Failed once ``delay_s`` has passed and someone looks at it."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.batch_count = 0  # DailyBulkApiBatches
        self._jobs: dict[str, ClassicJob] = {}
        self._lock = threading.Lock()
        self._next = {"750": 0, "751": 0, "752": 0}

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._next[prefix] += 1
            return make_id(prefix, 1_000_000 + self._next[prefix])  # apart from the Bulk 2.0 job ids

    def create(self, *, operation: str, object_name: str, content_type: str, concurrency_mode: str, version: str,
               now: datetime, pk_chunk_size: int | None = None) -> ClassicJob:
        job = ClassicJob(self._new_id("750"), operation, object_name, content_type, concurrency_mode, version,
                         whole_seconds(now), pk_chunk_size)
        with self._lock:
            self._jobs[job.id] = job
        return job

    def job(self, job_id: str, now: datetime) -> ClassicJob:  # noqa: ARG002 - states follow the monotonic clock
        """The job, its batches' states brought up to now; its systemModstamp is its last batch's change, if later."""
        job = self._jobs.get(job_id)
        if job is None:
            raise Bulk1Error(400, "InvalidJob", f"Invalid job id: {job_id}")
        for batch in job.batches.values():
            _advance_batch(batch)
            if batch.modstamp is not None and batch.modstamp > (job.modstamp or job.created):
                job.modstamp = batch.modstamp
        return job

    def add_batch(self, job: ClassicJob, soql: str, now: datetime, *, query: SoqlQuery | None = None,
                  rows: pl.DataFrame | None = None, failure: str | None = None,
                  not_processed: bool = False) -> ClassicBatch:
        """Queue a query batch: its rows (computed when added), or the stateMessage it fails with."""
        if job.state != "Open":
            raise Bulk1Error(400, "InvalidJobState", f"Job {job.id} is {job.state}: batches can only be added to an "
                             "Open job; create a new job")
        batch = ClassicBatch(self._new_id("751"), job.id, soql, Schedule.starting(now, self.delay_s), query, rows,
                             failure)
        if not_processed:
            batch.state, batch.modstamp = "NotProcessed", batch.created
        elif rows is not None:
            batch.result_ids = (self._new_id("752")[:15],)
        with self._lock:
            job.batches[batch.id] = batch
            self.batch_count += 1
        return batch

    def batch(self, job: ClassicJob, batch_id: str) -> ClassicBatch:
        batch = job.batches.get(batch_id)
        if batch is None:
            raise Bulk1Error(400, "InvalidBatch", f"Invalid batch id: {batch_id}")
        return batch

    def change_state(self, job: ClassicJob, state: str, now: datetime) -> ClassicJob:
        """Close or abort a job; an abort leaves unfinished batches NotProcessed."""
        if (job.state, state) not in JOB_TRANSITIONS_V1:
            raise Bulk1Error(400, "InvalidJobState", f"Cannot change the state of job {job.id} from {job.state} to "
                             f"{state}: an Open job can be Closed or Aborted, a Closed one Aborted")
        job.state, job.modstamp = state, whole_seconds(now)
        if state == "Aborted":
            for batch in job.batches.values():
                if batch.state not in BATCH_DONE_V1:
                    batch.state, batch.modstamp, batch.rows = "NotProcessed", job.modstamp, None
        return job

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()


def _advance_batch(batch: ClassicBatch) -> None:
    """Bring a batch's state up to now: Queued, InProgress, then Completed (or Failed) once its delay has passed."""
    if batch.state in BATCH_DONE_V1:
        return
    now = time.monotonic()
    if now >= batch.schedule.ready:
        batch.state = "Failed" if batch.failure else "Completed"
        batch.modstamp = batch.schedule.stamp(batch.schedule.ready)
    elif now >= batch.schedule.started:
        batch.state, batch.modstamp = "InProgress", batch.schedule.stamp(batch.schedule.started)
