"""``python -m configs discover <Object> ...``: a ready registry entry from the org's describe, to paste.

Adding a custom object should take a minute, not an afternoon of reading describe JSON: the entry lists the fields
with their types as comments, the columns QA should require, a suggested ``group_by`` and ``metrics``, and the
cursor when the object has no SystemModstamp. It connects exactly as a run does (``.env``, else the embedded
emulator). The core (describe dict -> entry text) is pure; ``main`` is the only part that talks to Salesforce.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from configs.salesforce_objects import CURSOR_CANDIDATES
from utils.sf_types import COMPOUND_TYPES, NUMERIC_TYPES, is_known_type

Field = Mapping[str, Any]  # one entry of a describe's ``fields``

GROUP_BY_MAX = 2            # summaries grouped by more than two columns are rarely read
GROUP_BY_MAX_VALUES = 10    # a picklist with more active values makes a long, thin summary
LONG_TEXT = 255             # textareas longer than this are prose, not something to group, check or sum
# In the default list, fields that say nothing about the record: the sync reads IsDeleted itself (deleted rows
# leave the replica), and LastViewed/LastReferenced describe the integration user, not the record.
NOT_USEFUL = frozenset({"IsDeleted", "LastViewedDate", "LastReferencedDate"})
# Aggregations suggested per numeric type: a sum of percentages means nothing.
METRICS_BY_TYPE = {"percent": ("mean", "max")}
METRICS_DEFAULT = ("sum", "mean", "max")
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class EntryPlan:
    """What the entry will say, before it is formatted: the decisions, testable without parsing text."""

    object_name: str
    fields: tuple[Field, ...]
    required: tuple[str, ...]
    group_by: tuple[Field, ...]
    metrics: dict[str, tuple[str, ...]]
    cursor: str | None  # what the registry will sync on (ObjectSpec.cursor: the first CURSOR_CANDIDATES listed)
    full_sync: bool     # no cursor at all: every run pulls the whole object
    left_out: dict[str, tuple[str, ...]]  # reason -> field names not listed


# ------------------------------------------------------------------------------------------------ field rules
def _type(field: Field) -> str:
    return str(field.get("type", "")).lower()


def _active_values(field: Field) -> int:
    return sum(1 for v in field.get("picklistValues") or () if v.get("active", True))


def skip_reason(field: Field, *, every_field: bool) -> str | None:
    """Why ``field`` is not listed, or None. ``every_field`` (``--all``) keeps all but what cannot be extracted."""
    sf_type = _type(field)
    if field.get("deprecatedAndHidden") or field.get("queryable") is False:
        return "not queryable"
    if sf_type in COMPOUND_TYPES:
        return "compound (its component fields are listed)"
    if sf_type == "base64":
        return "base64 (file bodies; Bulk 2.0 cannot select them)"
    if not is_known_type(sf_type):
        return "a type the pipeline cannot read (utils/sf_types.py)"
    if every_field:
        return None
    if sf_type == "textarea" and int(field.get("length") or 0) > LONG_TEXT:
        return f"long text (over {LONG_TEXT} characters; --all lists it)"
    if field.get("name") in NOT_USEFUL:
        return "not about the record (--all lists them)"
    return None


def type_comment(field: Field) -> str:
    """``string(80)``, ``reference -> Account``, ``picklist, 4 values``, ``formula: currency(18,2)``, ..."""
    sf_type = _type(field)
    if sf_type == "reference":
        text = "reference -> " + ", ".join(field.get("referenceTo") or ["?"])
    elif sf_type in ("picklist", "multipicklist"):
        count = _active_values(field)
        text = f"{sf_type}, {count} value{'' if count == 1 else 's'}"
    elif sf_type in ("currency", "double", "percent"):
        text = f"{sf_type}({field.get('precision', 0)},{field.get('scale', 0)})"
    elif sf_type in ("string", "textarea", "email", "phone", "url", "combobox", "encryptedstring"):
        text = f"{sf_type}({field.get('length', 0)})"
    else:
        text = sf_type
    notes = [note for key, note in (("autoNumber", "auto-number"), ("externalId", "external id")) if field.get(key)]
    if field.get("compoundFieldName"):
        notes.append(f"part of {field['compoundFieldName']}")
    text = ", ".join([text, *notes])
    return f"formula: {text}" if field.get("calculated") else text


# ---------------------------------------------------------------------------------------------- entry choices
def suggest_group_by(fields: Sequence[Field]) -> tuple[Field, ...]:
    """The first two single-select picklists, in describe order, with 2 to 10 active values.

    Few values keep a summary short enough to read; describe order puts an object's main picklists (StageName,
    Status) and a custom object's fields in the order they were created. Address components (geocode accuracy)
    and multi-select picklists (one value is several groups) are left out.
    """
    fit = [f for f in fields if _type(f) == "picklist" and not f.get("compoundFieldName")
           and 2 <= _active_values(f) <= GROUP_BY_MAX_VALUES]
    return tuple(fit[:GROUP_BY_MAX])


def suggest_metrics(fields: Sequence[Field]) -> dict[str, tuple[str, ...]]:
    """``Id: count`` and aggregations for every numeric field (not address coordinates: a sum of latitudes...)."""
    metrics: dict[str, tuple[str, ...]] = {"Id": ("count",)}
    for f in fields:
        if _type(f) in NUMERIC_TYPES and not f.get("compoundFieldName"):
            metrics[f["name"]] = METRICS_BY_TYPE.get(_type(f), METRICS_DEFAULT)
    return metrics


def choose_cursor(names: Sequence[str]) -> tuple[str | None, bool]:
    """(the cursor the registry will pick from these fields, whether only full pulls are possible): SystemModstamp,
    LastModifiedDate, then CreatedDate (insert-only objects such as ``*History``); ``ObjectSpec.cursor`` owns
    the rule, so the entry never needs a ``cursor_field``."""
    cursor = next((name for name in CURSOR_CANDIDATES if name in names), None)
    return cursor, cursor is None


def plan_entry(describe: Mapping[str, Any], *, every_field: bool = False) -> EntryPlan:
    """The entry's decisions for one describe; ``every_field`` lists every extractable field (``--all``)."""
    fields: list[Field] = []
    left_out: dict[str, list[str]] = {}
    for f in describe.get("fields") or ():
        reason = skip_reason(f, every_field=every_field)
        if reason is None:
            fields.append(f)
        else:
            left_out.setdefault(reason, []).append(f["name"])
    cursor, full = choose_cursor([f["name"] for f in fields])
    # booleans are always nillable=false in describe, so requiring them checks nothing
    required = tuple(f["name"] for f in fields
                     if f.get("nillable") is False and f.get("createable") and _type(f) != "boolean")
    return EntryPlan(object_name=str(describe["name"]), fields=tuple(fields), required=required,
                     group_by=suggest_group_by(fields), metrics=suggest_metrics(fields), cursor=cursor,
                     full_sync=full, left_out={k: tuple(v) for k, v in left_out.items()})


