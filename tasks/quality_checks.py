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
    counts = frame.select(pl.col(c).null_count() for c in columns).collect(engine="streaming").row(0, named=True)
    samples: tuple[str, ...] = ()
    if any(counts.values()):
        has_null = pl.any_horizontal(pl.col(c).is_null() for c in columns)
        sample_frame = frame.with_row_index(_ROW).filter(has_null).select(_sample_label(primary_key))
        samples = tuple(sample_frame.head(SAMPLE_SIZE).collect(engine="streaming").to_series())
    with_nulls = {c: n for c, n in counts.items() if n}
    message = (f"{object_name}: nulls in required columns " + ", ".join(f"{c} ({n})" for c, n in with_nulls.items())
               if with_nulls else f"{object_name}: required columns {', '.join(columns)} have no nulls")
    return _graded(object_name, "completeness_required", bool(with_nulls), "error", observed=counts,
                   threshold=0, sample_ids=samples, message=message)


# Bounded memory on any row count: work that holds one entry per distinct key runs once per hash bucket of the
# key, each bucket holding at most about this many rows (every row of a key lands in the same bucket).
ROWS_PER_BUCKET = 2_000_000
_HASH = "__qa_key_hash"


def bucket_count(rows: int, *, rows_per_bucket: int = ROWS_PER_BUCKET) -> int:
    """How many hash buckets keep each bucket under ``rows_per_bucket`` rows (1 for small data)."""
    return max(1, math.ceil(rows / rows_per_bucket))


def in_bucket(hashed: pl.Expr, bucket: int, buckets: int) -> pl.Expr:
    """True on the rows whose hash (``pl.col(c).hash()``) falls in ``bucket`` of ``buckets`` (all, for one)."""
    return pl.lit(True) if buckets == 1 else hashed % buckets == bucket


@dataclass(frozen=True, eq=False)  # a Series has no truth value, so no field-wise ==
class KeyRepeats:
    """Where a primary key repeats: the rows a dedup drops and the smallest repeated keys (samples)."""

    dropped_rows: pl.Series  # 0-based row numbers of the non-latest rows of each repeated key, ascending
    repeated_keys: tuple[str, ...]

    @property
    def dropped(self) -> int:
        return self.dropped_rows.len()


def find_key_repeats(
    frame: pl.LazyFrame, *, primary_key: str, cursor_field: str | None, rows_per_bucket: int = ROWS_PER_BUCKET
) -> KeyRepeats:
    """Exact repeats of ``primary_key`` (nulls are not keys), found one hash bucket of the key at a time.

    Per bucket, rows whose 64-bit key hash repeats are candidates (every repeat, plus rare hash collisions); only
    those are read back with their key and cursor and checked exactly, so a clean bucket holds a hash and a row
    number per row. The latest row of a key is the one ``deduplicate_latest`` keeps (see there).
    """
    keyed = frame.with_row_index(_ROW).filter(pl.col(primary_key).is_not_null())
    rows = int(keyed.select(pl.len()).collect(engine="streaming").item())
    buckets = bucket_count(rows, rows_per_bucket=rows_per_bucket)
    dropped: list[pl.Series] = []
    repeated: list[str] = []
    for bucket in range(buckets):
        candidates = (
            keyed.select(_ROW, pl.col(primary_key).hash().alias(_HASH))
            .filter(in_bucket(pl.col(_HASH), bucket, buckets))
            .filter(pl.col(_HASH).is_duplicated()).collect(engine="streaming")[_ROW]
        )
        if candidates.len():
            bucket_dropped, bucket_repeated = _exact_repeats(keyed, candidates, primary_key, cursor_field)
            dropped.append(bucket_dropped)
            repeated = sorted({*repeated, *bucket_repeated})[:SAMPLE_SIZE]
    rows_dropped = pl.concat(dropped).sort() if dropped else pl.Series(_ROW, [], dtype=pl.UInt32)
    return KeyRepeats(rows_dropped, tuple(repeated))


def _exact_repeats(
    keyed: pl.LazyFrame, candidates: pl.Series, primary_key: str, cursor_field: str | None
) -> tuple[pl.Series, list[str]]:
    """Among the candidate rows: the rows a dedup drops, and the smallest repeated keys."""
    cursor = [cursor_field] if cursor_field else []
    rows = (keyed.filter(pl.col(_ROW).is_in(candidates.implode())).select(primary_key, _ROW, *cursor)
            .filter(pl.col(primary_key).is_duplicated()).collect(engine="streaming"))
    # Latest first: the highest cursor (a null cursor is the oldest), ties to the last row in file order.
    losers = (rows.group_by(primary_key)
              .agg(pl.col(_ROW).sort_by([*cursor, _ROW], descending=True, nulls_last=True).slice(1))
              .get_column(_ROW).explode().drop_nulls())
    keys = rows.get_column(primary_key).unique().sort().head(SAMPLE_SIZE).cast(pl.Utf8).to_list()
    return losers, keys


