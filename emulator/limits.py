"""``GET /services/data/vXX.X/limits/``: the limits of a Developer Edition org, as a real one lists them.

Every limit is ``{"Max": n, "Remaining": n}``, keys in alphabetical order; a few carry one more entry per connected
app, each ``{"Max": 0, "Remaining": 0}`` on an org without per-app quotas. The key set and the Developer Edition
numbers come from the REST API guide's example and a captured Developer Edition answer (``DailyApiRequests`` 15,000,
``DataStorageMB`` 5, ``FileStorageMB`` 20, ``SingleEmail`` 15); ``PermissionSetsAssigned`` and
``MonthlyPlatformEventsUsageEntitlement`` are newer keys whose Developer Edition numbers are unverified. Only what
the emulator meters counts down: API requests, Bulk API 1.0 batches and Bulk API 2.0 query jobs.
"""

from __future__ import annotations

from typing import Any

DEVELOPER_EDITION: dict[str, int] = {
    "ActiveScratchOrgs": 3,
    "AnalyticsExternalDataSizeMB": 40_960,
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentEinsteinDataInsightsStoryCreation": 5,
    "ConcurrentEinsteinDiscoveryStoryCreation": 2,
    "ConcurrentSyncReportRuns": 20,
    "DailyAnalyticsDataflowJobExecutions": 60,
    "DailyAnalyticsUploadedFilesSizeMB": 51_200,
    "DailyApiRequests": 15_000,
    "DailyAsyncApexExecutions": 250_000,
    "DailyAsyncApexTests": 500,
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DailyBulkV2QueryJobs": 10_000,
    "DailyDeliveredPlatformEvents": 10_000,
    "DailyDurableGenericStreamingApiEvents": 10_000,
    "DailyDurableStreamingApiEvents": 10_000,
    "DailyEinsteinDataInsightsStoryCreation": 1_000,
    "DailyEinsteinDiscoveryPredictAPICalls": 50_000,
    "DailyEinsteinDiscoveryPredictionsByCDC": 500_000,
    "DailyEinsteinDiscoveryStoryCreation": 100,
    "DailyGenericStreamingApiEvents": 10_000,
    "DailyScratchOrgs": 6,
    "DailyStandardVolumePlatformEvents": 10_000,
    "DailyStreamingApiEvents": 10_000,
    "DailyWorkflowEmails": 1_890,
    "DataStorageMB": 5,
    "DurableStreamingApiConcurrentClients": 20,
    "FileStorageMB": 20,
    "HourlyAsyncReportRuns": 1_200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5_000,
    "HourlyDashboardStatuses": 999_999_999,
    "HourlyLongTermIdMapping": 100_000,
    "HourlyManagedContentPublicRequests": 50_000,
    "HourlyODataCallout": 1_000,
    "HourlyPublishedPlatformEvents": 50_000,
    "HourlyPublishedStandardVolumePlatformEvents": 1_000,
    "HourlyShortTermIdMapping": 100_000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 1_000,
    "MassEmail": 10,
    "MonthlyEinsteinDiscoveryStoryCreation": 500,
    "MonthlyPlatformEventsUsageEntitlement": 300_000,
    "Package2VersionCreates": 6,
    "Package2VersionCreatesWithoutValidation": 500,
    "PermissionSetsAssigned": 1_500,
    "PrivateConnectOutboundCalloutHourlyLimitMB": 0,
    "SingleEmail": 15,
    "StreamingApiConcurrentClients": 20,
}
# the limits a real org also breaks down by connected app, and the apps a Developer Edition lists
PER_APP_LIMITS = frozenset({"DailyApiRequests", "DailyBulkApiBatches", "DailyGenericStreamingApiEvents",
                            "DailyStreamingApiEvents"})
CONNECTED_APPS = ("Ant Migration Tool", "Dataloader Bulk", "Dataloader Partner", "Force.com IDE", "SFIntegration",
                  "Salesforce Mobile Dashboards", "Salesforce Touch", "Salesforce for Outlook", "Workbench")


def limits_body(*, api_requests: tuple[int, int], bulk_batches: int, bulk_query_jobs: int) -> dict[str, Any]:
    """The ``/limits`` JSON: ``api_requests`` is (used, allowance); the Bulk counts are what was used today."""
    used_api, api_max = api_requests
    maxima = {**DEVELOPER_EDITION, "DailyApiRequests": api_max}
    used = {"DailyApiRequests": used_api, "DailyBulkApiBatches": bulk_batches, "DailyBulkV2QueryJobs": bulk_query_jobs}
    body: dict[str, Any] = {}
    for name in sorted(maxima):
        entry: dict[str, Any] = {"Max": maxima[name], "Remaining": max(maxima[name] - used.get(name, 0), 0)}
        if name in PER_APP_LIMITS:
            entry.update((app, {"Max": 0, "Remaining": 0}) for app in CONNECTED_APPS)
        body[name] = entry
    return body