# ------------------------------------------------------------------------------------------------- formatting
INDENT = " " * 4  # entries sit one level deep in SALESFORCE_OBJECTS_RAW


def _tuple_text(names: Sequence[str]) -> str:
    return "(" + ", ".join(f'"{n}"' for n in names) + ("," if len(names) == 1 else "") + ")"


def _commented_lines(items: Sequence[tuple[str, str]], indent: str) -> list[str]:
    """``"code",  # comment`` lines with the comments aligned."""
    width = max((len(code) for code, _ in items), default=0)
    return [f"{indent}{code:<{width}}  # {comment}" if comment else f"{indent}{code}" for code, comment in items]


def _left_out_lines(left_out: Mapping[str, Sequence[str]], indent: str) -> list[str]:
    lines = [f"{indent}# not listed:"]
    for reason, names in left_out.items():
        lines += textwrap.wrap(f"{reason}: {', '.join(names)}", width=112 - len(indent),
                               initial_indent=f"{indent}#   ", subsequent_indent=f"{indent}#     ")
    return lines


def render_entry(plan: EntryPlan) -> str:
    """The entry as Python source, to paste into ``SALESFORCE_OBJECTS_RAW`` (valid for ``validate_registry``)."""
    i1, i2, i3 = INDENT, INDENT * 2, INDENT * 3
    lines = [f'{i1}"{plan.object_name}": {{', f'{i2}"fields": (']
    lines += _commented_lines([(f'"{f["name"]}",', type_comment(f)) for f in plan.fields], i3)
    lines.append(f"{i2}),")
    if plan.left_out:
        lines += _left_out_lines(plan.left_out, i2)
    settings: list[tuple[str, str]] = []
    if plan.required:
        settings.append((f'"required": {_tuple_text(plan.required)},', "createable, nillable=false"))
    if plan.group_by:
        counts = " and ".join(str(_active_values(f)) for f in plan.group_by)
        settings.append((f'"group_by": {_tuple_text([f["name"] for f in plan.group_by])},',
                         f"picklist{'s' if len(plan.group_by) > 1 else ''} with {counts} active values"))
    if plan.full_sync:
        settings.append(('"sync_mode": "full",', "no SystemModstamp, LastModifiedDate or CreatedDate: every run "
                                                 "pulls the whole object"))
    lines += [f"{i2}{code}  # {comment}" for code, comment in settings]  # not aligned: group_by lines can be long
    if plan.cursor and plan.cursor != CURSOR_CANDIDATES[0]:
        lines.append(f"{i2}# incremental on {plan.cursor}: this object has no SystemModstamp")
    lines.append(f'{i2}"metrics": {{')
    lines += _commented_lines([(f'"{name}": {_tuple_text(aggs)},', "") for name, aggs in plan.metrics.items()], i3)
    lines += [f"{i2}}},", f"{i1}}},"]
    return "\n".join(lines)


