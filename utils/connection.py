"""One factory for a connected simple-salesforce client, whichever auth flow ``.env`` configures.

Logins are done here (not inside ``Salesforce(...)``) so every flow honours SF_LOGIN_URL / SF_DOMAIN the same
way and a session can be renewed on expiry: simple-salesforce never renews Bulk 2.0 sessions by itself.
A run logs in once: every thread's connection shares one ``SharedSession`` (its token), renewed once per expiry
(a failed renewal is not repeated by each thread); a login outage is retried with the one ``RetryPolicy``, then
reported as an outage, never as bad credentials.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession
from simple_salesforce.login import SalesforceLogin, token_login

from utils.errors import AuthError, FatalSourceError, PipelineError, QuotaExceededError, RetriableSourceError
from utils.logs import log_event
from utils.settings import Credentials
from utils.sf_errors import (
    Action,
    RetryPolicy,
    classify,
    classify_login,
    error_label_of,
    error_message_of,
    login_fault_code,
    quota_message,
    retry_transient,
)

_SESSION_ORG = re.compile(r"(00D[0-9A-Za-z]{12})!")


def org_id_of_session(session_id: str) -> str | None:
    """The 15-character org Id a Salesforce session id starts with (``00D...!...``, for every auth flow: SOAP,
    OAuth, JWT), or None for a token of another shape. Costs no request, unlike the identity service, which
    also needs the ``id`` OAuth scope."""
    match = _SESSION_ORG.match(session_id)
    return match.group(1) if match else None


class TimeoutSession(requests.Session):
    """A requests session with a default timeout: a blocking socket read is never pre-empted by Prefect."""

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__()
        self.timeout_seconds = timeout_seconds

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout_seconds)
        return super().request(method, url, *args, **kwargs)


def build_http_session(credentials: Credentials) -> requests.Session:
    http = TimeoutSession(credentials.timeout_seconds)
    if credentials.ca_bundle:
        # REQUESTS_CA_BUNDLE in the environment would silently override http.verify (fact sheet 1.3).
        http.trust_env = False
        http.verify = str(credentials.ca_bundle)
    return http


def _jwt_assertion(credentials: Credentials) -> str:
    if credentials.private_key_file is None:  # the settings require it for this flow; a hand-built one may not
        msg = "the jwt auth flow needs SF_PRIVATE_KEY_FILE; set it in .env or the environment"
        raise AuthError(msg)
    key = credentials.private_key_file.read_bytes()
    claims = {
        "iss": credentials.consumer_key,
        "sub": credentials.username,
        "aud": credentials.login_base_url,
        "exp": str(int(time.time()) + 180),
    }
    return jwt.encode(claims, key, algorithm="RS256")


def _login(credentials: Credentials, http: Any) -> tuple[str, str]:
    """(session id, instance host[:port]) for a login flow; ``http`` is anything with requests' ``post``."""
    c = credentials
    token_url = f"{c.login_base_url}/services/oauth2/token"
    if c.flow == "password":
        return SalesforceLogin(
            username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            security_token=c.security_token.get_secret_value() if c.security_token else None,
            domain=c.domain, sf_version=c.api_version, session=http,
            scratch_url=c.login_base_url if c.login_url else None,
        )
    if c.flow not in ("client_credentials", "jwt"):
        msg = f"auth flow {c.flow!r} has no login step"
        raise AuthError(msg)
    if c.consumer_key is None:  # the settings require it for both OAuth flows; a hand-built Credentials may not
        msg = f"the {c.flow} auth flow needs SF_CONSUMER_KEY; set it in .env or the environment"
        raise AuthError(msg)
    if c.flow == "client_credentials":
        secret = c.consumer_secret.get_secret_value() if c.consumer_secret else ""
        basic = base64.b64encode(f"{c.consumer_key}:{secret}".encode()).decode()
        return token_login(token_url, {"grant_type": "client_credentials"}, c.domain, c.consumer_key,
                           {"Authorization": f"Basic {basic}"}, None, http)
    data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _jwt_assertion(c)}
    return token_login(token_url, data, c.domain, c.consumer_key, None, None, http)


@dataclass(frozen=True)
class LoginAnswer:
    """The HTTP side of a failed login, which SalesforceAuthenticationFailed drops (it always says 401)."""

    status: int | None = None
    content_type: str = ""


class _AnswerRecorder:
    """Stands in for the requests session in simple-salesforce's login calls to keep the status and content type: only
    the status tells a 503 from a rejection, and the content type says what answered when it was no login fault."""

    def __init__(self, http: requests.Session) -> None:
        self.http = http
        self.answer = LoginAnswer()

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.answer = LoginAnswer()
        response = self.http.post(*args, **kwargs)
        self.answer = LoginAnswer(response.status_code, response.headers.get("Content-Type", ""))
        return response


