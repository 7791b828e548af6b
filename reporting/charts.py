"""Charts as plain inline SVG: values in, an ``<svg>`` string out. Pure, no dependency.

Why not a charting library: the report must open offline with no script. Plotly, Bokeh and Vega need their
JavaScript (Plotly's alone is ~3.5 MB inlined); matplotlib would add ~40 MB of dependencies and writes ~30-50 KB
of SVG per chart (glyphs as paths). The three charts here (a line with a band, horizontal bars, a histogram) are
~1-4 KB each by hand, scale with the page through ``viewBox``, and show exact values on hover via ``<title>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from reporting.formatting import format_compact

WIDTH = 480
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 12, 30  # plot margins: y labels on the left, x labels below


@dataclass(frozen=True)
class BandPoint:
    """One point of a line chart, with the band it had to fall in (None: no band, e.g. the first run)."""

    label: str
    value: float
    low: float | None
    high: float | None
    within: bool
    tooltip: str


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: ``share`` (0..1) of the full width, ``text`` printed after it."""

    label: str
    share: float
    text: str
    alert: bool = False


def _svg(height: int, title: str, body: list[str]) -> str:
    # inline SVG in HTML needs no xmlns, so the page holds no URL at all
    return (f'<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">'
            f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def _text(x: float, y: float, text: str, *, anchor: str = "start", cls: str = "") -> str:
    css = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{css}>{escape(text)}</text>'


def _y_scale(low: float, high: float, top: float, bottom: float) -> Callable[[float], float]:
    """Value -> y pixel (SVG's y grows downwards)."""
    span = (high - low) or 1.0
    return lambda v: bottom - (v - low) / span * (bottom - top)


def _y_axis(low: float, high: float, top: float, bottom: float) -> list[str]:
    """Three gridlines (low, middle, high) with compact labels."""
    scale = _y_scale(low, high, top, bottom)
    parts = []
    for value in (low, (low + high) / 2, high):
        y = scale(value)
        parts.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(_text(_LEFT - 6, y + 4, format_compact(value), anchor="end", cls="axis"))
    return parts


def band_line_chart(points: Sequence[BandPoint], *, title: str, height: int = 200) -> str:
    """A line through ``points`` over the band each had to stay in; points outside their band are marked."""
    if not points:
        return _svg(60, title, [_text(WIDTH / 2, 34, "no history yet", anchor="middle", cls="empty")])
    bottom, right = height - _BOTTOM, WIDTH - _RIGHT
    values = [p.value for p in points] + [v for p in points for v in (p.low, p.high) if v is not None]
    low, high = min(0.0, min(values)), max(values) * 1.05 or 1.0
    y = _y_scale(low, high, _TOP, bottom)
    step = (right - _LEFT) / max(len(points) - 1, 1)
    x = [(_LEFT + i * step) if len(points) > 1 else (_LEFT + right) / 2 for i in range(len(points))]
    body = _y_axis(low, high, _TOP, bottom)
    for i, p in enumerate(points):
        if p.low is not None and p.high is not None:  # the band spans half-way to each neighbour, inside the plot
            left, end = max(x[i] - step / 2, _LEFT), min(x[i] + step / 2, right)
            body.append(f'<rect x="{left:.1f}" y="{y(p.high):.1f}" width="{end - left:.1f}" '
                        f'height="{max(y(p.low) - y(p.high), 1):.1f}" class="band"/>')
    path = " ".join(f"{x[i]:.1f},{y(p.value):.1f}" for i, p in enumerate(points))
    body.append(f'<polyline points="{path}" class="line"/>')
    for i, p in enumerate(points):
        cls = "dot" if p.within else "dot out"
        body.append(f'<circle cx="{x[i]:.1f}" cy="{y(p.value):.1f}" r="{3 if p.within else 4.5}" class="{cls}">'
                    f"<title>{escape(p.tooltip)}</title></circle>")
    body.append(_text(_LEFT, height - 8, points[0].label, cls="axis"))
    if len(points) > 1:
        body.append(_text(right, height - 8, points[-1].label, anchor="end", cls="axis"))
    return _svg(height, title, body)


def bar_chart(bars: Sequence[Bar], *, title: str, label_width: int = 150) -> str:
    """Horizontal bars, one row of 18 px each, label on the left and ``text`` after the bar."""
    row, text_room = 18, 64
    height = max(len(bars), 1) * row + 8
    full = WIDTH - label_width - text_room
    body = [f'<line x1="{label_width}" x2="{label_width}" y1="2" y2="{height - 4}" class="grid"/>']
    for i, bar in enumerate(bars):
        top = 4 + i * row
        length = max(min(bar.share, 1.0), 0.0) * full
        cls = "bar alert" if bar.alert else "bar"
        body.append(_text(label_width - 6, top + 12, _clip(bar.label, label_width), anchor="end"))
        body.append(f'<rect x="{label_width}" y="{top + 2}" width="{max(length, 0.5 if bar.share else 0):.1f}" '
                    f'height="{row - 5}" class="{cls}"><title>{escape(f"{bar.label}: {bar.text}")}</title></rect>')
        body.append(_text(label_width + length + 4, top + 12, bar.text, cls="value"))
    return _svg(height, title, body)


def _clip(label: str, width_px: int) -> str:
    """Shorten a label that would not fit ``width_px`` at ~6.5 px a character (the full name is in the title)."""
    room = max(int(width_px / 6.5) - 1, 4)
    return label if len(label) <= room else label[: room - 1] + "…"


def histogram_chart(edges: Sequence[float], counts: Sequence[int], *, title: str, height: int = 180) -> str:
    """Bars over ``len(counts)`` equal-width bins; ``edges`` has one more value than ``counts``."""
    if not counts or not any(counts):
        return _svg(60, title, [_text(WIDTH / 2, 34, "no values", anchor="middle", cls="empty")])
    bottom, right = height - _BOTTOM, WIDTH - _RIGHT
    top_count = max(counts)
    y = _y_scale(0, top_count, _TOP, bottom)
    width = (right - _LEFT) / len(counts)
    body = _y_axis(0, top_count, _TOP, bottom)
    for i, count in enumerate(counts):
        tip = f"{format_compact(edges[i])} to {format_compact(edges[i + 1])}: {count:,} rows"
        body.append(f'<rect x="{_LEFT + i * width + 0.5:.1f}" y="{y(count):.1f}" width="{max(width - 1, 1):.1f}" '
                    f'height="{bottom - y(count):.1f}" class="bar"><title>{escape(tip)}</title></rect>')
    if len(counts) == 1:  # one value: one label under its bar
        ticks = [((_LEFT + right) / 2, edges[0], "middle")]
    else:
        ticks = [(_LEFT + i * width, edges[i], anchor)
                 for i, anchor in ((0, "start"), (len(counts) // 2, "middle"), (len(counts), "end"))]
    body += [_text(x, height - 8, format_compact(value), anchor=anchor, cls="axis") for x, value, anchor in ticks]
    return _svg(height, title, body)
