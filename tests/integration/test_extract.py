"""Extract against the running emulator with the real client: both API paths, parity, errors, faults, auth."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from emulator import build_org, get_state, set_faults
from tasks.extract import ExtractOptions, extract_object
from tasks.extract_plan import resolve_extract_plan
from utils.connection import SalesforceConnection
from utils.errors import AuthError, ConfigError, FatalSourceError, QuotaExceededError
from utils.raw_frame import scan_dataset
from utils.raw_schema import read_raw_schema
from utils.settings import Credentials, load_credentials
from utils.sf_errors import RetryPolicy

pytestmark = pytest.mark.integration
FAST = ExtractOptions(retry=RetryPolicy(backoff_base_seconds=0.01), describe_cache_seconds=0, limits_cache_seconds=0)


@functools.lru_cache(maxsize=1)
def _default_org():
    return build_org()  # the same seed and sizes the session emulator serves


def live_ids(object_name: str) -> set[str]:
    frame = _default_org().frame(object_name)
    return set(frame.filter(~pl.col("IsDeleted"))["Id"].to_list())


@pytest.fixture()
def conn(emulator):
    creds = Credentials(flow="access_token", instance_url=emulator.instance_url,
                        access_token=emulator.access_token, ca_bundle=emulator.ca_bundle)
    return SalesforceConnection(creds, source="emulator")


def _plan(name: str, api: str, soql: str | None = None):
    (item,) = resolve_extract_plan([name], {name: soql} if soql else None)
    return replace(item, api=api)


def _extract(conn, tmp_path, name, api, *, soql=None, run_id=None, options=FAST, **kw):
    return extract_object(_plan(name, api, soql), run_id=run_id or f"T{api.upper()}", connection=conn,
                          options=options, data_root=tmp_path, **kw)


@pytest.mark.parametrize("name", ["Account", "Contact", "Opportunity", "Lead", "Case"])
def test_every_registry_object_rest_and_bulk_are_identical_and_exact(conn, tmp_path, name):
    rest = _extract(conn, tmp_path, name, "rest")
    bulk = _extract(conn, tmp_path, name, "bulk2")
    assert Path(rest.raw_csv).read_bytes() == Path(bulk.raw_csv).read_bytes()
    frame = scan_dataset(Path(rest.raw_csv)).collect()
    assert set(frame["Id"].to_list()) == live_ids(name) and frame.height == rest.rows == bulk.rows
    schema = read_raw_schema(Path(rest.raw_schema))
    assert schema.row_count == rest.rows and schema.source == "emulator"
    assert schema.column_names == list(frame.columns)


def test_csv_text_round_trips_exactly(conn, tmp_path):
    """Commas, quotes, newlines and unicode in Account names/types survive the CSV exactly."""
    result = _extract(conn, tmp_path, "Account", "bulk2")
    got = dict(scan_dataset(Path(result.raw_csv)).select("Id", "Name").collect().iter_rows())
    org = _default_org().frame("Account").filter(~pl.col("IsDeleted"))
    expected = dict(org.select("Id", "Name").iter_rows())
    assert got == expected
    assert any(("," in n or '"' in n or "\n" in n or not n.isascii()) for n in expected.values() if n)


@pytest.mark.parametrize("api", ["rest", "bulk2"])
def test_empty_result_writes_headers_only(conn, tmp_path, api):
    soql = "SELECT Id, StageName, Amount, Probability FROM Opportunity WHERE Amount < -1000000000"
    result = _extract(conn, tmp_path, "Opportunity", api, soql=soql)
    assert result.rows == 0
    assert Path(result.raw_csv).read_text() == '"Id","StageName","Amount","Probability"\n'


def test_custom_soql_filters_and_canonicalises_columns(conn, tmp_path):
    soql = "select id, stagename, amount, probability, owner.name from Opportunity where IsWon = true"
    result = _extract(conn, tmp_path, "Opportunity", "rest", soql=soql)
    frame = scan_dataset(Path(result.raw_csv)).collect()
    assert frame.columns == ["Id", "StageName", "Amount", "Probability", "Owner.Name"]
    org = _default_org().frame("Opportunity").filter(~pl.col("IsDeleted") & pl.col("IsWon"))
    assert set(frame["Id"]) == set(org["Id"]) and frame.height > 0


def test_missing_field_is_a_clear_error_or_dropped_on_request(conn, tmp_path, caplog):
    from configs.salesforce_objects import SALESFORCE_OBJECTS
    (item,) = resolve_extract_plan(["Lead"])
    item = replace(item, columns=(*item.columns, "Favourite_Colour__c"),
                   soql=item.soql.replace(" FROM", ", Favourite_Colour__c FROM"), api="rest")
    with pytest.raises(ConfigError, match=r"Lead\.Favourite_Colour__c: not found in the org's describe"):
        extract_object(item, run_id="MISS", connection=conn, options=FAST, data_root=tmp_path)
    assert not list((tmp_path / "raw").glob("*.csv")) if (tmp_path / "raw").exists() else True
    with caplog.at_level(logging.WARNING):
        result = extract_object(item, run_id="DROP", connection=conn, data_root=tmp_path,
                                options=replace(FAST, drop_missing_fields=True))
    assert result.dropped_fields == ("Favourite_Colour__c",)
    assert read_raw_schema(Path(result.raw_schema)).column_names == list(SALESFORCE_OBJECTS["Lead"].fields)
    assert "fields_dropped" in caplog.text


def test_malformed_custom_soql_fails_at_once_with_salesforce_message(conn, tmp_path):
    soql = "SELECT Id, StageName, Amount, Probability FROM Opportunity WHERE Amount >> 5"
    with pytest.raises(FatalSourceError, match="Opportunity: Salesforce rejected .*MALFORMED_QUERY"):
        _extract(conn, tmp_path, "Opportunity", "rest", soql=soql)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_auto_uses_bulk_above_threshold(conn, tmp_path):
    small = _extract(conn, tmp_path, "Lead", "auto", bulk_threshold_rows=10_000_000, run_id="AUTO1")
    big = _extract(conn, tmp_path, "Lead", "auto", bulk_threshold_rows=10, run_id="AUTO2")
    assert (small.api_path, big.api_path) == ("rest", "bulk2")


@pytest.mark.parametrize(
    ("api", "faults"),
    [
        ("rest", "rest.query_more:503:times=3"),
        ("rest", "rest.query_more:reset:times=2"),
        ("rest", "rest.query:concurrent:times=2"),
        ("rest", "rest.query_more:locator:after=1:times=1"),
        ("rest", "rest.query_more:500:times=2;rest.describe:503:times=1"),
        ("bulk2", "bulk.results:503:times=2"),
        ("bulk2", "bulk.results:reset:after=1:times=2"),
        ("bulk2", "bulk.status:503:times=2;bulk.create:concurrent:times=1"),
        ("bulk2", "bulk.create:job_failed:times=1"),
    ],
)
def test_transient_faults_recover_with_exact_row_parity(conn, tmp_path, emulator_reset, api, faults):
    set_faults(emulator_reset, faults)
    options = replace(FAST, rest_batch_size=500, bulk_page_size=1000)
    result = _extract(conn, tmp_path, "Contact", api, options=options)
    frame = scan_dataset(Path(result.raw_csv)).collect()
    assert frame["Id"].n_unique() == frame.height == len(live_ids("Contact"))
    assert set(frame["Id"]) == live_ids("Contact")
    leftovers = [p.name for p in (tmp_path / "raw").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    rules = get_state(emulator_reset)["fault_rules"]
    assert rules and all(r["fired"] >= 1 for r in rules), rules  # every fault really happened


def test_daily_limit_is_not_retried_and_leaves_no_file(conn, tmp_path, emulator_reset):
    set_faults(emulator_reset, "rest.query_more:daily:times=1")
    with pytest.raises(QuotaExceededError, match="daily API request limit is exhausted"):
        _extract(conn, tmp_path, "Contact", "rest", options=replace(FAST, rest_batch_size=500))
    assert [p.name for p in (tmp_path / "raw").iterdir()] == []


def test_api_reserve_skips_the_object_before_querying(conn, tmp_path):
    with pytest.raises(QuotaExceededError, match=r"Lead: skipped, only \d+ of \d+ daily API requests left"):
        _extract(conn, tmp_path, "Lead", "rest", options=replace(FAST, api_request_reserve=10**12))


def test_bulk_job_aborted_is_fatal(conn, tmp_path, emulator_reset):
    set_faults(emulator_reset, "bulk.create:job_aborted:times=1")
    with pytest.raises(FatalSourceError, match="was aborted"):
        _extract(conn, tmp_path, "Lead", "bulk2")


def test_expired_access_token_cannot_be_renewed(conn, tmp_path, emulator_reset):
    set_faults(emulator_reset, "rest.query_more:expire:times=1")
    with pytest.raises(AuthError, match="'access_token' flow cannot renew it"):
        _extract(conn, tmp_path, "Contact", "rest", options=replace(FAST, rest_batch_size=500))


def _login_env(emulator, **extra):
    env = {"SF_LOGIN_URL": emulator.instance_url, "SF_CA_BUNDLE": emulator.ca_bundle}
    env.update(extra)
    return env


LOGINS = {
    "password": {"SF_USERNAME": "etl@emulator.local", "SF_PASSWORD": "emulator-password",
                 "SF_TOKEN": "EMULATORTOKEN"},
    "client_credentials": {"SF_CONSUMER_KEY": "emulator-consumer-key",
                           "SF_CONSUMER_SECRET": "emulator-consumer-secret", "SF_DOMAIN": "emulator.my"},
}


@pytest.mark.parametrize("flow", list(LOGINS))
def test_login_flows_extract_and_renew_expired_sessions(emulator_reset, tmp_path, flow):
    creds = load_credentials(_login_env(emulator_reset, **LOGINS[flow]))
    assert creds.flow == flow
    conn = SalesforceConnection(creds)
    set_faults(emulator_reset, "rest.query_more:expire:times=1")
    result = _extract(conn, tmp_path, "Contact", "rest", options=replace(FAST, rest_batch_size=500))
    assert result.rows == len(live_ids("Contact"))


@pytest.fixture()
def jwt_key(emulator_reset, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from emulator import configure_jwt_key

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "server.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    configure_jwt_key(emulator_reset, public)
    return path


def test_jwt_bearer_flow(emulator_reset, tmp_path, jwt_key):
    creds = load_credentials(_login_env(emulator_reset, SF_CONSUMER_KEY="emulator-consumer-key",
                                        SF_USERNAME="etl@emulator.local", SF_PRIVATE_KEY_FILE=str(jwt_key)))
    assert creds.flow == "jwt"
    result = _extract(SalesforceConnection(creds), tmp_path, "Lead", "bulk2")
    assert result.rows == len(live_ids("Lead"))


@pytest.mark.parametrize(
    "env",
    [
        {"SF_USERNAME": "etl@emulator.local", "SF_PASSWORD": "wrong-password-xyz"},
        {"SF_CONSUMER_KEY": "emulator-consumer-key", "SF_CONSUMER_SECRET": "wrong-secret-xyz",
         "SF_DOMAIN": "emulator.my"},
    ],
)
def test_bad_credentials_are_an_auth_error_without_secrets(emulator, env):
    creds = load_credentials(_login_env(emulator, **env))
    with pytest.raises(AuthError, match=f"Salesforce rejected the '{creds.flow}' login") as err:
        SalesforceConnection(creds)
    assert "wrong-" not in str(err.value) and err.value.__cause__ is None