def _salesforce_says(err: SalesforceAuthenticationFailed, answer: LoginAnswer) -> str:
    """``CODE: Salesforce's own words`` when the answer was a login fault, cut short if long; else only the
    status and content type, since a page that is no login fault (a proxy's) may echo the request, password or
    JWT assertion included. (The words are ``err.auth_message``; ``err.message`` is simple-salesforce's
    unformatted ``{content}`` template.)"""
    code = login_fault_code(err)
    if not code:
        return f"HTTP {answer.status}, {answer.content_type or 'no content type'}, not a Salesforce login answer"
    text = " ".join((err.auth_message or "").split())
    return f"{code}: {text if len(text) <= 200 else text[:200] + '...'}"


def login_rejected_message(credentials: Credentials, err: Exception, answer: LoginAnswer = LoginAnswer()) -> str:
    if isinstance(err, SalesforceAuthenticationFailed):
        return (f"Salesforce rejected the '{credentials.flow}' login ({_salesforce_says(err, answer)}); "
                "check the SF_ credentials in .env")
    return (f"could not reach the Salesforce login host {credentials.login_base_url} ({type(err).__name__}); "
            "check SF_DOMAIN / SF_LOGIN_URL and the network")


def login_outage_message(credentials: Credentials, err: BaseException, answer: LoginAnswer, attempts: int) -> str:
    host = credentials.login_base_url
    if isinstance(err, SalesforceAuthenticationFailed):
        says = _salesforce_says(err, answer)
        what = f"HTTP {answer.status} {says}" if login_fault_code(err) else says
        return (f"Salesforce login host {host} unavailable ({what}) after {attempts} attempts; "
                "the next run will try again")
    return (f"Salesforce login host {host} unavailable ({type(err).__name__}) after {attempts} attempts; the next "
            "run will try again (if it keeps failing, check SF_DOMAIN / SF_LOGIN_URL and the network)")


def login_rate_limited_message(credentials: Credentials, err: SalesforceAuthenticationFailed,
                               answer: LoginAnswer) -> str:
    return (f"Salesforce is limiting logins at {credentials.login_base_url} (HTTP {answer.status} "
            f"{_salesforce_says(err, answer)}): this user or connected app logged in too often. Not retried, so "
            "as not to extend the limit; wait before the next run, and check that no other job logs in with the "
            "same user in a loop")


@dataclass(frozen=True)
class SessionToken:
    """One authenticated session and which login produced it (``generation``: 1 for the first, +1 per renewal)."""

    session_id: str = field(repr=False)
    instance_url: str
    generation: int


class SharedSession:
    """The run's one Salesforce session, shared by every thread's connection.

    Renewal happens once per expiry: under a lock, only a caller whose expired token is still the current
    generation logs in; the threads that saw the same token expire find a newer generation and reuse it, or, if
    that login failed, get its error again without logging in again (each failed login counts towards locking
    the user out, and an outage would otherwise be waited out once per thread).
    """

    wait_log_seconds = 30.0  # a thread waiting for another's renewal says so at least this often

    def __init__(self, credentials: Credentials, *, retry: RetryPolicy | None = None) -> None:
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._lock = threading.Lock()
        self._http = build_http_session(credentials)  # for logins only, always used under the lock
        self._failed: tuple[int, PipelineError] | None = None  # (generation whose renewal failed, the error)
        self._token = self._open_token(generation=1)

    @property
    def token(self) -> SessionToken:
        return self._token

    def renew(self, expired: SessionToken) -> SessionToken:
        """A new session if ``expired`` is still the current one, else the one another thread already got."""
        with self._renewal_lock():
            if self._token.generation != expired.generation:
                return self._token
            if self._failed is not None and self._failed[0] == expired.generation:
                error = self._failed[1]  # a copy per thread: one object raised in many threads mixes tracebacks
                raise type(error)(str(error)) from None
            try:
                self._token = self._open_token(generation=expired.generation + 1)
            except PipelineError as err:
                self._failed = (expired.generation, err)
                raise
            log_event("session_renewed", auth_flow=self.credentials.flow, generation=self._token.generation)
            return self._token

    @contextlib.contextmanager
    def _renewal_lock(self) -> Iterator[None]:
        """The lock, taken by a thread that may have to wait for another's login: it says so while it waits."""
        if not self._lock.acquire(blocking=False):
            started = time.monotonic()
            log_event("session_renewal_wait", auth_flow=self.credentials.flow, seconds_waited=0)
            while not self._lock.acquire(timeout=self.wait_log_seconds):
                log_event("session_renewal_wait", auth_flow=self.credentials.flow,
                          seconds_waited=round(time.monotonic() - started))
        try:
            yield
        finally:
            self._lock.release()

    def _open_token(self, *, generation: int) -> SessionToken:
        c = self.credentials
        if c.flow == "access_token":
            token = c.access_token.get_secret_value() if c.access_token else ""
            return SessionToken(token, c.instance_url or "", generation)
        session_id, host = self._login()
        return SessionToken(session_id, f"https://{host}", generation)

    def _login(self) -> tuple[str, str]:
        recorder = _AnswerRecorder(self._http)
        try:
            return retry_transient(
                lambda: _login(self.credentials, recorder), self.retry, what="the Salesforce login",
                classify_error=lambda err: classify_login(err, recorder.answer.status),
                exhausted=lambda err, attempts: RetriableSourceError(
                    login_outage_message(self.credentials, err, recorder.answer, attempts)),
                keep_cause=False,  # a login error's cause may echo request data
                log_fields={"auth_flow": self.credentials.flow})
        except SalesforceAuthenticationFailed as err:
            if classify_login(err, recorder.answer.status) is Action.QUOTA:
                raise QuotaExceededError(login_rate_limited_message(self.credentials, err, recorder.answer)) from None
            raise AuthError(login_rejected_message(self.credentials, err, recorder.answer)) from None
        except requests.RequestException as err:
            raise AuthError(login_rejected_message(self.credentials, err)) from None


