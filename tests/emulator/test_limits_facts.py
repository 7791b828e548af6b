"""``/limits`` as a real Developer Edition org answers it (issue #16), as data, read through simple-salesforce's
``limits()``: the real key set, ``{"Max", "Remaining"}`` numbers, per-app entries, a 15,000-request day by default,
and the usage counting down with the Sforce-Limit-Info header."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce

from emulator import emulator_session, run_emulator

pytestmark = pytest.mark.integration

# every limit a Developer Edition lists (REST API guide example, captured Developer Edition answers)
REAL_LIMIT_KEYS = frozenset({
    "ActiveScratchOrgs", "AnalyticsExternalDataSizeMB", "ConcurrentAsyncGetReportInstances",
    "ConcurrentEinsteinDataInsightsStoryCreation", "ConcurrentEinsteinDiscoveryStoryCreation",
    "ConcurrentSyncReportRuns", "DailyAnalyticsDataflowJobExecutions", "DailyAnalyticsUploadedFilesSizeMB",
    "DailyApiRequests", "DailyAsyncApexExecutions", "DailyAsyncApexTests", "DailyBulkApiBatches",
    "DailyBulkV2QueryFileStorageMB", "DailyBulkV2QueryJobs", "DailyDeliveredPlatformEvents",
    "DailyDurableGenericStreamingApiEvents", "DailyDurableStreamingApiEvents", "DailyEinsteinDataInsightsStoryCreation",
    "DailyEinsteinDiscoveryPredictAPICalls", "DailyEinsteinDiscoveryPredictionsByCDC",
    "DailyEinsteinDiscoveryStoryCreation", "DailyGenericStreamingApiEvents", "DailyScratchOrgs",
    "DailyStandardVolumePlatformEvents", "DailyStreamingApiEvents", "DailyWorkflowEmails", "DataStorageMB",
    "DurableStreamingApiConcurrentClients", "FileStorageMB", "HourlyAsyncReportRuns", "HourlyDashboardRefreshes",
    "HourlyDashboardResults", "HourlyDashboardStatuses", "HourlyLongTermIdMapping",
    "HourlyManagedContentPublicRequests", "HourlyODataCallout", "HourlyPublishedPlatformEvents",
    "HourlyPublishedStandardVolumePlatformEvents", "HourlyShortTermIdMapping", "HourlySyncReportRuns",
    "HourlyTimeBasedWorkflow", "MassEmail", "MonthlyEinsteinDiscoveryStoryCreation",
    "MonthlyPlatformEventsUsageEntitlement", "Package2VersionCreates", "Package2VersionCreatesWithoutValidation",
    "PermissionSetsAssigned", "PrivateConnectOutboundCalloutHourlyLimitMB", "SingleEmail",
    "StreamingApiConcurrentClients",
})
# (limit, Max on a Developer Edition)
DEVELOPER_EDITION_MAX = [
    ("DailyBulkApiBatches", 15_000),
    ("DailyBulkV2QueryJobs", 10_000),
    ("DailyBulkV2QueryFileStorageMB", 976_562),
    ("DataStorageMB", 5),
    ("FileStorageMB", 20),
    ("SingleEmail", 15),
    ("MassEmail", 10),
    ("ConcurrentAsyncGetReportInstances", 200),
    ("HourlyDashboardStatuses", 999_999_999),
    ("StreamingApiConcurrentClients", 20),
]
DEVELOPER_EDITION_API_REQUESTS = 15_000
# limits a real org also breaks down per connected app, and the apps, each {"Max": 0, "Remaining": 0}
PER_APP_LIMITS = ("DailyApiRequests", "DailyBulkApiBatches", "DailyGenericStreamingApiEvents",
                  "DailyStreamingApiEvents")
CONNECTED_APPS = ("Ant Migration Tool", "Dataloader Bulk", "Dataloader Partner", "Force.com IDE", "SFIntegration",
                  "Salesforce Mobile Dashboards", "Salesforce Touch", "Salesforce for Outlook", "Workbench")


def test_limits_have_the_real_key_set_in_order(sf_client):
    limits = sf_client.limits()
    assert set(limits) == REAL_LIMIT_KEYS, sorted(set(limits) ^ REAL_LIMIT_KEYS)
    assert list(limits) == sorted(limits)


def test_every_limit_is_max_and_remaining_numbers(sf_client):
    for name, limit in sf_client.limits().items():
        assert list(limit)[:2] == ["Max", "Remaining"], name
        assert all(type(limit[k]) is int for k in ("Max", "Remaining")) and 0 <= limit["Remaining"] <= limit["Max"]
        apps = [key for key in limit if key not in ("Max", "Remaining")]
        assert apps == (list(CONNECTED_APPS) if name in PER_APP_LIMITS else []), name
        assert all(limit[app] == {"Max": 0, "Remaining": 0} for app in apps)


@pytest.mark.parametrize(("name", "maximum"), DEVELOPER_EDITION_MAX)
def test_developer_edition_numbers(sf_client, name, maximum):
    assert sf_client.limits()[name]["Max"] == maximum


def test_the_default_day_is_a_developer_editions_15000_requests():
    with run_emulator(in_process=True, rows={"Opportunity": 10}) as info, emulator_session(info) as http:
        sf = Salesforce(instance_url=info.instance_url, session_id=info.access_token, session=http)
        first = sf.limits()["DailyApiRequests"]
        assert first["Max"] == DEVELOPER_EDITION_API_REQUESTS
        assert sf.api_usage["api-usage"].total == DEVELOPER_EDITION_API_REQUESTS
        sf.query("SELECT Id FROM Account LIMIT 1")
        second = sf.limits()["DailyApiRequests"]
        assert second["Remaining"] == first["Remaining"] - 2  # the query and this read
        assert sf.api_usage["api-usage"].used == DEVELOPER_EDITION_API_REQUESTS - second["Remaining"]


def test_bulk_work_counts_down_its_limits(emulator_reset, sf_client):
    before = sf_client.limits()
    list(sf_client.bulk2.Lead.query("SELECT Id FROM Lead LIMIT 1", wait=0))
    sf_client.bulk.Lead.query("SELECT Id FROM Lead LIMIT 1", wait=0)
    after = sf_client.limits()
    for name in ("DailyBulkV2QueryJobs", "DailyBulkApiBatches"):
        assert after[name]["Remaining"] == before[name]["Remaining"] - 1, name
