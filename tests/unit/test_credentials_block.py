"""Credentials from a Prefect Secret block (the block's reading is stubbed; tests/integration/test_secrets.py reads
real ones): the block stands alone for credentials, other settings may still come from the environment."""

from __future__ import annotations

import pytest

from utils import settings
from utils.settings import credential_settings, load_credentials

BLOCK = {"SF_USERNAME": "block-user@x", "SF_PASSWORD": "block-pw", "SF_DOMAIN": "test"}


@pytest.fixture()
def block(monkeypatch):
    monkeypatch.setattr(settings, "read_credentials_block", lambda name: dict(BLOCK) if name == "sf-prod" else {})


def test_without_a_block_the_environment_rules_as_before(block, monkeypatch):
    monkeypatch.setenv("SF_INSTANCE_URL", "https://env.my.salesforce.com")
    monkeypatch.setenv("SF_ACCESS_TOKEN", "env-token")
    assert load_credentials().flow == "access_token"


def test_a_block_replaces_every_credential_variable_of_the_environment(block, monkeypatch):
    """An exported access token would otherwise win over the block's password flow (it comes first)."""
    monkeypatch.setenv("SF_INSTANCE_URL", "https://env.my.salesforce.com")
    monkeypatch.setenv("SF_ACCESS_TOKEN", "env-token")
    monkeypatch.setenv("SF_PASSWORD", "env-pw")
    credentials = load_credentials(block="sf-prod")
    assert credentials.flow == "password" and credentials.username == "block-user@x"
    assert credentials.password.get_secret_value() == "block-pw" and credentials.instance_url is None


def test_settings_the_block_leaves_out_come_from_the_environment(block, monkeypatch):
    monkeypatch.setenv("SF_API_VERSION", "61.0")
    monkeypatch.setenv("SF_DOMAIN", "login")
    values = credential_settings("sf-prod")
    assert values["SF_API_VERSION"] == "61.0" and values["SF_DOMAIN"] == "test"  # the block's own wins
