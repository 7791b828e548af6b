"""Sort what the Salesforce client raises into decisions (retry / renew the session / restart / fatal / quota),
and the one backoff policy every retry uses (extract requests, the run-start /limits check, logins), run by
tenacity (layers: docs/reliability.md, "Retry layers")."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

from utils.errors import PipelineError, RetriableSourceError
from utils.logs import log_event
from utils.settings import env_number

T = TypeVar("T")


class Action(enum.Enum):
    RETRY = "retry"          # same request again after a backoff
    RENEW_SESSION = "renew"  # renew the session, then the same request again
    RESTART = "restart"      # the cursor/job is gone: extract the object again from scratch
    FATAL = "fatal"          # retrying cannot help
    QUOTA = "quota"          # an allowance is used up (daily API requests, logins): retrying now adds to it


def error_code_of(err: BaseException) -> str:
    """The Salesforce errorCode of a client exception ('' if none)."""
    content = getattr(err, "content", None)
    if isinstance(content, (bytes, str)):
        try:
            content = json.loads(content)
        except ValueError:
            return ""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode", ""))
    return ""


def error_message_of(err: BaseException) -> str:
    content = getattr(err, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("message", "")).strip()
    return str(err)


def classify(err: BaseException) -> Action:
    """What to do about an exception raised while talking to Salesforce."""
    if isinstance(err, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return Action.RETRY
    if isinstance(err, json.JSONDecodeError):  # a body cut short by a dropped connection
        return Action.RETRY
    if isinstance(err, SalesforceExpiredSession):
        return Action.RENEW_SESSION
    code = error_code_of(err)
    if isinstance(err, SalesforceRefusedRequest):
        if code == "REQUEST_LIMIT_EXCEEDED":
            message = error_message_of(err)
            return Action.RETRY if "Concurrent" in message else Action.QUOTA
        return Action.FATAL
    if isinstance(err, SalesforceMalformedRequest):
        if code == "INVALID_QUERY_LOCATOR":
            return Action.RESTART
        if code == "QUERY_TIMEOUT":
            return Action.RETRY
        return Action.FATAL
    if isinstance(err, SalesforceGeneralError):
        return Action.RETRY if getattr(err, "status", 0) >= 500 else Action.FATAL
    if isinstance(err, SalesforceOperationError):  # Bulk job Failed: Salesforce gave up, a new job may succeed
        return Action.RESTART
    return Action.FATAL


# A SOAP login fault always comes with HTTP 500, so the status alone cannot tell an outage from a rejection:
# these codes (SOAP exceptionCode, or OAuth error in any case) are Salesforce saying it cannot serve the login now.
_LOGIN_OUTAGE_CODES = frozenset({"SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "UNKNOWN_ERROR"})
# ... and these that this user or app logged in too often: more attempts now only extend the lockout.
_LOGIN_RATE_CODES = frozenset({"RATE_LIMIT_EXCEEDED", "LOGIN_RATE_EXCEEDED"})


def login_fault_code(err: SalesforceAuthenticationFailed) -> str:
    """The SOAP exceptionCode / OAuth error of a failed login, or '' when the answer was no login fault at all
    (simple-salesforce then puts the HTTP status, or None, where the code goes)."""
    code = str(err.code or "")
    return "" if code.isdigit() else code


def classify_login(err: BaseException, status: int | None) -> Action:
    """RETRY for a login outage (network, 502-504, an outage code, a 5xx without a login fault), QUOTA when
    Salesforce is limiting logins (429, a rate-limit code), else FATAL (Salesforce rejected the credentials).

    ``status`` is the login response's HTTP status (SalesforceAuthenticationFailed itself always says 401).
    """
    if not isinstance(err, SalesforceAuthenticationFailed):
        return Action.RETRY if classify(err) is Action.RETRY else Action.FATAL
    code, status = login_fault_code(err).upper(), status or 0
    if status == 429 or code in _LOGIN_RATE_CODES:
        return Action.QUOTA
    if code in _LOGIN_OUTAGE_CODES or status in (502, 503, 504) or (not code and status >= 500):
        return Action.RETRY
    return Action.FATAL


def error_label_of(err: BaseException) -> str:
    """``SalesforceGeneralError SERVER_UNAVAILABLE``: the exception type and errorCode, for logs and messages."""
    code = login_fault_code(err) if isinstance(err, SalesforceAuthenticationFailed) else error_code_of(err)
    return f"{type(err).__name__} {code}".strip()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a transient fault is retried: exponential backoff with full jitter, capped.

    The wait after failed attempt ``n`` is drawn uniformly from ``[0, max_wait_seconds(n)]`` (tenacity's
    ``wait_random_exponential``), so threads and runs that failed together do not all retry at the same instant.
    """

    max_attempts: int = 6
    backoff_base_seconds: float = field(
        default_factory=lambda: env_number("SF_RETRY_BASE_SECONDS", 1.0, non_negative=True))
    backoff_max_seconds: float = 30.0

    def max_wait_seconds(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based): base * 2**(attempt - 1), capped."""
        return min(self.backoff_base_seconds * 2 ** (attempt - 1), self.backoff_max_seconds)

    def wait(self) -> wait_base:
        """The tenacity wait strategy: a uniform draw between 0 and ``max_wait_seconds(attempt)``."""
        return wait_random_exponential(multiplier=self.backoff_base_seconds, max=self.backoff_max_seconds)


def retry_transient(request: Callable[[], T], policy: RetryPolicy, *, what: str,
                    classify_error: Callable[[BaseException], Action] = classify,
                    exhausted: Callable[[BaseException, int], PipelineError] | None = None,
                    log_fields: Mapping[str, Any] | None = None, keep_cause: bool = True) -> T:
    """``request()``, again after a backoff while ``classify_error`` calls its error RETRY (at most
    ``policy.max_attempts`` attempts in all).

    Any other error is raised unchanged for the caller to judge; when the attempts run out, ``exhausted(err,
    attempts)`` (default: a RetriableSourceError naming ``what``) is raised instead, chained to the last error
    unless ``keep_cause`` is False (a login error's cause may echo request data).
    """
    def is_transient(err: BaseException) -> bool:
        if isinstance(err, PipelineError) or not isinstance(err, Exception):
            return False  # already ours (with its message), or an interrupt
        return classify_error(err) is Action.RETRY

    def log_retry(state: RetryCallState) -> None:
        log_event("retry", **(log_fields or {}), during=what, error=error_label_of(_error_of(state)),
                  attempt=state.attempt_number, wait_seconds=state.upcoming_sleep)

    def give_up(state: RetryCallState) -> NoReturn:
        err, attempts = _error_of(state), state.attempt_number
        failure = exhausted(err, attempts) if exhausted else RetriableSourceError(outage_message(what, err, attempts))
        raise failure from (err if keep_cause else None)

    retrying = Retrying(stop=stop_after_attempt(policy.max_attempts), wait=policy.wait(),
                        retry=retry_if_exception(is_transient), before_sleep=log_retry, retry_error_callback=give_up)
    return retrying(request)


def _error_of(state: RetryCallState) -> BaseException:
    """The exception the attempt that ``state`` describes failed with (only asked of failed attempts)."""
    err = state.outcome.exception() if state.outcome else None
    assert err is not None, "tenacity calls before_sleep and retry_error_callback only after a failed attempt"
    return err


def quota_message(err: BaseException) -> str:
    return (f"Salesforce's daily API request limit is exhausted ({error_message_of(err)}); wait for the 24 h "
            "window to roll or raise the limit")


def outage_message(what: str, err: BaseException, attempts: int) -> str:
    """What to say when a transient fault outlasted the retries: it is an outage, not a mistake to fix."""
    return (f"{what} still failing after {attempts} attempts ({error_label_of(err)}); "
            "Salesforce or the network is unavailable, the next run will try again")
