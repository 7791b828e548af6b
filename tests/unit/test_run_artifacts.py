"""The Prefect UI's views of a run, rendered without Prefect: compact summary rows, readable QA values, sparklines,
file paths relative to the data root; and the names runs get."""

from __future__ import annotations

import uuid
from pathlib import Path

from flows.run_artifacts import compact_summary_rows, files_markdown, qa_markdown, sparkline
from flows.run_summary import RunSummary, SummaryRow
from tasks.quality_checks import readable
from utils.local_ui import flow_run_link, is_up
from utils.paths import display_path
from utils.run_ids import run_id_from

ROW = SummaryRow(object="Lead", status="ok", mode="backfill", rows=5000, api="rest", inserts=4948, updates=0,
                 deletes=0, hard_deletes=3, recovered=0, unchanged=0, deleted_absent=52, replica_rows=4945,
                 dataset="/data/replica/Lead.parquet", extract_s=1.234, process_s=0.04, load_s=0.01, qa_s=2.5,
                 qa="8/8 passed", raw_csv="/data/raw/Lead_x.csv", summary_json="/data/output/Lead/summary.json",
                 error=None)
FULL = SummaryRow(object="Case", status="failed", mode=None, rows=None, api=None, inserts=None, updates=None,
                  deletes=None, hard_deletes=None, recovered=None, unchanged=None, deleted_absent=None,
                  replica_rows=None, dataset=None, extract_s=0.5, process_s=None, load_s=None, qa_s=None,
                  qa="skipped (no extract)", raw_csv=None, summary_json=None, error="MALFORMED_QUERY: " + "x" * 200)
SUMMARY = RunSummary("6E98288AE1", {"kind": "emulator"}, "2026-12-02T00:00:00Z", 3.0, (ROW, FULL), True, True, None)


def test_compact_rows_fit_a_pane_and_add_up():
    lead, case = compact_summary_rows(SUMMARY)
    assert lead == {"object": "Lead", "status": "ok", "mode": "backfill", "rows": "5,000",
                    "+ins ~upd =same -del": "+4,948 ~0 =0 -52, 3 hard-deleted", "qa": "8/8",
                    "seconds (extract / process / qa)": "1.2 / 0.0 / 2.5", "error": ""}
    assert case["rows"] == "-" and case["seconds (extract / process / qa)"] == "0.5 / - / -"
    assert len(case["error"]) == 90 and case["error"].endswith("…")
    assert all("/data" not in v for row in (lead, case) for v in row.values())


def test_an_object_whose_delta_cannot_show_deletions_says_so():
    (row,) = compact_summary_rows(RunSummary(**{**SUMMARY.__dict__, "objects": (
        SummaryRow(**{**ROW.__dict__, "mode": "incremental", "deletes_untracked": True}),)}))
    assert row["+ins ~upd =same -del"] == "+4,948 ~0 =0 -52, 3 hard-deleted, deletes by reconciliation only"


def test_observed_values_read_as_text_not_python_reprs():
    assert readable({"rows": 1980, "missing": None}) == "rows 1,980, missing -"
    assert readable([0.123456, True]) == "0.1235, yes"
    assert readable(None) == "" and readable("no missing columns") == "no missing columns"


def test_sparkline_scales_to_the_history_and_keeps_a_flat_one_flat():
    assert sparkline([1, 5, 9]) == "▁▅█"
    assert sparkline([7, 7, 7]) == "▄▄▄" and sparkline([]) == ""


def test_qa_markdown_has_one_row_per_check_with_its_threshold_and_the_trend():
    qa = {"objects": {"Lead": {"results": [
        {"check": "uniqueness_primary_key", "passed": False, "severity": "error", "observed": 2, "threshold": 0,
         "message": "Lead: 2 duplicate | Ids", "skipped": False, "object_name": "Lead"}]}}}
    text = qa_markdown(qa, history={"Lead": [10, 20]}, report="reports/latest.html")
    assert "| Lead | uniqueness_primary_key | FAIL (error) | 2 (0) | Lead: 2 duplicate \\| Ids |" in text
    assert "| Lead | ▁█ | 20 |" in text and "`reports/latest.html`" in text


def test_files_are_shown_relative_to_the_data_root(tmp_path):
    root = tmp_path / "data"
    row = SummaryRow(**{**ROW.__dict__, "dataset": str(root / "replica/Lead.parquet"),
                        "summary_json": str(root / "output/Lead/summary.json")})
    summary = RunSummary("R1", {"kind": "emulator"}, "t", 1.0, (row,), True, True, None)
    text = files_markdown(summary, root, run_summary_file=root / "runs/x_R1.json",
                          qa_files={"Lead": [str(root / "processed/qa/Lead/dedup.csv")]}, report=None)
    assert "| Lead | `replica/Lead.parquet` | `output/Lead/summary.json` | `processed/qa/Lead/dedup.csv` |" in text
    assert "`runs/x_R1.json`" in text
    assert display_path(Path("/elsewhere/file.csv"), root) == "/elsewhere/file.csv"


def test_a_run_id_is_the_flow_runs_id_shortened():
    flow_run_id = uuid.UUID("6e98288a-e1aa-4bbb-8ccc-123456789abc")
    assert run_id_from(flow_run_id) == run_id_from(str(flow_run_id)) == "6E98288AE1"


def test_local_ui_link_and_a_closed_port():
    assert flow_run_link("http://127.0.0.1:4200/", "abc") == "http://127.0.0.1:4200/flow-runs/flow-run/abc"
    assert not is_up("http://127.0.0.1:9/api")  # discard port: nothing answers
