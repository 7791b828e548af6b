"""Pure data-quality checks: facts or a LazyFrame in, a typed ``CheckResult`` out. No Prefect, no file writes.

Severity convention: a passed check reports ``info``; a failed one reports the check's rating
(see docs/qa.md). Only failed ``error`` results fail the flow, and only in strict mode.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import polars as pl

from configs.salesforce_objects import ObjectSpec
from utils.errors import ConfigError
from utils.sf_types import is_known_type, polars_dtype_for

Severity = Literal["info", "warning", "error"]
SAMPLE_SIZE = 5
TOP_VALUES = 5
# Salesforce text types whose most frequent values say something (ids and blobs do not).
TOP_VALUE_TYPES = frozenset(
    {"string", "picklist", "multipicklist", "combobox", "textarea", "email", "phone", "url"}
)
_ROW = "__qa_row_nr"
TASK_CRASHED = "task_crashed"
TASK_NOT_RUN = "task_not_run"


def readable(value: Any) -> str:
    """A check's observed value or threshold as a person reads it: ``rows 1,980, missing 0``, not a Python repr."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {readable(v) or '-'}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(readable(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one object; every field is JSON-native."""

    object_name: str
    check: str
    passed: bool
    severity: Severity
    observed: Any = None
    threshold: Any = None
    sample_ids: tuple[str, ...] = ()
    message: str = ""
    skipped: bool = False

    @property
    def is_blocking(self) -> bool:
        """A failed, evaluated, error-severity check: what strict mode turns into a failed flow."""
        return not self.passed and not self.skipped and self.severity == "error"

    @property
    def is_crash(self) -> bool:
        """A QA task that raised: not a finding about the data, so it fails the run in every mode."""
        return self.check == TASK_CRASHED

    @property
    def status(self) -> str:
        """``pass``, ``FAIL (error)``, ``FAIL (warning)`` or ``skipped``, as logs and the QA summary show it."""
        if self.skipped:
            return "skipped"
        return "pass" if self.passed else f"FAIL ({self.severity})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sample_ids"] = list(self.sample_ids)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(**{**data, "sample_ids": tuple(data.get("sample_ids", ()))})


def skipped_result(object_name: str, check: str, reason: str, *, severity: Severity = "info") -> CheckResult:
    """A check that was not evaluated, with the reason (e.g. a failed gate)."""
    return CheckResult(object_name, check, passed=False, severity=severity, message=reason, skipped=True)


def crashed_result(object_name: str, task_name: str, reason: str) -> CheckResult:
    """A QA task that raised: its checks did not happen, which fails the run in every mode."""
    message = f"{task_name} crashed ({reason}); see the task run's logs"
    return CheckResult(object_name, TASK_CRASHED, passed=False, severity="error", message=message)


def not_run_result(object_name: str, task_name: str, reason: str) -> CheckResult:
    """A QA task that never started because a task it waits on raised: skipped, as the crash is reported once."""
    return skipped_result(object_name, TASK_NOT_RUN, f"{task_name} did not run ({reason})")


def _graded(object_name: str, check: str, failed: bool, severity: Severity, **fields: Any) -> CheckResult:
    return CheckResult(object_name, check, passed=not failed, severity=severity if failed else "info", **fields)


# --------------------------------------------------------------------------------------------------- gates


def compare_schema(
    spec: ObjectSpec,
    *,
    header: Sequence[str],
    sidecar_columns: Sequence[tuple[str, str]],
    unparseable_columns: Sequence[str] = (),
) -> dict[str, Any]:
    """Registry fields vs sidecar (names, known types) vs CSV header, as a JSON-able schema report."""
    sidecar_names = [name for name, _ in sidecar_columns]
    unknown_types = {name: sf_type for name, sf_type in sidecar_columns if not is_known_type(sf_type)}
    present = set(header)
    required = list(spec.qa_required_columns())
    listed = () if spec.every_field else spec.fields  # fields "*": the describe's list, whatever it holds today
    return {
        "columns": [
            {"name": n, "sf_type": t, "polars_type": None if n in unknown_types else str(polars_dtype_for(t))}
            for n, t in sidecar_columns
        ],
        "missing_required": [c for c in required if c not in present],
        "missing_fields": [c for c in listed if c not in present and c not in required],
        "unexpected_columns": [c for c in header if listed and c not in listed],
        "header_not_in_sidecar": [c for c in header if c not in sidecar_names],
        "sidecar_not_in_header": [c for c in sidecar_names if c not in present],
        "header_order_matches_sidecar": list(header) == sidecar_names,
        "unknown_types": unknown_types,
        "unparseable_columns": list(unparseable_columns),
    }


