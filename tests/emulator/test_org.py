"""The emulated org: ids, deterministic generation, schema coverage of the registry, record writes."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from configs.salesforce_objects import SALESFORCE_OBJECTS
from emulator.generate import epoch_for
from emulator.ids import make_ids
from emulator.org import OBJECT_ORDER, RecordError, build_org, parse_rows, resolve_sizes
from emulator.render import resolve_path
from emulator.schema import OBJECTS

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def org():
    return build_org(seed=7, scale="small", rows={"User": 20, "Account": 300, "Contact": 900, "Opportunity": 1500,
                                                   "Lead": 500, "Case": 600})


def _reference_checksum(id15: str) -> str:
    # written independently of emulator.ids: reverse each 5-char chunk into a binary number
    out = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = "".join("1" if c.isupper() else "0" for c in reversed(chunk))
        out += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[int(bits, 2)]
    return out


def test_ids_have_prefix_valid_checksum_and_are_case_insensitively_unique():
    ids = make_ids("00Q", np.arange(0, 300_000, 7)).to_list()
    assert all(len(i) == 18 and i.startswith("00Q") for i in ids)
    assert all(i[15:] == _reference_checksum(i[:15]) for i in ids)
    assert len({i.lower() for i in ids}) == len(ids)
    assert make_ids("001", np.array([0]))[0] == "001EM0000000001YAA"


def test_same_seed_gives_identical_frames_and_another_seed_does_not(org):
    again = build_org(seed=7, scale="small", rows=dict(org.spec.sizes))
    other = build_org(seed=8, scale="small", rows=dict(org.spec.sizes))
    for name in OBJECT_ORDER:
        assert org.frame(name).equals(again.frame(name)), name
    assert not org.frame("Account").equals(other.frame("Account"))


def test_changing_one_object_size_leaves_the_others_unchanged(org):
    bigger = build_org(seed=7, scale="small", rows={**org.spec.sizes, "Opportunity": 4000})
    for name in ("User", "Group", "Account", "Contact", "Case"):
        assert org.frame(name).equals(bigger.frame(name)), name
    # a converted Lead points at an Opportunity: that one column follows the Opportunity count
    converted = "ConvertedOpportunityId"
    assert org.frame("Lead").drop(converted).equals(bigger.frame("Lead").drop(converted))
    assert bigger.frame("Opportunity").height == 4000


def test_lookups_point_at_existing_parents_and_some_are_null(org):
    parents = {"OwnerId": ("User", "Group"), "AccountId": ("Account",), "ContactId": ("Contact",)}
    for name in OBJECT_ORDER:
        frame = org.frame(name)
        for column, targets in parents.items():
            if column not in frame.columns:
                continue
            ids = frame[column].drop_nulls()
            parent_ids = pl.concat([org.frame(t)["Id"] for t in targets])
            assert ids.is_in(parent_ids.implode()).all(), f"{name}.{column}"
    assert org.frame("Contact")["AccountId"].null_count() > 0
    assert org.frame("Case")["ContactId"].null_count() > 0


def test_generated_values_cover_the_awkward_cases(org):
    accounts = org.frame("Account")
    text = pl.concat([accounts["Name"], accounts["Description"].drop_nulls()]).to_list()
    assert any("," in t for t in text) and any('"' in t for t in text) and any("\n" in t for t in text)
    assert any("株式会社" in t for t in text)
    assert accounts["Industry"].null_count() > 0
    deleted = pl.concat([org.frame(n)["IsDeleted"] for n in OBJECT_ORDER if n not in ("User", "Group")]).mean()
    assert 0.003 < deleted < 0.03
    assert "IsDeleted" not in org.frame("User").columns  # users are deactivated, never deleted


def test_datetimes_are_utc_milliseconds_in_the_past_of_the_seed_epoch(org):
    epoch = epoch_for(7)
    for name in OBJECT_ORDER:
        frame = org.frame(name)
        assert frame.schema["SystemModstamp"] == pl.Datetime("ms", "UTC")
        assert frame["SystemModstamp"].max() <= epoch
        assert (frame["CreatedDate"] <= frame["LastModifiedDate"]).all()
        assert (frame["LastModifiedDate"] <= frame["SystemModstamp"]).all()


def test_derived_fields_are_consistent(org):
    opp = org.frame("Opportunity")
    won = opp.filter(pl.col("StageName") == "Closed Won")
    assert won["IsWon"].all() and won["IsClosed"].all() and (won["Probability"] == 100.0).all()
    cases = org.frame("Case")
    assert (cases["IsClosed"] == cases["ClosedDate"].is_not_null()).all()
    assert cases["CaseNumber"][0] == "00000001"
    contacts = org.frame("Contact").filter(pl.col("FirstName").is_not_null())
    assert (contacts["Name"] == contacts["FirstName"] + " " + contacts["LastName"]).all()


def test_every_registry_field_exists_in_the_emulated_schema():
    for name, spec in SALESFORCE_OBJECTS.items():
        for path in spec.fields:
            objects, field = resolve_path(name, tuple(path.split(".")))
            assert field.name == path.split(".")[-1], f"{name}.{path}"


def test_every_non_compound_field_has_a_column():
    org = build_org(rows={n: 3 for n in OBJECT_ORDER})
    for name, obj in OBJECTS.items():
        expected = [f.name for f in obj.fields if not f.is_compound]
        assert org.frame(name).columns == expected


def test_create_update_delete_undelete_purge():
    org = build_org(rows={"User": 3, "Account": 5, "Contact": 0, "Opportunity": 0, "Lead": 0, "Case": 0})
    new_id = org.create("Account", {"name": "Zoë's \"new\", account", "AnnualRevenue": 12}, NOW)
    row = org.get("Account", new_id)
    assert row["Name"] == "Zoë's \"new\", account" and row["AnnualRevenue"] == 12.0
    assert row["SystemModstamp"] == NOW.replace(microsecond=0)  # stored in whole seconds
    assert row["OwnerId"] == org.frame("User")["Id"][0]
    assert org.frame("Account")["Id"][-1] == new_id  # appended: natural order stays stable for paging
    org.update("Account", new_id, {"Industry": "Banking"}, NOW.replace(year=2027))
    assert org.get("Account", new_id)["Industry"] == "Banking"
    assert org.get("Account", new_id)["LastModifiedDate"].year == 2027
    org.delete("Account", new_id, NOW)
    with pytest.raises(RecordError) as deleted:
        org.get("Account", new_id)
    assert deleted.value.error_code == "ENTITY_IS_DELETED"
    org.undelete(new_id, NOW)
    assert org.get("Account", new_id)["IsDeleted"] is False
    org.purge(new_id)
    assert new_id not in org.frame("Account")["Id"].to_list()
    org.reset()
    assert org.frame("Account").height == 5


@pytest.mark.parametrize(("values", "code"), [
    ({"Industry": "Banking"}, "REQUIRED_FIELD_MISSING"),
    ({"Name": "x", "NoSuchField": 1}, "INVALID_FIELD"),
    ({"Name": "x", "CreatedDate": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ({"Name": "x", "NumberOfEmployees": "many"}, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
])
def test_bad_writes_are_refused_like_salesforce(values, code):
    org = build_org(rows={n: 2 for n in OBJECT_ORDER})
    with pytest.raises(RecordError) as err:
        org.create("Account", values, NOW)
    assert err.value.error_code == code and err.value.status == 400


def test_rows_option_parsing_and_validation():
    assert parse_rows("Opportunity=10, account=3") == {"Opportunity": 10, "account": 3}
    assert resolve_sizes("small", {"account": 3})["Account"] == 3
    with pytest.raises(ValueError, match="Object=N"):
        parse_rows("Opportunity")
    with pytest.raises(ValueError, match="Widget"):
        resolve_sizes("small", {"Widget": 1})
    with pytest.raises(ValueError, match="unknown scale"):
        resolve_sizes("huge", None)
