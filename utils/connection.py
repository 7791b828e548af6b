"""One factory for a connected simple-salesforce client, whichever auth flow ``.env`` configures.

Logins are done here (not inside ``Salesforce(...)``) so every flow honours SF_LOGIN_URL / SF_DOMAIN the same
way and a session can be renewed on expiry: simple-salesforce never renews Bulk 2.0 sessions by itself.
"""

from __future__ import annotations

import base64
import time

import jwt
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import SalesforceLogin, token_login

from utils.errors import AuthError
from utils.settings import Credentials


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


def _login(credentials: Credentials, session: requests.Session) -> tuple[str, str]:
    """(session id, instance host[:port]) for a login flow."""
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


class SalesforceConnection:
    """A logged-in client plus what is needed to renew its session; one per thread (requests is not thread-safe)."""

    def __init__(self, credentials: Credentials, *, source: str = "salesforce") -> None:
        self.credentials = credentials
        self.source = source
        self.session = build_http_session(credentials)
        self.sf: Salesforce
        self.authenticate()

    def authenticate(self) -> None:
        c = self.credentials
        try:
            if c.flow == "access_token":
                token = c.access_token.get_secret_value() if c.access_token else ""
                instance_url = c.instance_url or ""
            else:
                token, host = _login(c, self.session)
                instance_url = f"https://{host}"
        except SalesforceAuthenticationFailed as err:
            msg = (f"Salesforce rejected the '{c.flow}' login ({err.code}: {err.message}); "
                   "check the SF_ credentials in .env")
            raise AuthError(msg) from None  # the cause may echo request data: drop it
        except requests.RequestException as err:
            msg = (f"could not reach the Salesforce login host {c.login_base_url} ({type(err).__name__}); "
                   "check SF_DOMAIN / SF_LOGIN_URL and the network")
            raise AuthError(msg) from None
        # plain dicts: the default OrderedDict hook makes JSON decoding (the REST path's bottleneck) slower
        self.sf = Salesforce(instance_url=instance_url, session_id=token, session=self.session,
                             version=c.api_version, object_pairs_hook=dict)

    def verify(self) -> None:
        """One cheap request (/limits) so a rejected token fails the run at once, not every object later."""
        from simple_salesforce.exceptions import SalesforceExpiredSession

        try:
            self.sf.limits()
        except SalesforceExpiredSession:
            what = "SF_ACCESS_TOKEN was" if self.credentials.flow == "access_token" else "the new session was"
            msg = f"Salesforce rejected the session: {what} refused (INVALID_SESSION_ID); check the SF_ credentials"
            raise AuthError(msg) from None

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
