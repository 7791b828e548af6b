"""What the incremental-sync tests share: a client on the session emulator, the org's truth, the replica."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from configs.salesforce_objects import ObjectSpec
from tasks.extract import ExtractOptions, extract_object
from tasks.extract_plan import resolve_extract_plan
from tasks.sync import sync_object
from utils.connection import SalesforceConnection
from utils.paths import build_sync_paths
from utils.raw_frame import scan_dataset
from utils.replica_layers import scan_replica
from utils.settings import Credentials
from utils.sf_errors import RetryPolicy

FAST = ExtractOptions(retry=RetryPolicy(backoff_base_seconds=0.01))
# prepended to the run ids of ``sync`` and ``live_records``: set by tests whose runs must not share cached describes
RUN_PREFIX = ""


def connect(info) -> SalesforceConnection:
    """The pipeline's real client on a running emulator, through the access-token flow (as a real org)."""
    creds = Credentials(flow="access_token", instance_url=info.instance_url, access_token=info.access_token,
                        ca_bundle=info.ca_bundle)
    return SalesforceConnection(creds, source="emulator")


@pytest.fixture()
def conn(emulator_reset, monkeypatch) -> SalesforceConnection:
    """The real client on the session emulator, reset after the test; this test's run ids are its own (a describe
    is cached per run id, as every real run's are unique)."""
    monkeypatch.setattr(sys.modules[__name__], "RUN_PREFIX", uuid.uuid4().hex[:6].upper())
    return connect(emulator_reset)


@pytest.fixture(params=["one range", "key ranges"])
def key_ranges(request, monkeypatch) -> str:
    """A schema change and a refresh join the pull with the base whole, or one key range at a time as on an object
    of millions of records: row groups of 16 records (the backfill writes the base so) and ranges of 32."""
    from tasks import replica_store

    if request.param == "key ranges":
        monkeypatch.setattr(replica_store, "ROW_GROUP_ROWS", 16)
        monkeypatch.setattr(replica_store, "RANGE_ROWS", 32)
    return request.param


def ranges_of(name: str, data_root: Path) -> int:
    """How many key ranges the object's base is split into."""
    from tasks.replica_store import KeyRanges

    return len(KeyRanges.of_base(build_sync_paths(name, data_root=data_root).replica, "Id").bounds) + 1


def live_records(conn: SalesforceConnection, name: str, tmp_path: Path, options: ExtractOptions = FAST) -> pl.DataFrame:
    """The org's current records, through a plain full extract (query, not queryAll), of the registry's fields
    (read at call time: ``with_spec`` may have swapped the entry)."""
    import configs.salesforce_objects as registry

    (item,) = resolve_extract_plan([name], registry=registry.SALESFORCE_OBJECTS)
    result = extract_object(item, run_id=RUN_PREFIX + "TRUTH", connection=conn, options=options,
                            data_root=tmp_path / "truth")
    return scan_dataset(Path(result.raw_csv)).collect().sort("Id")


def replica_of(name: str, data_root: Path) -> pl.DataFrame:
    """The replica's live records as every reader sees them (base and overlay, see utils/replica_layers)."""
    return scan_replica(build_sync_paths(name, data_root=data_root).replica).collect().sort("Id")


def sync(conn: SalesforceConnection, name: str, data_root: Path, run_id: str, *, options: ExtractOptions = FAST,
         **kw) -> dict[str, Any]:
    """One sync, as the dict ``sync_salesforce_object`` returns (the extract's fields, mode, dataset, sync)."""
    return sync_object(name, run_id=RUN_PREFIX + run_id, connection=conn, options=options, data_root=data_root,
                       **kw).as_dict()


def with_spec(monkeypatch, name: str, **changes: Any) -> None:
    """Run with one registry entry changed or added (the registry is frozen: swap the mapping in every module that
    imported it)."""
    import sys

    import configs.salesforce_objects as registry

    current = registry.SALESFORCE_OBJECTS
    patched = dict(current)
    patched[name] = patched[name].model_copy(update=changes) if name in patched else ObjectSpec(**changes)
    for module in list(sys.modules.values()):
        if getattr(module, "SALESFORCE_OBJECTS", None) is current:
            monkeypatch.setattr(module, "SALESFORCE_OBJECTS", patched)
