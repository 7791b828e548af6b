"""Fault injection: parse the ``--faults`` spec and decide, per request, which fault (if any) to inject.

Spec: rules separated by ``;``, each ``KIND:ACTION[:option=value...]``.

* KIND: ``rest.query``, ``rest.query_more``, ``rest.describe``, ``rest.limits``, ``sobject``, ``bulk.create``,
  ``bulk.status``, ``bulk.results``, ``auth``; shell-style patterns work (``*``, ``bulk.*``) except for ``hold``.
* ACTION: ``503`` (SERVER_UNAVAILABLE), ``500`` (UNKNOWN_EXCEPTION), ``concurrent`` (403 REQUEST_LIMIT_EXCEEDED,
  transient), ``daily`` (403 REQUEST_LIMIT_EXCEEDED and the daily allowance stays exhausted until reset),
  ``expire`` (401 INVALID_SESSION_ID and the presented token is revoked), ``locator`` (INVALID_QUERY_LOCATOR),
  ``timeout`` (QUERY_TIMEOUT), ``reset`` (send half the body, then reset the connection), ``job_failed`` /
  ``job_aborted`` (the Bulk job ends Failed / Aborted), ``hold`` (kind exactly ``bulk.status``: a job status
  request it fires on finds the job still InProgress, and the job cannot complete until a status request it
  does not fire on; ``times=0`` holds every job forever, a stuck job that only an abort ends), ``latency=MS``
  (delay the response). ``auth`` faults answer in the login flow's own format: a SOAP fault or an OAuth error JSON.
* Options: ``after=N`` (let the first N matching requests through), ``times=M`` (inject at most M times; default 1,
  unlimited for latency; ``times=0`` means unlimited), ``p=0.3`` (inject with this probability, reproducible from
  the emulator seed), ``status=NNN`` (override the HTTP status).

Example: ``bulk.results:reset:after=1:times=2;rest.query_more:503:times=3;*:latency=200``.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field

KINDS = ("rest.query", "rest.query_more", "rest.describe", "rest.limits", "sobject", "bulk.create", "bulk.status",
         "bulk.results", "auth")
ERROR_ACTIONS: dict[str, tuple[int, str, str]] = {
    "503": (503, "SERVER_UNAVAILABLE", "Server temporarily unavailable; retry later."),
    "500": (500, "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: "
            "1946381736-12345 (-1104853467)"),
    "concurrent": (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentRequests (Concurrent API Requests) Limit exceeded."),
    "daily": (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    "expire": (401, "INVALID_SESSION_ID", "Session expired or invalid"),
    "locator": (400, "INVALID_QUERY_LOCATOR", "invalid query locator"),
    "timeout": (400, "QUERY_TIMEOUT", "Your query request was running for too long."),
}
QUERY_TIMEOUT = ERROR_ACTIONS["timeout"]  # also what a query over --query-timeout-rows answers
OTHER_ACTIONS = ("reset", "job_failed", "job_aborted", "hold", "latency")  # latency last: messages skip it


class FaultSpecError(ValueError):
    """The fault spec cannot be parsed; the message names the rule and what to write instead."""


@dataclass
class FaultRule:
    kind: str
    action: str
    after: int = 0
    times: int | None = 1  # None = unlimited
    probability: float | None = None
    status: int | None = None
    latency_ms: int = 0
    seen: int = 0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def matches(self, kind: str) -> bool:
        return fnmatch.fnmatchcase(kind, self.kind)

    def fires(self) -> bool:
        """Count one matching request and say whether the fault is injected into it."""
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        if self.probability is not None and self.rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "action": self.action, "after": self.after, "times": self.times,
                "p": self.probability, "seen": self.seen, "fired": self.fired}


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request: an error to answer with, a transport fault, or a Bulk job outcome."""

    action: str
    status: int = 0
    error_code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Decision:
    latency_ms: int = 0
    fault: Fault | None = None


