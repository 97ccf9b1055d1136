"""Exporter families for the cost figures (``daemon.costs.figures.CostFigures``).

Money goes out as floats in the exposition (Prometheus has no decimals) with a ``currency``
label; the exact ``Decimal`` stays in the store and on the board. No I/O, never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.exporter_details import FamilySink
from daemon.state import LiveView

_PARAMETERS = (
    ("purchase_price", "currency"),
    ("depreciation_years", "years"),
    ("power_price_per_kwh", "currency_per_kwh"),
    ("pue", "ratio"),
    ("ops_cost_per_year", "currency_per_year"),
    ("dr_cost_per_year", "currency_per_year"),
    ("upgrade_cost_per_event", "currency"),
    ("upgrades_per_5y", "count"),
)


def add_cost_families(
    view: LiveView, gpu_labels: Mapping[str, Mapping[str, str]], out: FamilySink
) -> None:
    """Cost families from ``view.costs``; ``gpu_labels`` gives each UUID's usual GPU labels."""
    figures: Any = view.costs
    if figures is None:
        return
    for uuid, money in sorted(figures.gpu_hourly.items()):
        if uuid in gpu_labels:
            out.add(
                "gpu_hourly_cost",
                "gauge",
                "Full cost of one GPU-hour at the current power draw (capex + fixed + energy).",
                {**gpu_labels[uuid], "currency": money.currency},
                float(money.amount),
            )
    for uuid, money in sorted(figures.idle_cost_total.items()):
        if uuid in gpu_labels:
            out.add(
                "gpu_idle_cost",
                "counter",
                "Cost of the GPU's idle time since this process started.",
                {**gpu_labels[uuid], "currency": money.currency},
                float(money.amount),
            )
    for (model, basis), money in sorted(figures.cost_per_million.items()):
        out.add(
            "llm_cost_per_million_tokens",
            "gauge",
            "Self-hosted cost per million tokens over the last 24 h; cost_basis allocation "
            "charges idle time too (compare this one with API prices), usage only busy time.",
            {"model": model, "cost_basis": basis, "currency": money.currency},
            float(money.amount),
        )
    for (provider, model, kind), money in sorted(figures.cloud_price.items()):
        out.add(
            "llm_cloud_price_per_million_tokens",
            "gauge",
            "Cloud API list price per million tokens now, by token kind.",
            {"provider": provider, "model": model, "kind": kind, "currency": money.currency},
            float(money.amount),
        )
    for (model, provider, cloud_model), money in sorted(figures.cloud_equivalent.items()):
        out.add(
            "llm_cloud_cost_per_million_tokens",
            "gauge",
            "What the same 24 h token mix (cache hits, misses, output) would cost per million "
            "tokens on the cloud API at today's prices: compare with the allocation basis.",
            {
                "model": model,
                "provider": provider,
                "cloud_model": cloud_model,
                "currency": money.currency,
            },
            float(money.amount),
        )
    for (model, provider, cloud_model), tokens in sorted(figures.break_even_tokens.items()):
        out.add(
            "llm_break_even_tokens_per_month",
            "gauge",
            "Monthly tokens at which the cloud API would cost what the model's GPUs cost in a "
            "month: above it self-hosting is cheaper.",
            {"model": model, "provider": provider, "cloud_model": cloud_model},
            float(tokens),
        )
    for (provider, service, period), money in sorted(figures.cloud_spend.items()):
        out.add(
            "cloud_spend",
            "gauge",
            "Cloud spend billed so far in the period (today or month, UTC).",
            {
                "provider": provider,
                "service": service,
                "period": period,
                "currency": money.currency,
            },
            float(money.amount),
        )
    for name, money in sorted(figures.budget_forecast.items()):
        out.add(
            "budget_forecast",
            "gauge",
            "Month-end spend forecast of a budget (linear on month to date).",
            {"budget": name, "currency": money.currency},
            float(money.amount),
        )
    for name, money in sorted(figures.budget_amount.items()):
        out.add(
            "budget_amount",
            "gauge",
            "A budget's monthly amount.",
            {"budget": name, "currency": money.currency},
            float(money.amount),
        )
    for model_name, model in sorted(figures.gpu_models.items()):
        for parameter, unit in _PARAMETERS:
            out.add(
                "gpu_cost_model_parameter",
                "gauge",
                "The effective local cost model input, echoed so nobody guesses a unit.",
                {
                    "gpu_model": model_name,
                    "parameter": parameter,
                    "unit": unit.replace("currency", model.currency),
                },
                float(getattr(model, parameter)),
            )
