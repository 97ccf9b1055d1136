"""``budget_forecast``: a monthly budget is forecast to be (or already is) overspent.

For each budget (all of them, or the ones named in ``budgets``), the ratio of the month's
forecast (``basis: forecast``, default) or of the month-to-date spend (``basis: spent``) to the
budget amount is compared with ``above_ratio``; the budget is reported when the ratio is
strictly above it (exactly ``above_ratio`` is not reported). Early in the month there is no
forecast yet: such a budget is not reported on the ``forecast`` basis. Budgets with an amount
of zero or less have no meaningful ratio and are never reported. Money stays ``Decimal``; only
the finding's value is a float.

The rule reads the budgets' state as of now; it needs no history (its window is zero).

Params: ``above_ratio`` (number > 0, default 1.0, i.e. 100% of the budget), ``budgets`` (list of
budget names; default ``[]`` = every budget), ``basis`` (``forecast`` (default) or ``spent``).

Finding labels: ``budget`` (its name), ``currency``, plus ``provider`` and ``service`` when the
budget is scoped to them; value: the ratio (1.25 = 125% of the budget); details: ``basis``,
``amount`` and ``compared`` (the forecast or month-to-date spend), as Decimal text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

from rules.base import BudgetView, Finding, RuleConfigError, RuleContext
from rules.params import choice, merge_params, number, string_list

logger = logging.getLogger(__name__)

_DEFAULTS: Mapping[str, Any] = {
    "above_ratio": 1.0,
    "budgets": [],
    "basis": "forecast",
}


class BudgetForecastRule:
    """Budgets forecast (or spent) above a share of their amount. Constructor raises
    ``RuleConfigError`` naming the bad key; ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "budget_forecast"
    needs: frozenset[str] = frozenset({"budgets"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        above = number("above_ratio", merged["above_ratio"], minimum=0)
        if above <= 0:
            raise RuleConfigError("above_ratio", f"expected a number above 0, got {above:g}")
        self.above_ratio = Decimal(str(above))
        self.budgets: frozenset[str] = frozenset(string_list("budgets", merged["budgets"]))
        self.basis = choice("basis", merged["basis"], ("forecast", "spent"))
        self.window: timedelta = timedelta(0)

    def _compared(self, budget: BudgetView) -> Decimal | None:
        return budget.forecast if self.basis == "forecast" else budget.month_to_date

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per budget above the ratio, in ``ctx.budgets`` order."""
        findings = []
        for budget in ctx.budgets:
            if self.budgets and budget.name not in self.budgets:
                continue
            compared = self._compared(budget)
            if compared is None or not compared.is_finite() or not budget.amount.is_finite():
                continue
            if budget.amount <= 0:
                continue
            share = compared / budget.amount
            if not share > self.above_ratio:
                continue
            labels = {"budget": budget.name, "currency": budget.currency}
            if budget.provider:
                labels["provider"] = budget.provider
            if budget.service:
                labels["service"] = budget.service
            details = {"basis": self.basis, "amount": str(budget.amount), "compared": str(compared)}
            findings.append(Finding(labels=labels, value=float(share), details=details))
        return findings
