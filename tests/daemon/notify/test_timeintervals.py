"""Time intervals with Alertmanager's semantics: ranges, end-exclusive times, zones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from daemon.notify.timeintervals import (
    TimeIntervalError,
    in_any,
    parse_clock,
    parse_day_of_month_range,
    parse_month_range,
    parse_weekday_range,
    parse_year_range,
    time_interval,
)

# 2026-08-20 is a Thursday.
THURSDAY_NOON = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_it_parses_weekday_names_and_ranges() -> None:
    assert parse_weekday_range("monday:friday") == (1, 5)
    assert parse_weekday_range("Saturday") == (6, 6)
    assert parse_weekday_range("sunday") == (0, 0)


def test_it_parses_days_months_and_years() -> None:
    assert parse_day_of_month_range("1:5") == (1, 5)
    assert parse_day_of_month_range(15) == (15, 15)
    assert parse_day_of_month_range("-3:-1") == (-3, -1)
    assert parse_month_range("january:march") == (1, 3)
    assert parse_month_range("1:3") == (1, 3)
    assert parse_month_range(12) == (12, 12)
    assert parse_year_range("2026:2027") == (2026, 2027)
    assert parse_clock("00:00") == 0
    assert parse_clock("24:00") == 1440


@pytest.mark.parametrize(
    ("parse", "value", "problem"),
    [
        (parse_weekday_range, "friday:monday", "start day is after the end day"),
        (parse_weekday_range, "funday", "'funday' is not a weekday"),
        (parse_weekday_range, "1:5", "'1' is not a weekday"),
        (parse_day_of_month_range, "0", "not a day of the month"),
        (parse_day_of_month_range, "32", "not a day of the month"),
        (parse_day_of_month_range, "-3:5", "must be negative"),
        (parse_day_of_month_range, "10:2", "always before the start day"),
        (parse_month_range, "march:january", "end month is before"),
        (parse_month_range, "13", "13 is not a month"),
        (parse_month_range, "smarch", "not a valid month"),
        (parse_year_range, "2027:2026", "end year is before"),
        (parse_year_range, "1:2:3", "not a range"),
        (parse_clock, "7:30", "not a time like"),
        (parse_clock, "24:30", "out of range"),
        (parse_clock, "12:60", "out of range"),
    ],
)
def test_it_rejects_bad_values_with_the_value_in_the_message(
    parse: Any, value: str, problem: str
) -> None:
    with pytest.raises(TimeIntervalError) as caught:
        parse(value)
    assert problem in str(caught.value)


def test_it_excludes_the_end_of_a_time_range() -> None:
    business = time_interval({"times": [{"start_time": "09:00", "end_time": "17:00"}]})
    assert business.contains(at("2026-08-20T09:00"))
    assert business.contains(at("2026-08-20T16:59"))
    assert not business.contains(at("2026-08-20T17:00"))
    assert not business.contains(at("2026-08-20T08:59"))
    late = time_interval({"times": [{"start_time": "22:00", "end_time": "24:00"}]})
    assert late.contains(at("2026-08-20T23:59"))


def test_it_needs_every_given_field_to_match() -> None:
    weekday_hours = time_interval(
        {
            "weekdays": ["monday:friday"],
            "times": [{"start_time": "09:00", "end_time": "17:00"}],
        }
    )
    assert weekday_hours.contains(THURSDAY_NOON)
    assert not weekday_hours.contains(at("2026-08-22T12:00"))  # Saturday
    assert not weekday_hours.contains(at("2026-08-20T18:00"))
    assert time_interval({}).contains(THURSDAY_NOON)


def test_it_counts_negative_days_from_the_end_of_the_month() -> None:
    last_days = time_interval({"days_of_month": ["-2:-1"]})
    assert last_days.contains(at("2028-02-28T12:00"))  # leap year: 28th is second to last
    assert last_days.contains(at("2028-02-29T12:00"))
    assert not last_days.contains(at("2028-02-27T12:00"))
    assert last_days.contains(at("2026-08-31T00:00"))
    assert not last_days.contains(at("2026-08-29T00:00"))


def test_it_clamps_day_ranges_to_the_month() -> None:
    late_month = time_interval({"days_of_month": ["29:31"]})
    assert not late_month.contains(at("2026-02-28T00:00"))
    assert late_month.contains(at("2026-04-30T00:00"))
    assert late_month.contains(at("2026-03-31T00:00"))


def test_it_checks_months_and_years() -> None:
    q1 = time_interval({"months": ["january:march"], "years": ["2026"]})
    assert q1.contains(at("2026-02-10T00:00"))
    assert not q1.contains(at("2026-04-01T00:00"))
    assert not q1.contains(at("2027-02-10T00:00"))


def test_it_converts_the_moment_into_the_location_first() -> None:
    berlin_morning = time_interval(
        {"times": [{"start_time": "08:00", "end_time": "09:00"}], "location": "Europe/Berlin"}
    )
    # Summer time: Berlin is UTC+2, so 06:30 UTC is 08:30 there.
    assert berlin_morning.contains(at("2026-08-20T06:30"))
    assert not berlin_morning.contains(at("2026-08-20T08:30"))
    # Winter time: UTC+1.
    assert berlin_morning.contains(at("2026-01-15T07:30"))
    # The weekday is the local one too: 23:30 UTC on Friday is Saturday in Tokyo.
    tokyo_weekend = time_interval({"weekdays": ["saturday", "sunday"], "location": "Asia/Tokyo"})
    assert tokyo_weekend.contains(at("2026-08-21T23:30"))
    assert not tokyo_weekend.contains(at("2026-08-21T12:00"))


def test_it_reads_naive_moments_as_utc() -> None:
    noon = time_interval({"times": [{"start_time": "12:00", "end_time": "13:00"}]})
    assert noon.contains(datetime(2026, 8, 20, 12, 30))


def test_it_prefixes_errors_with_the_field() -> None:
    with pytest.raises(TimeIntervalError, match=r"^weekdays\[1\]: 'someday'"):
        time_interval({"weekdays": ["monday", "someday"]})
    with pytest.raises(TimeIntervalError, match=r"^times\[0\]: start_time '10:00' must be before"):
        time_interval({"times": [{"start_time": "10:00", "end_time": "09:00"}]})
    with pytest.raises(TimeIntervalError, match=r"^times\[0\]: both start_time and end_time"):
        time_interval({"times": [{"start_time": "10:00"}]})
    with pytest.raises(TimeIntervalError, match=r"^location: unknown time zone 'Mars/Olympus'"):
        time_interval({"location": "Mars/Olympus"})
    with pytest.raises(TimeIntervalError, match=r"^hours: unknown key"):
        time_interval({"hours": ["9:17"]})


def test_it_says_whether_any_interval_of_a_list_contains_the_moment() -> None:
    weekend = time_interval({"weekdays": ["saturday", "sunday"]})
    nights = time_interval({"times": [{"start_time": "00:00", "end_time": "06:00"}]})
    assert not in_any([weekend, nights], THURSDAY_NOON)
    assert in_any([weekend, nights], at("2026-08-20T05:00"))
    assert not in_any([], THURSDAY_NOON)
