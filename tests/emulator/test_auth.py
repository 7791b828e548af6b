"""Login flows as pure functions: SOAP login/fault bodies, OAuth grants, JWT bearer verification."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator.auth import (
    JWT_GRANT,
    Credentials,
    TokenStore,
    bearer_token,
    oauth_token,
    org_identity,
    soap_login,
    verify_jwt,
)

INSTANCE = "https://127.0.0.1:8443"
ORG = org_identity(42, {"Account": 10})


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _assertion(key, **claims) -> str:
    base = {"iss": "emulator-consumer-key", "sub": "etl@emulator.local", "aud": "https://login.salesforce.com",
            "exp": str(int(time.time()) + 180)}  # simple-salesforce sends exp as a string
    return jwt.encode({**base, **claims}, key, algorithm="RS256")


def _soap_body(username: str, password: str) -> bytes:
    return (f'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>'
            f'<n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{username}</n1:username>'
            f"<n1:password>{password}</n1:password></n1:login></env:Body></env:Envelope>").encode()


def test_soap_login_returns_unprefixed_session_and_server_url():
    tokens = TokenStore(ORG)
    result = soap_login(_soap_body("etl@emulator.local", "emulator-passwordEMULATORTOKEN"), version="59.0",
                        creds=Credentials(), tokens=tokens, instance_url=INSTANCE)
    text = result.body.decode()
    assert result.status == 200
    assert f"<serverUrl>{INSTANCE}/services/Soap/u/59.0/" in text
    session = text.split("<sessionId>")[1].split("</sessionId>")[0]
    assert tokens.is_valid(session) and set(session) <= set("0123456789!.ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "abcdefghijklmnopqrstuvwxyz_")


def test_soap_login_failure_is_a_500_fault_with_sf_exception_code():
    result = soap_login(_soap_body("etl@emulator.local", "wrong"), version="59.0", creds=Credentials(),
                        tokens=TokenStore(ORG), instance_url=INSTANCE)
    assert result.status == 500
    assert b"<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in result.body


def _form(**fields) -> bytes:
    return urlencode(fields).encode()


def test_oauth_password_and_client_credentials_grants():
    creds, tokens = Credentials(), TokenStore(ORG)
    ok = oauth_token(_form(grant_type="password", client_id=creds.consumer_key, client_secret=creds.consumer_secret,
                           username=creds.username, password=creds.password), None, creds=creds, tokens=tokens,
                     instance_url=INSTANCE)
    body = json.loads(ok.body)
    assert ok.status == 200 and body["instance_url"] == INSTANCE and tokens.is_valid(body["access_token"])
    basic = "Basic " + base64.b64encode(f"{creds.consumer_key}:{creds.consumer_secret}".encode()).decode()
    cc = oauth_token(_form(grant_type="client_credentials"), basic, creds=creds, tokens=tokens,
                     instance_url=INSTANCE)
    assert cc.status == 200
    refresh = oauth_token(_form(grant_type="refresh_token", client_id=creds.consumer_key,
                                refresh_token=creds.refresh_token), None, creds=creds, tokens=tokens,
                          instance_url=INSTANCE)
    assert refresh.status == 200


@pytest.mark.parametrize(("form", "error"), [
    ({"grant_type": "password", "client_id": "emulator-consumer-key", "client_secret": "emulator-consumer-secret",
      "username": "etl@emulator.local", "password": "nope"}, "invalid_grant"),
    ({"grant_type": "password", "client_id": "other", "client_secret": "x", "username": "u", "password": "p"},
     "invalid_client_id"),
    ({"grant_type": "client_credentials", "client_id": "emulator-consumer-key", "client_secret": "bad"},
     "invalid_client"),
    ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
])
def test_oauth_failures_are_400_json_with_error_and_description(form, error):
    result = oauth_token(_form(**form), None, creds=Credentials(), tokens=TokenStore(ORG), instance_url=INSTANCE)
    body = json.loads(result.body)
    assert result.status == 400 and body["error"] == error and body["error_description"]


def test_jwt_bearer_accepts_a_valid_assertion(rsa_key):
    creds = Credentials(jwt_public_key_pem=_pem_public(rsa_key))
    assert verify_jwt(_assertion(rsa_key), creds=creds, instance_url=INSTANCE, now=time.time()) is None
    domain_trick = _assertion(rsa_key, aud=f"{INSTANCE}/services/oauth2/token?.salesforce.com")
    assert verify_jwt(domain_trick, creds=creds, instance_url=INSTANCE, now=time.time()) is None
    result = oauth_token(_form(grant_type=JWT_GRANT, assertion=_assertion(rsa_key)), None, creds=creds,
                         tokens=TokenStore(ORG), instance_url=INSTANCE)
    assert result.status == 200


@pytest.mark.parametrize(("claims", "problem"), [
    ({"iss": "someone-else"}, "invalid client credentials"),
    ({"sub": "intruder@example.com"}, "user hasn't approved this consumer"),
    ({"aud": "https://evil.example.com"}, "audience is invalid"),
    ({"exp": str(int(time.time()) - 10)}, "expired authorization code"),
])
def test_jwt_bearer_checks_claims(rsa_key, claims, problem):
    creds = Credentials(jwt_public_key_pem=_pem_public(rsa_key))
    assert verify_jwt(_assertion(rsa_key, **claims), creds=creds, instance_url=INSTANCE, now=time.time()) == problem


def test_jwt_bearer_rejects_a_foreign_signature_and_a_missing_key(rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    creds = Credentials(jwt_public_key_pem=_pem_public(rsa_key))
    assert verify_jwt(_assertion(other), creds=creds, instance_url=INSTANCE, now=time.time()) == "invalid assertion"
    assert "no JWT certificate" in str(verify_jwt(_assertion(rsa_key), creds=Credentials(), instance_url=INSTANCE,
                                                  now=time.time()))


def test_tokens_revoke_and_reset_and_bearer_parsing():
    tokens = TokenStore(ORG)
    default = tokens.default_token
    tokens.revoke(default)
    assert not tokens.is_valid(default)
    tokens.reset()
    assert tokens.is_valid(default) and not tokens.is_valid("00Dfake")
    assert bearer_token(f"Bearer {default}") == default and bearer_token("Basic abc") is None


def test_credentials_repr_hides_secrets():
    creds = Credentials.from_env({"SF_EMULATOR_PASSWORD": "s3cret-value"})
    assert creds.password == "s3cret-value" and "s3cret" not in repr(creds)