def schema_conformance(object_name: str, report: Mapping[str, Any]) -> CheckResult:
    """Error when the file cannot be read as described (required/header/type problems); warning for drift."""
    errors = {
        "missing required columns": report["missing_required"],
        "header columns not in the schema sidecar": report["header_not_in_sidecar"],
        "sidecar columns not in the header": report["sidecar_not_in_header"],
        "unknown Salesforce types": [f"{c} ({t})" for c, t in report["unknown_types"].items()],
        "values that do not parse as their type": report["unparseable_columns"],
    }
    if not report["header_order_matches_sidecar"] and not any(errors.values()):
        errors["header order differs from the sidecar"] = ["(same columns, other order)"]
    warnings = {
        "registry fields missing": report["missing_fields"],
        "columns not in the registry": report["unexpected_columns"],
    }
    problems = {k: v for k, v in {**errors, **warnings}.items() if v}
    failed_error = any(errors.values())
    severity: Severity = "error" if failed_error else "warning"
    if problems:
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in problems.items())
        message = f"{object_name}: {detail}"
    else:
        message = f"{object_name}: header, sidecar and registry agree"
    return _graded(object_name, "schema_conformance", bool(problems), severity,
                   observed=problems or None, threshold="no missing, unexpected or mistyped columns",
                   message=message)


def rowcount_sidecar(object_name: str, *, dataset: str, rows: int, expected: int) -> CheckResult:
    """Error when the dataset holds another number of rows than its sidecar recorded when it was written.

    The extract and the sync write the count with the file, so a difference means the file was cut or edited
    afterwards; every check after the gate would otherwise judge a partial dataset as if it were whole.
    """
    failed = rows != expected
    message = (f"{object_name}: {dataset} has {rows} rows but its schema sidecar says {expected}: the file was "
               "truncated or edited after it was written; re-run the extract (full_refresh=True rebuilds a replica)"
               if failed else f"{object_name}: {rows} rows, as its schema sidecar says")
    return _graded(object_name, "rowcount_sidecar", failed, "error", observed=rows, threshold=expected,
                   message=message)


def non_empty(object_name: str, row_count: int) -> CheckResult:
    """Warning (not error) for a headers-only extract: an object can legitimately have no records."""
    failed = row_count == 0
    message = f"{object_name}: headers-only extract (0 rows)" if failed else f"{object_name}: {row_count} rows"
    return _graded(object_name, "non_empty", failed, "warning", observed=row_count, threshold=1, message=message)


# ---------------------------------------------------------------------------------------- quality checks


def _sample_label(primary_key: str) -> pl.Expr:
    """The record's Id, or ``row N`` (1-based data row) when the Id itself is missing."""
    row_label = pl.lit("row ") + (pl.col(_ROW) + 1).cast(pl.Utf8)
    return pl.coalesce(pl.col(primary_key).cast(pl.Utf8), row_label)


def completeness_required(
    object_name: str, frame: pl.LazyFrame, *, required: Sequence[str], primary_key: str
) -> CheckResult:
    """Error when a required column has nulls (Salesforce enforces these, so a null means a broken extract)."""
    columns = [c for c in required if c in frame.collect_schema().names()]
    if not columns:
        return _graded(object_name, "completeness_required", False, "error", observed={}, threshold=0,
                       message=f"{object_name}: no required columns to check")
    counts = frame.select(pl.col(c).null_count() for c in columns).collect().row(0, named=True)
    samples: tuple[str, ...] = ()
    if any(counts.values()):
        has_null = pl.any_horizontal(pl.col(c).is_null() for c in columns)
        sample_frame = frame.with_row_index(_ROW).filter(has_null).select(_sample_label(primary_key))
        samples = tuple(sample_frame.head(SAMPLE_SIZE).collect().to_series())
    with_nulls = {c: n for c, n in counts.items() if n}
    message = (f"{object_name}: nulls in required columns " + ", ".join(f"{c} ({n})" for c, n in with_nulls.items())
               if with_nulls else f"{object_name}: required columns {', '.join(columns)} have no nulls")
    return _graded(object_name, "completeness_required", bool(with_nulls), "error", observed=counts,
                   threshold=0, sample_ids=samples, message=message)


