"""resolve_extract_plan and custom SOQL checks: pure, no API call."""

from __future__ import annotations

import subprocess
import sys

import pytest

from configs.salesforce_objects import SALESFORCE_OBJECTS
from tasks.extract_plan import count_soql, resolve_extract_plan, split_select_list
from utils.errors import ConfigError


def test_default_plan_covers_every_registry_object_with_its_fields():
    plan = resolve_extract_plan()
    assert [p.object_name for p in plan] == list(SALESFORCE_OBJECTS)
    opp = next(p for p in plan if p.object_name == "Opportunity")
    assert opp.soql == "SELECT " + ", ".join(SALESFORCE_OBJECTS["Opportunity"].fields) + " FROM Opportunity"
    assert opp.columns == SALESFORCE_OBJECTS["Opportunity"].fields and not opp.custom_soql


def test_subset_keeps_order_and_drops_duplicates():
    assert [p.object_name for p in resolve_extract_plan(["Lead", "Account", "Lead"])] == ["Lead", "Account"]


def test_unknown_object_is_rejected_with_the_known_list():
    with pytest.raises(ConfigError, match=r"unknown object\(s\) Widget__c: not in configs/salesforce_objects.py"):
        resolve_extract_plan(["Account", "Widget__c"])


def test_custom_soql_replaces_registry_soql():
    soql = "SELECT Id, StageName, Amount, Probability FROM Opportunity WHERE Amount > 1000 ORDER BY Id"
    (item,) = resolve_extract_plan(["Opportunity"], {"Opportunity": soql})
    assert item.soql == soql and item.custom_soql
    assert item.columns == ("Id", "StageName", "Amount", "Probability")


def test_custom_soql_missing_group_by_and_metric_columns_names_them():
    with pytest.raises(ConfigError) as err:
        resolve_extract_plan(["Opportunity"], {"Opportunity": "SELECT Id, Amount FROM Opportunity"})
    assert str(err.value) == ("Opportunity: custom SOQL does not select StageName (group_by), Probability (metric); "
                              "add them to the SELECT list")


# What the README's custom-SOQL example used to select: enough to process, not enough for strict QA.
WITHOUT_CURSOR = "SELECT Id, Name, StageName, Amount, Probability, CloseDate FROM Opportunity WHERE IsClosed = false"


def test_strict_qa_needs_every_column_qa_requires_named_in_one_error():
    with pytest.raises(ConfigError) as err:
        resolve_extract_plan(["Opportunity"], {"Opportunity": WITHOUT_CURSOR}, strict_qa=True)
    assert str(err.value) == ("Opportunity: custom SOQL does not select SystemModstamp (cursor field); "
                              "add them to the SELECT list")
    with pytest.raises(ConfigError) as err:
        resolve_extract_plan(["Lead"], {"Lead": "SELECT Id, Status FROM Lead"}, strict_qa=True)
    assert str(err.value) == (
        "Lead: custom SOQL does not select IsConverted (group_by), AnnualRevenue (metric), Company (metric), "
        "LastName (required), SystemModstamp (cursor field); add them to the SELECT list")


def test_strict_qa_accepts_a_custom_soql_with_qa_columns_in_any_case():
    soql = WITHOUT_CURSOR.replace("CloseDate", "closedate, systemmodstamp")
    (item,) = resolve_extract_plan(["Opportunity"], {"Opportunity": soql}, strict_qa=True)
    assert item.columns[-1] == "systemmodstamp"
    assert resolve_extract_plan(["Opportunity"], {"Opportunity": WITHOUT_CURSOR})  # advisory QA reports it instead


