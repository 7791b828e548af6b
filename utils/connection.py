"""One factory for a connected simple-salesforce client, whichever auth flow ``.env`` configures.

Logins are done here (not inside ``Salesforce(...)``) so every flow honours SF_LOGIN_URL / SF_DOMAIN the same
way and a session can be renewed on expiry: simple-salesforce never renews Bulk 2.0 sessions by itself.
A run logs in once: every thread's connection shares one ``SharedSession`` (its token), and a login outage is
retried with the extract's backoff, then reported as an outage, never as bad credentials.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession
from simple_salesforce.login import SalesforceLogin, token_login

from utils.errors import AuthError, FatalSourceError, PipelineError, QuotaExceededError, RetriableSourceError
from utils.settings import Credentials
from utils.sf_errors import (
    Action,
    RetryPolicy,
    classify,
    classify_login,
    describe_error,
    error_message_of,
    quota_message,
    retry_transient,
)


class TimeoutSession(requests.Session):
    """A requests session with a default timeout: a blocking socket read is never pre-empted by Prefect."""

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__()
        self.timeout_seconds = timeout_seconds

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout_seconds)
        return super().request(method, url, *args, **kwargs)


def build_http_session(credentials: Credentials) -> requests.Session:
    session = TimeoutSession(credentials.timeout_seconds)
    if credentials.ca_bundle:
        # REQUESTS_CA_BUNDLE in the environment would silently override session.verify (fact sheet 1.3).
        session.trust_env = False
        session.verify = str(credentials.ca_bundle)
    return session


def _jwt_assertion(credentials: Credentials) -> str:
    key = credentials.private_key_file.read_bytes()  # type: ignore[union-attr]
    claims = {
        "iss": credentials.consumer_key,
        "sub": credentials.username,
        "aud": credentials.login_base_url,
        "exp": str(int(time.time()) + 180),
    }
    return jwt.encode(claims, key, algorithm="RS256")


def _login(credentials: Credentials, session: Any) -> tuple[str, str]:
    """(session id, instance host[:port]) for a login flow; ``session`` is anything with requests' ``post``."""
    c = credentials
    token_url = f"{c.login_base_url}/services/oauth2/token"
    if c.flow == "password":
        return SalesforceLogin(
            username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            security_token=c.security_token.get_secret_value() if c.security_token else None,
            domain=c.domain, sf_version=c.api_version, session=session,
            scratch_url=c.login_base_url if c.login_url else None,
        )
    if c.flow == "client_credentials":
        secret = c.consumer_secret.get_secret_value() if c.consumer_secret else ""
        basic = base64.b64encode(f"{c.consumer_key}:{secret}".encode()).decode()
        return token_login(token_url, {"grant_type": "client_credentials"}, c.domain, c.consumer_key,
                           {"Authorization": f"Basic {basic}"}, None, session)
    if c.flow == "jwt":
        data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _jwt_assertion(c)}
        return token_login(token_url, data, c.domain, c.consumer_key, None, None, session)
    msg = f"auth flow {c.flow!r} has no login step"
    raise AuthError(msg)


class _StatusRecorder:
    """Stands in for the session in simple-salesforce's login calls to keep the HTTP status, which
    SalesforceAuthenticationFailed drops (it always says 401): only the status tells a 503 from a rejection."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self.status: int | None = None

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.status = None
        response = self.session.post(*args, **kwargs)
        self.status = response.status_code
        return response


def _salesforce_says(err: SalesforceAuthenticationFailed) -> str:
    """Salesforce's own description of a failed login (``auth_message``: ``str(err)`` and ``err.message`` hold
    simple-salesforce's unformatted ``{content}`` template), cut short when it is a whole error page."""
    text = " ".join((err.auth_message or "").split())
    return text if len(text) <= 200 else text[:200] + "..."


def login_rejected_message(credentials: Credentials, err: Exception) -> str:
    if isinstance(err, SalesforceAuthenticationFailed):
        return (f"Salesforce rejected the '{credentials.flow}' login ({err.code}: {_salesforce_says(err)}); "
                "check the SF_ credentials in .env")
    return (f"could not reach the Salesforce login host {credentials.login_base_url} ({type(err).__name__}); "
            "check SF_DOMAIN / SF_LOGIN_URL and the network")


def login_outage_message(credentials: Credentials, err: BaseException, status: int | None, attempts: int) -> str:
    host = credentials.login_base_url
    if isinstance(err, SalesforceAuthenticationFailed):
        code = "" if str(err.code).isdigit() else f" {err.code}"  # a digit code is the status again: no fault body
        return (f"Salesforce login host {host} unavailable (HTTP {status}{code}: {_salesforce_says(err)}) "
                f"after {attempts} attempts; the next run will try again")
    return (f"Salesforce login host {host} unavailable ({type(err).__name__}) after {attempts} attempts; the next "
            "run will try again (if it keeps failing, check SF_DOMAIN / SF_LOGIN_URL and the network)")


