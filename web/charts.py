"""Inline SVG charts drawn on the server: a sparkline, a line chart with axes, a utilization strip.

Every function returns ``markupsafe.Markup`` that is safe to embed as is (``{{ chart }}`` in a
template, no ``| safe``): numbers are formatted here and every piece of text (labels, titles)
is escaped, so a label that came from outside cannot inject markup. Colours are presentation
attributes on the SVG itself, so a chart looks right on any page without extra CSS.

Missing data is shown as missing, never as zero: ``None`` values (and, for the line chart, a
point whose value is ``None``) break the line, and a strip cell without data is grey.

Error contract: ``ValueError`` for a width or height that leaves no room to draw, or a
``y_max`` that is not a positive finite number; any sequence of numbers and ``None`` draws.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

logger = logging.getLogger(__name__)

LINE = "#3b6fd8"
AXIS = "#9aa3ad"
GRID = "#e6e9ee"
TEXT = "#66707a"
NO_DATA = "#e6e9ee"
STRIP_LEVELS: tuple[tuple[float, str, str], ...] = (
    (0.05, "#f2cf96", "under 5%"),
    (0.25, "#c9d8f2", "5-25%"),
    (0.50, "#8fb0e8", "25-50%"),
    (0.75, "#4f7fd9", "50-75%"),
    (math.inf, "#1f4fb0", "75% and over"),
)
"""(upper bound, colour, legend) of each strip level; a ratio falls in the first it is below."""

_LEFT, _RIGHT, _TOP, _BOTTOM = 42, 10, 16, 18


def _check_size(width: int, height: int, min_width: int, min_height: int) -> None:
    if width < min_width or height < min_height:
        raise ValueError(
            f"chart size {width}x{height} is too small (at least {min_width}x{min_height})"
        )


def _check_max(y_max: float | None) -> None:
    if y_max is not None and not (math.isfinite(y_max) and y_max > 0):
        raise ValueError(f"y_max must be a positive finite number, got {y_max!r}")


def _finite(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None`` (NaN and infinities are not data)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n that is at least ``value`` (1 for 0 or less)."""
    if value <= 0:
        return 1.0
    power = float(10 ** math.floor(math.log10(value)))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    """A tick label: ``0``, ``0.5``, ``350``, ``1.5k``, ``2.4M``."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def _coord(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _segments(xy: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known points; a ``None`` ends a run (a gap in the line)."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for point in xy:
        if point is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(point)
    if current:
        runs.append(current)
    return runs


def _draw_runs(runs: list[list[tuple[float, float]]], colour: str, stroke: float) -> list[str]:
    parts: list[str] = []
    for run in runs:
        if len(run) == 1:
            x, y = run[0]
            parts.append(
                f'<circle cx="{_coord(x)}" cy="{_coord(y)}" r="{_coord(stroke)}" fill="{colour}"/>'
            )
        else:
            points = " ".join(f"{_coord(x)},{_coord(y)}" for x, y in run)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="{_coord(stroke)}" stroke-linejoin="round"/>'
            )
    return parts


def _svg(width: int, height: int, label: str, css_class: str, body: list[str]) -> Markup:
    title = escape(label)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
    )
    return Markup(head + f"<title>{title}</title>" + "".join(body) + "</svg>")


def sparkline(
    values: Sequence[float | None],
    width: int = 120,
    height: int = 24,
    *,
    y_max: float | None = None,
    label: str = "trend",
) -> Markup:
    """A small line of ``values`` (oldest first) from 0 to ``y_max`` (default: their maximum).

    ``None`` leaves a gap; values above ``y_max`` are drawn at the top. ``label`` (escaped)
    names the chart for screen readers. ``ValueError`` for a size under 8x6 or a bad ``y_max``.
    """
    _check_size(width, height, 8, 6)
    _check_max(y_max)
    known = [v for v in map(_finite, values) if v is not None]
    top = y_max if y_max is not None else (max(known) if known and max(known) > 0 else 1.0)
    pad = 1.5
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    span = height - 2 * pad
    xy: list[tuple[float, float] | None] = []
    for i, raw in enumerate(values):
        value = _finite(raw)
        if value is None:
            xy.append(None)
            continue
        ratio = min(max(value / top, 0.0), 1.0)
        xy.append((pad + i * step, pad + span * (1 - ratio)))
    body = _draw_runs(_segments(xy), LINE, 1.5)
    if not known:
        body.append(
            f'<line x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}" '
            f'stroke="{NO_DATA}" stroke-dasharray="2 2"/>'
        )
    return _svg(width, height, label, "spark", body)


_TICK_STEPS = tuple(
    timedelta(minutes=m)
    for m in (1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 43200)
)


def _time_format(step: timedelta) -> str:
    return "%H:%M" if step < timedelta(days=1) else "%m-%d"


def _x_ticks(start: datetime, end: datetime, most: int) -> tuple[list[datetime], timedelta]:
    """Round UTC times (every 6 h, every day...) in [start, end], at most ``most`` of them."""
    span = end - start
    step = next((s for s in _TICK_STEPS if span // s + 1 <= most), _TICK_STEPS[-1])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + step * -(-(start - epoch) // step)  # the first multiple of step >= start
    ticks: list[datetime] = []
    tick = first
    while tick <= end and len(ticks) < most:
        ticks.append(tick)
        tick += step
    return ticks, step


def line_chart(
    points: Sequence[tuple[datetime, float | None]],
    *,
    width: int = 480,
    height: int = 140,
    y_label: str,
    y_max: float | None = None,
) -> Markup:
    """A line chart of ``points`` (time, value) with a y axis from 0 and a time axis in UTC.

    Points are drawn in time order; a ``None`` value breaks the line (a gap, not a zero).
    ``y_max`` fixes the top of the axis (a GPU's power limit, 100 for percent); without it the
    axis rounds the largest value up. ``y_label`` (escaped) titles the axis. With no known value
    the axes are drawn with "no data". ``ValueError`` for a size under 120x60 or a bad ``y_max``.
    """
    _check_size(width, height, 120, 60)
    _check_max(y_max)
    ordered = sorted(points, key=lambda p: p[0])
    known = [v for v in (_finite(v) for _, v in ordered) if v is not None]
    top = y_max if y_max is not None else _nice_ceiling(max(known) if known else 0.0)
    left, right, plot_top, bottom = _LEFT, width - _RIGHT, _TOP, height - _BOTTOM
    body: list[str] = []
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - (bottom - plot_top) * fraction
        colour = AXIS if fraction == 0 else GRID
        body.append(
            f'<line x1="{left}" y1="{_coord(y)}" x2="{right}" y2="{_coord(y)}" '
            f'stroke="{colour}" stroke-width="1"/>'
        )
        body.append(
            f'<text x="{left - 4}" y="{_coord(y + 3)}" text-anchor="end" font-size="10" '
            f'fill="{TEXT}">{escape(_number(top * fraction))}</text>'
        )
    body.append(f'<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{bottom}" stroke="{AXIS}"/>')
    body.append(
        f'<text x="{left}" y="{plot_top - 5}" font-size="10" fill="{TEXT}">{escape(y_label)}</text>'
    )
    if ordered:
        start, end = ordered[0][0], ordered[-1][0]
        seconds = max((end - start).total_seconds(), 1e-9)
        scale_x = (right - left) / seconds
        ticks, step = _x_ticks(start, end, max(2, (right - left) // 50))
        for tick in ticks:
            x = left + (tick - start).total_seconds() * scale_x
            anchor = "start" if x < left + 15 else ("end" if x > right - 15 else "middle")
            stamp = tick.astimezone(UTC).strftime(_time_format(step))
            body.append(
                f'<text x="{_coord(x)}" y="{height - 5}" text-anchor="{anchor}" font-size="10" '
                f'fill="{TEXT}">{escape(stamp)}</text>'
            )
        xy: list[tuple[float, float] | None] = []
        for moment, raw in ordered:
            value = _finite(raw)
            if value is None:
                xy.append(None)
                continue
            ratio = min(max(value / top, 0.0), 1.0)
            x = left + (moment - start).total_seconds() * scale_x
            xy.append((x, bottom - (bottom - plot_top) * ratio))
        body.extend(_draw_runs(_segments(xy), LINE, 1.5))
    if not known:
        body.append(
            f'<text x="{(left + right) // 2}" y="{(plot_top + bottom) // 2 + 4}" '
            f'text-anchor="middle" font-size="11" fill="{TEXT}">no data</text>'
        )
    return _svg(width, height, f"{y_label} (UTC)", "chart", body)


def strip_colour(ratio: float | None) -> str:
    """The strip colour of a utilization ratio (grey when unknown)."""
    value = _finite(ratio)
    if value is None:
        return NO_DATA
    for bound, colour, _ in STRIP_LEVELS:
        if value < bound:
            return colour
    return STRIP_LEVELS[-1][1]  # pragma: no cover - the last bound is infinite


def utilization_strip(
    ratios: Sequence[float | None],
    *,
    cell_width: int = 4,
    height: int = 14,
    label: str = "utilization",
) -> Markup:
    """A row of cells, one per ratio (oldest first), coloured by ``STRIP_LEVELS``; grey = no data.

    Cells are rectangles in one path per colour, neighbours of one colour merged, so a strip
    of 60 cells stays about a kilobyte.
    ``label`` (escaped) names the strip; the accessible title adds the mean and maximum.
    ``ValueError`` for a cell width under 1 or a height under 4.
    """
    _check_size(cell_width, height, 1, 4)
    width = max(len(ratios), 1) * cell_width
    colours = [strip_colour(r) for r in ratios]
    runs: dict[str, list[str]] = {}
    run_start = 0
    for i in range(1, len(colours) + 1):
        if i == len(colours) or colours[i] != colours[run_start]:
            x, w = run_start * cell_width, (i - run_start) * cell_width
            runs.setdefault(colours[run_start], []).append(f"M{x} 0h{w}v{height}h-{w}z")
            run_start = i
    body = [f'<path fill="{colour}" d="{"".join(parts)}"/>' for colour, parts in runs.items()]
    known = [v for v in map(_finite, ratios) if v is not None]
    if known:
        summary = (
            f"{label}: mean {sum(known) / len(known) * 100:.0f}%, max {max(known) * 100:.0f}%"
            f" ({len(known)} of {len(ratios)} with data)"
        )
    else:
        summary = f"{label}: no data"
    return _svg(width, height, summary, "strip", body)


def strip_legend() -> Markup:
    """The colour key of ``utilization_strip`` as a small HTML list."""
    items = [
        f'<li><span class="swatch" style="background:{colour}"></span>{escape(text)}</li>'
        for _, colour, text in STRIP_LEVELS
    ]
    items.append(f'<li><span class="swatch" style="background:{NO_DATA}"></span>no data</li>')
    return Markup('<ul class="strip-legend">' + "".join(items) + "</ul>")
