"""``request_volatility``: a model's daily request volume swings a lot from day to day.

Volatile demand favours elastic (cloud) capacity over owned GPUs: a daily standard deviation
above 30% of the mean is the usual line. For each model, the last ``lookback_days`` complete
UTC days of ``daily_requests`` are taken; the model is judged only with at least ``min_days``
of them and a mean of at least ``min_mean_requests`` requests a day (a near-idle model's
swings mean nothing). The coefficient of variation is the population standard deviation
divided by the mean; the model is reported when it is strictly above ``above``.

Params: ``lookback_days`` (whole number >= 2, default 14), ``min_days`` (whole number, 2 to
``lookback_days``, default 7), ``above`` (number >= 0, default 0.3), ``min_mean_requests``
(number >= 0, default 100). The rule's window is ``lookback_days`` days.

Finding labels: ``model``; value: the coefficient of variation (0.45 = 45%); details: ``days``
(days judged), ``mean`` (requests a day).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from rules.base import Finding, RuleConfigError, RuleContext
from rules.params import merge_params, number, whole_number

logger = logging.getLogger(__name__)

_DEFAULTS: Mapping[str, Any] = {
    "lookback_days": 14,
    "min_days": 7,
    "above": 0.3,
    "min_mean_requests": 100,
}


def coefficient_of_variation(values: tuple[float, ...]) -> float:
    """Population standard deviation over mean; raises ``ValueError`` when the mean is not
    above zero or ``values`` is empty."""
    if not values:
        raise ValueError("no values")
    mean = math.fsum(values) / len(values)
    if not mean > 0:
        raise ValueError(f"mean must be above zero, got {mean!r}")
    variance = math.fsum((value - mean) ** 2 for value in values) / len(values)
    return math.sqrt(variance) / mean


class RequestVolatilityRule:
    """Day-to-day request volatility per model. Constructor raises ``RuleConfigError`` naming
    the bad key; ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "request_volatility"
    needs: frozenset[str] = frozenset({"daily_requests"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        self.lookback_days = whole_number("lookback_days", merged["lookback_days"], minimum=2)
        self.min_days = whole_number("min_days", merged["min_days"], minimum=2)
        if self.min_days > self.lookback_days:
            raise RuleConfigError(
                "min_days",
                f"must not exceed lookback_days ({self.lookback_days}), got {self.min_days}",
            )
        self.above = number("above", merged["above"], minimum=0)
        self.min_mean_requests = number("min_mean_requests", merged["min_mean_requests"], minimum=0)
        self.window: timedelta = timedelta(days=self.lookback_days)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per volatile model, in ``ctx.daily_requests`` order."""
        findings = []
        for model, daily in ctx.daily_requests.items():
            days = tuple(daily[-self.lookback_days :])
            if len(days) < self.min_days or not all(math.isfinite(value) for value in days):
                continue
            mean = math.fsum(days) / len(days)
            if mean < self.min_mean_requests or not mean > 0:
                continue
            variation = coefficient_of_variation(days)
            if not variation > self.above:
                continue
            findings.append(
                Finding(
                    labels={"model": model},
                    value=variation,
                    details={"days": len(days), "mean": mean},
                )
            )
        return findings
