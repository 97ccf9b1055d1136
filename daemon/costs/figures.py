"""The cost figures ``/metrics`` and the board show, recomputed by a job from the store.

Everything here is honest by construction: the self-hosted cost per million tokens on the
*allocation* basis charges all GPU time (idle included) to the tokens served, the *usage*
basis only the busy time; cloud prices come from the price book at ``now``; cloud spend and
budget forecasts come from stored bills in their own currency (no live FX).

Error contract: ``CostFiguresJob.run`` raises only database errors (the job wrapper logs and
counts them); missing inputs (no GPU cost model for a GPU, no price for a model) leave that
figure out and are listed in ``CostFigures.notes``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from daemon.config import CostsConfig, GpuCostModelConfig
from daemon.costs.budget import month_forecast
from daemon.costs.ledger import from_money_sum, money_sum
from daemon.costs.localcost import (
    GpuCostModel,
    break_even_tokens_per_month,
    cost_per_million_tokens,
    gpu_cost,
    monthly_cost,
)
from daemon.costs.pricebook import PriceBook, TokenPrice
from daemon.costs.windows import GpuUsage, ModelUsage, gpu_usage, model_usage, window_cost
from daemon.state import LiveState
from daemon.store.models import CostRecord, Gpu, GpuRollup

logger = logging.getLogger(__name__)

HOUR = Decimal(3600)
TOKEN_WINDOW = timedelta(hours=24)
DEFAULT_CLOUD = ("deepseek", "deepseek-chat")


@dataclass(frozen=True)
class Money:
    """An amount in its own currency."""

    amount: Decimal
    currency: str


@dataclass(frozen=True)
class CostFigures:
    """One computation of every cost figure (see the module docstring)."""

    computed_at: datetime
    gpu_hourly: dict[str, Money] = field(default_factory=dict)
    """Full cost of one hour of each GPU at its current power draw, by UUID."""
    idle_cost_total: dict[str, Money] = field(default_factory=dict)
    """Cost of idle time seen by this process, by UUID (a counter)."""
    cost_per_million: dict[tuple[str, str], Money] = field(default_factory=dict)
    """(model, basis) → self-hosted cost per million tokens over the last 24 hours."""
    cloud_price: dict[tuple[str, str, str], Money] = field(default_factory=dict)
    """(provider, model, kind) → API price per million tokens now."""
    cloud_equivalent: dict[tuple[str, str, str], Money] = field(default_factory=dict)
    """(model, provider, cloud model) → what the same 24 h token mix (cache hits, misses,
    output) would cost per million tokens on the cloud API at today's prices."""
    break_even_tokens: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    """(model, provider, cloud model) → monthly tokens at which the API costs what the model's
    GPUs cost in a month: above it self-hosting is cheaper."""
    local_monthly: dict[str, Money] = field(default_factory=dict)
    """Model → monthly cost of the GPUs serving it (at their measured average power)."""
    cloud_spend: dict[tuple[str, str, str], Money] = field(default_factory=dict)
    """(provider, service, period) → spend, period ``today`` or ``month``."""
    budget_forecast: dict[str, Money] = field(default_factory=dict)
    budget_amount: dict[str, Money] = field(default_factory=dict)
    gpu_models: dict[str, GpuCostModel] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def cost_model(entry: GpuCostModelConfig) -> GpuCostModel:
    """The local cost model of one configured GPU model."""
    return GpuCostModel(
        gpu_model=entry.gpu_model,
        currency=entry.currency,
        purchase_price=entry.purchase_price,
        depreciation_years=entry.depreciation_years,
        power_price_per_kwh=entry.power_price_per_kwh,
        pue=entry.pue,
        ops_cost_per_year=entry.ops_cost_per_year,
        dr_cost_per_year=entry.dr_cost_per_year,
        upgrade_cost_per_event=entry.upgrade_cost_per_event,
        upgrades_per_5y=entry.upgrades_per_5y,
    )


def price_book(costs: CostsConfig) -> PriceBook:
    """The shipped price book with the configured rows added or replaced."""
    overrides = [
        TokenPrice(
            provider=p.provider,
            model=p.model,
            currency=p.currency,
            effective_from=p.effective_from.astimezone(UTC)
            if p.effective_from.tzinfo
            else p.effective_from.replace(tzinfo=UTC),
            input_cache_hit=p.input_cache_hit,
            input_cache_miss=p.input_cache_miss,
            output=p.output,
        )
        for p in costs.prices
    ]
    return PriceBook.default().with_overrides(overrides)


def _dec(value: float | None) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


