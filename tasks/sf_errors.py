"""Sort what the Salesforce client raises into retry decisions (transient / renew session / restart / fatal)."""

from __future__ import annotations

import enum
import json

import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)


class Action(enum.Enum):
    RETRY = "retry"            # same request again after a backoff
    REAUTHENTICATE = "reauth"  # renew the session, then the same request again
    RESTART = "restart"        # the cursor/job is gone: extract the object again from scratch
    FATAL = "fatal"            # retrying cannot help
    QUOTA = "quota"            # the daily API allowance is used up


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
        return Action.REAUTHENTICATE
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
