"""Emulator fixtures: one default-org emulator subprocess per test session, and clients that trust its CA.

``emulator`` yields an EmulatorInfo for the default small org (seed DEFAULT_SEED). Tests that change its state
(faults, writes, an expired token) request ``emulator_reset``, which resets faults, usage, tokens and data afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce

from emulator import EmulatorInfo, emulator_session, reset_state, run_emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorInfo]:
    """The default org (small scale, default seed) served by ``python -m emulator serve`` for the whole session."""
    with run_emulator(faults="") as info:  # "" ignores a SF_EMULATOR_FAULTS set in the developer's shell
        yield info


@pytest.fixture()
def emulator_http(emulator: EmulatorInfo) -> Iterator[requests.Session]:
    """A plain requests Session trusting the emulator's CA (``trust_env=False``: REQUESTS_CA_BUNDLE is set here)."""
    with emulator_session(emulator) as session:
        yield session


@pytest.fixture()
def sf_client(emulator: EmulatorInfo, emulator_http: requests.Session) -> Salesforce:
    """simple-salesforce in direct-session mode against the session emulator."""
    return Salesforce(instance_url=emulator.instance_url, session_id=emulator.access_token, session=emulator_http)


@pytest.fixture()
def emulator_reset(emulator: EmulatorInfo) -> Iterator[EmulatorInfo]:
    """The session emulator, reset (faults off, usage, tokens, data) after the test so others see the default org."""
    reset_state(emulator)
    yield emulator
    reset_state(emulator)


def point_pipeline_at(info: EmulatorInfo, monkeypatch: pytest.MonkeyPatch) -> EmulatorInfo:
    """Point the pipeline at an emulator through the access-token flow (as a real org would be)."""
    monkeypatch.setenv("SF_INSTANCE_URL", info.instance_url)
    monkeypatch.setenv("SF_ACCESS_TOKEN", info.access_token)
    monkeypatch.setenv("SF_CA_BUNDLE", info.ca_bundle)
    return info


@pytest.fixture()
def org_env(emulator: EmulatorInfo, monkeypatch: pytest.MonkeyPatch) -> EmulatorInfo:
    """The pipeline pointed at the session emulator."""
    return point_pipeline_at(emulator, monkeypatch)


@pytest.fixture()
def faulty_org(emulator_reset: EmulatorInfo, monkeypatch: pytest.MonkeyPatch) -> EmulatorInfo:
    """The pipeline pointed at the session emulator, short backoffs, faults and data reset afterwards."""
    monkeypatch.setenv("SF_RETRY_BASE_SECONDS", "0.01")
    return point_pipeline_at(emulator_reset, monkeypatch)