def deduplicate_latest(frame: pl.LazyFrame, *, primary_key: str, cursor_field: str | None) -> pl.LazyFrame:
    """One row per primary key: the latest by ``cursor_field`` (ties, nulls and no cursor: the last in file order).

    Rows without a primary key are kept as they are; they are a completeness problem, not duplicates.
    The result keeps the file order and the input columns.
    """
    indexed = frame.with_row_index(_ROW)
    winners = (
        indexed.filter(pl.col(primary_key).is_not_null())
        .group_by(primary_key)
        .agg(pl.col(_ROW).sort_by([*([cursor_field] if cursor_field else []), _ROW], nulls_last=False).last())
        .select(_ROW)
    )
    keyless = indexed.filter(pl.col(primary_key).is_null()).select(_ROW)
    keep = pl.concat([winners, keyless])
    return indexed.join(keep, on=_ROW, how="semi", maintain_order="left").drop(_ROW)


def uniqueness_primary_key(object_name: str, frame: pl.LazyFrame, *, primary_key: str) -> CheckResult:
    """Warning when the primary key repeats; observed = rows a dedup drops, samples = repeated Ids."""
    keyed = frame.select(pl.col(primary_key)).filter(pl.col(primary_key).is_not_null())
    stats = keyed.select(pl.len().alias("rows"), pl.col(primary_key).n_unique().alias("unique")).collect()
    dropped = int(stats["rows"][0]) - int(stats["unique"][0])
    samples: tuple[str, ...] = ()
    if dropped:
        repeated = (keyed.group_by(primary_key).len().filter(pl.col("len") > 1)
                    .sort(primary_key).head(SAMPLE_SIZE).collect())
        samples = tuple(str(v) for v in repeated[primary_key])
    message = (f"{object_name}: {dropped} duplicate row(s) on {primary_key}, e.g. {', '.join(samples)}"
               if dropped else f"{object_name}: {primary_key} is unique")
    return _graded(object_name, "uniqueness_primary_key", dropped > 0, "warning", observed=dropped,
                   threshold=0, sample_ids=samples, message=message)


def _change_pct(previous: int, current: int) -> float:
    if previous == 0:  # any growth from zero is unbounded, so it exceeds every finite tolerance
        return 0.0 if current == 0 else math.inf
    return (current - previous) / previous * 100.0


def rowcount_drift(
    object_name: str, *, current: int, previous: int | None, tolerance_pct: float, note: str = ""
) -> CheckResult:
    """Warning when the row count moved more than ``tolerance_pct`` % since the previous run."""
    suffix = f" ({note})" if note else ""
    if previous is None:
        return CheckResult(object_name, "rowcount_drift", passed=True, severity="info",
                           observed={"current": current, "previous": None, "change_pct": None},
                           threshold=tolerance_pct,
                           message=f"{object_name}: no baseline yet, {current} rows recorded{suffix}")
    change_pct = _change_pct(previous, current)
    failed = abs(change_pct) > tolerance_pct
    shown = "new rows after an empty run" if math.isinf(change_pct) else f"{change_pct:+.1f}%"
    observed = {"current": current, "previous": previous,
                "change_pct": None if math.isinf(change_pct) else round(change_pct, 3)}
    verdict = f"beyond the ±{tolerance_pct:g}% tolerance" if failed else f"within ±{tolerance_pct:g}%"
    return _graded(object_name, "rowcount_drift", failed, "warning", observed=observed, threshold=tolerance_pct,
                   message=f"{object_name}: {previous} -> {current} rows ({shown}), {verdict}{suffix}")


# ------------------------------------------------------------------------------------------- profiling