def deduplicate_latest(
    frame: pl.LazyFrame, *, primary_key: str, cursor_field: str | None, repeats: KeyRepeats | None = None
) -> pl.LazyFrame:
    """One row per primary key: the latest by ``cursor_field`` (ties, nulls and no cursor: the last in file order).

    Rows without a primary key are kept as they are; they are a completeness problem, not duplicates.
    The result keeps the file order and the input columns. The repeats are found now (``find_key_repeats``,
    unless given); the rows are only read when the result is.
    """
    if repeats is None:
        repeats = find_key_repeats(frame, primary_key=primary_key, cursor_field=cursor_field)
    if not repeats.dropped:
        return frame
    dropped = repeats.dropped_rows.implode()
    return frame.with_row_index(_ROW).filter(~pl.col(_ROW).is_in(dropped)).drop(_ROW)


def uniqueness_primary_key(
    object_name: str, frame: pl.LazyFrame, *, primary_key: str, repeats: KeyRepeats | None = None
) -> CheckResult:
    """Warning when the primary key repeats; observed = rows a dedup drops, samples = repeated Ids."""
    if repeats is None:
        repeats = find_key_repeats(frame, primary_key=primary_key, cursor_field=None)
    dropped, samples = repeats.dropped, repeats.repeated_keys
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
    """Reductions that stream in bounded memory; the exact distinct count is ``count_values``' job."""
    col = pl.col(name)
    exprs = [col.null_count().alias(f"{name}|nulls"), col.approx_n_unique().alias(f"{name}|approx_distinct")]
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
    stats = frame.select(exprs).collect(engine="streaming").row(0, named=True)
    rows = int(stats["|rows"])
    columns = {}
    for name, dtype in schema.items():
        sf_type = sf_types.get(name, "")
        nulls = int(stats[f"{name}|nulls"])
        with_top = sf_type.lower() in TOP_VALUE_TYPES
        # The estimate (HyperLogLog, typically within ~2%) only sizes the buckets; the count itself is exact.
        buckets = bucket_count(math.ceil(int(stats[f"{name}|approx_distinct"]) * 1.1))
        distinct, top = count_values(frame, name, buckets=buckets, top=TOP_VALUES if with_top else 0)
        entry: dict[str, Any] = {
            "sf_type": sf_type, "polars_type": str(dtype), "rows": rows, "nulls": nulls,
            "null_rate": round(nulls / rows, 6) if rows else None,
            "distinct": distinct,
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
        if with_top:
            entry["top_values"] = top
        columns[name] = entry
    return {"rows": rows, "columns": columns}


def count_values(
    frame: pl.LazyFrame, column: str, *, buckets: int = 1, top: int = TOP_VALUES
) -> tuple[int, list[dict[str, Any]]]:
    """Exact number of distinct non-null values, and the ``top`` most frequent with their counts (ties broken by
    value, for stable output).

    Counted one hash bucket of the values at a time, so a pass holds ~1/``buckets`` of the distinct values. Every
    value lands in one bucket with its whole count, so the overall leaders are among the buckets' leaders.
    """
    values = frame.select(column).filter(pl.col(column).is_not_null())
    distinct, leaders = 0, []
    for bucket in range(buckets):
        counts = (values.filter(in_bucket(pl.col(column).hash(), bucket, buckets)).group_by(column).len()
                  .collect(engine="streaming"))
        distinct += counts.height
        if top:
            leaders.append(_most_frequent(counts, column, top))
    if not leaders:
        return distinct, []
    return distinct, [{"value": _jsonable(v), "count": int(c)}
                      for v, c in _most_frequent(pl.concat(leaders), column, top).iter_rows()]


def _most_frequent(counts: pl.DataFrame, column: str, n: int) -> pl.DataFrame:
    return counts.sort(["len", column], descending=[True, False]).head(n)


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
    count = int(violating.select(pl.len()).collect(engine="streaming").item())
    samples = tuple(violating.select(_sample_label(primary_key)).head(SAMPLE_SIZE).collect(engine="streaming")
                    .to_series())
    doc = (validator.__doc__ or "").strip().splitlines()
    rule = doc[0] if doc else dotted
    message = (f"{object_name}: {count} row(s) violate {check}: {rule}" if count
               else f"{object_name}: {check} holds ({rule})")
    return _graded(object_name, check, count > 0, severity, observed=count, threshold=0,
                   sample_ids=samples, message=message)
