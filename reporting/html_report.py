"""Render a ``RunReport`` as one self-contained HTML page: pure (values in, text out), no script, no external
resource. Every value from the data goes through ``html.escape``; a Content-Security-Policy forbids fetching
anything, so a browser opening the file never reaches the network."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from reporting.charts import BandPoint, Bar, band_line_chart, bar_chart, histogram_chart
from reporting.formatting import (
    format_count,
    format_dtype,
    format_moment,
    format_number,
    format_seconds,
    format_share,
    format_value,
)
from reporting.model import (
    ColumnProfile,
    DriftPoint,
    Histogram,
    ObjectReport,
    ObjectRun,
    RunReport,
    SchemaReport,
)
from tasks.quality_checks import CheckResult

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
CSS = """
:root{--ok:#1a7f37;--warn:#9a6700;--err:#cf222e;--muted:#57606a;--line:#d0d7de;--blue:#0969da}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;
margin:0 auto;max-width:1100px;padding:16px 20px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 6px}h3{font-size:15px;margin:18px 0 6px}
.meta,figcaption,.footer{color:var(--muted)}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;vertical-align:middle;
border:1px solid currentColor}
.badge.ok{color:var(--ok)}.badge.failed,.badge.error{color:var(--err)}.badge.warning{color:var(--warn)}
.badge.info{color:var(--muted)}
.notice{border-left:4px solid var(--warn);background:#fff8c5;padding:6px 10px;margin:8px 0}
.notice.error{border-color:var(--err);background:#ffebe9}
nav a{margin-right:12px}
section.object{border-top:2px solid var(--line);margin-top:28px;padding-top:14px}
.table{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.fail.error td{background:#ffebe9}tr.fail.warning td{background:#fff8c5}tr.skipped td{color:var(--muted)}
tr.alert td,tr.differs td{background:#fff8c5}
td.clip{max-width:11em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.status{font-weight:600;white-space:nowrap}tr.pass td.status{color:var(--ok)}
tr.fail.error td.status{color:var(--err)}tr.fail.warning td.status{color:var(--warn)}
.samples{color:var(--muted);font-size:12px}
code{font-size:12px;background:#f6f8fa;padding:0 3px;border-radius:3px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px 20px}
figure{margin:0}figcaption{font-size:12px;margin-bottom:2px}
svg{width:100%;height:auto;display:block}
svg text{font-size:11px;fill:#1f2328}svg .axis{fill:var(--muted)}svg .empty{fill:var(--muted);font-style:italic}
svg .grid{stroke:var(--line);stroke-width:1}svg .band{fill:#2da44e;fill-opacity:.16}
svg .line{fill:none;stroke:var(--blue);stroke-width:1.5}svg .dot{fill:var(--blue)}svg .dot.out{fill:var(--err)}
svg .bar{fill:#54aeff}svg .bar.alert{fill:var(--err)}svg .value{fill:var(--muted)}
.schema-diff{border-left:4px solid var(--err);background:#ffebe9;padding:6px 10px}
.schema-diff.warning{border-color:var(--warn);background:#fff8c5}
.schema-diff ul{margin:4px 0;padding-left:18px}
.agree{color:var(--ok)}
"""


def _e(value: object) -> str:
    return escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[str], *, cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<div class="table"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}' \
           "</tbody></table></div>"


def _cells(*cells: tuple[str, str]) -> str:
    """``(css class, already escaped html)`` pairs as ``<td>`` cells."""
    return "".join(f'<td class="{cls}">{html}</td>' if cls else f"<td>{html}</td>" for cls, html in cells)


# ----------------------------------------------------------------------------------------------- the run


def _run_verdict(report: RunReport) -> tuple[str, list[str]]:
    run = report.run
    reasons = [f"object(s) failed: {', '.join(run.failed_objects)}"] if run.failed_objects else []
    if not run.phase1_ok:
        reasons.append("Phase 1 did not complete")
    if not run.qa_ok:
        reasons.append(f"QA: {run.qa_error or 'failed'}")
    return ("failed" if reasons else "ok"), reasons


def _changes(row: ObjectRun) -> str:
    """``+inserts ~updates −deletes`` of a replica merge, rarer counts only when not zero; – after a full extract."""
    if row.inserts is None:
        return "–"
    text = f"+{row.inserts:,} ~{row.updates or 0:,} −{row.deletes or 0:,}"
    rare = {"unchanged": row.unchanged, "absent on delete": row.deleted_absent, "hard deletes": row.hard_deletes,
            "recovered": row.recovered}
    details = ", ".join(f"{count:,} {label}" for label, count in rare.items() if count)
    return f"{text} ({details})" if details else text


def _run_row(row: ObjectRun) -> str:
    name = _e(row.object)
    times = " / ".join(format_seconds(s) for s in (row.extract_s, row.process_s, row.load_s, row.qa_s))
    cells = _cells(
        ("", f'<a href="#object-{name}">{name}</a>'), ("", f'<span class="badge {_e(row.status)}">{_e(row.status)}'
                                                          "</span>"),
        ("", _e(row.mode or "–")), ("num", format_count(row.rows)), ("", _e(row.api or "–")),
        ("num", format_count(row.replica_rows)), ("num", _e(_changes(row))), ("num", _e(times)),
        ("", _e(row.qa)), ("", _e(row.error or "")))
    return f'<tr class="{_e(row.status)}">{cells}</tr>'


def _run_section(report: RunReport) -> str:
    run = report.run
    verdict, reasons = _run_verdict(report)
    source = run.source
    facts = (f"started {_e(format_moment(run.started_at))} · {_e(format_seconds(run.seconds))} · "
             f"source {_e(source.get('kind', '?'))} ({_e(source.get('instance_url', ''))}, "
             f"{_e(source.get('auth_flow', ''))})")
    parts = [f'<header><h1>Run {_e(run.run_id)} <span class="badge {verdict}">{verdict}</span></h1>',
             f'<p class="meta">{facts}</p>']
    parts += [f'<p class="notice error">{_e(reason)}</p>' for reason in reasons]
    if not report.qa_summary_present:
        parts.append('<p class="notice">QA produced no summary in this run: no checks are shown, and the QA files '
                     "below may be from an earlier run.</p>")
    links = "".join(f'<a href="#object-{_e(o.name)}">{_e(o.name)}</a>' for o in report.objects)
    parts.append(f"<nav>{links}</nav></header>")
    headers = ("Object", "Status", "Mode", "Rows", "API", "Replica rows", "Changes", "Extract / process / load / QA",
               "QA", "Error")
    parts.append('<section id="run-summary"><h2>Run summary</h2>'
                 + _table(headers, (_run_row(r) for r in run.objects), cls="run") + "</section>")
    return "".join(parts)


# -------------------------------------------------------------------------------------------- the charts


def _figure(kind: str, object_name: str, caption: str, svg: str, column: str | None = None) -> str:
    column_attr = f' data-column="{_e(column)}"' if column else ""
    return (f'<figure data-chart="{kind}" data-object="{_e(object_name)}"{column_attr}>'
            f"<figcaption>{caption}</figcaption>{svg}</figure>")


def _band_point(point: DriftPoint) -> BandPoint:
    entry = point.entry
    change = "" if point.change_pct is None else f" ({point.change_pct:+.1f}%)"
    verdict = "" if point.within else ", beyond the tolerance"
    return BandPoint(label=format_moment(entry.recorded_at), value=entry.rows, low=point.low, high=point.high,
                     within=point.within,
                     tooltip=f"{format_moment(entry.recorded_at)} run {entry.run_id}: {entry.rows:,} rows"
                             f"{change}{verdict}")


def _rowcount_figure(obj: ObjectReport) -> str:
    outside = sum(not p.within for p in obj.history)
    caption = (f"Row count, last {len(obj.history)} run(s); band: ±{obj.tolerance_pct:g}% of the run before"
               + (f"; <strong>{outside} outside</strong>" if outside else ""))
    svg = band_line_chart([_band_point(p) for p in obj.history], title=f"{obj.name} row-count history")
    return _figure("rowcount", obj.name, caption, svg)


def _null_rate_figure(obj: ObjectReport, columns: Sequence[ColumnProfile]) -> str:
    """Null share per column; a required column with nulls is drawn in red (completeness fails on it)."""
    bars = [Bar(c.name, c.null_rate or 0.0, f"{format_share(c.null_rate)} ({c.nulls:,})",
                alert=c.nulls > 0 and c.name in obj.required) for c in columns]
    svg = bar_chart(bars, title=f"{obj.name} null rate per column")
    return _figure("null-rate", obj.name, "Null rate per column (red: a required column with nulls)", svg)


def _histogram_figure(obj: ObjectReport, histogram: Histogram, column: ColumnProfile | None) -> str:
    drawn = sum(histogram.counts)
    stats = (f"; mean {format_number(column.mean)}, std {format_number(column.std)}"
             if column is not None and column.mean is not None else "")
    caption = (f"<strong>{_e(histogram.column)}</strong>: {drawn:,} values in {len(histogram.counts)} bin(s)"
               f"{', ' + format_count(histogram.missing) + ' null' if histogram.missing else ''}{_e(stats)}")
    svg = histogram_chart(histogram.edges, histogram.counts, title=f"{obj.name}.{histogram.column} distribution")
    return _figure("histogram", obj.name, caption, svg, column=histogram.column)


def _charts(obj: ObjectReport) -> str:
    columns = obj.profile.columns if obj.profile else ()
    by_name = {c.name: c for c in columns}
    figures = [_rowcount_figure(obj)]
    if columns:
        figures.append(_null_rate_figure(obj, columns))
    figures += [_histogram_figure(obj, h, by_name.get(h.column)) for h in obj.histograms]
    return f'<div class="charts">{"".join(figures)}</div>'


# ---------------------------------------------------------------------------------------- checks, schema


def _check_rank(check: CheckResult) -> int:
    """Failed errors first, then failed warnings, skipped checks, and passes last."""
    if check.skipped:
        return 2
    return 3 if check.passed else {"error": 0, "warning": 1}.get(check.severity, 2)


def _check_class(check: CheckResult) -> str:
    if check.skipped:
        return "skipped"
    return "pass" if check.passed else f"fail {check.severity}"


def _check_status(check: CheckResult) -> str:
    if check.skipped:
        return "skipped"
    return "pass" if check.passed else f"FAIL ({check.severity})"


def _check_row(check: CheckResult) -> str:
    samples = (f'<div class="samples">e.g. {", ".join(f"<code>{_e(s)}</code>" for s in check.sample_ids)}</div>'
               if check.sample_ids else "")
    cells = _cells(("", f"<code>{_e(check.check)}</code>"), ("status", _e(_check_status(check))),
                   ("", _e(format_value(check.observed))), ("", _e(format_value(check.threshold))),
                   ("", _e(check.message) + samples))
    return f'<tr class="check {_check_class(check)}" data-check="{_e(check.check)}">{cells}</tr>'


def _checks(obj: ObjectReport) -> str:
    if not obj.checks:
        why = "QA reported no checks for this object in this run" if obj.checked_this_run else \
            "QA did not check this object in this run"
        return f'<h3>QA checks</h3><p class="meta">{why}.</p>'
    headers = ("Check", "Result", "Observed", "Threshold", "Message")
    return "<h3>QA checks</h3>" + _table(headers, (_check_row(c) for c in sorted(obj.checks, key=_check_rank)),
                                         cls="checks")


def _schema(schema: SchemaReport | None) -> str:
    if schema is None:
        return ""
    if not schema.differences:
        return (f'<h3>Schema</h3><p class="agree">Header, schema sidecar and registry agree '
                f"({len(schema.columns)} columns).</p>")
    items = "".join(f"<li><strong>{_e(label)}</strong>: {', '.join(f'<code>{_e(i)}</code>' for i in values)}</li>"
                    for label, values in schema.differences)
    level = "warning" if schema.severity == "warning" else "error"
    return f'<h3>Schema</h3><div class="schema-diff {level}" data-severity="{level}"><ul>{items}</ul></div>'


def _differing_columns(schema: SchemaReport | None) -> set[str]:
    return {item for _, items in schema.differences for item in items} if schema else set()


def _column_row(column: ColumnProfile, obj: ObjectReport, differing: set[str]) -> str:
    cls = "differs" if column.name in differing else "alert" if column.nulls and column.name in obj.required else ""
    cells = _cells(("", f"<code>{_e(column.name)}</code>"), ("", _e(column.sf_type)),
                   ("", _e(format_dtype(column.polars_type))),
                   ("num", _e(f"{format_share(column.null_rate)} ({column.nulls:,})")),
                   ("num", format_count(column.distinct)))
    extremes = "".join(f'<td class="clip" title="{_e(text)}">{_e(text)}</td>'
                       for text in (format_value(column.low), format_value(column.high)))
    return f'<tr class="{cls}">{cells}{extremes}<td class="num">{_e(format_number(column.mean))}</td></tr>'


def _columns(obj: ObjectReport) -> str:
    if obj.profile is None:
        return ""
    differing = _differing_columns(obj.schema)
    headers = ("Column", "Salesforce type", "Polars type", "Nulls", "Distinct", "Min / earliest", "Max / latest",
               "Mean")
    caption = f'<p class="meta">{obj.profile.rows:,} rows profiled from <code>{_e(obj.profile.dataset)}</code></p>'
    return "<h3>Columns</h3>" + caption + _table(headers, (_column_row(c, obj, differing)
                                                            for c in obj.profile.columns), cls="columns")


# ------------------------------------------------------------------------------------------- an object


def _object_header(obj: ObjectReport) -> str:
    name = _e(obj.name)
    row = obj.row
    badges = (f' <span class="badge {_e(row.status)}">{_e(row.status)}</span> <span class="badge info">{_e(row.qa)}'
              "</span>") if row else ""
    parts = [f"<h2>{name}{badges}</h2>"]
    if row is not None and row.dataset:
        parts.append(f'<p class="meta">{_e(row.mode or "")} extract of {format_count(row.rows)} row(s) over '
                     f"{_e(row.api or '?')}; dataset <code>{_e(row.dataset)}</code></p>")
    if row is not None and row.error:
        parts.append(f'<p class="notice error">{_e(row.error)}</p>')
    if not obj.checked_this_run:
        parts.append('<p class="notice">QA did not report on this object in this run: its QA files may be from an '
                     "earlier run.</p>")
    parts += [f'<p class="notice">{_e(note)}</p>' for note in obj.notes]
    return "".join(parts)


def _object_section(obj: ObjectReport) -> str:
    return (f'<section class="object" id="object-{_e(obj.name)}" data-object="{_e(obj.name)}">'
            f"{_object_header(obj)}{_charts(obj)}{_checks(obj)}{_schema(obj.schema)}{_columns(obj)}</section>")


def render_report(report: RunReport) -> str:
    """The whole page."""
    title = f"Run {report.run.run_id} · {format_moment(report.run.started_at)}"
    footer = (f'<p class="footer">Generated {_e(format_moment(report.generated_at))}. Self-contained: no script, '
              "no external resource; charts are inline SVG (hover a point or bar for its value).</p>")
    return ("<!doctype html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
            f'initial-scale=1"><meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"{_run_section(report)}{''.join(_object_section(o) for o in report.objects)}{footer}</body></html>\n")
