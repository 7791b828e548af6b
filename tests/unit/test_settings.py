"""Credentials from the environment: each flow, half-filled configurations, secrets hidden."""

from __future__ import annotations

import os

import pytest

from utils.errors import ConfigError
from utils.settings import load_credentials, read_environment


def test_no_credentials_means_emulator():
    assert load_credentials({}) is None
    assert load_credentials({"SF_DOMAIN": "test", "SF_CA_BUNDLE": ""}) is None


@pytest.mark.parametrize(
    ("env", "flow"),
    [
        ({"SF_INSTANCE_URL": "https://x.my.salesforce.com", "SF_ACCESS_TOKEN": "00Dtok"}, "access_token"),
        ({"SF_USERNAME": "u@x", "SF_PASSWORD": "pw", "SF_TOKEN": "tok"}, "password"),
        ({"SF_CONSUMER_KEY": "ck", "SF_CONSUMER_SECRET": "cs", "SF_DOMAIN": "acme.my"}, "client_credentials"),
    ],
)
def test_each_flow_is_recognised(env, flow):
    assert load_credentials(env).flow == flow


def test_jwt_flow_needs_an_existing_key_file(tmp_path):
    key = tmp_path / "server.key"
    key.write_text("---")
    env = {"SF_CONSUMER_KEY": "ck", "SF_USERNAME": "u@x", "SF_PRIVATE_KEY_FILE": str(key)}
    assert load_credentials(env).flow == "jwt"
    env["SF_PRIVATE_KEY_FILE"] = str(tmp_path / "nope.key")
    with pytest.raises(ConfigError, match="SF_PRIVATE_KEY_FILE points at .*nope.key, which does not exist"):
        load_credentials(env)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"SF_USERNAME": "u"}, "SF_PASSWORD is missing for the 'password' flow"),
        ({"SF_INSTANCE_URL": "https://x"}, "SF_ACCESS_TOKEN is missing for the 'access_token' flow"),
        ({"SF_CONSUMER_KEY": "ck", "SF_CONSUMER_SECRET": "cs"},
         r"SF_DOMAIN \(or SF_LOGIN_URL\) is missing for the 'client_credentials'"),
    ],
)
def test_half_filled_configuration_names_the_missing_variable(env, missing):
    with pytest.raises(ConfigError, match=missing):
        load_credentials(env)


def test_client_credentials_refuses_login_domain():
    with pytest.raises(ConfigError, match="My Domain"):
        load_credentials({"SF_CONSUMER_KEY": "ck", "SF_CONSUMER_SECRET": "cs", "SF_DOMAIN": "login"})


def test_client_credentials_accepts_a_login_url_instead_of_a_domain():
    creds = load_credentials({"SF_CONSUMER_KEY": "ck", "SF_CONSUMER_SECRET": "cs",
                              "SF_LOGIN_URL": "https://acme.my.salesforce.com/"})
    assert creds.flow == "client_credentials"
    assert creds.login_base_url == "https://acme.my.salesforce.com"


def test_secrets_never_show_in_repr_or_str():
    creds = load_credentials({"SF_USERNAME": "u", "SF_PASSWORD": "hunter2-secret", "SF_TOKEN": "tok-secret"})
    for text in (repr(creds), str(creds), str(creds.model_dump())):
        assert "hunter2-secret" not in text and "tok-secret" not in text


def test_env_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("SF_USERNAME=from-file\nSF_PASSWORD=pw\nOTHER=x\n")
    monkeypatch.setenv("SF_USERNAME", "from-env")
    env = read_environment(env_file)
    assert env["SF_USERNAME"] == "from-env" and env["SF_PASSWORD"] == "pw" and "OTHER" not in env


def test_env_file_feeds_every_sf_setting(tmp_path, monkeypatch):
    from utils.paths import resolve_data_root

    env_file = tmp_path / ".env"
    env_file.write_text(f"SF_PIPELINE_DATA_DIR={tmp_path / 'from-dotenv'}\nSF_API_RESERVE=7\n")
    monkeypatch.setenv("SF_ENV_FILE", str(env_file))
    monkeypatch.delenv("SF_PIPELINE_DATA_DIR", raising=False)
    monkeypatch.setenv("SF_API_RESERVE", "9")  # the environment wins over the file
    assert resolve_data_root() == tmp_path / "from-dotenv"
    assert "SF_PIPELINE_DATA_DIR" not in os.environ  # read, never copied into the environment
    from tasks.extract import ExtractOptions

    assert ExtractOptions().api_request_reserve == 9


def test_bad_numeric_setting_is_a_clear_error(monkeypatch):
    from tasks.extract import ExtractOptions

    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="SF_RETRY_BASE_SECONDS must be a number, got 'soon'"):
        ExtractOptions()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5"])
def test_a_bulk_job_timeout_that_could_never_or_always_fire_is_a_clear_error(monkeypatch, value):
    from tasks.extract import ExtractOptions

    monkeypatch.setenv("SF_BULK_JOB_TIMEOUT_SECONDS", value)
    with pytest.raises(ConfigError, match=f"SF_BULK_JOB_TIMEOUT_SECONDS must be a .*number, got '{value}'"):
        ExtractOptions()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_bulk_job_timeout_given_in_code_is_checked_and_named_as_given(value):
    from tasks.extract import ExtractOptions

    with pytest.raises(ConfigError, match="ExtractOptions.bulk_job_timeout_seconds must be a positive number"):
        ExtractOptions(bulk_job_timeout_seconds=value)


@pytest.mark.parametrize(("name", "value"), [("SF_RETRY_BASE_SECONDS", "nan"), ("SF_RETRY_BASE_SECONDS", "-1"),
                                             ("SF_API_RESERVE", "inf")])
def test_other_numeric_settings_refuse_nan_inf_and_negatives(monkeypatch, name, value):
    from tasks.extract import ExtractOptions

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{name} must be .*, got '{value}'"):
        ExtractOptions()


@pytest.mark.parametrize("value", ["nan", "0", "-3"])
def test_the_http_timeout_must_be_a_positive_number(value):
    env = {"SF_USERNAME": "u", "SF_PASSWORD": "pw", "SF_TIMEOUT_SECONDS": value}
    with pytest.raises(ConfigError, match=f"SF_TIMEOUT_SECONDS must be a .*number, got '{value}'"):
        load_credentials(env)


def test_client_credentials_refuse_the_generic_login_host_as_login_url_too():
    env = {"SF_CONSUMER_KEY": "ck", "SF_CONSUMER_SECRET": "cs", "SF_LOGIN_URL": "https://login.salesforce.com"}
    with pytest.raises(ConfigError, match="My Domain"):
        load_credentials(env)


def test_the_retry_policy_is_one_field_and_the_old_keyword_only_feeds_it():
    from dataclasses import replace

    from tasks.extract import ExtractOptions
    from utils.sf_errors import RetryPolicy

    options = ExtractOptions(retry=RetryPolicy(max_attempts=3, backoff_base_seconds=0.5))
    assert (options.retry.max_attempts, options.retry.backoff_base_seconds) == (3, 0.5)
    assert not hasattr(options, "max_attempts")
    assert replace(options, include_deleted=True).retry == options.retry
