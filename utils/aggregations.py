"""Which registry aggregation suits which column type: the one rule processing and the describe-time check share.

Written on Salesforce describe types, not Polars dtypes, so the extract can apply it to a describe before any
query; processing applies it to the raw extract's schema sidecar, which carries
the same types. Semantics of each aggregation are documented in ``tasks/process.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from utils.sf_types import NUMERIC_TYPES

# Salesforce types read as numbers, Boolean, Date or Datetime (utils/sf_types); every other known type is text.
_KIND_BY_SF_TYPE: dict[str, str] = {
    **dict.fromkeys(NUMERIC_TYPES, "numeric"), "boolean": "boolean", "date": "date", "datetime": "datetime",
}
_EVERY_TYPE = frozenset({"count", "n_unique", "null_count", "min", "max"})
# Which aggregations each kind of column accepts; everything else is a configuration mistake.
ALLOWED_AGGREGATIONS: dict[str, frozenset[str]] = {
    "numeric": _EVERY_TYPE | {"sum", "mean", "median", "std"},
    "boolean": _EVERY_TYPE | {"sum", "mean"},
    "text": _EVERY_TYPE,
    "date": _EVERY_TYPE,
    "datetime": _EVERY_TYPE,
}
_ADVICE = {
    "boolean": "use sum (number of trues) or mean (share of trues)",
    "text": "use count, n_unique, null_count, min or max, or choose a numeric column",
    "date": "use count, n_unique, null_count, min or max",
    "datetime": "use count, n_unique, null_count, min or max",
}


def column_kind(sf_type: str) -> str:
    """``numeric``, ``boolean``, ``date``, ``datetime`` or ``text`` for a (known) Salesforce field type."""
    return _KIND_BY_SF_TYPE.get(sf_type.lower(), "text")


def find_misfit_metrics(object_name: str, metrics: Mapping[str, Sequence[str]],
                        sf_types: Mapping[str, str]) -> list[str]:
    """One line per metric whose aggregation does not apply to its column's type (``sum`` of a text field).

    ``sf_types`` maps column -> Salesforce type; a metric on a column it lacks is left to the caller to report.
    """
    problems: list[str] = []
    for column, aggregations in metrics.items():
        if column not in sf_types:
            continue
        kind = column_kind(sf_types[column])
        problems.extend(
            f"{object_name}.metrics['{column}']: '{aggregation}' does not apply to a {kind} column "
            f"({sf_types[column]}); {_ADVICE[kind]}"
            for aggregation in aggregations if aggregation not in ALLOWED_AGGREGATIONS[kind])
    return problems
