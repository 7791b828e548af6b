"""Everything one running emulator holds: configuration, the org, tokens, faults, cursors, jobs, API usage."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from emulator.auth import Credentials, OrgIdentity, TokenStore, org_identity
from emulator.bulk import BulkJobs
from emulator.cursors import QueryCursors
from emulator.faults import Fault, FaultPlan
from emulator.living import LivingOrg
from emulator.org import DEFAULT_SEED, Org

API_VERSION = "59.0"

LIVING_ENV = "SF_EMULATOR_LIVING_RATE"


def living_rate_of(value: str | float | None, env: dict[str, str] | None = None) -> float:
    """The living org's rate: ``value``, else ``$SF_EMULATOR_LIVING_RATE``, else 1; ValueError if not a number >= 0."""
    env = dict(os.environ if env is None else env)
    text = value if value is not None else env.get(LIVING_ENV) or "1"
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not rate >= 0:
        msg = f"living rate {text!r}: use a number >= 0 (1: the default pace, 0: an org that never changes)"
        raise ValueError(msg)
    return rate


@dataclass(frozen=True)
class EmulatorConfig:
    """Options of one emulator; the CLI flags map one to one (see emulator/README.md)."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = DEFAULT_SEED
    scale: str = "small"
    rows: dict[str, int] = field(default_factory=dict)
    latency_ms: int = 0
    faults: str | None = None
    daily_limit: int = 15_000  # DailyApiRequests: a Developer Edition's allowance
    bulk_delay_ms: int = 300  # time a Bulk query job (a Bulk 1.0 batch) takes to complete
    cursor_ttl_s: float = 900.0
    invalid_locator_status: int = 400  # [unverified] in the fact sheet: kept configurable
    bulk_reject_limit_order_by: bool = False  # some 2023-24 doc releases said Bulk 2.0 rejects them
    credentials: Credentials = field(default_factory=Credentials)
    living_rate: float = 1.0  # how fast the org changes with time (emulator/living.py); 0: a still org
    query_timeout_rows: int | None = None  # a query matching more rows than this fails with QUERY_TIMEOUT


class ApiUsage:
    """The rolling daily API request counter behind ``Sforce-Limit-Info`` and ``/limits``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def count(self) -> bool:
        """Count one request; False once the allowance is exhausted (the request is refused)."""
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def exhaust(self) -> None:
        with self._lock:
            self.used = self.limit

    def reset(self) -> None:
        with self._lock:
            self.used = 0

    def header(self) -> str:
        return f"api-usage={self.used}/{self.limit}"


class EmulatorState:
    def __init__(self, config: EmulatorConfig, org: Org):
        self.config = config
        self.org = org
        self.credentials = config.credentials
        self.identity: OrgIdentity = org_identity(config.seed, org.spec.sizes)
        self.tokens = TokenStore(self.identity)
        self.faults = FaultPlan(config.faults, seed=config.seed)
        self.cursors = QueryCursors(config.cursor_ttl_s)
        self.jobs = BulkJobs(delay_s=config.bulk_delay_ms / 1000)
        self.usage = ApiUsage(config.daily_limit)
        self.requests_by_kind: Counter[str] = Counter()
        self.frozen_now: datetime | None = None
        self.instance_url = ""
        self._lock = threading.Lock()
        org.clock = self.now  # formulas' TODAY() is the server's date (a frozen clock freezes it too)
        self.living = LivingOrg(org, rate=config.living_rate) if config.living_rate > 0 else None
        self.catch_up()

    def catch_up(self) -> None:
        """Bring a living org to the server's clock: every change scheduled up to now becomes visible."""
        if self.living is not None:
            self.living.advance(self.org, self.now())

    def now(self) -> datetime:
        """The server clock (UTC) in whole seconds, the precision of every Salesforce datetime; admin can freeze it."""
        now = self.frozen_now if self.frozen_now is not None else datetime.now(timezone.utc)
        return now.replace(microsecond=0)

    def record_request(self, kind: str) -> None:
        with self._lock:
            self.requests_by_kind[kind] += 1

    def admit(self, kind: str, token: str | None) -> Fault | None:
        """One API request of ``kind`` whose session and quota were checked: counted, held for the configured
        latency plus its fault's, and the fault's effect on the org applied (a daily-limit fault exhausts the
        quota, an expiry revokes the session). Returns the fault to answer with; each API words its own error."""
        self.record_request(kind)
        self.catch_up()
        decision = self.faults.decide(kind)
        time.sleep((self.config.latency_ms + decision.latency_ms) / 1000)
        fault = decision.fault
        if fault is not None and fault.action == "daily":
            self.usage.exhaust()
        if fault is not None and fault.action == "expire" and token:
            self.tokens.revoke(token)
        return fault

    def reset(self, *, data: bool = True) -> None:
        """Faults off, usage zero, startup token valid again, cursors and jobs dropped, data regenerated."""
        self.faults.replace(None)
        self.usage.reset()
        self.tokens.reset()
        self.cursors.clear()
        self.jobs.clear()
        self.frozen_now = None
        with self._lock:
            self.requests_by_kind.clear()
        if data:
            self.org.reset()
            if self.living is not None:
                self.living.rewind()
            self.catch_up()
