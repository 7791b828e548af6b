"""Generated custom objects (``--custom-objects N``): named and keyed like custom objects, deterministic, absent
from the default org, and to a client (simple-salesforce over HTTPS) a custom object like any other."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from simple_salesforce import Salesforce

from emulator import EmulatorInfo, build_org, emulator_session, run_emulator
from emulator.cli import build_parser, config_from_args, main
from emulator.generated_objects import (
    CUSTOM_FIELDS,
    DEFAULT_ROWS,
    custom_object_names,
    lookup_generated,
    with_custom_objects,
)
from emulator.schema import STANDARD

SMALL = {"User": 10, "Group": 2, "Account": 50, "Contact": 5, "Opportunity": 5, "Lead": 5, "Case": 5}
# what every custom object has before its own fields, in describe order
CUSTOM_OBJECT_STANDARD_FIELDS = ["Id", "OwnerId", "IsDeleted", "Name", "CreatedDate", "CreatedById",
                                 "LastModifiedDate", "LastModifiedById", "SystemModstamp", "LastActivityDate",
                                 "LastViewedDate", "LastReferencedDate"]


def _serve_args(*args: str):
    return config_from_args(build_parser().parse_args(["serve", *args]), env={})


def test_the_default_org_has_no_generated_object():
    assert with_custom_objects(None, 0) == {}
    assert _serve_args().rows == {}
    assert build_org(rows=SMALL).object_names() == list(STANDARD.objects)


def test_custom_objects_n_serves_bench_01_to_n_with_default_rows_and_rows_sets_one_of_them():
    rows = _serve_args("--custom-objects", "3", "--rows", "bench_02__c=7,Account=9").rows
    assert rows == {"Account": 9, "Bench_01__c": DEFAULT_ROWS, "bench_02__c": 7, "Bench_03__c": DEFAULT_ROWS}
    org = build_org(rows={**SMALL, **rows})
    assert org.object_names()[-3:] == ["Bench_01__c", "Bench_02__c", "Bench_03__c"]
    assert [org.frame(n).height for n in custom_object_names(3)] == [DEFAULT_ROWS, 7, DEFAULT_ROWS]


@pytest.mark.parametrize(("name", "prefix"), [("Bench_01__c", "a10"), ("BENCH_10__C", "a19"),
                                              ("Bench_20__c", "a1J"), ("Bench_100__c", "a2b")])
def test_names_and_key_prefixes_follow_the_custom_objects_before_them(name, prefix):
    obj = lookup_generated(name)
    assert obj is not None and obj.name.lower() == name.lower() and obj.key_prefix == prefix


@pytest.mark.parametrize("name", ["Bench_1__c", "Bench_001__c", "Bench_00__c", "Bench_1000__c", "Bench_01",
                                  "Invoice__c"])
def test_other_names_are_not_generated_objects(name):
    assert lookup_generated(name) is None


@pytest.mark.parametrize("count", ["-1", "1000"])
def test_a_count_out_of_range_is_one_clear_line_and_exit_2(count, capsys):
    assert main(["serve", "--custom-objects", count]) == 2
    err = capsys.readouterr().err
    assert f"--custom-objects {count}: use a number from 0 to 999" in err and len(err.strip().splitlines()) == 1


def test_rows_are_deterministic_and_change_no_other_object():
    plain = build_org(rows=SMALL)
    first, second = (build_org(rows=with_custom_objects(SMALL, 2)) for _ in range(2))
    for name in ("Bench_01__c", "Bench_02__c"):
        assert_frame_equal(first.frame(name), second.frame(name))
    assert not first.frame("Bench_01__c")["Amount__c"].equals(first.frame("Bench_02__c")["Amount__c"])
    for name in STANDARD.objects:
        assert_frame_equal(first.frame(name), plain.frame(name))


def test_rows_look_like_a_custom_objects():
    frame = build_org(rows=with_custom_objects(SMALL, 1)).frame("Bench_01__c")
    assert frame.columns == [*CUSTOM_OBJECT_STANDARD_FIELDS, *CUSTOM_FIELDS]
    assert frame["Id"].str.starts_with("a10").all() and frame["Id"].n_unique() == DEFAULT_ROWS
    assert frame["Name"][0] == "Bench 01 000001"
    assert (frame["CreatedDate"] <= frame["LastModifiedDate"]).all()
    assert (frame["LastModifiedDate"] <= frame["SystemModstamp"]).all()
    assert 0 < frame["IsDeleted"].sum() < DEFAULT_ROWS / 10  # a few in the recycle bin
    assert frame["Account__c"].drop_nulls().str.starts_with("001").all()
    assert frame.select(pl.col("LastViewedDate").is_null().all()).item()


@pytest.fixture(scope="module")
def org() -> Iterator[EmulatorInfo]:
    with run_emulator(rows={**SMALL, "Bench_02__c": 40}, custom_objects=2, faults="", living_rate=0,
                      in_process=True) as info:
        yield info


@pytest.fixture()
def sf(org: EmulatorInfo) -> Iterator[Salesforce]:
    with emulator_session(org) as http:
        yield Salesforce(instance_url=org.instance_url, session_id=org.access_token, session=http)


def test_describe_says_custom_object_with_typed_fields(sf: Salesforce):
    described = sf.Bench_01__c.describe()
    assert (described["custom"], described["keyPrefix"], described["labelPlural"]) == (True, "a10", "Bench 01s")
    fields = {f["name"]: f for f in described["fields"]}
    assert list(fields) == [*CUSTOM_OBJECT_STANDARD_FIELDS, *CUSTOM_FIELDS]
    assert {n: fields[n]["type"] for n in ("SystemModstamp", "IsDeleted", "CreatedDate", "Amount__c", "Status__c",
                                           "Is_Active__c", "Due_Date__c", "Note__c")} == {
        "SystemModstamp": "datetime", "IsDeleted": "boolean", "CreatedDate": "datetime", "Amount__c": "currency",
        "Status__c": "picklist", "Is_Active__c": "boolean", "Due_Date__c": "date", "Note__c": "textarea"}
    assert [f["custom"] for f in described["fields"]] == [n.endswith("__c") for n in fields]
    assert (fields["Account__c"]["referenceTo"], fields["Account__c"]["relationshipName"]) == (["Account"],
                                                                                              "Account__r")
    children = {c["relationshipName"]: c for c in sf.Account.describe()["childRelationships"]}
    assert children["Bench_01s__r"]["childSObject"] == "Bench_01__c"
    names = [o["name"] for o in sf.describe()["sobjects"]]
    assert names[-2:] == ["Bench_01__c", "Bench_02__c"]


def test_query_and_query_all_read_the_generated_rows(sf: Salesforce, org: EmulatorInfo):
    expected = build_org(rows=with_custom_objects({**SMALL, "Bench_02__c": 40}, 2)).frame("Bench_02__c")
    live = sf.query_all("SELECT Id, Name, Amount__c, Account__r.Name, SystemModstamp FROM Bench_02__c")
    every = sf.query_all("SELECT Id FROM Bench_02__c", include_deleted=True)
    assert every["totalSize"] == 40
    assert live["totalSize"] == expected.filter(~pl.col("IsDeleted")).height
    record = next(r for r in live["records"] if r["Account__r"] is not None)
    assert record["attributes"]["type"] == "Bench_02__c" and record["SystemModstamp"].endswith(".000+0000")
    assert sf.query("SELECT COUNT() FROM Bench_02__c WHERE Status__c = 'Open'")["totalSize"] == expected.filter(
        ~pl.col("IsDeleted") & (pl.col("Status__c") == "Open")).height


def test_no_generated_key_prefix_is_a_hand_made_optional_objects():
    from emulator.optional_objects import OPTIONAL_OBJECTS

    generated = {lookup_generated(n).key_prefix for n in custom_object_names(999)}  # type: ignore[union-attr]
    assert len(generated) == 999 and generated.isdisjoint(o.key_prefix for o in OPTIONAL_OBJECTS.values())
