"""Custom validators named in the registry's ``validators`` ("tasks.validators:function").

Contract: ``def rule(frame: pl.LazyFrame) -> pl.Expr`` returns a boolean expression that is true on the rows
that VIOLATE the rule (null counts as not violating). Set ``rule.severity = "warning"`` to make it advisory;
the default is ``error``. The first docstring line is shown in reports. For full control, return a
``tasks.quality_checks.CheckResult`` instead.
"""

from __future__ import annotations

import polars as pl


def amount_non_negative(frame: pl.LazyFrame) -> pl.Expr:  # noqa: ARG001 - the validator contract (docs/qa.md)
    """Opportunity.Amount must not be negative."""
    return pl.col("Amount") < 0


def close_date_present_when_closed(frame: pl.LazyFrame) -> pl.Expr:  # noqa: ARG001 - the validator contract
    """A closed Opportunity must have a CloseDate."""
    return pl.col("IsClosed") & pl.col("CloseDate").is_null()


close_date_present_when_closed.severity = "warning"  # type: ignore[attr-defined]
