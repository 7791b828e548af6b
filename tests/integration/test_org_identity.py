"""Sync state is keyed by the org's Id, not its URL: a restarted emulator (same seed, new port) resumes the
replica incrementally, another org backfills, and state written under the old URL key still resumes."""

from __future__ import annotations

import json
import logging

import pytest

from emulator.runner import run_emulator
from tasks.sync import sync_object
from tests.sync_helpers import FAST, connect
from utils.connection import org_id_of_session
from utils.paths import build_sync_paths

pytestmark = [pytest.mark.integration]
TINY = {"Account": 40, "Contact": 5, "Opportunity": 5, "Lead": 5, "Case": 5}


def _backfill_reasons(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=sync_backfill ")]


@pytest.mark.parametrize(("session_id", "org_id"), [
    ("00D5g000004XyZa!ARQAQJ0.abc", "00D5g000004XyZa"),
    ("00DEM00000000g1!AQxyz", "00DEM00000000g1"),
    ("not-a-session-id", None),
    ("00D5g000004XyZ!short", None),
])
def test_the_org_id_is_read_from_the_session_id(session_id, org_id):
    assert org_id_of_session(session_id) == org_id


def test_a_restarted_org_resumes_and_another_org_backfills(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    with run_emulator(seed=11, rows=TINY, in_process=True) as first:
        conn = connect(first)
        sync_object("Account", run_id="R1", connection=conn, options=FAST, data_root=tmp_path)
        first_key = conn.org_key
    assert first_key.startswith("emulator:00D") and "127.0.0.1" not in first_key
    caplog.clear()
    with run_emulator(seed=11, rows=TINY, in_process=True) as restarted:  # a new port, the same org
        result = sync_object("Account", run_id="R2", connection=connect(restarted), options=FAST,
                             data_root=tmp_path)
    assert _backfill_reasons(caplog) == [] and result.mode == "incremental"
    with run_emulator(seed=12, rows=TINY, in_process=True) as other:
        result = sync_object("Account", run_id="R3", connection=connect(other), options=FAST, data_root=tmp_path)
    (reason,) = _backfill_reasons(caplog)
    assert "from another source" in reason and first_key in reason
    assert result.mode != "incremental"


def test_state_keyed_by_the_old_url_key_still_resumes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    with run_emulator(seed=11, rows=TINY, in_process=True) as info:
        conn = connect(info)
        sync_object("Account", run_id="R1", connection=conn, options=FAST, data_root=tmp_path)
        state_file = build_sync_paths("Account", data_root=tmp_path).state
        state = json.loads(state_file.read_text())
        state["source"] = f"emulator:{info.instance_url}"  # as written before the org Id was the key
        state_file.write_text(json.dumps(state))
        caplog.clear()
        result = sync_object("Account", run_id="R2", connection=conn, options=FAST, data_root=tmp_path)
    assert _backfill_reasons(caplog) == [] and result.mode == "incremental"
    assert json.loads(state_file.read_text())["source"] == conn.org_key  # rewritten under the new key
