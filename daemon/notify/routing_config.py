"""Config models of notification routing: ``notify.route``, ``notify.inhibit_rules`` and
``notify.time_intervals``, shaped like Alertmanager's ``route``, ``inhibit_rules`` and
``time_intervals``.

Every matcher string, label name, duration and time interval field is checked when the model is
built, so a bad value fails config loading with its key path. Cross-references (channel names
in ``receiver``, interval names in ``mute_time_intervals``/``active_time_intervals``) are checked
by ``validate_route``, which the config loader calls once channels are known.

Error contract: model validation raises pydantic's ``ValidationError`` (messages name the
problem; the location names the key). ``validate_route`` and ``validate_time_intervals``
return a list of ``key.path: problem`` lines, empty when everything is consistent.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from daemon.config_base import Duration, Section
from daemon.notify.matchers import LABEL_NAME, parse_matchers
from daemon.notify.timeintervals import (
    parse_day_of_month_range,
    parse_location,
    parse_month_range,
    parse_time_range,
    parse_weekday_range,
    parse_year_range,
)

logger = logging.getLogger(__name__)

DEFAULT_GROUP_BY: tuple[str, ...] = ("alertname",)
DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
GROUP_BY_ALL = "..."
"""``group_by: ['...']`` groups by every label (one group per alert)."""


def _matcher_text(value: str) -> str:
    parse_matchers(value)
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _label_name(value: str) -> str:
    if not LABEL_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid label name")
    return value


def _group_label(value: str) -> str:
    return value if value == GROUP_BY_ALL else _label_name(value)


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("must be greater than zero")
    return value


MatcherText = Annotated[str, AfterValidator(_matcher_text)]
"""One config entry of matchers: ``severity="critical"`` or ``{a="b", c=~"d"}``."""
Matchers = Annotated[list[MatcherText], BeforeValidator(_as_list)]
"""A list of matcher entries (a single string is read as a one-entry list)."""
LabelName = Annotated[str, AfterValidator(_label_name)]
GroupLabel = Annotated[str, AfterValidator(_group_label)]
PositiveDuration = Annotated[Duration | None, AfterValidator(_positive)]


class RouteConfig(Section):
    """A node of the routing tree (Alertmanager's ``<route>``).

    ``None`` for ``receiver``, ``group_by`` and the timings means "inherit from the parent";
    ``mute_time_intervals`` and ``active_time_intervals`` are not inherited (as in Alertmanager).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: str | list[str] | None = None
    """Channel name, or a list of them; unset: the parent's (the root's: every channel)."""
    matchers: Matchers = Field(default_factory=list)
    """Alertmanager matchers; all must match for an alert to take this route."""
    continue_: bool = Field(default=False, alias="continue")
    """Keep matching later siblings after this route matched."""
    group_by: list[GroupLabel] | None = None
    """Labels forming the group key; ``['...']`` groups by all labels."""
    group_wait: Duration | None = None
    """Wait before the first notification of a new group."""
    group_interval: PositiveDuration = None
    """Wait between notifications about new or resolved alerts of a group."""
    repeat_interval: PositiveDuration = None
    """Resend an unchanged, still firing group after this long."""
    mute_time_intervals: list[str] = Field(default_factory=list)
    """Names from ``notify.time_intervals`` during which this route sends nothing."""
    active_time_intervals: list[str] = Field(default_factory=list)
    """Names from ``notify.time_intervals`` outside which this route sends nothing."""
    routes: list[RouteConfig] = Field(default_factory=list)
    """Child routes, tried in order (depth first)."""

    @field_validator("group_by")
    @classmethod
    def _group_by_all_alone(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and GROUP_BY_ALL in value and len(value) > 1:
            raise ValueError("'...' (all labels) cannot be combined with label names")
        return value

    @field_validator("receiver")
    @classmethod
    def _some_receiver(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one channel (or leave it unset)")
        return value

    @property
    def receivers(self) -> tuple[str, ...] | None:
        """The channel names this route sends to; ``None`` to inherit."""
        if self.receiver is None:
            return None
        return (self.receiver,) if isinstance(self.receiver, str) else tuple(self.receiver)


class RootRouteConfig(RouteConfig):
    """The root of the routing tree: matches every alert and carries the defaults."""

    group_by: list[GroupLabel] | None = Field(default_factory=lambda: list(DEFAULT_GROUP_BY))
    group_wait: Duration | None = DEFAULT_GROUP_WAIT
    group_interval: PositiveDuration = DEFAULT_GROUP_INTERVAL
    repeat_interval: PositiveDuration = DEFAULT_REPEAT_INTERVAL


class InhibitRuleConfig(Section):
    """Mute alerts matching ``target_matchers`` while an alert matching ``source_matchers``
    fires with the same values of the ``equal`` labels."""

    source_matchers: Matchers = Field(default_factory=list)
    target_matchers: Matchers = Field(default_factory=list)
    equal: list[LabelName] = Field(default_factory=list)


def _weekday(value: str) -> str:
    parse_weekday_range(value)
    return value


def _day_of_month(value: str | int) -> str | int:
    parse_day_of_month_range(value)
    return value


def _month(value: str | int) -> str | int:
    parse_month_range(value)
    return value


def _year(value: str | int) -> str | int:
    parse_year_range(value)
    return value


def _location(value: str | None) -> str | None:
    if value is not None:
        parse_location(value)
    return value


class TimeRangeConfig(Section):
    """A range of the day, ``start_time`` included, ``end_time`` excluded (``HH:MM``)."""

    start_time: str
    end_time: str

    @model_validator(mode="after")
    def _ordered(self) -> TimeRangeConfig:
        parse_time_range(self.start_time, self.end_time)
        return self


class TimeIntervalSpecConfig(Section):
    """One interval: a moment is inside when every given field contains it."""

    times: list[TimeRangeConfig] = Field(default_factory=list)
    weekdays: list[Annotated[str, AfterValidator(_weekday)]] = Field(default_factory=list)
    days_of_month: list[Annotated[str | int, AfterValidator(_day_of_month)]] = Field(
        default_factory=list
    )
    months: list[Annotated[str | int, AfterValidator(_month)]] = Field(default_factory=list)
    years: list[Annotated[str | int, AfterValidator(_year)]] = Field(default_factory=list)
    location: Annotated[str | None, AfterValidator(_location)] = None
    """IANA time zone of the fields above; default UTC; ``Local`` for the host's zone."""


class TimeIntervalConfig(Section):
    """A named list of intervals, referred to by routes' mute/active time intervals."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    time_intervals: list[TimeIntervalSpecConfig] = Field(default_factory=list)


def validate_route(
    route: RouteConfig,
    channel_names: Collection[str],
    interval_names: Collection[str],
    *,
    prefix: str = "notify.route",
) -> list[str]:
    """Cross-check the tree: channel and interval names exist; the root matches everything.

    Returns ``key.path: problem`` lines (``notify.route.routes.0.receiver: unknown channel
    'pager'``), empty when the tree is consistent. Never raises for a valid model.
    """
    problems: list[str] = []
    if route.matchers:
        problems.append(
            f"{prefix}.matchers: the root route matches every alert; put matchers on child routes"
        )
    if route.continue_:
        problems.append(f"{prefix}.continue: not allowed on the root route")
    _check_node(route, prefix, channel_names, interval_names, problems)
    return problems


def _check_node(
    route: RouteConfig,
    path: str,
    channel_names: Collection[str],
    interval_names: Collection[str],
    problems: list[str],
) -> None:
    known = ", ".join(sorted(channel_names)) or "none configured"
    for name in route.receivers or ():
        if name not in channel_names:
            problems.append(f"{path}.receiver: unknown channel {name!r} (channels: {known})")
    for key in ("mute_time_intervals", "active_time_intervals"):
        for index, name in enumerate(getattr(route, key)):
            if name not in interval_names:
                problems.append(
                    f"{path}.{key}.{index}: unknown time interval {name!r} "
                    "(define it under notify.time_intervals)"
                )
    for index, child in enumerate(route.routes):
        _check_node(child, f"{path}.routes.{index}", channel_names, interval_names, problems)


def validate_time_intervals(
    intervals: Sequence[TimeIntervalConfig], *, prefix: str = "notify.time_intervals"
) -> list[str]:
    """``key.path: problem`` lines for names used twice; empty when all names are unique."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, interval in enumerate(intervals):
        if interval.name in seen:
            problems.append(f"{prefix}.{index}.name: name {interval.name!r} is used twice")
        seen.add(interval.name)
    return problems


__all__ = [
    "DEFAULT_GROUP_BY",
    "DEFAULT_GROUP_INTERVAL",
    "DEFAULT_GROUP_WAIT",
    "DEFAULT_REPEAT_INTERVAL",
    "GROUP_BY_ALL",
    "InhibitRuleConfig",
    "RootRouteConfig",
    "RouteConfig",
    "TimeIntervalConfig",
    "TimeIntervalSpecConfig",
    "TimeRangeConfig",
    "validate_route",
    "validate_time_intervals",
]