class CostFiguresJob:
    """Recomputes ``CostFigures`` into the live state (``LiveState.set_costs``)."""

    def __init__(self, engine: Engine, state: LiveState, costs: CostsConfig) -> None:
        self.engine = engine
        self.state = state
        self.costs = costs
        self.models = {m.gpu_model: cost_model(m) for m in costs.gpu_models}
        self.book = price_book(costs)
        self._idle_totals: dict[str, Decimal] = defaultdict(Decimal)
        self._idle_watermark: datetime | None = None
        self._monthly_local: dict[str, Money] = {}

    def run(self, now: datetime) -> CostFigures:
        """Compute every figure and publish it."""
        notes: list[str] = []
        with Session(self.engine) as session:
            names = dict(session.exec(select(Gpu.uuid, Gpu.name)).all())
            hourly = self._gpu_hourly(names, notes)
            idle = self._idle_cost(session, names, now)
            gpus = gpu_usage(session, now - TOKEN_WINDOW)
            models = model_usage(session, now - TOKEN_WINDOW, now)
            per_million = self._cost_per_million(gpus, models, names, notes)
            equivalent = self._cloud_equivalent(models, now, notes)
            spend = self._cloud_spend(session, now)
        figures = CostFigures(
            computed_at=now,
            gpu_hourly=hourly,
            idle_cost_total=idle,
            cost_per_million=per_million,
            cloud_equivalent=equivalent,
            break_even_tokens=self._break_even(equivalent),
            local_monthly=dict(self._monthly_local),
            cloud_price=self._cloud_prices(now, notes),
            cloud_spend=spend,
            budget_forecast=self._budget_forecasts(spend, now),
            budget_amount={b.name: Money(b.amount, b.currency) for b in self.costs.budgets},
            gpu_models=dict(self.models),
            notes=tuple(notes),
        )
        self.state.set_costs(figures)
        return figures

    def _gpu_hourly(self, names: Mapping[str, str], notes: list[str]) -> dict[str, Money]:
        result: dict[str, Money] = {}
        unpriced: set[str] = set()
        for uuid, gpu in self.state.view().gpus.items():
            model = self.models.get(gpu.name)
            if model is None:
                unpriced.add(gpu.name)
                continue
            cost = gpu_cost(
                model,
                hours=Decimal(1),
                energy_joules=None,
                avg_power_watts=_dec(gpu.power_watts) if gpu.power_watts is not None else None,
            )
            result[uuid] = Money(cost.total, model.currency)
        notes.extend(f"no costs.gpu_models entry for {name!r}" for name in sorted(unpriced))
        return result

    def _idle_cost(
        self, session: Session, names: Mapping[str, str], now: datetime
    ) -> dict[str, Money]:
        query = select(GpuRollup).where(GpuRollup.resolution_seconds == 60)
        if self._idle_watermark is not None:
            query = query.where(col(GpuRollup.bucket_start) > self._idle_watermark)
        else:  # a new process counts from now on (a counter starts at 0)
            query = query.where(col(GpuRollup.bucket_start) >= now - timedelta(minutes=2))
        for rollup in session.exec(query.order_by(col(GpuRollup.bucket_start))):
            model = self.models.get(names.get(rollup.gpu_uuid, ""))
            self._idle_watermark = rollup.bucket_start
            if model is None or not rollup.idle_seconds:
                continue
            idle_hours = _dec(rollup.idle_seconds) / HOUR
            cost = gpu_cost(
                model,
                hours=idle_hours,
                energy_joules=None,
                avg_power_watts=_dec(rollup.avg_power_watts)
                if rollup.avg_power_watts is not None
                else None,
            )
            self._idle_totals[rollup.gpu_uuid] += cost.total
        return {
            uuid: Money(total, self.models[names[uuid]].currency)
            for uuid, total in self._idle_totals.items()
            if names.get(uuid) in self.models
        }

    def _cost_per_million(
        self,
        gpus: Mapping[str, GpuUsage],
        models: Mapping[str, ModelUsage],
        names: Mapping[str, str],
        notes: list[str],
    ) -> dict[tuple[str, str], Money]:
        result: dict[tuple[str, str], Money] = {}
        monthly: dict[str, Money] = {}
        for model_name, usage in models.items():
            allocated = busy = local_month = Decimal(0)
            currencies: set[str] = set()
            for uuid in usage.gpu_uuids:
                cost_model_ = self.models.get(names.get(uuid, ""))
                gpu = gpus.get(uuid)
                if cost_model_ is None or gpu is None:
                    continue
                currencies.add(cost_model_.currency)
                total, busy_part = window_cost(cost_model_, gpu)
                allocated += total
                busy += busy_part
                local_month += monthly_cost(cost_model_, avg_power_watts=gpu.avg_power_watts)
            if len(currencies) != 1:
                continue
            (currency,) = currencies
            monthly[model_name] = Money(local_month, currency)
            result.update(self._per_million(model_name, allocated, busy, usage.tokens, currency))
        result.update(self._fleet_per_million(gpus, names, models))
        unmapped = sorted(m for m, usage in models.items() if not usage.gpu_uuids)
        notes.extend(f"model {m!r}: its GPUs are unknown, no self-hosted cost" for m in unmapped)
        self._monthly_local = monthly
        return result

    @staticmethod
    def _per_million(
        model: str, allocated: Decimal, busy: Decimal, tokens: Decimal, currency: str
    ) -> dict[tuple[str, str], Money]:
        if tokens <= 0:
            return {}
        figures = cost_per_million_tokens(allocated_cost=allocated, busy_cost=busy, tokens=tokens)
        return {
            (model, basis): Money(amount, currency)
            for basis, amount in (
                ("allocation", figures.allocation_basis),
                ("usage", figures.usage_basis),
            )
            if amount is not None
        }

    def _fleet_per_million(
        self,
        gpus: Mapping[str, GpuUsage],
        names: Mapping[str, str],
        models: Mapping[str, ModelUsage],
    ) -> dict[tuple[str, str], Money]:
        """``model="all"``: every priced GPU's cost (idle GPUs serving nothing included) over
        every token served: the fleet's honest figure. Needs one currency across GPU models."""
        allocated = busy = Decimal(0)
        currencies: set[str] = set()
        for uuid, gpu in gpus.items():
            model = self.models.get(names.get(uuid, ""))
            if model is None:
                continue
            currencies.add(model.currency)
            total, busy_part = window_cost(model, gpu)
            allocated += total
            busy += busy_part
        if len(currencies) != 1:
            return {}
        tokens = sum((usage.tokens for usage in models.values()), Decimal(0))
        return self._per_million("all", allocated, busy, tokens, next(iter(currencies)))

    def _break_even(
        self, equivalent: Mapping[tuple[str, str, str], Money]
    ) -> dict[tuple[str, str, str], Decimal]:
        """Monthly tokens at which the API bill equals the model's GPUs' monthly cost."""
        result: dict[tuple[str, str, str], Decimal] = {}
        for (model, provider, cloud_model), price in equivalent.items():
            local = self._monthly_local.get(model)
            if local is None or local.currency != price.currency or price.amount <= 0:
                continue
            result[(model, provider, cloud_model)] = break_even_tokens_per_month(
                local_monthly_cost=local.amount, cloud_price_per_million=price.amount
            )
        return result

    def cloud_model_for(self, model: str) -> tuple[str, str]:
        """The API a served model is compared with: its workload's, else DeepSeek chat."""
        for workload in self.costs.workloads:
            if workload.model == model:
                return workload.cloud_provider, workload.cloud_model
        return DEFAULT_CLOUD

    def _cloud_equivalent(
        self, models: Mapping[str, ModelUsage], now: datetime, notes: list[str]
    ) -> dict[tuple[str, str, str], Money]:
        result: dict[tuple[str, str, str], Money] = {}
        for model, usage in models.items():
            if usage.tokens <= 0:
                continue
            provider, cloud_model = self.cloud_model_for(model)
            try:
                quote = self.book.quote(provider, cloud_model, now)
            except KeyError as exc:
                notes.append(str(exc.args[0]))
                continue
            hits = usage.cache_hits
            cost = (
                hits * quote.hit
                + (usage.prompt_tokens - hits) * quote.miss
                + usage.generation_tokens * quote.output
            )
            result[(model, provider, cloud_model)] = Money(cost / usage.tokens, quote.currency)
        return result

    def _cloud_prices(self, now: datetime, notes: list[str]) -> dict[tuple[str, str, str], Money]:
        wanted = {DEFAULT_CLOUD} | {(w.cloud_provider, w.cloud_model) for w in self.costs.workloads}
        result: dict[tuple[str, str, str], Money] = {}
        for provider, model in sorted(wanted):
            try:
                quote = self.book.quote(provider, model, now)
            except KeyError as exc:
                notes.append(str(exc.args[0]))
                continue
            for kind, amount in (
                ("input_cache_hit", quote.hit),
                ("input_cache_miss", quote.miss),
                ("output", quote.output),
            ):
                result[(provider, model, kind)] = Money(amount, quote.currency)
        return result

    def _cloud_spend(self, session: Session, now: datetime) -> dict[tuple[str, str, str], Money]:
        day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        result: dict[tuple[str, str, str], Money] = {}
        dialect = self.engine.dialect.name
        for period, start in (("today", day), ("month", month)):
            rows = session.exec(
                select(
                    CostRecord.provider,
                    CostRecord.service_name,
                    CostRecord.billing_currency,
                    money_sum(CostRecord.billed_cost, dialect),
                )
                .where(
                    col(CostRecord.charge_period_start) >= start,
                    col(CostRecord.charge_period_start) < now,
                )
                .group_by(
                    col(CostRecord.provider),
                    col(CostRecord.service_name),
                    col(CostRecord.billing_currency),
                )
            ).all()
            for provider, service, currency_code, amount in rows:
                key = (provider, service or "", period)
                if key in result and result[key].currency != currency_code:
                    key = (provider, f"{service or ''} ({currency_code})", period)
                result[key] = Money(from_money_sum(amount, dialect), currency_code)
        return result

    def _budget_forecasts(
        self, spend: Mapping[tuple[str, str, str], Money], now: datetime
    ) -> dict[str, Money]:
        result: dict[str, Money] = {}
        for budget in self.costs.budgets:
            month_to_date = sum(
                (
                    money.amount
                    for (provider, service, period), money in spend.items()
                    if period == "month"
                    and money.currency == budget.currency
                    and budget.provider in (None, provider)
                    and budget.service in (None, service)
                ),
                Decimal(0),
            )
            forecast = month_forecast(month_to_date, now)
            if forecast is not None:
                result[budget.name] = Money(forecast, budget.currency)
        return result
