"""Bad input: each mistake is one clear, actionable error, and nothing written earlier is lost or damaged.

Registry message wording: tests/unit/test_registry.py. Unknown object, bad parameters and custom SOQL missing
group_by/metric columns: test_parameters_are_validated_before_the_run in tests/integration/test_orchestrator.py.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.object_parallel_flow import object_parallel_flow
from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow
from flows.sf_etl_orchestrator_flow import PipelineRunError, sf_etl_orchestrator_flow
from tests.fixtures_raw import write_raw_fixture
from tests.reliability_helpers import PYTHON, ROOT, audit_data_root, base_env, temp_files
from utils.atomic import atomic_path, write_text_atomic
from utils.errors import AuthError, ConfigError

pytestmark = [pytest.mark.integration]


PER_RUN_RECORDS = {"runs", "reports"}  # what every run writes about itself, whatever happened to the data


def _files(root: Path) -> dict[Path, bytes]:
    """Every data file a reader uses (run summaries and run reports excluded: each run adds one, a failed run too)."""
    return {p: p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not PER_RUN_RECORDS & set(p.relative_to(root).parts)}


def _data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# ------------------------------------------------------------------------------------------------ registry


@pytest.mark.slow  # a subprocess importing Prefect
def test_bad_registry_stops_the_run_before_any_file_is_written(tmp_path):
    """A copy of the real registry with two mistakes, imported in place of the real one by a real run."""
    shadow = tmp_path / "shadow" / "configs"
    shadow.mkdir(parents=True)
    text = (ROOT / "configs" / "salesforce_objects.py").read_text(encoding="utf-8")
    broken = text.replace('"group_by": ("Industry",)', '"group_by": ("Industy",)', 1).replace(
        '"Probability": ("mean",)', '"Probability": ("avg",)', 1)
    assert broken.count("Industy") == 1 and '("avg",)' in broken
    (shadow / "__init__.py").write_text("")
    (shadow / "salesforce_objects.py").write_text(broken, encoding="utf-8")
    runner = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['run_multiple_times.py', '--runs', "
              "'1']; runpy.run_path('run_multiple_times.py', run_name='__main__')")
    data = tmp_path / "data"
    proc = subprocess.run([PYTHON, "-c", runner, str(shadow.parent)], cwd=ROOT, capture_output=True, text=True,
                          env=base_env(data_root=data, prefect_home=tmp_path / "prefect"), timeout=240)
    assert proc.returncode != 0
    assert "invalid object registry (2 problem(s))" in proc.stderr
    assert "Account.group_by: 'Industy' is not in fields" in proc.stderr
    assert "Opportunity.metrics['Probability']: unknown aggregation 'avg'" in proc.stderr
    assert _data_files(data) == []


# ------------------------------------------------------------------------------------------------ queries


@pytest.mark.slow
def test_unknown_field_and_malformed_soql_fail_their_object_and_keep_earlier_outputs(prefect_harness, faulty_org,
                                                                                     tmp_path):
    root = tmp_path / "missing" / "data-root"  # does not exist yet: the first run creates it
    first = sf_etl_orchestrator_flow(objects=["Lead", "Case"], data_root=str(root), return_state=True)
    assert first.is_completed(), first.message
    before = _files(root)
    soql = {"Lead": "SELECT Id, Status, IsConverted, AnnualRevenue, Company, Favourite_Colour__c FROM Lead",
            "Case": "SELECT Id, Status, Priority, IsEscalated, ClosedDate FROM Case WHERE Priority >> 1"}
    state = sf_etl_orchestrator_flow(objects=["Lead", "Case"], soql=soql, data_root=str(root), return_state=True)
    err = state.result(raise_on_failure=False)
    assert isinstance(err, PipelineRunError)
    rows = {r["object"]: r for r in err.summary["objects"]}
    assert "Lead.Favourite_Colour__c: not found in the org's describe" in rows["Lead"]["error"]
    assert "drop_missing_fields=True" in rows["Lead"]["error"]  # says what to do
    assert "MALFORMED_QUERY" in rows["Case"]["error"]
    assert _files(root) == before and temp_files(root) == []


# ------------------------------------------------------------------------------------------------ credentials


def _jwt_key(path: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


BAD_LOGINS = {
    "password": {"SF_USERNAME": "etl@emulator.local", "SF_PASSWORD": "not-the-password", "SF_TOKEN": "NOPE"},
    "client_credentials": {"SF_CONSUMER_KEY": "emulator-consumer-key", "SF_CONSUMER_SECRET": "not-the-secret",
                           "SF_DOMAIN": "emulator.my"},
    "jwt": {"SF_CONSUMER_KEY": "emulator-consumer-key", "SF_USERNAME": "etl@emulator.local",
            "SF_PRIVATE_KEY_FILE": "<generated>"},  # a key the emulator was never told to trust
}


@pytest.mark.parametrize("flow", list(BAD_LOGINS))
def test_bad_login_credentials_fail_before_any_file(prefect_harness, emulator, data_root, monkeypatch, tmp_path,
                                                    flow):
    monkeypatch.setenv("SF_LOGIN_URL", emulator.instance_url)
    monkeypatch.setenv("SF_CA_BUNDLE", emulator.ca_bundle)
    for key, value in BAD_LOGINS[flow].items():
        monkeypatch.setenv(key, _jwt_key(tmp_path / "k.pem") if value == "<generated>" else value)
    with pytest.raises(AuthError, match=f"Salesforce rejected the '{flow}' login .*check the SF_ credentials"):
        sf_etl_orchestrator_flow(objects=["Lead"])
    assert _data_files(data_root) == []


def test_bad_access_token_fails_the_run_at_once(prefect_harness, emulator, data_root, monkeypatch):
    monkeypatch.setenv("SF_INSTANCE_URL", emulator.instance_url)
    monkeypatch.setenv("SF_ACCESS_TOKEN", "00Dfake!not-a-token")
    monkeypatch.setenv("SF_CA_BUNDLE", emulator.ca_bundle)
    with pytest.raises(AuthError, match="SF_ACCESS_TOKEN was refused .*check the SF_ credentials") as err:
        sf_etl_orchestrator_flow(objects=["Lead"])
    assert "not-a-token" not in str(err.value)
    assert _data_files(data_root) == []


def test_half_filled_env_file_names_the_missing_variable(prefect_harness, data_root, monkeypatch, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SF_USERNAME=etl@emulator.local\nSF_PASSWORD=\nSF_TOKEN=EMULATORTOKEN\n")
    monkeypatch.setenv("SF_ENV_FILE", str(env_file))
    with pytest.raises(ConfigError, match=r"incomplete Salesforce credentials: .* SF_PASSWORD is missing for the "
                                          r"'password' flow; set it in \.env"):
        sf_etl_orchestrator_flow(objects=["Lead"])
    assert _data_files(data_root) == []


# ------------------------------------------------------------------------------------------------ disk


@pytest.fixture()
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs: a real 'No space left on device' (skipped where mounting is not allowed)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_during_a_write_keeps_the_old_file_and_no_temp(tiny_tmpfs):
    target = tiny_tmpfs / "processed" / "Lead" / "summary.csv"
    write_text_atomic(target, "old,complete\n")
    with pytest.raises(OSError) as err, atomic_path(target) as tmp:
        tmp.write_bytes(b"x" * (2 << 20))  # twice the disk
    assert err.value.errno == errno.ENOSPC
    assert target.read_text() == "old,complete\n"
    assert [p.name for p in target.parent.iterdir()] == ["summary.csv"]


def test_failed_rename_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    """The last step of an atomic write failing (ENOSPC/EIO on the rename's metadata write)."""
    target = tmp_path / "summary.json"
    write_text_atomic(target, "[]\n")

    def refuse(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_text_atomic(target, '[{"a": 1}]\n')
    monkeypatch.undo()
    assert target.read_text() == "[]\n" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


@pytest.mark.slow  # three runs
def test_run_on_a_full_disk_fails_and_keeps_the_previous_run_then_recovers(prefect_harness, faulty_org, tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        root = mount / "data"
        assert sf_etl_orchestrator_flow(objects=["Lead"], data_root=str(root), return_state=True).is_completed()
        before = _files(root)
        filler = mount / "filler"
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        filler.write_bytes(b"\0" * (free - 64 * 1024))  # leave 64 KiB: less than one Lead extract
        state = sf_etl_orchestrator_flow(objects=["Lead"], data_root=str(root), full_refresh=True,
                                         return_state=True)
        assert state.is_failed()
        assert _files(root) == before, "a run on a full disk damaged the previous run's files"
        assert temp_files(root) == [] and audit_data_root(root) == []
        filler.unlink()
        assert sf_etl_orchestrator_flow(objects=["Lead"], data_root=str(root), return_state=True).is_completed()
        assert audit_data_root(root) == []
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_data_root_that_cannot_be_a_directory_is_a_clear_error(prefect_harness, faulty_org, tmp_path):
    """As root, permissions do not stop writes; a data root under a regular file does (ENOTDIR)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data root's parent should be")
    state = sf_etl_orchestrator_flow(objects=["Lead"], data_root=str(blocker / "data"), return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "not-a-dir" in message and "point SF_PIPELINE_DATA_DIR" in message, message
    assert blocker.read_text().startswith("a file")


# ------------------------------------------------------------------------------------------------ earlier files


@pytest.mark.slow
def test_corrupt_files_left_by_an_earlier_run_are_replaced(prefect_harness, faulty_org, data_root):
    assert sf_etl_orchestrator_flow(objects=["Lead"], return_state=True).is_completed()
    qa = data_root / "processed" / "qa" / "Lead"
    (qa / "rowcount.txt").write_text("garbage line\x00\n")
    (qa / "snapshot.parquet").write_bytes((qa / "snapshot.parquet").read_bytes()[:100])
    (data_root / "state" / "Lead.json").write_text("{not json")
    (data_root / "processed" / "Lead" / "summary.schema.json").write_text("{")
    (old_sidecar,) = (data_root / "raw").glob("Lead_*.schema.json")
    old_sidecar.write_text("")
    state = sf_etl_orchestrator_flow(objects=["Lead"], return_state=True)
    assert state.is_completed(), state.message
    row = state.result()["objects"][0]
    assert row["mode"] == "backfill"  # the unreadable watermark meant: start again from scratch
    old_sidecar.unlink()  # the earlier run's raw file keeps its broken sidecar; retention removes it later
    old_sidecar.with_name(old_sidecar.name.replace(".schema.json", ".csv")).unlink()
    assert audit_data_root(data_root) == []
    history = (qa / "rowcount.txt").read_text()
    assert "garbage" not in history and len([x for x in history.splitlines() if not x.startswith("#")]) == 1


@pytest.mark.slow
def test_corrupt_replica_recovers_or_says_what_to_do(prefect_harness, faulty_org, data_root):
    assert sf_etl_orchestrator_flow(objects=["Lead"], return_state=True).is_completed()
    replica = data_root / "replica" / "Lead.parquet"
    replica.write_bytes(b"PAR1 not really")  # disk trouble or a hand edit: atomic writes never leave this
    state = sf_etl_orchestrator_flow(objects=["Lead"], return_state=True)
    row = (state.result() if state.is_completed() else state.result(raise_on_failure=False).summary)["objects"][0]
    error = row["error"] or ""
    assert row["status"] == "ok" and row["mode"] == "backfill", (row, error)  # rebuilt from Salesforce


# ------------------------------------------------------------------------------------------------ CSV content


LEAD_COLUMNS = [("Id", "id"), ("FirstName", "string"), ("LastName", "string"), ("Company", "string"),
                ("Status", "picklist"), ("LeadSource", "picklist"), ("Industry", "picklist"), ("Rating", "picklist"),
                ("AnnualRevenue", "currency"), ("IsConverted", "boolean"), ("OwnerId", "reference"),
                ("Owner.Name", "string"), ("CreatedDate", "datetime"), ("SystemModstamp", "datetime")]
_WHEN = "2024-01-02T03:04:05.000Z"
AWKWARD_ROWS = [  # Id, FirstName, LastName, Company, Status, LeadSource, Industry, Rating, AnnualRevenue, ...
    ["00QEM0000000001AAA", "Seán", 'O"Brien', "Acme, Inc.\nSecond line", "Open", None, None, None, "1500.0",
     "false", "005EM0000000001AAA", "Ann, \"the\" owner", _WHEN, _WHEN],                # quote, comma, newline
    ["00QEM0000000002AAA", None, "Müller 🚀", "株式会社テスト", "Open", "Web", "Energy", "Hot", None,
     "true", "005EM0000000001AAA", "Ann, \"the\" owner", _WHEN, _WHEN],                 # unicode, emoji, nulls
    ["00QEM0000000003AAA", "Tab\there", "Line\r\nbreak", '""', "Closed", None, None, None, "0.5",
     "false", "005EM0000000002AAA", "Bo", _WHEN, _WHEN],                                  # tab, CRLF, only quotes
]


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "byte-order-mark"])
def test_awkward_csv_content_survives_phase1_and_qa(prefect_harness, data_root, bom):
    raw = write_raw_fixture(data_root / "raw", "Lead", LEAD_COLUMNS, AWKWARD_ROWS)
    if bom:
        raw.write_bytes(b"\xef\xbb\xbf" + raw.read_bytes())  # as Excel and some exports save UTF-8
    etl = sf_csv_polars_json_flow(raw_files={"Lead": str(raw)}, data_root=str(data_root))
    assert etl["objects"]["Lead"]
    summary = pl.read_csv(data_root / "processed" / "Lead" / "summary.csv")
    assert summary["Id_count"].sum() == len(AWKWARD_ROWS)
    qa = object_parallel_flow(raw_files={"Lead": str(raw)}, data_root=str(data_root), fail_on_qa_error=True)
    checks = {r["check"]: r for r in qa["objects"]["Lead"]["results"]}
    assert all(r["passed"] or r.get("skipped") for r in checks.values()), checks
    snapshot = pl.read_parquet(data_root / "processed" / "qa" / "Lead" / "snapshot.parquet")
    assert snapshot.sort("Id")["Company"].to_list() == [r[3] for r in AWKWARD_ROWS]
    assert snapshot.sort("Id")["LastName"].to_list() == [r[2] for r in AWKWARD_ROWS]
    assert set(SALESFORCE_OBJECTS["Lead"].group_by) <= set(snapshot.columns)
