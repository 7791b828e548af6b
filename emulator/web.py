"""Request/response values shared by the emulator's route handlers, and Salesforce-shaped error bodies."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.numbers import dumps_json

JSON_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    version: str = ""  # API version of /services/data/vXX.X/ paths
    token: str | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """A complete body (``bytes``) or a streamed one (an iterable of chunks, sent with chunked encoding)."""

    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """Answer with Salesforce's error envelope: a JSON list of {message, errorCode}."""

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON, as Salesforce writes it (``","`` and ``":"``, no spaces), UTF-8 rather than ``\\u`` escapes,
    doubles as Java writes them (``4.6559E8``)."""
    return Response(status, dumps_json(payload), headers=headers or {})


def compact_json(body: bytes) -> bytes:
    """A JSON body written elsewhere with ``json.dumps``' default separators, rewritten compactly."""
    return json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()


def error_response(status: int, error_code: str, message: str, fields: list[str] | None = None) -> Response:
    entry: dict[str, Any] = {"message": message, "errorCode": error_code}
    if fields is not None:
        entry["fields"] = fields
    return json_response(status, [entry])


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")
