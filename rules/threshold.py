"""``threshold``: any stored series, aggregated over a window, compared with a value.

The series named by ``series`` (one of ``rules.series.SERIES``) is read over the window ending
now; a point counts when ``now - window < time <= now``. Its points are aggregated with
``aggregation``:

``avg`` (mean of the points), ``min``, ``max``, ``sum``, ``count`` (number of points),
``last`` (the latest point's value).

With ``by: []`` (default) each stored series (each label set) is judged on its own and the
finding carries all of its labels. With ``by: [node]`` (labels of that series) the points of
every series sharing those label values are pooled before aggregating (``avg`` is then the mean
over all pooled points, ``count`` their number, ``last`` the latest of them) and the finding
carries only the ``by`` labels (a label a series lacks is left out). A series or group with no
point in the window gives no finding, as in PromQL.

The finding is reported when ``aggregate <op> value`` holds, ``op`` being one of ``>``, ``<``,
``>=``, ``<=``, ``==``, ``!=``.

Params: ``series`` (required), ``aggregation`` (default ``avg``), ``window`` (duration, default
``5m``), ``op`` (required), ``value`` (number, required), ``by`` (list of the series' labels,
default ``[]``).

Finding labels: the series' labels (or the ``by`` labels); value: the aggregate; details:
``points`` (number of points aggregated).
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from rules.base import Finding, RuleConfigError, RuleContext, Series
from rules.params import choice, duration, merge_params, number, string_list
from rules.series import SERIES

logger = logging.getLogger(__name__)

Point = tuple[datetime, float]

OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _last(points: Sequence[Point]) -> float:
    latest = points[0]
    for point in points[1:]:
        if point[0] >= latest[0]:
            latest = point
    return latest[1]


AGGREGATIONS: Mapping[str, Callable[[Sequence[Point]], float]] = {
    "avg": lambda points: math.fsum(v for _, v in points) / len(points),
    "min": lambda points: min(v for _, v in points),
    "max": lambda points: max(v for _, v in points),
    "sum": lambda points: math.fsum(v for _, v in points),
    "count": lambda points: float(len(points)),
    "last": _last,
}
"""Aggregations over a non-empty list of points."""

_REQUIRED = object()
_DEFAULTS: Mapping[str, Any] = {
    "series": _REQUIRED,
    "aggregation": "avg",
    "window": "5m",
    "op": _REQUIRED,
    "value": _REQUIRED,
    "by": [],
}


def _utc(moment: datetime) -> datetime:
    """``moment`` with a time zone (naive times are UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ThresholdRule:
    """A stored series' aggregate compared with a value. Constructor raises ``RuleConfigError``
    naming the bad key (missing required keys included); ``evaluate`` never raises on a
    well-formed context."""

    kind: ClassVar[str] = "threshold"
    needs: frozenset[str] = frozenset({"series"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        for key in ("series", "op", "value"):
            if merged[key] is _REQUIRED:
                raise RuleConfigError(key, "required parameter is missing")
        name = merged["series"]
        if not isinstance(name, str) or name not in SERIES:
            known = ", ".join(sorted(SERIES))
            raise RuleConfigError("series", f"unknown series {name!r} (known: {known})")
        self.series = name
        self.series_names = frozenset({name})
        self.aggregation = choice("aggregation", merged["aggregation"], tuple(AGGREGATIONS))
        self.window: timedelta = duration("window", merged["window"], example="5m")
        self.op = choice("op", merged["op"], tuple(OPERATORS))
        self.value = number("value", merged["value"])
        by = tuple(dict.fromkeys(string_list("by", merged["by"])))
        labels = SERIES[name].labels
        for label in by:
            if label not in labels:
                raise RuleConfigError(
                    "by", f"{name} has no label {label!r} (labels: {', '.join(labels)})"
                )
        self.by: tuple[str, ...] = by

    def _group_key(self, series: Series) -> tuple[tuple[str, str], ...]:
        if not self.by:
            return tuple(sorted((str(k), str(v)) for k, v in series.labels.items()))
        return tuple(
            (label, str(series.labels[label])) for label in self.by if series.labels.get(label)
        )

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per series (or group) whose aggregate satisfies the comparison, in order
        of first appearance in ``ctx.series``."""
        now = _utc(ctx.now)
        start = now - self.window
        groups: dict[tuple[tuple[str, str], ...], list[Point]] = {}
        for series in ctx.series:
            if series.name != self.series:
                continue
            stamped = ((_utc(t), v) for t, v in series.points)
            points = [(t, v) for t, v in stamped if start < t <= now]
            if points:
                groups.setdefault(self._group_key(series), []).extend(points)
        aggregate = AGGREGATIONS[self.aggregation]
        compare = OPERATORS[self.op]
        findings = []
        for key, points in groups.items():
            value = aggregate(points)
            if compare(value, self.value):
                findings.append(
                    Finding(labels=dict(key), value=value, details={"points": len(points)})
                )
        return findings
