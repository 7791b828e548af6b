"""Access tokens and the login flows: SOAP ``login()`` and the OAuth 2.0 token endpoint (password,
client_credentials, refresh_token, JWT bearer), and the identity service's bodies (``/id/...``, ``userinfo``).
Never logs a secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from emulator.ids import BASE62, checksum, make_id

ADMIN_USER_ID = make_id("005", 0)  # 005EM0000000001YAA: User row 0, whom every token belongs to
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TOKEN_ALPHABET = string.ascii_letters + string.digits  # simple-salesforce's SOAP parser never unescapes XML


@dataclass(frozen=True)
class OrgIdentity:
    """Who the emulated org is. A pure function of the org's options (``org_identity``), so the same seed and
    sizes are the same org across restarts and ports: a client that keys its state by org Id (as it should for
    real orgs, whose instance URL changes on instance migrations) resumes instead of starting over."""

    org_id: str  # the 15-character form, as in session ids and SOAP URLs
    user_id: str = ADMIN_USER_ID

    @property
    def org_id_18(self) -> str:
        """The case-safe form used in identity URLs and userInfo."""
        return self.org_id + checksum(self.org_id)


def org_identity(seed: int, sizes: Mapping[str, int]) -> OrgIdentity:
    """``00DEM`` + 10 base-62 digits of a hash of the options: distinct data, distinct org Id."""
    digest = hashlib.sha256(json.dumps([seed, sorted(sizes.items())]).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    digits = []
    for _ in range(10):
        number, digit = divmod(number, 62)
        digits.append(chr(BASE62[digit]))
    return OrgIdentity("00DEM" + "".join(reversed(digits)))


@dataclass(frozen=True)
class Credentials:
    """What the login flows accept. Defaults are documented in emulator/README.md; override with SF_EMULATOR_*."""

    username: str = "etl@emulator.local"
    password: str = "emulator-password"
    security_token: str = "EMULATORTOKEN"
    consumer_key: str = "emulator-consumer-key"
    consumer_secret: str = "emulator-consumer-secret"
    refresh_token: str = "emulator-refresh-token"
    jwt_public_key_pem: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, consumer_key={self.consumer_key!r}, ...)"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, jwt_cert: str | None = None) -> Credentials:
        env = dict(os.environ if env is None else env)
        base = cls()
        values = {name: env.get(f"SF_EMULATOR_{name.upper()}", getattr(base, name))
                  for name in ("username", "password", "security_token", "consumer_key", "consumer_secret",
                               "refresh_token")}
        cert_path = jwt_cert or env.get("SF_EMULATOR_JWT_CERT")
        pem = Path(cert_path).read_bytes() if cert_path else None
        return cls(**values, jwt_public_key_pem=pem)

    def password_ok(self, password: str) -> bool:
        # Salesforce wants password+security token unless the IP is trusted; accept both forms
        return secrets.compare_digest(password, self.password + self.security_token) or secrets.compare_digest(
            password, self.password)


class TokenStore:
    """Valid bearer tokens. The startup token can be revoked by a fault and is restored by reset."""

    def __init__(self, identity: OrgIdentity) -> None:
        self.identity = identity
        self.default_token = self._new()
        self._valid = {self.default_token}
        self._lock = threading.Lock()
        self.counter = 0

    def _new(self) -> str:
        """A session id shaped like Salesforce's: the org Id, ``!``, then the secret part."""
        return f"{self.identity.org_id}!AQ" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(48))

    def issue(self) -> str:
        token = self._new()
        with self._lock:
            self._valid.add(token)
            self.counter += 1
        return token

    def is_valid(self, token: str | None) -> bool:
        return token is not None and token in self._valid

    def revoke(self, token: str) -> None:
        with self._lock:
            self._valid.discard(token)

    def reset(self) -> None:
        with self._lock:
            self._valid.add(self.default_token)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` (or ``OAuth ...``) header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") and token.strip() else None


@dataclass(frozen=True)
class AuthResponse:
    status: int
    content_type: str
    body: bytes


# --- SOAP login -----------------------------------------------------------------------------------------------
def _soap_fields(body: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for element in ElementTree.fromstring(body).iter():
        local = element.tag.rsplit("}", 1)[-1]
        if local in ("username", "password"):
            values[local] = element.text or ""
    return values


def soap_fault(code: str, message: str) -> AuthResponse:
    """A SOAP fault as Salesforce sends it (HTTP 500, ``sf:``-prefixed exceptionCode/exceptionMessage)."""
    xml = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
           'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
           f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
           '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
           f"<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
           "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>")
    return AuthResponse(500, "text/xml; charset=utf-8", xml.encode())


def soap_login(body: bytes, *, version: str, creds: Credentials, tokens: TokenStore,
               instance_url: str) -> AuthResponse:
    """``POST /services/Soap/u/{version}``: a LoginResult with unprefixed sessionId/serverUrl, or a fault."""
    try:
        fields = _soap_fields(body)
    except ElementTree.ParseError:
        return soap_fault("INVALID_LOGIN", "Invalid request: the body is not a SOAP login envelope.")
    username, password = fields.get("username", ""), fields.get("password", "")
    if username != creds.username or not creds.password_ok(password):
        return soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    session, org = tokens.issue(), tokens.identity
    xml = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
           'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>'
           f"<metadataServerUrl>{instance_url}/services/Soap/m/{version}/{org.org_id}</metadataServerUrl>"
           "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
           f"<serverUrl>{instance_url}/services/Soap/u/{version}/{org.org_id}</serverUrl>"
           f"<sessionId>{session}</sessionId><userId>{org.user_id}</userId>"
           f"<userInfo><organizationId>{org.org_id_18}</organizationId><userName>{escape(creds.username)}</userName>"
           "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>")
    return AuthResponse(200, "text/xml; charset=utf-8", xml.encode())


# --- OAuth 2.0 token endpoint ----------------------------------------------------------------------------------
def oauth_error(error: str, description: str, status: int = 400) -> AuthResponse:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return AuthResponse(status, "application/json;charset=UTF-8", body)


def identity_url(instance_url: str, org: OrgIdentity, user_id: str | None = None) -> str:
    """A user's identity URL (the logged-in user's by default): the emulator is its own login host, so it serves
    ``/id/...`` itself."""
    return f"{instance_url}/id/{org.org_id_18}/{user_id or org.user_id}"


def _token_response(tokens: TokenStore, instance_url: str) -> AuthResponse:
    body = {"access_token": tokens.issue(), "instance_url": instance_url,
            "id": identity_url(instance_url, tokens.identity), "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)), "signature": "ZW11bGF0b3Itc2lnbmF0dXJl", "scope": "api"}
    return AuthResponse(200, "application/json;charset=UTF-8", json.dumps(body).encode())


def _basic_client(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        key, _, secret = base64.b64decode(authorization[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key, secret


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _jwt_public_key(pem: bytes) -> rsa.RSAPublicKey | None:
    try:
        key = (x509.load_pem_x509_certificate(pem).public_key() if b"CERTIFICATE" in pem
               else serialization.load_pem_public_key(pem))
    except ValueError:
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


def verify_jwt(assertion: str, *, creds: Credentials, instance_url: str, now: float) -> str | None:
    """None when the RS256 assertion is valid for this org, else the OAuth error_description."""
    key = _jwt_public_key(creds.jwt_public_key_pem) if creds.jwt_public_key_pem else None
    if key is None:
        return "no JWT certificate is configured for this connected app (start with --jwt-cert)"
    try:
        head_b64, claims_b64, sig_b64 = assertion.split(".")
        header, claims = json.loads(_b64url(head_b64)), json.loads(_b64url(claims_b64))
        key.verify(_b64url(sig_b64), f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature, binascii.Error):
        return "invalid assertion"
    if header.get("alg") != "RS256":
        return "invalid assertion"
    if claims.get("iss") != creds.consumer_key:
        return "invalid client credentials"
    if claims.get("sub") != creds.username:
        return "user hasn't approved this consumer"
    aud = str(claims.get("aud", ""))
    if aud not in ("https://login.salesforce.com", "https://test.salesforce.com") and not aud.startswith(instance_url):
        return "audience is invalid"
    try:
        expired = float(claims.get("exp", 0)) < now  # simple-salesforce sends exp as a string
    except (TypeError, ValueError):
        return "invalid assertion"
    return "expired authorization code" if expired else None


def oauth_token(body: bytes, authorization: str | None, *, creds: Credentials, tokens: TokenStore,
                instance_url: str) -> AuthResponse:
    """``POST /services/oauth2/token`` for the grant types simple-salesforce uses."""
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    grant = form.get("grant_type", "")
    basic = _basic_client(authorization)
    client_id, client_secret = basic or (form.get("client_id", ""), form.get("client_secret"))
    if grant == JWT_GRANT:
        problem = verify_jwt(form.get("assertion", ""), creds=creds, instance_url=instance_url, now=time.time())
        return oauth_error("invalid_grant", problem) if problem else _token_response(tokens, instance_url)
    if grant not in ("password", "client_credentials", "refresh_token"):
        return oauth_error("unsupported_grant_type", "grant type not supported")
    if client_id != creds.consumer_key:
        return oauth_error("invalid_client_id", "client identifier invalid")
    # a refresh_token request may omit the secret (public clients); when sent, it must match
    secret_needed = grant != "refresh_token" or client_secret is not None
    if secret_needed and not secrets.compare_digest(client_secret or "", creds.consumer_secret):
        return oauth_error("invalid_client", "invalid client credentials")
    if grant == "password" and (form.get("username") != creds.username
                                or not creds.password_ok(form.get("password", ""))):
        return oauth_error("invalid_grant", "authentication failure")
    if grant == "refresh_token" and not secrets.compare_digest(form.get("refresh_token", ""), creds.refresh_token):
        return oauth_error("invalid_grant", "expired access/refresh token")
    return _token_response(tokens, instance_url)


# --- identity service: /id/{orgId}/{userId} and /services/oauth2/userinfo -------------------------------------
IDENTITY_ERRORS = {  # the identity service answers errors as a bare code in text, not JSON
    "Missing_OAuth_Token": 403, "Bad_OAuth_Token": 403, "Wrong_Org": 403, "Bad_Id": 404, "Inactive": 404,
}


def _identity_urls(instance_url: str, org: OrgIdentity, user_id: str) -> dict[str, str]:
    """The identity ``urls``; ``{version}`` is literal, a template the client fills in (as Salesforce sends it)."""
    soap, rest = f"{instance_url}/services/Soap", f"{instance_url}/services/data/v{{version}}"
    org_id = org.org_id_18
    return {
        "enterprise": f"{soap}/c/{{version}}/{org_id}", "metadata": f"{soap}/m/{{version}}/{org_id}",
        "partner": f"{soap}/u/{{version}}/{org_id}", "rest": f"{rest}/", "sobjects": f"{rest}/sobjects/",
        "search": f"{rest}/search/", "query": f"{rest}/query/", "recent": f"{rest}/recent/",
        "tooling_soap": f"{soap}/T/{{version}}/{org_id}", "tooling_rest": f"{rest}/tooling/",
        "profile": f"{instance_url}/{user_id}", "feeds": f"{rest}/chatter/feeds", "groups": f"{rest}/chatter/groups",
        "users": f"{rest}/chatter/users", "feed_items": f"{rest}/chatter/feed-items",
        "feed_elements": f"{rest}/chatter/feed-elements", "custom_domain": instance_url,
    }


def _photos(instance_url: str) -> dict[str, str]:
    return {"picture": f"{instance_url}/profilephoto/005/F", "thumbnail": f"{instance_url}/profilephoto/005/T"}


def identity_body(user: Mapping[str, Any], *, org: OrgIdentity, username: str, instance_url: str
                  ) -> dict[str, Any]:
    """``GET /id/{orgId}/{userId}``: the identity service's keys for one user row (Id, names, Email, IsActive,
    LastModifiedDate). ``username`` is the login name the token was issued to."""
    user_id, modified = user["Id"], user["LastModifiedDate"]
    return {
        "id": identity_url(instance_url, org, user_id), "asserted_user": user_id == org.user_id,
        "user_id": user_id, "organization_id": org.org_id_18, "username": username,
        "nick_name": username.partition("@")[0], "display_name": user["Name"], "email": user["Email"],
        "email_verified": True, "first_name": user["FirstName"], "last_name": user["LastName"],
        "timezone": "GMT", "photos": _photos(instance_url), "addr_street": None, "addr_city": None,
        "addr_state": None, "addr_country": None, "addr_zip": None, "mobile_phone": None,
        "mobile_phone_verified": False, "is_lightning_login_user": False,
        "status": {"created_date": None, "body": None}, "urls": _identity_urls(instance_url, org, user_id),
        "active": bool(user["IsActive"]), "user_type": "STANDARD", "language": "en_US", "locale": "en_US",
        "utcOffset": 0, "last_modified_date": modified.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{modified.microsecond // 1000:03d}Z", "is_app_installed": True,
    }


def userinfo_body(user: Mapping[str, Any], *, org: OrgIdentity, username: str, instance_url: str
                  ) -> dict[str, Any]:
    """``GET /services/oauth2/userinfo``: the OpenID Connect form of the same facts (``sub`` = identity URL)."""
    identity = identity_body(user, org=org, username=username, instance_url=instance_url)
    return {
        "sub": identity["id"], "user_id": identity["user_id"], "organization_id": org.org_id_18,
        "preferred_username": username, "nickname": identity["nick_name"], "name": identity["display_name"],
        "email": identity["email"], "email_verified": True, "given_name": identity["first_name"],
        "family_name": identity["last_name"], "zoneinfo": identity["timezone"], "photos": identity["photos"],
        "profile": identity["urls"]["profile"], "picture": identity["photos"]["picture"], "address": {},
        "is_salesforce_integration_user": False, "urls": identity["urls"], "active": identity["active"],
        "user_type": "STANDARD", "language": "en_US", "locale": "en_US", "utcOffset": 0,
        "updated_at": user["LastModifiedDate"].strftime("%Y-%m-%dT%H:%M:%SZ"), "is_app_installed": True,
    }
