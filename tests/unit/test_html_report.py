"""The HTML run report: its content for clean and with-defects QA outputs, the charts, escaping and pruning.

The QA files come from the real QA writers (gate, profile, row-count history, checks) run on raw fixtures,
without Prefect; the QA summary holds their check results, as the QA flow's does.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from configs.salesforce_objects import SALESFORCE_OBJECTS
from reporting.charts import Bar, bar_chart, histogram_chart
from reporting.formatting import format_compact, format_dtype, format_number, format_share, format_value
from reporting.html_report import render_report
from reporting.model import drift_points, parse_run_summary, parse_schema_report
from reporting.read import histogram_of
from reporting.write import build_run_report, default_keep_count, prune_reports, write_run_report
from tasks.quality_checks import CheckResult
from tasks.quality_parallel import (
    RowcountEntry,
    check_completeness,
    format_rowcount_history,
    inspect_raw_extract,
    record_rowcount,
    run_custom_validator,
    typed_rows_of,
    write_dedup,
    write_profile,
)
from tests.fixtures_raw import ACCOUNT_COLUMNS, OPPORTUNITY_COLUMNS, write_raw_fixture
from utils.paths import build_qa_paths, build_report_paths

RUN_ID = "RUN2"
STARTED_AT = "2024-01-02T03:04:05Z"


def opp(id_, *, name="Deal", stage="Prospecting", amount="1500.0", modstamp="2024-01-01T12:00:00.000Z"):
    return [id_, name, stage, amount, "10.0", "2024-03-01", "false", "false", "Pipeline", "Web", "001A",
            "Acme <Intl>", "005A", "Ann Lee", "2024-01-01T00:00:00.000Z", modstamp]


def account(id_, *, revenue="1000000.0", extra="x"):
    return [id_, f"Acme {id_}", "Customer", "Tech", "FR", revenue, "42", "Hot", "005A", "Ann Lee",
            "2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z", "2024-01-02T00:00:00.000Z", extra]


DEFECT_OPPORTUNITIES = [
    opp("006000"),
    opp("006001"),
    opp("006001", amount="900.0", modstamp="2024-02-01T12:00:00.000Z"),  # defect: duplicate Id
    opp("006002", name=None),                                              # defect: null required Name
    opp("006003", stage=None, amount="-5.0"),                             # defect: null StageName, Amount < 0
    opp("006004", amount="-1.0"),                                          # defect: Amount < 0
]
# clean values, but the extract has a column the registry does not list: a schema difference (a warning)
ACCOUNTS_WITH_EXTRA_COLUMN = [account(f"001{i:03d}", revenue=f"{(i + 1) * 1000}.0") for i in range(8)]
# Opportunity's history before this run: 20 rows, so 6 now is -70%, beyond the registry's ±50%
EARLIER_HISTORY = [RowcountEntry("2024-01-01T00:00:00Z", "RUN0", 20), RowcountEntry("2024-01-01T12:00:00Z", "RUN1",
                                                                                    20)]


def run_qa_by_hand(name: str, raw: Path, data_root: Path) -> tuple[CheckResult, ...]:
    """What the QA flow does for one object, without Prefect: gate, checks and the files they write."""
    spec, qa = SALESFORCE_OBJECTS[name], build_qa_paths(name, data_root=data_root)
    gate = inspect_raw_extract(name, raw, spec, qa)
    frame = typed_rows_of(gate)
    assert gate.row_count is not None
    reports = [gate.report, check_completeness(name, frame, spec), write_dedup(name, frame, spec, qa),
               write_profile(name, frame, raw, qa), record_rowcount(name, gate.row_count, RUN_ID, spec, qa),
               *(run_custom_validator(name, v, frame, spec) for v in spec.validators)]
    return tuple(r for report in reports for r in report.results)


def summary_row(name: str, rows: int, raw: Path, **changes: Any) -> dict[str, Any]:
    return {"object": name, "status": "ok", "mode": "full", "rows": rows, "api": "bulk2", "inserts": None,
            "updates": None, "deletes": None, "hard_deletes": None, "recovered": None, "replica_rows": None,
            "dataset": str(raw), "extract_s": 0.5, "process_s": 0.2, "load_s": 0.1, "qa": "see below",
            "raw_csv": str(raw), "summary_json": None, "error": None, **changes}


@pytest.fixture()
def defects_run(data_root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run over Opportunity (with defects, and a row-count drop) and Account (an unexpected column):
    its run summary and QA summary, with every QA file on disk."""
    opp_qa = build_qa_paths("Opportunity", data_root=data_root)
    opp_qa.directory.mkdir(parents=True)
    opp_qa.rowcount.write_text(format_rowcount_history("Opportunity", EARLIER_HISTORY))
    raws = {
        "Opportunity": write_raw_fixture(data_root / "raw", "Opportunity", OPPORTUNITY_COLUMNS, DEFECT_OPPORTUNITIES,
                                         run_id=RUN_ID),
        "Account": write_raw_fixture(data_root / "raw", "Account", [*ACCOUNT_COLUMNS, ("Extra__c", "string")],
                                     ACCOUNTS_WITH_EXTRA_COLUMN, run_id=RUN_ID),
    }
    checks = {name: run_qa_by_hand(name, raw, data_root) for name, raw in raws.items()}
    run_summary = {"run_id": RUN_ID, "source": {"kind": "emulator", "instance_url": "https://127.0.0.1:1",
                                                "auth_flow": "access_token"},
                   "started_at": STARTED_AT, "seconds": 3.2,
                   "objects": [summary_row("Opportunity", 6, raws["Opportunity"]),
                               summary_row("Account", 8, raws["Account"])],
                   "phase1_ok": True, "qa_ok": True, "qa_error": None}
    qa_summary = {"run_id": RUN_ID, "objects": {name: {"raw_csv": str(raws[name]),
                                                       "results": [c.to_dict() for c in results]}
                                                for name, results in checks.items()}}
    return run_summary, qa_summary


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each ``<tr>`` by row."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag
                and all(a.get(k.replace("_", "-")) == v for k, v in wanted.items())]


