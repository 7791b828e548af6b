"""Bulk API 2.0 query jobs: create (query/queryAll), state progression, abort/delete, CSV result pages."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from emulator.ids import make_id
from emulator.render import DELIMITERS, LINE_ENDINGS, csv_chunks, csv_ready, rest_value
from emulator.web import ApiError, not_found

DEFAULT_MAX_RECORDS = 50_000  # simple-salesforce's default page size; it always sends maxRecords anyway
TERMINAL = ("JobComplete", "Failed", "Aborted")


@dataclass
class BulkJob:
    id: str
    operation: str
    object_name: str
    created: datetime
    ready_at: float  # monotonic time the job turns JobComplete
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    api_version: str = "59.0"
    state: str = "UploadComplete"
    frame: pl.DataFrame | None = None  # result rows, columns in SELECT order, temporal columns as CSV text
    error_message: str | None = None
    modstamp: datetime | None = None
    held: bool = False  # a ``hold`` fault keeps the job InProgress (a stuck job) while set
    processed: threading.Event = field(default_factory=threading.Event)

    def info(self, *, full: bool = True) -> dict[str, Any]:
        """The job JSON: the create response (``full=False``) or ``GET /jobs/query/{id}``."""
        stamp = rest_value(self.modstamp or self.created)
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object_name,
            "createdById": "005EM0000000001YAA", "createdDate": rest_value(self.created),
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


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from err


def _process(job: BulkJob, frame: pl.DataFrame) -> None:
    job.frame = csv_ready(frame)
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
        self._jobs: dict[str, BulkJob] = {}
        self._lock = threading.Lock()
        self._next = 0

    def add(self, *, operation: str, object_name: str, frame: pl.DataFrame, now: datetime, body: dict[str, Any],
            version: str) -> BulkJob:
        delimiter, line_ending = body.get("columnDelimiter") or "COMMA", body.get("lineEnding") or "LF"
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", f"Invalid columnDelimiter/lineEnding: {delimiter}/{line_ending}")
        with self._lock:
            self._next += 1
            self.created_count += 1
            job = BulkJob(make_id("750", self._next), operation, object_name, now, time.monotonic() + self.delay_s,
                          delimiter, line_ending, version)
            self._jobs[job.id] = job
        # Like Salesforce, the job "runs" after the create call returns: format the result for CSV in the
        # background (InProgress meanwhile), so result pages are then only sliced and written.
        threading.Thread(target=_process, args=(job, frame), name=f"bulk-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> BulkJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise not_found()
        if job.state in ("UploadComplete", "InProgress"):
            done = not job.held and job.processed.is_set() and time.monotonic() >= job.ready_at
            job.state = "JobComplete" if done else "InProgress"
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
        job.state, job.error_message, job.modstamp, job.frame = state, message, now, None
        return job

    def delete(self, job_id: str) -> None:
        with self._lock:
            if self._jobs.pop(job_id, None) is None:
                raise not_found()

    def all(self) -> list[BulkJob]:
        return list(self._jobs.values())

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()

    def page(self, job_id: str, *, locator: str | None, max_records: int | None) -> ResultPage:
        job = self.get(job_id)
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
