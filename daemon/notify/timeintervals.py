"""Named time intervals for mute and active windows, with Alertmanager's semantics.

A time interval (``timeinterval/timeinterval.go``) contains a moment when every field that is
given contains it; an empty or missing field does not restrict:

- ``times``: ``[{start_time: "HH:MM", end_time: "HH:MM"}]``; the end is exclusive and
  ``24:00`` ends the day; ``start_time`` must be before ``end_time``.
- ``weekdays``: names or ranges of names, ``monday:friday``, ``saturday`` (Sunday is 0).
- ``days_of_month``: ``1:5``, ``15``, or counted from the month's end with negatives,
  ``-1`` (last day), ``-3:-1``; ranges are clamped to the month's length.
- ``months``: names or numbers, ``january:march``, ``1:3``, ``12``.
- ``years``: ``2026``, ``2026:2027``.
- ``location``: an IANA zone (``Europe/Berlin``), ``UTC`` (default) or ``Local``; the moment
  is converted to it before the fields are checked.

A named time interval is a list of such intervals: it contains a moment when any of them does.

Error contract: the ``parse_*`` functions raise ``TimeIntervalError`` (a ``ValueError``) with a
message that quotes the bad value; ``time_interval`` prefixes it with the field name
(``weekdays[0]: ...``).
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.store.models import as_utc

logger = logging.getLogger(__name__)

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)

Range = tuple[int, int]
"""An inclusive range ``(begin, end)``."""


class TimeIntervalError(ValueError):
    """A time interval field is invalid; the message quotes the value and the problem."""


@dataclass(frozen=True)
class TimeInterval:
    """One parsed interval; ``None`` for a field means "any"."""

    times: tuple[Range, ...] | None = None
    """Minute-of-day ranges ``(start, end)`` with ``end`` exclusive."""
    weekdays: tuple[Range, ...] | None = None
    days_of_month: tuple[Range, ...] | None = None
    months: tuple[Range, ...] | None = None
    years: tuple[Range, ...] | None = None
    location: tzinfo | None = None
    """``None`` is UTC."""
    local: bool = False
    """``location: Local``: the host's zone."""

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (naive = UTC) falls inside this interval."""
        utc = as_utc(moment)
        if self.local:
            when = utc.astimezone()
        else:
            when = utc.astimezone(self.location) if self.location is not None else utc
        if self.times is not None:
            minute = when.hour * 60 + when.minute
            if not any(start <= minute < end for start, end in self.times):
                return False
        if self.days_of_month is not None and not self._day_in_month(when):
            return False
        if self.months is not None and not _within(when.month, self.months):
            return False
        if self.weekdays is not None and not _within(_weekday(when), self.weekdays):
            return False
        return self.years is None or _within(when.year, self.years)

    def _day_in_month(self, when: datetime) -> bool:
        assert self.days_of_month is not None
        length = calendar.monthrange(when.year, when.month)[1]
        for begin, end in self.days_of_month:
            first = length + begin + 1 if begin < 0 else begin
            last = length + end + 1 if end < 0 else end
            if first > length:
                continue
            first, last = _clamp(first, -length, length), _clamp(last, -length, length)
            if first <= when.day <= last:
                return True
        return False


def _within(value: int, ranges: Iterable[Range]) -> bool:
    return any(begin <= value <= end for begin, end in ranges)


def _weekday(when: datetime) -> int:
    """Go's numbering: Sunday is 0."""
    return (when.weekday() + 1) % 7


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def parse_clock(text: Any) -> int:
    """Minutes since midnight of ``HH:MM`` (``00:00`` to ``24:00``).

    Raises ``TimeIntervalError`` for any other text.
    """
    shown = str(text)
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        raise TimeIntervalError(f'{shown!r} is not a time like "09:30" (HH:MM, 00:00 to 24:00)')
    hours, minutes = text[:2], text[3:]
    if not (hours.isdigit() and minutes.isdigit()):
        raise TimeIntervalError(f'{shown!r} is not a time like "09:30" (HH:MM, 00:00 to 24:00)')
    value = int(hours) * 60 + int(minutes)
    if int(hours) > 24 or int(minutes) > 59 or value > 24 * 60:
        raise TimeIntervalError(f"{shown!r} is out of range (00:00 to 24:00)")
    return value


def parse_time_range(start: Any, end: Any) -> Range:
    """``(start, end)`` minutes; raises ``TimeIntervalError`` unless ``start < end``."""
    if start in (None, "") or end in (None, ""):
        raise TimeIntervalError("both start_time and end_time must be given")
    first, last = parse_clock(start), parse_clock(end)
    if first >= last:
        raise TimeIntervalError(f"start_time {start!r} must be before end_time {end!r}")
    return first, last


def _split_range(text: Any, what: str) -> tuple[str, str]:
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise TimeIntervalError(f"{text!r} is not a {what} or a range of them")
    value = str(text).strip().lower()
    if value.count(":") > 1:
        raise TimeIntervalError(f"{text!r} is not a range: use BEGIN:END")
    begin, _, end = value.partition(":")
    return begin, (end if ":" in value else begin)