class SalesforceConnection:
    """One thread's client on the run's shared Salesforce session (``shared``), with its own requests session
    (``http``: requests is not thread-safe)."""

    def __init__(self, credentials: Credentials, *, source: str = "salesforce",
                 shared: SharedSession | None = None) -> None:
        self.credentials = credentials
        self.source = source
        self.shared = shared or SharedSession(credentials)
        self.http = build_http_session(credentials)
        self._client: tuple[SessionToken, Salesforce] | None = None

    @property
    def sf(self) -> Salesforce:
        """The client on the shared session's current token (rebuilt when another thread renewed it)."""
        token = self.shared.token
        if self._client is None or self._client[0] is not token:
            # plain dicts: the default OrderedDict hook makes JSON decoding (the REST path's bottleneck) slower
            client = Salesforce(instance_url=token.instance_url, session_id=token.session_id, session=self.http,
                                version=self.credentials.api_version, object_pairs_hook=dict)
            if self._client is not None:  # the org's API usage last reported survives a renewal
                client.api_usage = self._client[1].api_usage
            self._client = (token, client)
        return self._client[1]

    @property
    def api_usage(self) -> Any:
        """The org's daily API usage (``.used``, ``.total``) from the last Sforce-Limit-Info seen, or None."""
        return self._client[1].api_usage.get("api-usage") if self._client else None

    def renew_session(self) -> None:
        """The session this connection last used expired: renew it once, however many threads saw it expire."""
        self.shared.renew(self._client[0] if self._client else self.shared.token)

    @property
    def can_renew_session(self) -> bool:
        return self.credentials.can_renew_session

    def verify(self) -> None:
        """One cheap request (/limits) so a rejected token fails the run at once; an outage is retried first."""
        try:
            retry_transient(lambda: self.sf.limits(), self.shared.retry, what="the /limits check at run start",
                            log_fields={"source": self.source})
        except SalesforceExpiredSession:
            what = "SF_ACCESS_TOKEN was" if self.credentials.flow == "access_token" else "the new session was"
            msg = f"Salesforce rejected the session: {what} refused (INVALID_SESSION_ID); check the SF_ credentials"
            raise AuthError(msg) from None
        except PipelineError:
            raise
        except Exception as err:  # not transient (those were retried): say what Salesforce said
            if classify(err) is Action.QUOTA:
                raise QuotaExceededError(quota_message(err)) from None
            msg = (f"Salesforce rejected the /limits check at run start ({error_label_of(err)}: "
                   f"{error_message_of(err)}); check the integration user's API access")
            raise FatalSourceError(msg) from err

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    @property
    def org_key(self) -> str:
        """``<source>:<org Id>``, what saved state is keyed by: the same org whatever its URL (instance migrations
        and My Domain changes move a real org; each start of the emulator has a new port)."""
        return f"{self.source}:{org_id_of_session(self.shared.token.session_id) or self.instance_url}"

    @property
    def legacy_org_key(self) -> str:
        """The key state written before the org Id was used carries (``<source>:<instance URL>``), still honoured
        so that an upgrade does not cost a backfill."""
        return f"{self.source}:{self.instance_url}"

    @property
    def data_url(self) -> str:
        """``https://host/services/data/vNN.N/``."""
        return self.sf.base_url

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to ``data_url + path`` with this session, raising simple-salesforce's exceptions on errors.

        For what the client does not cover (Bulk 2.0 jobs, streamed result pages) or when the response headers
        matter (the org's clock in ``Date``); the exceptions keep ``sf_errors.classify`` working unchanged, and
        the API usage Salesforce reports is kept as the client keeps its own.
        """
        from simple_salesforce.util import exception_handler

        sf = self.sf  # read once: token and URL must come from the same session, whatever another thread renews
        headers = {"Authorization": f"Bearer {sf.session_id}", **kwargs.pop("headers", {})}
        response = self.http.request(method, f"{sf.base_url}{path}", headers=headers, **kwargs)
        limit_info = response.headers.get("Sforce-Limit-Info")
        if limit_info:
            sf.api_usage = Salesforce.parse_api_usage(limit_info)
        if response.status_code >= 300:
            exception_handler(response, path.split("/", 1)[0] or "data")
        return response
