"""Path builders: the documented layout, UTC timestamps, no file-system side effects."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from utils.paths import (
    RAW_NAME_RE,
    build_paths,
    build_qa_paths,
    build_summary_paths,
    resolve_data_root,
    schema_sidecar_for,
)

MOMENT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


@pytest.mark.parametrize("obj", ["Account", "Contact", "Opportunity", "Lead", "Case", "Invoice__c"])
def test_build_paths_layout(tmp_path, obj):
    p = build_paths(obj, "RUN42", moment=MOMENT, data_root=tmp_path)
    assert p.raw_csv == tmp_path / "raw" / f"{obj}_20260304-050607_RUN42.csv"
    assert p.raw_schema == tmp_path / "raw" / f"{obj}_20260304-050607_RUN42.schema.json"
    assert p.processed_summary == tmp_path / "processed" / obj / "summary.csv"
    assert p.output_json == tmp_path / "output" / obj / "summary.json"
    assert RAW_NAME_RE.match(p.raw_csv.name).group("object") == obj
    assert list(tmp_path.iterdir()) == []  # pure: nothing created


@pytest.mark.parametrize(
    ("attr", "name"),
    [("dedup", "dedup.csv"), ("profile", "profile.json"), ("schema_report", "schema_report.json"),
     ("snapshot", "snapshot.parquet"), ("rowcount", "rowcount.txt")],
)
def test_build_qc_paths_layout(tmp_path, attr, name):
    q = build_qa_paths("Lead", data_root=tmp_path)
    assert getattr(q, attr) == tmp_path / "processed" / "qa" / "Lead" / name
    assert not (tmp_path / "processed").exists()


def test_a_qa_run_rewrites_every_qa_output_but_the_rowcount_history(tmp_path):
    q = build_qa_paths("Lead", data_root=tmp_path)
    assert set(q.rewritable) == {q.dedup, q.profile, q.schema_report, q.snapshot}
    assert q.rowcount not in q.rewritable and q.directory not in q.rewritable


def test_summary_paths_own_the_summary_schema_sidecar_and_say_which_step_writes_what(tmp_path):
    s = build_summary_paths("Lead", data_root=tmp_path)
    processed = tmp_path / "processed" / "Lead"
    assert (s.summary_csv, s.summary_schema, s.output_json) == (
        processed / "summary.csv", processed / "summary.schema.json", tmp_path / "output" / "Lead" / "summary.json")
    assert s.process_outputs == (s.summary_csv, s.summary_schema)
    assert s.load_outputs == (s.output_json,)
    assert (s[0], s[1]) == (s.summary_csv, s.output_json)  # positional use keeps its meaning
    assert not tmp_path.joinpath("processed").exists()


def test_timestamps_are_utc():
    paris = timezone(timedelta(hours=2))
    p = build_paths("Case", "R1", moment=datetime(2026, 6, 1, 1, 30, 0, tzinfo=paris), data_root="/x")
    assert p.raw_csv.name == "Case_20260531-233000_R1.csv"


def test_data_root_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SF_PIPELINE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert resolve_data_root() == tmp_path / "elsewhere"
    assert build_qa_paths("Case").directory == tmp_path / "elsewhere" / "processed" / "qa" / "Case"
    monkeypatch.delenv("SF_PIPELINE_DATA_DIR")
    assert resolve_data_root() == Path("data").absolute()


@pytest.mark.parametrize("bad", ["", "1Account", "Acc ount", "../etc", "Account.csv"])
def test_bad_object_names_are_rejected(bad):
    with pytest.raises(ValueError, match="invalid Salesforce object name"):
        build_qa_paths(bad, data_root="/x")


def test_bad_run_id_is_rejected():
    with pytest.raises(ValueError, match="invalid run id"):
        build_paths("Account", "run/1", moment=MOMENT, data_root="/x")


def test_schema_sidecar_name():
    assert schema_sidecar_for(Path("/d/raw/A_1_R.csv")) == Path("/d/raw/A_1_R.schema.json")