def _integer(text: str, original: Any, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TimeIntervalError(f"{original!r}: {text!r} is not a valid {what}") from None


def parse_weekday_range(text: Any) -> Range:
    """``monday:friday`` or ``saturday`` as ``(1, 5)`` / ``(6, 6)``."""
    begin, end = _split_range(text, "weekday")
    days = []
    for part in (begin, end):
        if part not in WEEKDAYS:
            raise TimeIntervalError(f"{text!r}: {part!r} is not a weekday (monday ... sunday)")
        days.append(WEEKDAYS.index(part))
    if days[0] > days[1]:
        raise TimeIntervalError(f"{text!r}: the start day is after the end day (sunday is first)")
    return days[0], days[1]


def parse_day_of_month_range(text: Any) -> Range:
    """``1:5``, ``15``, ``-1``, ``-3:-1`` (negative: counted from the month's end)."""
    first, second = _split_range(text, "day of the month")
    begin = _integer(first, text, "day of the month")
    end = _integer(second, text, "day of the month")
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise TimeIntervalError(f"{text!r}: {day} is not a day of the month (1..31 or -31..-1)")
    if begin < 0 < end:
        raise TimeIntervalError(f"{text!r}: the end day must be negative when the start day is")
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise TimeIntervalError(f"{text!r}: the end day is always before the start day")
    return begin, end


def parse_month_range(text: Any) -> Range:
    """``january:march``, ``1:3`` or ``12``."""
    parts = _split_range(text, "month")
    months = []
    for part in parts:
        if part in MONTHS:
            months.append(MONTHS.index(part) + 1)
            continue
        number = _integer(part, text, "month")
        if not 1 <= number <= 12:
            raise TimeIntervalError(f"{text!r}: {number} is not a month (1..12)")
        months.append(number)
    if months[0] > months[1]:
        raise TimeIntervalError(f"{text!r}: the end month is before the start month")
    return months[0], months[1]


def parse_year_range(text: Any) -> Range:
    """``2026`` or ``2026:2027``."""
    first, second = _split_range(text, "year")
    begin, end = _integer(first, text, "year"), _integer(second, text, "year")
    if begin <= 0 or end <= 0:
        raise TimeIntervalError(f"{text!r}: years must be positive")
    if begin > end:
        raise TimeIntervalError(f"{text!r}: the end year is before the start year")
    return begin, end


def parse_location(name: Any) -> tzinfo | None:
    """The zone named ``name``; ``None`` for ``Local`` (the host's zone)."""
    if not isinstance(name, str) or not name.strip():
        raise TimeIntervalError(f'{name!r} is not a time zone name like "Europe/Berlin"')
    if name == "Local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeIntervalError(f"unknown time zone {name!r} (use an IANA name)") from None


def time_interval(spec: Mapping[str, Any]) -> TimeInterval:
    """Parse one interval from its config mapping (``times``, ``weekdays``, ...).

    Raises ``TimeIntervalError`` prefixed with the field (``days_of_month[1]: ...``).
    """
    known = {"times", "weekdays", "days_of_month", "months", "years", "location"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise TimeIntervalError(f"{unknown[0]}: unknown key")

    def ranges(key: str, parse: Any) -> tuple[Range, ...] | None:
        values = spec.get(key)
        if not values:
            return None
        if isinstance(values, str | int):
            values = [values]
        parsed = []
        for index, value in enumerate(values):
            try:
                parsed.append(parse(value))
            except TimeIntervalError as exc:
                raise TimeIntervalError(f"{key}[{index}]: {exc}") from None
        return tuple(parsed)

    times: tuple[Range, ...] | None = None
    if spec.get("times"):
        found = []
        for index, entry in enumerate(spec["times"]):
            start, end = _time_fields(entry)
            try:
                found.append(parse_time_range(start, end))
            except TimeIntervalError as exc:
                raise TimeIntervalError(f"times[{index}]: {exc}") from None
        times = tuple(found)
    location_name = spec.get("location")
    location: tzinfo | None = None
    if location_name is not None:
        try:
            location = parse_location(location_name)
        except TimeIntervalError as exc:
            raise TimeIntervalError(f"location: {exc}") from None
    return TimeInterval(
        times=times,
        weekdays=ranges("weekdays", parse_weekday_range),
        days_of_month=ranges("days_of_month", parse_day_of_month_range),
        months=ranges("months", parse_month_range),
        years=ranges("years", parse_year_range),
        location=location,
        local=location_name == "Local",
    )


def _time_fields(entry: Any) -> tuple[Any, Any]:
    if isinstance(entry, Mapping):
        return entry.get("start_time"), entry.get("end_time")
    return getattr(entry, "start_time", None), getattr(entry, "end_time", None)


def in_any(intervals: Sequence[TimeInterval], moment: datetime) -> bool:
    """Whether any interval contains ``moment``."""
    return any(interval.contains(moment) for interval in intervals)


__all__ = [
    "MONTHS",
    "WEEKDAYS",
    "TimeInterval",
    "TimeIntervalError",
    "in_any",
    "parse_clock",
    "parse_day_of_month_range",
    "parse_location",
    "parse_month_range",
    "parse_time_range",
    "parse_weekday_range",
    "parse_year_range",
    "time_interval",
]