def build_entry(describe: Mapping[str, Any], *, every_field: bool = False) -> str:
    """Describe dict in, registry entry text out: the whole pure core."""
    return render_entry(plan_entry(describe, every_field=every_field))


# ------------------------------------------------------------------------------------------------------- I/O
class UnknownObjectError(LookupError):
    """The org has no object of that name, or the integration user cannot see it."""


def unknown_object_message(object_name: str) -> str:
    return (f"{object_name}: the org has no object of that name, or the integration user cannot see it; check the "
            "API name (not the label; custom objects end in __c) and the user's access to the object")


def fetch_describe(object_name: str) -> dict[str, Any]:
    """The object's describe on the open source (``utils.source``), transient errors retried as a run does."""
    from simple_salesforce.exceptions import SalesforceError, SalesforceResourceNotFound

    from utils.sf_errors import error_label_of, error_message_of, retry_transient
    from utils.source import get_connection

    if not _API_NAME.fullmatch(object_name):
        msg = f"{object_name!r}: not an API name (letters, digits and underscores, e.g. Invoice__c); check the spelling"
        raise UnknownObjectError(msg)
    conn = get_connection()
    try:
        describe = retry_transient(lambda: getattr(conn.sf, object_name).describe(), conn.shared.retry,
                                   what=f"the {object_name} describe")
    except SalesforceResourceNotFound:
        raise UnknownObjectError(unknown_object_message(object_name)) from None
    except SalesforceError as err:  # e.g. 403: not transient (those were retried), so say what Salesforce said
        msg = (f"{object_name}: Salesforce refused the describe ({error_label_of(err)}: {error_message_of(err)}); "
               "check the integration user's access to the object")
        raise UnknownObjectError(msg) from None
    if not describe or describe.get("queryable") is False:
        raise UnknownObjectError(f"{object_name}: the org says it cannot be queried; it cannot be extracted")
    return dict(describe)


def main(argv: Sequence[str] | None = None) -> int:
    """Print one entry per object; 2 when an object is unknown (the others are still printed), 1 on a setup error."""
    from utils.errors import PipelineError
    from utils.source import pipeline_source

    parser = argparse.ArgumentParser(prog="python -m configs discover", description=__doc__.splitlines()[0])
    parser.add_argument("objects", nargs="+", metavar="Object", help="API names, e.g. Invoice__c Account")
    parser.add_argument("--all", dest="every_field", action="store_true",
                        help="every field that can be extracted, not the useful subset")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # which source: on stderr, stdout stays pasteable
    status = 0
    try:
        with pipeline_source():
            for name in args.objects:
                try:
                    print(build_entry(fetch_describe(name), every_field=args.every_field), flush=True)
                except UnknownObjectError as err:
                    print(err, file=sys.stderr)
                    status = 2
    except PipelineError as err:  # bad .env, refused login, outage: the one line the pipeline would give
        print(err, file=sys.stderr)
        return 1
    return status
