"""The overview's cost panel as plain data, from the latest ``CostFigures`` (no I/O).

Amounts stay ``Decimal`` (the JSON twin writes them as strings) and keep their own currency:
nothing is converted here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Amount:
    """Money in one currency."""

    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """A monthly budget beside its month-end forecast."""

    name: str
    amount: Amount
    forecast: Amount | None
    forecast_ratio: float | None
    """forecast / amount (over 1 = the month will end over budget)."""


@dataclass(frozen=True, slots=True)
class ModelCostRow:
    """Self-hosted cost per million tokens beside the cloud cost of the same tokens."""

    model: str
    allocation: Amount | None
    usage: Amount | None
    cloud: Amount | None
    cloud_model: str
    break_even_tokens_per_month: Decimal | None


@dataclass(frozen=True, slots=True)
class CostSummary:
    """The overview's cost panel."""

    spend_today: list[Amount]
    spend_month: list[Amount]
    idle_cost: list[Amount]
    budgets: list[BudgetRow]
    models: list[ModelCostRow]
    notes: list[str]


FLEET = "all"
"""The fleet-wide row of ``CostFigures.cost_per_million`` (every GPU over every token)."""


def _by_currency(amounts: Any) -> list[Amount]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for money in amounts:
        totals[money.currency] += money.amount
    return [Amount(total, currency) for currency, total in sorted(totals.items())]


def _amount(money: Any) -> Amount | None:
    return None if money is None else Amount(money.amount, money.currency)


def build_cost_summary(figures: Any) -> CostSummary | None:
    """Summarise ``daemon.costs.figures.CostFigures`` (``None`` before the first computation)."""
    if figures is None:
        return None
    spend = figures.cloud_spend
    budgets = []
    for name, amount in sorted(figures.budget_amount.items()):
        forecast = figures.budget_forecast.get(name)
        ratio = (
            float(forecast.amount / amount.amount)
            if forecast is not None and amount.amount > 0
            else None
        )
        budgets.append(
            BudgetRow(name, Amount(amount.amount, amount.currency), _amount(forecast), ratio)
        )
    models = []
    served = sorted(
        {model for model, _ in figures.cost_per_million}
        | {model for model, _, _ in figures.cloud_equivalent}
    )
    for model in served:
        cloud_key = next(((p, c) for m, p, c in figures.cloud_equivalent if m == model), None)
        models.append(
            ModelCostRow(
                model=model,
                allocation=_amount(figures.cost_per_million.get((model, "allocation"))),
                usage=_amount(figures.cost_per_million.get((model, "usage"))),
                cloud=_amount(figures.cloud_equivalent.get((model, *cloud_key)))
                if cloud_key
                else None,
                cloud_model=f"{cloud_key[0]}/{cloud_key[1]}" if cloud_key else "",
                break_even_tokens_per_month=figures.break_even_tokens.get((model, *cloud_key))
                if cloud_key
                else None,
            )
        )
    return CostSummary(
        spend_today=_by_currency(m for (_, _, period), m in spend.items() if period == "today"),
        spend_month=_by_currency(m for (_, _, period), m in spend.items() if period == "month"),
        idle_cost=_by_currency(figures.idle_cost_total.values()),
        budgets=budgets,
        models=models,
        notes=list(figures.notes),
    )