@dataclass(frozen=True)
class SessionToken:
    """One authenticated session and which login produced it (``generation``: 1 for the first, +1 per renewal)."""

    session_id: str = field(repr=False)
    instance_url: str
    generation: int


class SharedSession:
    """The run's one Salesforce session, shared by every thread's connection.

    Renewal happens once per expiry: under a lock, only a caller whose expired token is still the current
    generation logs in; the threads that saw the same token expire find a newer generation and reuse it.
    """

    def __init__(self, credentials: Credentials, *, retry: RetryPolicy | None = None) -> None:
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._lock = threading.Lock()
        self._http = build_http_session(credentials)  # for logins only, always used under the lock
        self._token = self._authenticate(generation=1)

    @property
    def token(self) -> SessionToken:
        return self._token

    def renew(self, expired: SessionToken) -> SessionToken:
        """A new session if ``expired`` is still the current one, else the one another thread already got."""
        with self._lock:
            if self._token.generation == expired.generation:
                self._token = self._authenticate(generation=expired.generation + 1)
            return self._token

    def _authenticate(self, *, generation: int) -> SessionToken:
        c = self.credentials
        if c.flow == "access_token":
            token = c.access_token.get_secret_value() if c.access_token else ""
            return SessionToken(token, c.instance_url or "", generation)
        session_id, host = self._login()
        return SessionToken(session_id, f"https://{host}", generation)

    def _login(self) -> tuple[str, str]:
        recorder = _StatusRecorder(self._http)
        try:
            return retry_transient(
                lambda: _login(self.credentials, recorder), self.retry, what="the Salesforce login",
                classify_error=lambda err: classify_login(err, recorder.status),
                exhausted=lambda err, attempts: RetriableSourceError(
                    login_outage_message(self.credentials, err, recorder.status, attempts)),
                keep_cause=False,  # a login error's cause may echo request data
                log_fields={"auth_flow": self.credentials.flow})
        except (SalesforceAuthenticationFailed, requests.RequestException) as err:
            raise AuthError(login_rejected_message(self.credentials, err)) from None


class SalesforceConnection:
    """One thread's client (its own requests session: requests is not thread-safe) on the run's shared session."""

    def __init__(self, credentials: Credentials, *, source: str = "salesforce",
                 shared: SharedSession | None = None) -> None:
        self.credentials = credentials
        self.source = source
        self.shared = shared or SharedSession(credentials)
        self.session = build_http_session(credentials)
        self._client: tuple[SessionToken, Salesforce] | None = None

    @property
    def sf(self) -> Salesforce:
        """The client on the shared session's current token (rebuilt when another thread renewed it)."""
        token = self.shared.token
        if self._client is None or self._client[0] is not token:
            # plain dicts: the default OrderedDict hook makes JSON decoding (the REST path's bottleneck) slower
            client = Salesforce(instance_url=token.instance_url, session_id=token.session_id, session=self.session,
                                version=self.credentials.api_version, object_pairs_hook=dict)
            self._client = (token, client)
        return self._client[1]

    def renew_session(self) -> None:
        """The session this connection last used expired: renew it once, however many threads saw it expire."""
        self.shared.renew(self._client[0] if self._client else self.shared.token)

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
        except Exception as err:  # noqa: BLE001 - not transient (those were retried): say what Salesforce said
            if classify(err) is Action.QUOTA:
                raise QuotaExceededError(quota_message(err)) from None
            msg = (f"Salesforce rejected the /limits check at run start ({describe_error(err)}: "
                   f"{error_message_of(err)}); check the integration user's API access")
            raise FatalSourceError(msg) from err

    @property
    def can_reauthenticate(self) -> bool:
        return self.credentials.can_reauthenticate

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    @property
    def data_url(self) -> str:
        """``https://host/services/data/vNN.N/``."""
        return self.sf.base_url

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sf.session_id}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to ``data_url + path`` with this session, raising simple-salesforce's exceptions on errors.

        For what the client does not cover (Bulk 2.0 jobs, streamed result pages) or when the response headers
        matter (the org's clock in ``Date``); the exceptions keep ``sf_errors.classify`` working unchanged.
        """
        from simple_salesforce.util import exception_handler

        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        response = self.session.request(method, f"{self.data_url}{path}", headers=headers, **kwargs)
        if response.status_code >= 300:
            exception_handler(response, path.split("/", 1)[0] or "data")
        return response
