"""The data root on a real S3 server (SeaweedFS on loopback, tests/s3_server.py): runs on ``s3://`` write what
runs on a local root write, each run may start on an empty scratch (a fresh container) and resume from the store,
two processes on two working directories serialize on one object, a killed lock holder blocks the next run only
until its lease expires, and an unusable store is one clear error before any Salesforce call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import polars as pl
import pytest

from emulator import get_state
from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from tests.float_compare import assert_same_summary
from tests.s3_server import S3Store
from tests.s3_server import s3_store as s3_store  # the session fixture
from tests.sync_helpers import connect, live_records
from utils.paths import build_qa_paths, build_summary_paths, build_sync_paths
from utils.replica_layers import overlay_path_for, scan_replica

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
OBJECTS = ["Account", "Opportunity"]


@pytest.fixture()
def s3_env(s3_store: S3Store, monkeypatch, tmp_path) -> S3Store:
    """This process pointed at the store (the standard AWS variables), with a scratch of its own."""
    for name, value in s3_store.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SF_PIPELINE_SCRATCH_DIR", str(tmp_path / "scratch-0"))
    return s3_store


def _prefix() -> str:
    return f"run-{uuid.uuid4().hex[:10]}"


def _download(store: S3Store, url: str, target: Path) -> Path:
    import s3fs

    target.parent.mkdir(parents=True, exist_ok=True)
    s3fs.S3FileSystem(**store.storage_options(), skip_instance_cache=True).get_file(url, str(target))
    return target


def test_runs_on_s3_write_what_runs_on_a_local_root_write(prefect_harness, org_env, s3_env, tmp_path, monkeypatch):
    """Three runs each way; every run on S3 starts on an empty scratch, so each resumes from the store alone."""
    local, remote = tmp_path / "local", s3_env.url(_prefix())
    for run in range(3):
        state = sf_etl_orchestrator_flow(objects=OBJECTS, data_root=str(local), return_state=True)
        assert state.is_completed(), state.message
        monkeypatch.setenv("SF_PIPELINE_SCRATCH_DIR", str(tmp_path / f"scratch-{run}"))
        state = sf_etl_orchestrator_flow(objects=OBJECTS, data_root=remote, return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
        modes = [row["mode"] for row in summary["objects"]]
        assert modes == (["backfill"] * 2 if run == 0 else ["incremental"] * 2)  # resumed from the store
        assert all(row["raw_csv"].startswith(f"{remote}/raw/") for row in summary["objects"])
    fetched = tmp_path / "fetched"
    for name in OBJECTS:
        for here in build_summary_paths(name, data_root=local)[:2]:
            relative = here.relative_to(local).as_posix()
            assert_same_summary(_download(s3_env, f"{remote}/{relative}", fetched / relative), here)
        for here in (build_qa_paths(name, data_root=local).dedup, build_qa_paths(name, data_root=local).schema_report):
            relative = here.relative_to(local).as_posix()
            there = _download(s3_env, f"{remote}/{relative}", fetched / relative)
            # the QA files name the dataset they checked: the same file, under each root
            assert there.read_bytes() == here.read_bytes().replace(str(local).encode(), remote.encode()), relative
        for here in (build_sync_paths(name, data_root=local).replica, build_qa_paths(name, data_root=local).snapshot):
            relative = here.relative_to(local).as_posix()
            there = _download(s3_env, f"{remote}/{relative}", fetched / relative)
            assert pl.read_parquet(there).equals(pl.read_parquet(here)), relative
        rowcount = build_qa_paths(name, data_root=local).rowcount.relative_to(local).as_posix()
        counts = [line.split()[2] for line in _download(s3_env, f"{remote}/{rowcount}", fetched / rowcount)
                  .read_text().splitlines() if not line.startswith("#")]
        assert len(counts) == 3  # the history grew on the store, run after run, from three empty scratches


def test_an_unusable_store_fails_the_run_before_any_salesforce_call(prefect_harness, org_env, s3_env, monkeypatch):
    before = get_state(org_env)["api_usage"]["used"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    state = sf_etl_orchestrator_flow(objects=["Account"], data_root=s3_env.url(_prefix()), return_state=True)
    assert state.is_failed()
    message = str(state.message)
    assert "cannot write a probe object" in message and "credentials" in message and "not-the-secret" not in message
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    state = sf_etl_orchestrator_flow(objects=["Account"], data_root=s3_env.url(_prefix()), return_state=True)
    assert state.is_failed() and "reachable" in str(state.message), state.message
    assert get_state(org_env)["api_usage"]["used"] == before  # not one request reached Salesforce


_HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from utils.locks import exclusive_lock
    from utils.paths import build_sync_paths
    lock = build_sync_paths("Account", data_root=sys.argv[1]).state.with_suffix(".lock")
    print(f"trying {time.time()}", flush=True)
    with exclusive_lock(lock, what="test"):
        print(f"acquired {time.time()}", flush=True)
        time.sleep(float(sys.argv[2]))
        print(f"released {time.time()}", flush=True)
""")