def _parse_rule(text: str, index: int, seed: int) -> FaultRule:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        msg = f"fault rule {text!r}: write KIND:ACTION[:option=value], e.g. rest.query:503:times=2"
        raise FaultSpecError(msg)
    kind, action = parts[0], parts[1]
    if not any(fnmatch.fnmatchcase(k, kind) for k in KINDS):
        msg = f"fault rule {text!r}: kind {kind!r} matches nothing; use one of {', '.join(KINDS)} or a pattern"
        raise FaultSpecError(msg)
    rule = FaultRule(kind=kind, action=action, rng=random.Random(f"{seed}:{index}:{text}"))
    if action.startswith("latency="):
        rule.action, rule.times = "latency", None
        rule.latency_ms = _int_option(text, action.partition("=")[2])
    elif action not in ERROR_ACTIONS and action not in OTHER_ACTIONS:
        msg = (f"fault rule {text!r}: unknown action {action!r}; use one of "
               f"{', '.join([*ERROR_ACTIONS, *OTHER_ACTIONS[:-1]])} or latency=MS")
        raise FaultSpecError(msg)
    if action == "hold" and kind != "bulk.status":
        # exactly: under a pattern (bulk.*, *) other requests would use up the rule's times and hold nothing
        msg = f"fault rule {text!r}: hold keeps a Bulk job InProgress, so its kind must be exactly bulk.status"
        raise FaultSpecError(msg)
    for option in parts[2:]:
        name, _, value = option.partition("=")
        if name == "after":
            rule.after = _int_option(text, value)
        elif name == "times":
            rule.times = _int_option(text, value) or None
        elif name == "p":
            rule.probability = _float_option(text, value)
        elif name == "status":
            rule.status = _int_option(text, value)
        else:
            msg = f"fault rule {text!r}: unknown option {name!r}; use after=N, times=M, p=0.5 or status=NNN"
            raise FaultSpecError(msg)
    return rule


def _int_option(rule: str, value: str) -> int:
    if not value.isdigit():
        msg = f"fault rule {rule!r}: {value!r} is not a whole number"
        raise FaultSpecError(msg)
    return int(value)


def _float_option(rule: str, value: str) -> float:
    try:
        p = float(value)
    except ValueError:
        p = -1.0
    if not 0.0 <= p <= 1.0:
        msg = f"fault rule {rule!r}: p={value!r} must be a probability between 0 and 1"
        raise FaultSpecError(msg)
    return p


def parse_faults(spec: str | None, *, seed: int = 0) -> list[FaultRule]:
    """All rules of a spec (empty spec -> no faults); FaultSpecError names the first bad rule."""
    texts = [t.strip() for t in (spec or "").split(";") if t.strip()]
    return [_parse_rule(t, i, seed) for i, t in enumerate(texts)]


class FaultPlan:
    """The active rules, their counters and the per-request decision; safe to share between threads."""

    def __init__(self, spec: str | None = None, *, seed: int = 0):
        self._seed = seed
        self._lock = threading.Lock()
        self.spec = spec or ""
        self._rules = parse_faults(spec, seed=seed)

    def replace(self, spec: str | None) -> None:
        rules = parse_faults(spec, seed=self._seed)  # parse first: a bad spec leaves the old one active
        with self._lock:
            self.spec, self._rules = spec or "", rules

    def decide(self, kind: str) -> Decision:
        latency, chosen = 0, None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(kind) or (chosen is not None and rule.action != "latency"):
                    continue
                if not rule.fires():
                    continue
                if rule.action == "latency":
                    latency += rule.latency_ms
                else:
                    chosen = _fault_for(rule)
        return Decision(latency, chosen)

    def describe(self) -> list[dict[str, object]]:
        with self._lock:
            return [r.describe() for r in self._rules]


def _fault_for(rule: FaultRule) -> Fault:
    if rule.action in ERROR_ACTIONS:
        status, code, message = ERROR_ACTIONS[rule.action]
        return Fault(rule.action, rule.status or status, code, message)
    return Fault(rule.action, rule.status or 0)