# ----------------------------------------------------------------------------------------- the whole page


def test_report_names_each_object_and_draws_one_chart_per_object_and_per_numeric_metric(defects_run, data_root):
    run_summary, qa_summary = defects_run

    page = render_report(build_run_report(run_summary, qa_summary, data_root=data_root))

    tags = Elements(page)
    assert [s["data-object"] for s in tags.find("section") if "data-object" in s] == ["Opportunity", "Account"]
    for name in ("Opportunity", "Account"):
        assert len(tags.find("figure", data_chart="rowcount", data_object=name)) == 1
        assert len(tags.find("figure", data_chart="null-rate", data_object=name)) == 1
    histograms = {(f["data-object"], f["data-column"]) for f in tags.find("figure", data_chart="histogram")}
    assert histograms == {("Opportunity", "Amount"), ("Opportunity", "Probability"),
                          ("Account", "AnnualRevenue"), ("Account", "NumberOfEmployees")}  # not Id (a count)
    assert len(tags.find("svg")) == len(tags.find("figure")) == 8


def test_failing_checks_are_highlighted_first_with_observed_values_and_thresholds(defects_run, data_root):
    run_summary, qa_summary = defects_run

    page = render_report(build_run_report(run_summary, qa_summary, data_root=data_root))

    opportunity = page[page.index('id="object-Opportunity"'):page.index('id="object-Account"')]
    rows = Elements(opportunity).find("tr")
    checks = [(r["data-check"], r["class"]) for r in rows if "data-check" in r]
    assert checks[:2] == [("completeness_required", "check fail error"),
                          ("custom_amount_non_negative", "check fail error")]
    assert ("uniqueness_primary_key", "check fail warning") in checks[2:4]
    assert ("rowcount_drift", "check fail warning") in checks[2:4]
    assert ("profile", "check pass") in checks
    assert "FAIL (error)" in opportunity and "Name: 1; StageName: 1" in opportunity  # observed null counts
    assert "e.g. <code>006001</code>" in opportunity  # the duplicate Id as a sample
    assert opportunity.count('class="dot out"') == 1  # this run: 20 -> 6 rows, outside the ±50% band


def test_schema_differences_are_highlighted(defects_run, data_root):
    run_summary, qa_summary = defects_run

    page = render_report(build_run_report(run_summary, qa_summary, data_root=data_root))

    account = page[page.index('id="object-Account"'):]
    assert '<div class="schema-diff warning" data-severity="warning">' in account
    assert "<strong>columns not in the registry</strong>: <code>Extra__c</code>" in account
    assert '<tr class="differs"><td><code>Extra__c</code>' in account
    assert "Header, schema sidecar and registry agree (16 columns)" in page  # Opportunity's


