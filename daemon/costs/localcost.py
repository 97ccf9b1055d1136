"""What a self-hosted GPU costs: per hour, idle, per million tokens, and the cloud break-even.

Every figure is per GPU and in the model's ``currency``; every field name carries its unit.

* capex per hour = ``purchase_price / (depreciation_years * hours_per_year)`` (straight line);
* fixed per hour = ``(ops_cost_per_year + dr_cost_per_year
  + upgrade_cost_per_event * upgrades_per_5y / 5) / hours_per_year``;
* energy = ``joules / 3,600,000 * pue * power_price_per_kwh`` (measured joules; when the GPU
  reports none, ``avg_power_watts * hours``).

Worked example (the README copies it; ``tests/daemon/test_localcost.py`` checks it). An H100
bought for 35,040 USD, depreciated over 4 years of 8,760 hours, with 876 USD a year of
operations, power at 0.12 USD/kWh and a PUE of 1.3, drawing 700 W for one hour
(2,520,000 J):

* capex  = 35,040 / (4 * 8,760)          = 1.0000 USD
* fixed  = 876 / 8,760                   = 0.1000 USD
* energy = 0.7 kWh * 1.3 * 0.12 USD/kWh  = 0.1092 USD
* total  = 1.2092 USD for that GPU-hour.

If the GPU served 2,000,000 tokens in that hour, the usage basis is 1.2092 / 2 = 0.6046 USD
per million tokens. If it then idled for three more hours at 100 W (energy 0.0468 USD in all),
the allocation basis covers all four hours: (1.2092 + 3 * 1.1 + 0.0468) / 2 = 2.2780 USD per
million tokens. That is the fair figure to hold against an API price. Owned GPUs cost about the
same each month however many tokens they serve, so the break-even monthly volume against a cloud
price ``P`` per million tokens is ``local_monthly_cost / P`` million tokens.

Error contract: ``ValueError`` for a model with a negative, zero (where a divisor) or
non-Decimal field, for negative hours, energy or tokens, and for a break-even against a cloud
price of zero (the cloud is free: there is no volume at which local pays off).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from decimal import Decimal

logger = logging.getLogger(__name__)

JOULES_PER_KWH = Decimal(3_600_000)
SECONDS_PER_HOUR = Decimal(3600)
PER_MILLION = Decimal(1_000_000)
MONTHS_PER_YEAR = Decimal(12)
UPGRADE_SPAN_YEARS = Decimal(5)


@dataclass(frozen=True)
class GpuCostModel:
    """Ownership cost of one GPU of ``gpu_model`` (per GPU, in ``currency``).

    ``purchase_price`` (currency), ``depreciation_years`` (years, > 0), ``power_price_per_kwh``
    (currency per kWh), ``pue`` (facility power / IT power, >= 1), ``ops_cost_per_year`` and
    ``dr_cost_per_year`` (currency per year), ``upgrade_cost_per_event`` (currency per upgrade)
    and ``upgrades_per_5y`` (upgrades in five years), ``hours_per_year`` (hours, > 0).
    """

    gpu_model: str
    currency: str
    purchase_price: Decimal
    depreciation_years: Decimal
    power_price_per_kwh: Decimal
    pue: Decimal
    ops_cost_per_year: Decimal
    dr_cost_per_year: Decimal = Decimal(0)
    upgrade_cost_per_event: Decimal = Decimal(0)
    upgrades_per_5y: Decimal = Decimal(0)
    hours_per_year: Decimal = Decimal(8760)

    def __post_init__(self) -> None:
        for item in fields(self):
            if item.name in ("gpu_model", "currency"):
                continue
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, Decimal | int):
                raise ValueError(
                    f"GPU cost model {self.gpu_model!r}: {item.name} must be a Decimal, "
                    f"got {value!r}"
                )
            if value < 0:
                raise ValueError(
                    f"GPU cost model {self.gpu_model!r}: {item.name} must not be negative"
                )
        for name in ("depreciation_years", "hours_per_year"):
            if getattr(self, name) == 0:
                raise ValueError(f"GPU cost model {self.gpu_model!r}: {name} must be above 0")
        if self.pue < 1:
            raise ValueError(
                f"GPU cost model {self.gpu_model!r}: pue must be at least 1, got {self.pue}"
            )
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(
                f"GPU cost model {self.gpu_model!r}: currency must be an ISO 4217 code, "
                f"got {self.currency!r}"
            )

    @property
    def capex_per_hour(self) -> Decimal:
        """Straight-line depreciation of the purchase price per hour."""
        return Decimal(self.purchase_price) / (
            Decimal(self.depreciation_years) * Decimal(self.hours_per_year)
        )

    @property
    def fixed_per_hour(self) -> Decimal:
        """Operations, disaster recovery and the upgrade share, per hour."""
        upgrades_per_year = (
            Decimal(self.upgrade_cost_per_event) * Decimal(self.upgrades_per_5y)
        ) / UPGRADE_SPAN_YEARS
        yearly = Decimal(self.ops_cost_per_year) + Decimal(self.dr_cost_per_year)
        return (yearly + upgrades_per_year) / Decimal(self.hours_per_year)

    def energy_cost(self, joules: Decimal) -> Decimal:
        """Cost of ``joules`` measured at the GPU, scaled by the facility's PUE."""
        if joules < 0:
            raise ValueError(f"energy must not be negative, got {joules} J")
        return Decimal(joules) / JOULES_PER_KWH * Decimal(self.pue) * self.power_price_per_kwh

    def hourly_cost(self, avg_power_watts: Decimal) -> Decimal:
        """Cost of one GPU-hour at ``avg_power_watts`` (what the board echoes as the rate)."""
        return gpu_cost(
            self, hours=Decimal(1), energy_joules=None, avg_power_watts=avg_power_watts
        ).total


