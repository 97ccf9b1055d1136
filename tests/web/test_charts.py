"""Inline SVG charts: well-formed, escaped, gaps for missing data, axes and scales."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import Markup

from web.charts import (
    NO_DATA,
    STRIP_LEVELS,
    line_chart,
    sparkline,
    strip_colour,
    strip_legend,
    utilization_strip,
)

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(1)</script>"
START = datetime(2026, 8, 20, 0, 0, tzinfo=UTC)


def _parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    return ET.fromstring(str(markup))


def _lines(root: ET.Element) -> list[list[tuple[float, float]]]:
    return [
        [tuple(map(float, p.split(","))) for p in line.attrib["points"].split()]  # type: ignore[misc]
        for line in root.iter(f"{SVG}polyline")
    ]


def test_it_draws_a_sparkline_from_zero_to_the_maximum():
    root = _parse(sparkline([0.0, 5.0, 10.0], 100, 20))
    (line,) = _lines(root)
    assert len(line) == 3
    xs = [x for x, _ in line]
    ys = [y for _, y in line]
    assert xs == sorted(xs) and xs[0] < 5 and xs[-1] > 95
    assert ys[0] > ys[1] > ys[2], "higher values are drawn higher"
    assert ys[2] == pytest.approx(1.5)


def test_it_breaks_a_sparkline_at_missing_values():
    root = _parse(sparkline([1.0, 2.0, None, 3.0, 4.0, None, 5.0], y_max=5.0))
    assert [len(run) for run in _lines(root)] == [2, 2]
    assert len(list(root.iter(f"{SVG}circle"))) == 1, "a lone point is a dot"


def test_it_draws_no_line_without_data():
    root = _parse(sparkline([None, None]))
    assert _lines(root) == []
    assert root.find(f"{SVG}line") is not None


def test_it_clips_values_above_the_maximum():
    root = _parse(sparkline([0.5, 2.0], 50, 10, y_max=1.0))
    (line,) = _lines(root)
    assert line[1][1] == pytest.approx(1.5), "drawn at the top, not outside"


def test_it_escapes_labels():
    for markup in (
        sparkline([1.0], label=EVIL),
        line_chart([(START, 1.0)], y_label=EVIL),
        utilization_strip([0.5], label=EVIL),
    ):
        text = str(markup)
        assert EVIL not in text
        assert "&lt;script&gt;" in text
        _parse(markup)


def _points(values: list[float | None], step: timedelta = timedelta(hours=1)):
    return [(START + step * i, v) for i, v in enumerate(values)]


def test_it_draws_axes_with_ticks_and_time_labels():
    root = _parse(line_chart(_points([10.0, 20.0, 30.0, 40.0, 50.0]), y_label="power W"))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "power W" in texts
    assert {"0", "25", "50"} <= set(texts), "y axis from 0 to the rounded-up maximum"
    assert "00:00" in texts and "04:00" in texts, "time axis in UTC"
    assert root.attrib["aria-label"] == "power W (UTC)"


def test_it_labels_a_long_span_with_dates_at_midnight():
    points = _points([1.0] * 7, timedelta(days=1))
    texts = [t.text for t in _parse(line_chart(points, y_label="x")).iter(f"{SVG}text")]
    dates = [t for t in texts if t and re.fullmatch(r"\d\d-\d\d", t)]
    assert dates == ["08-20", "08-21", "08-22", "08-23", "08-24", "08-25", "08-26"]


def test_it_puts_time_ticks_on_round_hours():
    points = _points([1.0] * 288, timedelta(minutes=5))
    points = [(t + timedelta(minutes=35), v) for t, v in points]
    texts = [t.text for t in _parse(line_chart(points, y_label="x")).iter(f"{SVG}text")]
    times = [t for t in texts if t and ":" in t]
    assert times and all(t.endswith(":00") for t in times), times
    assert 4 <= len(times) <= 8, "a tick every few hours, not crowded"


def test_it_uses_a_given_maximum_and_clips_above_it():
    root = _parse(line_chart(_points([50.0, 700.0, 900.0]), y_label="W", y_max=700.0))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "700" in texts and "350" in texts
    (line,) = _lines(root)
    assert line[1][1] == line[2][1], "900 W is drawn at the 700 W top"


def test_it_leaves_gaps_in_a_line_chart():
    root = _parse(line_chart(_points([1.0, 2.0, None, None, 3.0, 4.0]), y_label="x"))
    runs = _lines(root)
    assert [len(r) for r in runs] == [2, 2]
    assert runs[0][-1][0] < runs[1][0][0]


def test_it_says_no_data_when_nothing_is_known():
    for points in ([], _points([None, None])):
        root = _parse(line_chart(points, y_label="x"))
        assert "no data" in [t.text for t in root.iter(f"{SVG}text")]
        assert _lines(root) == []


def test_it_sorts_points_by_time():
    points = list(reversed(_points([1.0, 2.0, 3.0])))
    (line,) = _lines(_parse(line_chart(points, y_label="x")))
    assert [x for x, _ in line] == sorted(x for x, _ in line)


def test_it_refuses_sizes_and_maxima_it_cannot_draw():
    with pytest.raises(ValueError, match="too small"):
        line_chart([], width=50, height=20, y_label="x")
    with pytest.raises(ValueError, match="too small"):
        sparkline([1.0], 4, 4)
    with pytest.raises(ValueError, match="y_max"):
        line_chart([], y_label="x", y_max=0)
    with pytest.raises(ValueError, match="y_max"):
        sparkline([1.0], y_max=float("nan"))
    with pytest.raises(ValueError, match="too small"):
        utilization_strip([0.1], cell_width=0)


def test_it_colours_strip_cells_by_level_and_grey_for_no_data():
    assert strip_colour(None) == NO_DATA
    assert strip_colour(float("nan")) == NO_DATA
    assert strip_colour(0.0) == STRIP_LEVELS[0][1]
    assert strip_colour(0.3) == STRIP_LEVELS[2][1]
    assert strip_colour(1.0) == STRIP_LEVELS[-1][1]


def test_it_merges_neighbouring_cells_of_one_colour():
    root = _parse(utilization_strip([0.9, 0.95, None, 0.0, 0.01, 0.9], cell_width=3))
    rects = sorted(
        (int(x), int(w), path.attrib["fill"])
        for path in root.iter(f"{SVG}path")
        for x, w in re.findall(r"M(\d+) 0h(\d+)v14h-\d+z", path.attrib["d"])
    )
    top, idle = STRIP_LEVELS[-1][1], STRIP_LEVELS[0][1]
    assert rects == [(0, 6, top), (6, 3, NO_DATA), (9, 6, idle), (15, 3, top)]
    assert root.attrib["width"] == "18"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text is not None
    assert "mean 55%" in title.text and "max 95%" in title.text and "5 of 6" in title.text


def test_it_shows_a_legend_for_the_strip():
    legend = str(strip_legend())
    assert legend.count("<li>") == len(STRIP_LEVELS) + 1
    assert "no data" in legend
    assert re.search(r"under 5%", legend)
