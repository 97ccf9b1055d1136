"""Durations as Prometheus writes them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("0", timedelta(0)),
        ("15s", timedelta(seconds=15)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        (" 2d ", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1s500ms", timedelta(seconds=1.5)),
        (30, timedelta(seconds=30)),
        (2.5, timedelta(seconds=2.5)),
        (timedelta(minutes=1), timedelta(minutes=1)),
    ],
)
def test_it_parses_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["fast", "", "5", "5M", "1m1h", "1.5h", "-1m", "1h fast", -5, True])
def test_it_rejects_bad_durations_naming_the_value(bad):
    with pytest.raises(ValueError, match=r'expected a duration like "15s", got "'):
        parse_duration(bad)


def test_it_names_the_callers_example():
    with pytest.raises(ValueError, match=r'^expected a duration like "10m", got "fast"$'):
        parse_duration("fast", example="10m")


@pytest.mark.parametrize(
    "value",
    [timedelta(0), timedelta(minutes=90), timedelta(seconds=1.5), timedelta(days=2, seconds=5)],
)
def test_it_prints_what_it_reads_back(value):
    assert parse_duration(format_duration(value)) == value