def test_report_is_self_contained_and_escapes_values_from_the_data(defects_run, data_root):
    run_summary, qa_summary = defects_run
    hostile = CheckResult("Account", "custom_<b>", False, "error", observed={"<x>": 1}, threshold="<1",
                          sample_ids=("<img src=x>",), message="</td><script>alert(1)</script>")
    qa_summary["objects"]["Account"]["results"].append(hostile.to_dict())

    page = render_report(build_run_report(run_summary, qa_summary, data_root=data_root))

    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page and "Acme &lt;Intl&gt;" in page
    tags = Elements(page)
    assert not [t for t, _ in tags.tags if t in ("script", "link", "img", "iframe", "object", "embed", "image")]
    assert not [a for _, a in tags.tags if "src" in a or a.get("href", "#")[:1] != "#"]  # only in-page links
    assert "url(" not in page and "@import" not in page and "http://" not in page
    assert "Content-Security-Policy\" content=\"default-src 'none'" in page


def test_without_a_qa_summary_the_files_are_shown_with_a_warning(defects_run, data_root):
    run_summary, _ = defects_run

    page = render_report(build_run_report(run_summary, None, data_root=data_root))

    assert "QA produced no summary in this run" in page
    assert page.count("QA did not check this object in this run") == 2
    assert len(Elements(page).find("figure", data_chart="histogram")) == 4  # the files are still read


def test_missing_and_corrupt_qa_files_become_notes_not_errors(defects_run, data_root):
    run_summary, qa_summary = defects_run
    qa = build_qa_paths("Account", data_root=data_root)
    qa.profile.write_text("{not json")
    qa.snapshot.unlink()

    page = render_report(build_run_report(run_summary, qa_summary, data_root=data_root))

    assert "profile.json cannot be read (JSONDecodeError" in page
    assert "no QA snapshot (snapshot.parquet): no distributions" in page
    assert not Elements(page).find("figure", data_chart="histogram", data_object="Account")


def test_write_run_report_writes_the_report_and_latest_atomically(defects_run, data_root):
    run_summary, qa_summary = defects_run

    files = write_run_report(run_summary, qa_summary, data_root=data_root)

    paths = build_report_paths(STARTED_AT, RUN_ID, data_root=data_root)
    assert (files.report, files.latest) == (paths.report, paths.latest)
    assert files.report.name == "2024-01-02T030405Z_RUN2.html"
    assert files.report.read_bytes() == files.latest.read_bytes() and files.size_bytes == files.report.stat().st_size
    assert sorted(p.name for p in paths.directory.iterdir()) == ["2024-01-02T030405Z_RUN2.html", "latest.html",
                                                                 "latest.html.lock"]


def test_a_run_that_ends_after_a_later_one_does_not_take_latest(defects_run, data_root):
    run_summary, qa_summary = defects_run
    later = write_run_report({**run_summary, "run_id": "LATER", "started_at": "2024-01-02T04:00:00Z"}, qa_summary,
                             data_root=data_root)

    earlier = write_run_report(run_summary, qa_summary, data_root=data_root, keep_count=1)

    assert later.latest_updated and not earlier.latest_updated
    assert "Run LATER" in earlier.latest.read_text(encoding="utf-8")
    assert earlier.report.exists() and later.report.exists() and earlier.removed == ()  # its own report is kept


# ------------------------------------------------------------------------------------------- retention


def test_prune_keeps_the_newest_reports_and_never_latest_or_other_files(tmp_path):
    names = [f"2024-01-0{d}T000000Z_R{d}.html" for d in range(1, 6)]
    for name in [*names, "latest.html", "notes.html", ".2024-01-09T000000Z_R9.html.tmp-1-abcd"]:
        (tmp_path / name).write_text("x")

    removed = prune_reports(tmp_path, keep_count=2)

    assert sorted(p.name for p in removed) == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*names[3:], "latest.html", "notes.html", ".2024-01-09T000000Z_R9.html.tmp-1-abcd"])


def test_prune_by_age_spares_the_report_just_written(tmp_path):
    old, new = tmp_path / "2024-01-01T000000Z_A.html", tmp_path / "2024-03-01T000000Z_B.html"
    for path in (old, new):
        path.write_text("x")

    removed = prune_reports(tmp_path, keep_count=10, max_age_days=7, protect=(new,),
                            now=datetime(2024, 3, 5, tzinfo=timezone.utc))

    assert removed == [old] and new.exists()


def test_default_keep_count_follows_the_registrys_raw_retention():
    assert default_keep_count() == max(s.raw_retention_count for s in SALESFORCE_OBJECTS.values())
    with pytest.raises(ValueError, match="keep_count must be at least 1"):
        prune_reports(Path("/nonexistent"), keep_count=0)


# ------------------------------------------------------------------------------------- the pure pieces