@dataclass(frozen=True)
class GpuCost:
    """Cost of one GPU over some hours, by component, in the model's currency.

    ``per_hour`` is ``total / hours`` (0 for zero hours). ``energy_known`` is false when neither
    joules nor a power reading were given: the energy component is then 0, an underestimate the
    caller should report.
    """

    capex: Decimal
    fixed: Decimal
    energy: Decimal
    total: Decimal
    per_hour: Decimal
    energy_known: bool = True


def gpu_cost(
    model: GpuCostModel,
    *,
    hours: Decimal,
    energy_joules: Decimal | None,
    avg_power_watts: Decimal | None = None,
) -> GpuCost:
    """Cost of one GPU for ``hours``: capex and fixed share by time, energy from ``energy_joules``
    (preferred) or ``avg_power_watts * hours``. ``ValueError`` for negative inputs."""
    if hours < 0:
        raise ValueError(f"hours must not be negative, got {hours}")
    hours = Decimal(hours)
    if energy_joules is not None:
        joules: Decimal | None = Decimal(energy_joules)
    elif avg_power_watts is not None:
        if avg_power_watts < 0:
            raise ValueError(f"power must not be negative, got {avg_power_watts} W")
        joules = Decimal(avg_power_watts) * hours * SECONDS_PER_HOUR
    else:
        joules = None
    capex = model.capex_per_hour * hours
    fixed = model.fixed_per_hour * hours
    energy = model.energy_cost(joules) if joules is not None else Decimal(0)
    total = capex + fixed + energy
    per_hour = total / hours if hours else Decimal(0)
    return GpuCost(capex, fixed, energy, total, per_hour, energy_known=joules is not None)


def idle_cost(
    model: GpuCostModel,
    *,
    idle_hours: Decimal,
    idle_energy_joules: Decimal | None = None,
    idle_power_watts: Decimal | None = None,
) -> Decimal:
    """What the GPU cost while idle: the idle hours' capex and fixed share plus the energy drawn
    while idle (from joules, else watts; 0 when neither is known). ``ValueError`` for negatives."""
    return gpu_cost(
        model,
        hours=idle_hours,
        energy_joules=idle_energy_joules,
        avg_power_watts=idle_power_watts,
    ).total


@dataclass(frozen=True)
class CostPerMillion:
    """Self-hosted cost per 1,000,000 tokens on both bases; ``None`` when no tokens were served.

    ``allocation_basis``: all GPU cost over the period (idle and shared time included) divided by
    the tokens: the fair figure against an API price. ``usage_basis``: only the cost of the busy
    time divided by the same tokens: always lower, and flattering.
    """

    allocation_basis: Decimal | None
    usage_basis: Decimal | None


def cost_per_million_tokens(
    *, allocated_cost: Decimal, busy_cost: Decimal, tokens: Decimal
) -> CostPerMillion:
    """Cost per million tokens from the period's whole GPU cost and its busy-time cost.

    ``ValueError`` for negative inputs or a busy cost above the allocated cost.
    """
    if allocated_cost < 0 or busy_cost < 0 or tokens < 0:
        raise ValueError("costs and tokens must not be negative")
    if busy_cost > allocated_cost:
        raise ValueError(
            f"busy cost {busy_cost} exceeds the allocated cost {allocated_cost}: "
            "the allocated cost must include the busy time"
        )
    if tokens == 0:
        return CostPerMillion(None, None)
    scale = PER_MILLION / Decimal(tokens)
    return CostPerMillion(
        allocation_basis=Decimal(allocated_cost) * scale,
        usage_basis=Decimal(busy_cost) * scale,
    )


def monthly_cost(
    model: GpuCostModel, *, gpu_count: int = 1, avg_power_watts: Decimal | None = None
) -> Decimal:
    """Cost of ``gpu_count`` GPUs over an average month (``hours_per_year / 12`` hours).

    Energy at ``avg_power_watts`` when given, else left out. ``ValueError`` for a negative count.
    """
    if gpu_count < 0:
        raise ValueError(f"gpu_count must not be negative, got {gpu_count}")
    hours = Decimal(model.hours_per_year) / MONTHS_PER_YEAR
    one = gpu_cost(model, hours=hours, energy_joules=None, avg_power_watts=avg_power_watts)
    return one.total * gpu_count


def break_even_tokens_per_month(
    *, local_monthly_cost: Decimal, cloud_price_per_million: Decimal
) -> Decimal:
    """Monthly token volume at which the cloud bill equals the local monthly cost.

    ``local_monthly_cost / cloud_price_per_million * 1,000,000`` tokens: above it, self-hosting
    is cheaper; below it, the API is. ``ValueError`` when the cloud price is 0 or negative (no
    volume breaks even against a free API) or the local cost is negative.
    """
    if cloud_price_per_million <= 0:
        raise ValueError(
            f"no break-even against a cloud price of {cloud_price_per_million} per million tokens"
        )
    if local_monthly_cost < 0:
        raise ValueError(f"local monthly cost must not be negative, got {local_monthly_cost}")
    return Decimal(local_monthly_cost) / Decimal(cloud_price_per_million) * PER_MILLION
