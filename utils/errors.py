"""The pipeline's error taxonomy. Retries key off it: only RetriableSourceError is ever retried."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose; the message says what to do.

    Flow-level errors may carry the run's ``summary`` so a failed run still reports everything it did.
    """

    def __init__(self, message: str = "", summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}

    def __reduce__(self):  # keep the summary when Prefect pickles the exception
        return (type(self), (str(self), self.summary))


class ConfigError(PipelineError):
    """Bad registry, parameters, custom SOQL or .env: fix the configuration."""


class AuthError(PipelineError):
    """Salesforce refused the credentials; never retried, never falls back to the emulator."""


class RetriableSourceError(PipelineError):
    """A transient Salesforce/HTTP fault (5xx, reset, concurrent-request limit, lost query locator)."""


class FatalSourceError(PipelineError):
    """Salesforce rejected the request for good (bad query, unknown field, unsupported object)."""


class QuotaExceededError(FatalSourceError):
    """The org's daily API budget is exhausted or under the configured reserve."""


class DataQualityError(PipelineError):
    """A QA check of error severity failed in strict mode."""


class QaTaskError(PipelineError):
    """A QA task raised (full disk, a bug): that object's QA did not happen, so the flow fails in any mode."""