def test_drift_points_carry_the_band_of_the_run_before_and_judge_like_the_check():
    history = [RowcountEntry("2024-01-01T00:00:00Z", f"R{i}", rows) for i, rows in enumerate([100, 140, 220, 0, 0])]

    points = drift_points("Lead", history, 50.0)

    assert [(p.low, p.high, p.within) for p in points] == [
        (None, None, True), (50.0, 150.0, True), (70.0, 210.0, False), (110.0, 330.0, False), (0.0, 0.0, True)]
    assert points[2].change_pct == pytest.approx(57.143, abs=1e-3)


def test_histogram_bins_run_from_min_to_max_and_count_nulls_apart(tmp_path):
    snapshot = tmp_path / "snapshot.parquet"
    pl.DataFrame({"Amount": [0.0, 1.0, 2.0, 9.99, 10.0, None, float("nan")]}).write_parquet(snapshot)

    histogram = histogram_of(snapshot, "Amount", bins=5)

    assert histogram.edges == (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    assert histogram.counts == (2, 1, 0, 0, 2)  # 10.0, the max, falls in the last bin
    assert histogram.missing == 2


def test_histogram_of_a_constant_or_empty_column(tmp_path):
    snapshot = tmp_path / "snapshot.parquet"
    pl.DataFrame({"One": [3, 3, 3], "Nothing": [None, None, None]},
                 schema={"One": pl.Int64, "Nothing": pl.Float64}).write_parquet(snapshot)

    assert histogram_of(snapshot, "One").counts == (3,)
    assert (histogram_of(snapshot, "Nothing").counts, histogram_of(snapshot, "Nothing").missing) == ((), 3)


def test_schema_report_of_an_unreadable_dataset_shows_its_error():
    document = {"object": "Lead", "raw_csv": "/d/Lead.csv", "error": "Lead: cannot read the raw extract: gone",
                "result": {"check": "schema_conformance", "severity": "error", "observed": None}}

    report = parse_schema_report(document)

    assert report.differences == (("the dataset cannot be read", ("Lead: cannot read the raw extract: gone",)),)
    assert report.severity == "error" and report.columns == ()


def test_run_summary_rows_are_read_by_name_so_older_files_still_render():
    older = {"run_id": "R", "started_at": STARTED_AT, "objects": [{"object": "Lead", "status": "ok", "rows": 3,
                                                                    "field_from_the_future": 1}]}

    run = parse_run_summary(older)

    assert run.objects[0].rows == 3 and run.objects[0].qa_s is None and run.seconds is None
    with pytest.raises(ValueError, match="lacks started_at"):
        parse_run_summary({"run_id": "R", "objects": []})
    with pytest.raises(ValueError, match="lacks 'object' or 'status'"):
        parse_run_summary({**older, "objects": [{"rows": 1}]})


def test_charts_are_svg_with_a_tooltip_per_mark_and_escaped_labels():
    bars = bar_chart([Bar("A<b>", 0.25, "25%"), Bar("Required", 0.5, "50%", alert=True)], title="t & u")
    histogram = histogram_chart([0.0, 5.0, 10.0], [3, 1], title="h")

    assert bars.startswith("<svg") and "<title>t &amp; u</title>" in bars and "A&lt;b&gt;" in bars
    assert bars.count('class="bar alert"') == 1
    assert histogram.count('class="bar"') == 2 and "<title>0 to 5: 3 rows</title>" in histogram
    assert "no values" in histogram_chart([], [], title="empty")


@pytest.mark.parametrize(("value", "expected"), [
    (1980, "1,980"), (248150906.53153154, "248,150,906.53"), (0.123456, "0.123"), (None, "–"), (True, "true"),
    (float("nan"), "–"), (2.5, "2.5")])
def test_format_number(value, expected):
    assert format_number(value) == expected


def test_other_formats():
    assert [format_share(r) for r in (0.0, 0.0004, 0.10303, 1.0, None)] == ["0%", "<0.1%", "10.3%", "100%", "–"]
    assert [format_compact(v) for v in (248150906.5, 1500.0, 0.25, 12.0)] == ["248M", "1.5k", "0.25", "12"]
    assert format_dtype("Datetime(time_unit='ms', time_zone='UTC')") == "Datetime(ms, UTC)"
    assert format_value({"current": 1980, "change_pct": None}) == "current: 1,980; change_pct: –"
    assert format_value("2021-11-21T07:31:34.032000Z") == "2021-11-21 07:31:34"
    assert json.dumps(format_value(["a", 2])) == '"a, 2"'
