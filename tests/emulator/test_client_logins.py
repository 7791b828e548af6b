"""Every login flow through simple-salesforce itself: SOAP (scratch_url and the domain trick), OAuth password,
client credentials, JWT bearer, refresh token; failures raise SalesforceAuthenticationFailed."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from emulator import configure_jwt_key, set_faults

pytestmark = pytest.mark.integration
USER, PASSWORD, TOKEN = "etl@emulator.local", "emulator-password", "EMULATORTOKEN"
KEY, SECRET = "emulator-consumer-key", "emulator-consumer-secret"


def _domain(info, path: str) -> str:
    """fact sheet 2.4: the login host is https://{domain}.salesforce.com, so end the domain with '?'."""
    return f"{info.instance_url.removeprefix('https://')}{path}?"


def _works(sf: Salesforce) -> bool:
    return sf.query("SELECT COUNT() FROM User")["totalSize"] > 0


def test_soap_login_with_scratch_url(emulator, emulator_http):
    session_id, instance = SalesforceLogin(username=USER, password=PASSWORD, security_token=TOKEN,
                                           scratch_url=emulator.instance_url, session=emulator_http)
    assert instance == emulator.instance_url.removeprefix("https://")
    assert _works(Salesforce(session_id=session_id, instance=instance, session=emulator_http))


def test_soap_login_through_salesforce_with_the_domain_trick(emulator, emulator_http):
    sf = Salesforce(username=USER, password=PASSWORD, security_token=TOKEN,
                    domain=_domain(emulator, "/services/Soap/u/59.0"), session=emulator_http)
    assert _works(sf)


def test_soap_login_failure(emulator, emulator_http):
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        SalesforceLogin(username=USER, password="wrong", security_token=TOKEN, scratch_url=emulator.instance_url,
                        session=emulator_http)
    assert err.value.code == "INVALID_LOGIN"


def test_oauth_password_and_client_credentials(emulator, emulator_http):
    token_domain = _domain(emulator, "/services/oauth2/token")
    assert _works(Salesforce(username=USER, password=PASSWORD, consumer_key=KEY, consumer_secret=SECRET,
                             domain=token_domain, session=emulator_http))
    assert _works(Salesforce(consumer_key=KEY, consumer_secret=SECRET, domain=token_domain, session=emulator_http))
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        Salesforce(consumer_key=KEY, consumer_secret="nope", domain=token_domain, session=emulator_http)
    assert err.value.code == "invalid_client"


def test_jwt_bearer(emulator_reset, emulator_http):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    token_domain = _domain(emulator_reset, "/services/oauth2/token")
    with pytest.raises(SalesforceAuthenticationFailed):  # no certificate configured yet
        Salesforce(username=USER, consumer_key=KEY, privatekey=private, domain=token_domain, session=emulator_http)
    configure_jwt_key(emulator_reset, public)
    assert _works(Salesforce(username=USER, consumer_key=KEY, privatekey=private, domain=token_domain,
                             session=emulator_http))
    with pytest.raises(SalesforceAuthenticationFailed) as err, pytest.warns(UserWarning, match="authorize"):
        Salesforce(username="someone@else.example", consumer_key=KEY, privatekey=private, domain=token_domain,
                   session=emulator_http)
    assert err.value.code == "invalid_grant"


def test_refresh_token_grant(emulator, emulator_http):
    response = emulator_http.post(f"{emulator.instance_url}/services/oauth2/token",
                                  data={"grant_type": "refresh_token", "client_id": KEY, "client_secret": SECRET,
                                        "refresh_token": "emulator-refresh-token"})
    body = response.json()
    assert response.status_code == 200 and body["instance_url"] == emulator.instance_url
    assert _works(Salesforce(instance_url=body["instance_url"], session_id=body["access_token"],
                             session=emulator_http))


def test_injected_auth_outage_uses_each_flow_format(emulator_reset, emulator_http):
    set_faults(emulator_reset, "auth:503:times=2")
    with pytest.raises(SalesforceAuthenticationFailed) as soap:
        SalesforceLogin(username=USER, password=PASSWORD, security_token=TOKEN,
                        scratch_url=emulator_reset.instance_url, session=emulator_http)
    assert soap.value.code == "SERVER_UNAVAILABLE"
    with pytest.raises(SalesforceAuthenticationFailed) as oauth:
        Salesforce(consumer_key=KEY, consumer_secret=SECRET, domain=_domain(emulator_reset, "/services/oauth2/token"),
                   session=emulator_http)
    assert oauth.value.code == "server_unavailable"