def _jsonable(value: Any) -> Any:
    """Dates/datetimes as ISO strings, NaN/inf as None, so the profile is plain JSON."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text.replace("+00:00", "Z")
    return str(value)


def _column_stats_exprs(name: str, dtype: pl.DataType) -> list[pl.Expr]:
    col = pl.col(name)
    exprs = [col.null_count().alias(f"{name}|nulls"), col.drop_nulls().n_unique().alias(f"{name}|distinct")]
    if dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Utf8:
        exprs += [col.min().alias(f"{name}|min"), col.max().alias(f"{name}|max")]
    if dtype.is_numeric():
        exprs += [col.mean().alias(f"{name}|mean"), col.std().alias(f"{name}|std")]
    return exprs


def profile_frame(frame: pl.LazyFrame, sf_types: Mapping[str, str]) -> dict[str, Any]:
    """Per column: types, nulls, distinct count, min/max, mean/std (numbers), earliest/latest (dates), top values."""
    schema = frame.collect_schema()
    exprs = [pl.len().alias("|rows")]
    for name, dtype in schema.items():
        exprs += _column_stats_exprs(name, dtype)
    stats = frame.select(exprs).collect().row(0, named=True)
    rows = int(stats["|rows"])
    columns = {}
    for name, dtype in schema.items():
        sf_type = sf_types.get(name, "")
        nulls = int(stats[f"{name}|nulls"])
        entry: dict[str, Any] = {
            "sf_type": sf_type, "polars_type": str(dtype), "rows": rows, "nulls": nulls,
            "null_rate": round(nulls / rows, 6) if rows else None,
            "distinct": int(stats[f"{name}|distinct"]),
        }
        if dtype.is_temporal():
            entry["earliest"] = _jsonable(stats[f"{name}|min"])
            entry["latest"] = _jsonable(stats[f"{name}|max"])
        elif f"{name}|min" in stats:
            entry["min"] = _jsonable(stats[f"{name}|min"])
            entry["max"] = _jsonable(stats[f"{name}|max"])
        if dtype.is_numeric():
            entry["mean"] = _jsonable(stats[f"{name}|mean"])
            entry["std"] = _jsonable(stats[f"{name}|std"])
        if sf_type.lower() in TOP_VALUE_TYPES:
            entry["top_values"] = top_values(frame, name)
        columns[name] = entry
    return {"rows": rows, "columns": columns}


def top_values(frame: pl.LazyFrame, column: str, *, n: int = TOP_VALUES) -> list[dict[str, Any]]:
    """The ``n`` most frequent non-null values with their counts (ties broken by value, for stable output)."""
    counts = (
        frame.select(pl.col(column)).filter(pl.col(column).is_not_null())
        .group_by(column).len()
        .sort(["len", column], descending=[True, False]).head(n).collect()
    )
    return [{"value": _jsonable(v), "count": int(c)} for v, c in counts.iter_rows()]


# ------------------------------------------------------------------------------------- custom validators

Validator = Callable[[pl.LazyFrame], "pl.Expr | CheckResult"]


def validator_check_name(dotted: str) -> str:
    """``tasks.validators:amount_non_negative`` -> ``custom_amount_non_negative``."""
    return "custom_" + dotted.rsplit(":", 1)[-1]


def load_validator(object_name: str, dotted: str) -> Validator:
    """Import ``package.module:function``; any failure is a ConfigError naming object and validator."""
    module_name, _, func_name = dotted.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError, ValueError) as err:
        msg = (f"{object_name}: validator {dotted!r} cannot be loaded ({type(err).__name__}: {err}); "
               f"fix the 'validators' entry of {object_name} in configs/salesforce_objects.py")
        raise ConfigError(msg) from err
    if not callable(func):
        msg = f"{object_name}: validator {dotted!r} is not a function; point it at a callable"
        raise ConfigError(msg)
    return func


def evaluate_validator(
    object_name: str, dotted: str, validator: Validator, frame: pl.LazyFrame, *, primary_key: str
) -> CheckResult:
    """Run one user validator: a boolean Expr marks violating rows; a returned CheckResult is used as is.

    The severity of an Expr validator is its ``severity`` attribute (default ``error``).
    """
    check = validator_check_name(dotted)
    outcome = validator(frame)
    if isinstance(outcome, CheckResult):
        return outcome
    if not isinstance(outcome, pl.Expr):
        msg = f"{object_name}: validator {dotted!r} returned {type(outcome).__name__}; return a pl.Expr or CheckResult"
        raise ConfigError(msg)
    severity: Severity = getattr(validator, "severity", "error")
    violating = frame.with_row_index(_ROW).filter(outcome)
    count = int(violating.select(pl.len()).collect().item())
    samples = tuple(violating.select(_sample_label(primary_key)).head(SAMPLE_SIZE).collect().to_series())
    doc = (validator.__doc__ or "").strip().splitlines()
    rule = doc[0] if doc else dotted
    message = (f"{object_name}: {count} row(s) violate {check}: {rule}" if count
               else f"{object_name}: {check} holds ({rule})")
    return _graded(object_name, check, count > 0, severity, observed=count, threshold=0,
                   sample_ids=samples, message=message)
