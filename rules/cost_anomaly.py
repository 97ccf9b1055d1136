"""``cost_anomaly``: a cloud cost series spent much more (or less) than usual on its last day.

Each ``CostSeries`` (one provider / service / account, daily, complete UTC days) is judged on
its **last day** against a robust baseline of the ``lookback_days`` days before it:

- **Expected** is the median cost of the baseline days; the spread is the median absolute
  deviation (MAD) around it, floored at 5% of the median so a flat series does not turn every
  cent into an anomaly. The **robust z-score** is ``|actual - expected| / (1.4826 x spread)``
  (1.4826 x MAD estimates a standard deviation for normal data). With a zero median and zero
  MAD any change counts as an infinite score.
- With ``seasonality: weekday`` only the same weekday counts as baseline (Mondays against
  Mondays), and at least ``max(3, min_history_days // 7)`` of them are needed; weekday
  seasonality therefore needs ``lookback_days`` of at least 21.

The day is reported only when **all** of these hold (every comparison includes equality):
robust z >= ``sensitivity``; ``|impact|`` >= ``min_impact`` (``impact = actual - expected``,
in the series' currency); ``|impact_percent|`` >= ``min_impact_percent`` (``impact`` as a
percentage of ``expected``; infinite when expected is 0); ``max(actual, expected)`` >=
``min_cost``; and the series has at least ``min_history_days`` days before the judged day
inside the lookback. ``direction: up`` (default) reports increases only, ``both`` also drops.

Root causes: for each FOCUS dimension in ``CostSeries.by_dimension`` (``sku_id``,
``region_id``, ...), each value's judged-day cost is compared with its own median over the same
baseline days; values that moved in the anomaly's direction are ranked by the size of their
impact and the top ``root_cause_top`` across all dimensions are kept.

Money stays ``Decimal`` throughout and is written as Decimal text.

Params: ``lookback_days`` (whole number >= 1, default 28), ``min_history_days`` (whole number,
1 to ``lookback_days``, default 14), ``seasonality`` (``none`` (default) or ``weekday``),
``sensitivity`` (robust z, number >= 0, default 3.0), ``min_impact`` (amount, default 10),
``min_impact_percent`` (percent, number >= 0, default 20), ``min_cost`` (amount, default 1),
``direction`` (``up`` (default) or ``both``), ``root_cause_top`` (whole number >= 0, default 3).
The rule's window is ``lookback_days + 1`` days.

Finding labels: the series' labels (``provider``, ``service``, ``account``); value:
``float(impact)``; details: ``day`` (``YYYY-MM-DD``), ``expected``, ``actual``, ``impact``
(Decimal text), ``impact_percent`` (text with 2 decimals, ``Infinity``/``-Infinity`` when
expected is 0), ``currency``, ``root_causes`` (list of ``{dimension, value, expected, actual,
impact}``, Decimal text).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, ClassVar

from rules.base import CostSeries, Finding, RuleConfigError, RuleContext
from rules.params import choice, merge_params, money, number, whole_number

logger = logging.getLogger(__name__)

MAD_SCALE = Decimal("1.4826")
"""1.4826 x MAD estimates the standard deviation of normally distributed data."""
MAD_FLOOR_RATIO = Decimal("0.05")
"""The spread never counts as less than 5% of the median."""
MIN_WEEKDAY_POINTS = 3
"""Fewest same-weekday baseline days with ``seasonality: weekday``."""

_DEFAULTS: Mapping[str, Any] = {
    "lookback_days": 28,
    "min_history_days": 14,
    "seasonality": "none",
    "sensitivity": 3.0,
    "min_impact": 10,
    "min_impact_percent": 20,
    "min_cost": 1,
    "direction": "up",
    "root_cause_top": 3,
}


def median(values: Sequence[Decimal]) -> Decimal:
    """The median of ``values`` (mean of the two middle values for an even count).

    Raises ``ValueError`` for an empty sequence.
    """
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def median_absolute_deviation(values: Sequence[Decimal], center: Decimal) -> Decimal:
    """The median of ``|value - center|``; raises ``ValueError`` for an empty sequence."""
    return median([abs(value - center) for value in values])


def _percent_text(impact: Decimal, expected: Decimal) -> tuple[Decimal, str]:
    """``impact`` as a percentage of ``expected`` and its 2-decimal text (infinite at 0)."""
    if expected == 0:
        infinite = Decimal("Infinity") if impact > 0 else Decimal("-Infinity")
        return infinite, str(infinite)
    percent = impact * 100 / abs(expected)
    with localcontext(rounding=ROUND_HALF_UP):
        return percent, f"{percent:.2f}"


class CostAnomalyRule:
    """Robust-baseline cost anomalies per cost series. Constructor raises ``RuleConfigError``
    naming the bad key; ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "cost_anomaly"
    needs: frozenset[str] = frozenset({"costs"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        self.lookback_days = whole_number("lookback_days", merged["lookback_days"], minimum=1)
        self.min_history_days = whole_number(
            "min_history_days", merged["min_history_days"], minimum=1
        )
        if self.min_history_days > self.lookback_days:
            raise RuleConfigError(
                "min_history_days",
                f"must not exceed lookback_days ({self.lookback_days}), "
                f"got {self.min_history_days}",
            )
        self.seasonality = choice("seasonality", merged["seasonality"], ("none", "weekday"))
        if self.seasonality == "weekday" and self.lookback_days < 7 * MIN_WEEKDAY_POINTS:
            raise RuleConfigError(
                "lookback_days",
                f"weekday seasonality needs at least {7 * MIN_WEEKDAY_POINTS} days "
                f"({MIN_WEEKDAY_POINTS} of each weekday), got {self.lookback_days}",
            )
        sensitivity = number("sensitivity", merged["sensitivity"], minimum=0)
        self.sensitivity = Decimal(str(sensitivity))
        self.min_impact = money("min_impact", merged["min_impact"])
        percent = number("min_impact_percent", merged["min_impact_percent"], minimum=0)
        self.min_impact_percent = Decimal(str(percent))
        self.min_cost = money("min_cost", merged["min_cost"])
        self.direction = choice("direction", merged["direction"], ("up", "both"))
        self.root_cause_top = whole_number("root_cause_top", merged["root_cause_top"], minimum=0)
        self.window: timedelta = timedelta(days=self.lookback_days + 1)
        self.min_weekday_points = max(MIN_WEEKDAY_POINTS, self.min_history_days // 7)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per cost series whose last day is anomalous, in ``ctx.costs`` order."""
        findings = []
        for series in ctx.costs:
            finding = self._judge(series)
            if finding is not None:
                findings.append(finding)
        return findings

    def _baseline(self, series: CostSeries) -> list[int] | None:
        """Indices of the baseline days, or ``None`` when the history is too short."""
        judged_day = series.days[-1]
        start = judged_day - timedelta(days=self.lookback_days)
        history = [i for i, day in enumerate(series.days[:-1]) if start <= day < judged_day]
        if len(history) < self.min_history_days:
            return None
        if self.seasonality == "none":
            return history
        weekday = judged_day.weekday()
        same = [i for i in history if series.days[i].weekday() == weekday]
        return same if len(same) >= self.min_weekday_points else None

    def _is_significant(self, actual: Decimal, expected: Decimal, baseline: list[Decimal]) -> bool:
        impact = actual - expected
        if impact == 0 or (self.direction == "up" and impact < 0):
            return False
        spread = max(median_absolute_deviation(baseline, expected), abs(expected) * MAD_FLOOR_RATIO)
        scale = MAD_SCALE * spread
        if scale > 0 and abs(impact) / scale < self.sensitivity:
            return False
        if abs(impact) < self.min_impact:
            return False
        percent, _ = _percent_text(impact, expected)
        if abs(percent) < self.min_impact_percent:
            return False
        return max(actual, expected) >= self.min_cost

    def _judge(self, series: CostSeries) -> Finding | None:
        if not series.days or len(series.costs) != len(series.days):
            if series.days or series.costs:
                logger.debug("cost series %s: days and costs differ in length", series.labels)
            return None
        indices = self._baseline(series)
        if not indices:
            return None
        baseline = [series.costs[i] for i in indices]
        actual = series.costs[-1]
        if not actual.is_finite() or not all(cost.is_finite() for cost in baseline):
            return None
        expected = median(baseline)
        if not self._is_significant(actual, expected, baseline):
            return None
        impact = actual - expected
        _, percent_text = _percent_text(impact, expected)
        details = {
            "day": series.days[-1].isoformat(),
            "expected": str(expected),
            "actual": str(actual),
            "impact": str(impact),
            "impact_percent": percent_text,
            "currency": series.currency,
            "root_causes": self._root_causes(series, indices, rising=impact > 0),
        }
        return Finding(labels=dict(series.labels), value=float(impact), details=details)

    def _root_causes(
        self, series: CostSeries, indices: list[int], *, rising: bool
    ) -> list[dict[str, str]]:
        """The dimension values that moved most in the anomaly's direction, biggest first."""
        if self.root_cause_top == 0:
            return []
        causes: list[tuple[Decimal, str, str, Decimal, Decimal]] = []
        for dimension, values in series.by_dimension.items():
            for value, daily in values.items():
                if len(daily) != len(series.days):
                    continue
                baseline = [daily[i] for i in indices]
                actual = daily[-1]
                if not actual.is_finite() or not all(cost.is_finite() for cost in baseline):
                    continue
                expected = median(baseline)
                impact = actual - expected
                if (impact > 0) != rising or impact == 0:
                    continue
                causes.append((impact, dimension, value, expected, actual))
        causes.sort(key=lambda cause: (-abs(cause[0]), cause[1], cause[2]))
        return [
            {
                "dimension": dimension,
                "value": value,
                "expected": str(expected),
                "actual": str(actual),
                "impact": str(impact),
            }
            for impact, dimension, value, expected, actual in causes[: self.root_cause_top]
        ]