def _holder(store: S3Store, remote: str, seconds: float, workdir: Path, ttl: str = "60") -> subprocess.Popen[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **store.env(), "PYTHONPATH": str(ROOT), "SF_PIPELINE_SCRATCH_DIR": str(workdir / "scratch"),
           "SF_PIPELINE_LOCK_TTL_SECONDS": ttl}
    return subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, remote, str(seconds)], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, text=True)


def _stamp(line: str, word: str) -> float:
    assert line.startswith(word), line
    return float(line.split()[1])


def test_two_machines_exclude_each_other_and_a_killed_holder_blocks_only_until_its_lease_expires(
        s3_env, tmp_path):
    remote = s3_env.url(_prefix())
    first = _holder(s3_env, remote, 600.0, tmp_path / "machine-a", ttl="6")
    _stamp(first.stdout.readline(), "trying")
    _stamp(first.stdout.readline(), "acquired")
    second = _holder(s3_env, remote, 0.0, tmp_path / "machine-b", ttl="6")
    _stamp(second.stdout.readline(), "trying")  # B waits: A holds the lease and renews it every 2 s
    time.sleep(7.0)  # longer than the TTL: only A's renewals keep B out (a renewal may stall up to 4 s)
    assert second.poll() is None, "B got the lock while A held it"
    killed_at = time.time()
    first.kill()  # SIGKILL: no release, no more renewals
    first.wait(10)
    waited = _stamp(second.stdout.readline(), "acquired") - killed_at
    assert second.wait(30) == 0
    # the lease outlives A by 4-6 s (its last renewal plus the TTL), then B takes it over, never much later
    assert 1.5 < waited < 30.0, waited


_SYNC = textwrap.dedent("""
    import sys
    from tasks.sync import sync_object
    from utils.connection import SalesforceConnection
    from utils.settings import Credentials
    creds = Credentials(flow="access_token", instance_url=sys.argv[2], access_token=sys.argv[3], ca_bundle=sys.argv[4])
    result = sync_object("Account", run_id=sys.argv[5], connection=SalesforceConnection(creds, source="emulator"),
                         data_root=sys.argv[1])
    print(result.mode, result.sync.replica_rows, flush=True)
""")


def test_two_runs_of_one_object_started_together_on_two_machines_lose_nothing(s3_env, emulator, tmp_path):
    remote = s3_env.url(_prefix())
    runs = []
    for n, machine in enumerate(("machine-a", "machine-b")):
        workdir = tmp_path / machine
        workdir.mkdir()
        env = {**os.environ, **s3_env.env(), "PYTHONPATH": str(ROOT),
               "SF_PIPELINE_SCRATCH_DIR": str(workdir / "scratch")}
        runs.append(subprocess.Popen(
            [sys.executable, "-c", _SYNC, remote, emulator.instance_url, emulator.access_token, emulator.ca_bundle,
             f"R{n}"], cwd=workdir, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=300)[0].split() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sorted(mode for mode, _ in outputs) == ["backfill", "incremental"], outputs  # one after the other
    state = json.loads(_download(s3_env, f"{remote}/state/Account.json", tmp_path / "state.json").read_text())
    base = _download(s3_env, f"{remote}/replica/Account.parquet", tmp_path / "replica" / "Account.parquet")
    _download(s3_env, f"{remote}/replica/Account.overlay.parquet", overlay_path_for(base))  # the incremental run's
    replica = scan_replica(base).collect()
    conn = connect(emulator)
    truth = live_records(conn, "Account", tmp_path / "truth")
    assert replica.sort("Id")["Id"].to_list() == truth["Id"].to_list()
    assert state["replica_rows"] == replica.height and state["last_run_id"] in ("R0", "R1")