@pytest.mark.parametrize(
    ("soql", "expected"),
    [
        ("SELECT Id FROM Account", "must select FROM Opportunity"),
        ("Id, Name FROM Opportunity", "must look like 'SELECT <fields> FROM Opportunity"),
        ("SELECT COUNT() FROM Opportunity", "is not a plain field"),
        ("SELECT Id, (SELECT Id FROM OpportunityLineItems) FROM Opportunity", "is not a plain field"),
    ],
)
def test_malformed_custom_soql(soql, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        resolve_extract_plan(["Opportunity"], {"Opportunity": soql})


def test_relationship_paths_and_case_insensitive_keywords():
    soql = "select Id, stagename, Amount, Probability, Owner.Name from Opportunity where IsWon = true"
    (item,) = resolve_extract_plan(["Opportunity"], {"Opportunity": soql})
    assert item.columns[-1] == "Owner.Name"


def test_count_soql_keeps_filter_drops_order_and_limit():
    (item,) = resolve_extract_plan(
        ["Opportunity"],
        {"Opportunity": "SELECT Id, StageName, Amount, Probability FROM Opportunity "
                        "WHERE Amount > 5 ORDER BY Id LIMIT 10"},
    )
    assert count_soql(item) == "SELECT COUNT() FROM Opportunity WHERE Amount > 5"
    (plain,) = resolve_extract_plan(["Account"])
    assert count_soql(plain) == "SELECT COUNT() FROM Account"


def test_split_select_list_respects_parentheses():
    assert split_select_list("Id, FORMAT(Amount), (SELECT Id, Name FROM X)") == [
        "Id", "FORMAT(Amount)", "(SELECT Id, Name FROM X)"]


def test_api_override_is_validated():
    assert {p.api for p in resolve_extract_plan(api="bulk2")} == {"bulk2"}
    with pytest.raises(ConfigError, match="api must be one of"):
        resolve_extract_plan(api="soap")


def test_count_soql_ignores_keywords_inside_string_literals():
    soql = ("SELECT Id, StageName, Amount, Probability FROM Opportunity "
            "WHERE Name = 'Order by LIMIT \\'x\\' offset' AND Amount > 5 ORDER BY Id LIMIT 3")
    (item,) = resolve_extract_plan(["Opportunity"], {"Opportunity": soql})
    assert count_soql(item) == ("SELECT COUNT() FROM Opportunity WHERE Name = 'Order by LIMIT \\'x\\' offset' "
                                "AND Amount > 5")


def test_planning_is_pure_and_loads_no_polars():
    """The plan is made before anything runs (and by tools that only check a config): no 0.2 s Polars import."""
    code = "import sys, tasks.extract_plan; print('polars' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_query_is_narrowed_to_a_cursor_window_after_its_own_filter():
    from datetime import datetime, timezone

    from tasks.extract_plan import halves, window_soql

    start, end = datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2020, 1, 2, 0, 0, 1, tzinfo=timezone.utc)
    assert window_soql("SELECT Id FROM Lead", "SystemModstamp", start, end) == (
        "SELECT Id FROM Lead WHERE SystemModstamp >= 2020-01-01T00:00:00.000Z AND SystemModstamp < "
        "2020-01-02T00:00:01.000Z")
    delta = "SELECT Id FROM Lead WHERE SystemModstamp >= 2019-12-31T00:00:00.000Z"
    assert window_soql(delta, "CreatedDate", start, end).startswith(delta + " AND CreatedDate >= ")
    (low, middle), (middle_again, high) = halves(start, end)
    assert (low, high, middle, middle_again) == (start, end, datetime(2020, 1, 1, 12, 0, 0, tzinfo=timezone.utc),
                                                 middle)


def test_windows_are_halved_while_they_time_out_and_read_in_order():
    from datetime import datetime, timedelta, timezone

    from tasks.extract import QueryTimedOut, read_in_windows
    from utils.errors import RetriableSourceError

    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    end = start + timedelta(hours=8)
    busy = start + timedelta(hours=5, minutes=30)  # a window holding this moment times out unless it is <= 1 h

    def read(low, high):
        if low <= busy < high and high - low > timedelta(hours=1):
            raise QueryTimedOut("QUERY_TIMEOUT")
        return (low, high)

    windows = read_in_windows(read, start, end, what="Lead's query", cursor="SystemModstamp", floor_seconds=60)
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))  # consecutive, no gap or overlap
    assert any(high - low <= timedelta(hours=1) and low <= busy < high for low, high in windows)

    def always(low, high):
        raise QueryTimedOut("QUERY_TIMEOUT")

    with pytest.raises(RetriableSourceError, match=r"^Lead's query: QUERY_TIMEOUT even for the window"):
        read_in_windows(always, start, end, what="Lead's query", cursor="SystemModstamp", floor_seconds=600)
