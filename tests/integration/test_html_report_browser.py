"""The run report for the emulator's default org: its content, and how headless Chromium renders it offline.

One orchestrator run feeds both tests: Account (a float and an integer metric) and Case (a boolean and a datetime
metric: no distribution), the smallest pair that shows both kinds, in a few seconds. The orchestrator writes the
run's report itself (reports/<timestamp>_<RUNID>.html and latest.html); the tests read what it wrote.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from tests.browser import ensure_chromium, load_page_offline
from tests.emulator_fixtures import point_pipeline_at
from utils.paths import ReportPaths, build_report_paths

pytestmark = [pytest.mark.integration]

OBJECTS = ["Account", "Case"]
# Their numeric metric columns: one histogram each. Not Id (counted), nor Case's IsEscalated (a boolean summed)
# or ClosedDate (a datetime).
NUMERIC_METRICS = {("Account", "AnnualRevenue"), ("Account", "NumberOfEmployees")}
CHARTS = 2 * len(OBJECTS) + len(NUMERIC_METRICS)  # row-count history and null rates per object, then histograms
PROBES = {
    "sections": "Array.from(document.querySelectorAll('section.object')).map(s => s.dataset.object)",
    "drawn_charts": "Array.from(document.querySelectorAll('figure > svg'))"
                    ".filter(s => s.getBoundingClientRect().width > 300 && s.getBoundingClientRect().height > 40)"
                    ".length",
    "page_width": "document.documentElement.scrollWidth",
    "scripts": "document.scripts.length",
}


class Tags(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def figures(self, chart: str) -> list[dict[str, str]]:
        return [a for t, a in self.found if t == "figure" and a.get("data-chart") == chart]


@pytest.fixture(scope="module")
def default_org_report(prefect_harness, emulator, tmp_path_factory) -> tuple[dict[str, Any], ReportPaths]:
    """Run the orchestrator on the default org; returns its summary and where it wrote the run's report."""
    root = tmp_path_factory.mktemp("report") / "data"
    with pytest.MonkeyPatch.context() as patch:
        point_pipeline_at(emulator, patch)
        patch.setenv("SF_PIPELINE_DATA_DIR", str(root))
        summary = sf_etl_orchestrator_flow(objects=OBJECTS, data_root=str(root))
    return summary, build_report_paths(summary["started_at"], summary["run_id"], data_root=root)


@pytest.mark.slow
def test_report_for_the_default_org_has_each_object_its_charts_and_checks(default_org_report):
    summary, files = default_org_report

    page = files.latest.read_text(encoding="utf-8")

    tags = Tags(page)
    assert files.report.read_text(encoding="utf-8") == page
    assert [a["data-object"] for t, a in tags.found if t == "section" and "data-object" in a] == \
        OBJECTS
    for chart in ("rowcount", "null-rate"):
        assert sorted(f["data-object"] for f in tags.figures(chart)) == OBJECTS
    assert {(f["data-object"], f["data-column"]) for f in tags.figures("histogram")} == NUMERIC_METRICS
    assert len([t for t, _ in tags.found if t == "svg"]) == CHARTS
    assert f"Run {summary['run_id']} <span class=\"badge ok\">ok</span>" in page
    assert 'class="check fail' not in page and page.count('class="check pass"') >= 8 * len(OBJECTS)
    assert page.count("Header, schema sidecar and registry agree") == len(OBJECTS)
    assert len(page.encode()) < 300_000


@pytest.mark.slow
def test_latest_report_renders_offline_in_headless_chromium_without_errors_or_requests(default_org_report):
    _, files = default_org_report
    ensure_chromium()  # apt-get install chromium when it is missing (once, under a lock)

    load = load_page_offline(Path(files.latest), probes=PROBES, viewport_width=1000)

    assert load.console_errors == []
    assert load.external_requests == [] and load.failed_requests == []
    assert load.requested_urls == [files.latest.resolve().as_uri()]  # the page itself and nothing else
    assert load.probes["sections"] == OBJECTS
    assert load.probes["drawn_charts"] == CHARTS
    assert load.probes["page_width"] <= 1000  # readable on a 1,000 px pane: no sideways scrolling
    assert load.probes["scripts"] == 0
    dom = Tags(load.dom)
    assert len([t for t, _ in dom.found if t == "svg"]) == CHARTS
    for name in OBJECTS:
        assert f'<section class="object" id="object-{name}" data-object="{name}">' in load.dom


@pytest.mark.slow
def test_the_offline_browser_sees_a_request_leaving_and_a_console_error(tmp_path):
    """The check above would catch a page that fetched something or logged an error (it is not vacuous)."""
    page = tmp_path / "leaky.html"
    page.write_text('<!doctype html><html><head><meta charset="utf-8"><title>x</title></head><body>'
                    '<img src="https://fonts.example.com/logo.png"><script>console.error("boom")</script></body></html>')

    load = load_page_offline(page)

    assert load.external_requests == ["https://fonts.example.com/logo.png"]
    assert load.failed_requests  # it never left: the proxy is a dead port
    assert "boom" in load.console_errors
