"""The identity service: the OAuth token response's ``id`` is the emulator's own ``/id/<orgId>/<userId>``, which
answers the documented key set for the bearer token's user; ``/services/oauth2/userinfo`` the OpenID form; the
user's facts match the User record read through REST; errors are the service's bare codes."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceRefusedRequest

from emulator.ids import checksum

pytestmark = [pytest.mark.integration]
IDENTITY_KEYS = {
    "id", "asserted_user", "user_id", "organization_id", "username", "nick_name", "display_name", "email",
    "email_verified", "first_name", "last_name", "timezone", "photos", "addr_street", "addr_city", "addr_state",
    "addr_country", "addr_zip", "mobile_phone", "mobile_phone_verified", "is_lightning_login_user", "status", "urls",
    "active", "user_type", "language", "locale", "utcOffset", "last_modified_date", "is_app_installed",
}
URL_KEYS = {"enterprise", "metadata", "partner", "rest", "sobjects", "search", "query", "recent", "tooling_soap",
            "tooling_rest", "profile", "feeds", "groups", "users", "feed_items", "feed_elements", "custom_domain"}
USERINFO_KEYS = {
    "sub", "user_id", "organization_id", "preferred_username", "nickname", "name", "email", "email_verified",
    "given_name", "family_name", "zoneinfo", "photos", "profile", "picture", "address",
    "is_salesforce_integration_user", "urls", "active", "user_type", "language", "locale", "utcOffset",
    "updated_at", "is_app_installed",
}


@pytest.fixture()
def token_response(emulator, emulator_http) -> dict:
    """An OAuth username-password login, the way any OAuth client makes it."""
    form = {"grant_type": "password", "client_id": "emulator-consumer-key",
            "client_secret": "emulator-consumer-secret", "username": "etl@emulator.local",
            "password": "emulator-password"}
    response = emulator_http.post(f"{emulator.instance_url}/services/oauth2/token", data=form)
    assert response.status_code == 200
    return response.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_id_is_the_emulators_identity_url(emulator, emulator_http, token_response, sf_client):
    identity_url = token_response["id"]
    assert identity_url.startswith(f"{emulator.instance_url}/id/00D")
    response = emulator_http.get(identity_url, headers=_bearer(token_response["access_token"]))
    assert response.status_code == 200
    identity = response.json()
    assert set(identity) == IDENTITY_KEYS and set(identity["urls"]) == URL_KEYS
    assert identity["id"] == identity_url and identity_url.endswith(f"/{identity['organization_id']}/"
                                                                     f"{identity['user_id']}")
    assert identity["username"] == "etl@emulator.local" and identity["active"] is True
    assert identity["urls"]["rest"] == f"{emulator.instance_url}/services/data/v{{version}}/"

    user = sf_client.User.get(identity["user_id"])
    assert (identity["display_name"], identity["email"], identity["first_name"], identity["last_name"]) == (
        user["Name"], user["Email"], user["FirstName"], user["LastName"])
    assert identity["last_modified_date"] == user["LastModifiedDate"].replace("+0000", "Z")


def test_userinfo_through_simple_salesforce(token_response, sf_client):
    info = sf_client.oauth2("userinfo")
    assert set(info) == USERINFO_KEYS
    assert info["sub"] == token_response["id"] and info["preferred_username"] == "etl@emulator.local"
    user = sf_client.User.get(info["user_id"])
    assert (info["name"], info["email"], info["given_name"], info["family_name"]) == (
        user["Name"], user["Email"], user["FirstName"], user["LastName"])


def test_another_users_identity(emulator, emulator_http, sf_client):
    user = sf_client.query("SELECT Id, Username, Name FROM User WHERE IsActive = true ORDER BY Id DESC LIMIT 1")[
        "records"][0]
    org_id = sf_client.oauth2("userinfo")["organization_id"]
    identity = emulator_http.get(f"{emulator.instance_url}/id/{org_id}/{user['Id']}",
                                 params={"oauth_token": emulator.access_token}).json()
    assert (identity["user_id"], identity["username"], identity["display_name"]) == (
        user["Id"], user["Username"], user["Name"])
    assert identity["asserted_user"] is False


@pytest.mark.parametrize(("path", "token", "status", "code"), [
    ("/id/{org}/005EM0000000001YAA", None, 403, "Missing_OAuth_Token"),
    ("/id/{org}/005EM0000000001YAA", "00Dnope", 403, "Bad_OAuth_Token"),
    ("/id/00DXX00000000012AA/005EM0000000001YAA", "good", 403, "Wrong_Org"),
    ("/id/{org}/005EM00000000zzAAA", "good", 404, "Bad_Id"),
    ("/services/oauth2/userinfo", "00Dnope", 403, "Bad_OAuth_Token"),
])
def test_identity_errors_are_bare_codes(emulator, emulator_http, path, token, status, code):
    headers = _bearer(emulator.access_token if token == "good" else token) if token else {}
    org_id = emulator.access_token.partition("!")[0]  # a session id starts with its org's Id
    path = path.format(org=org_id + checksum(org_id))
    response = emulator_http.get(f"{emulator.instance_url}{path}", headers=headers)
    assert (response.status_code, response.text) == (status, code)


def test_userinfo_with_a_bad_token_is_refused(emulator, emulator_http):
    sf = Salesforce(instance_url=emulator.instance_url, session_id="00Dnope", session=emulator_http)
    with pytest.raises(SalesforceRefusedRequest):
        sf.oauth2("userinfo")


def _org_of(info) -> tuple[str, str]:
    """(organization_id, user_id) as the identity service reports them for the emulator's startup token."""
    from emulator.runner import emulator_session

    with emulator_session(info) as http:
        answer = http.get(f"{info.instance_url}/services/oauth2/userinfo", headers=_bearer(info.access_token))
    assert answer.status_code == 200
    return answer.json()["organization_id"], answer.json()["user_id"]


def test_the_same_seed_is_the_same_org_across_restarts_and_ports():
    """A client keys its state by org Id: a restart (new port) of the same org must not look like another org,
    and another seed must."""
    from emulator.runner import run_emulator

    tiny = {"Account": 3, "Contact": 3, "Opportunity": 3, "Lead": 3, "Case": 3}
    with run_emulator(seed=7, rows=tiny, in_process=True) as first:
        first_url, first_org = first.instance_url, _org_of(first)
    with run_emulator(seed=7, rows=tiny, in_process=True) as again, \
            run_emulator(seed=8, rows=tiny, in_process=True) as other:
        assert again.instance_url != first_url  # a new port ...
        assert _org_of(again) == first_org  # ... the same org and user
        assert _org_of(other)[0] != first_org[0]
        assert again.access_token.startswith(first_org[0][:15] + "!")  # session ids carry their org's Id
