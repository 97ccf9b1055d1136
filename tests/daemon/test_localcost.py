"""The local cost model: the README's worked example, idle cost, both cost bases, break-even."""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon.costs.localcost import (
    CostPerMillion,
    GpuCostModel,
    break_even_tokens_per_month,
    cost_per_million_tokens,
    gpu_cost,
    idle_cost,
    monthly_cost,
)

D = Decimal


@pytest.fixture
def h100() -> GpuCostModel:
    # The module docstring's (and the README's) worked example.
    return GpuCostModel(
        gpu_model="NVIDIA H100 80GB HBM3",
        currency="USD",
        purchase_price=D("35040"),
        depreciation_years=D("4"),
        power_price_per_kwh=D("0.12"),
        pue=D("1.3"),
        ops_cost_per_year=D("876"),
    )


def test_it_reproduces_the_worked_example_by_hand(h100) -> None:
    # 700 W for one hour = 2,520,000 J = 0.7 kWh
    cost = gpu_cost(h100, hours=D(1), energy_joules=D(2_520_000))
    assert cost.capex == D("1.00")  # 35,040 / (4 * 8,760)
    assert cost.fixed == D("0.10")  # 876 / 8,760
    assert cost.energy == D("0.1092")  # 0.7 * 1.3 * 0.12
    assert cost.total == D("1.2092")
    assert cost.per_hour == D("1.2092")
    assert cost.energy_known


def test_it_uses_power_times_hours_when_no_joules_were_measured(h100) -> None:
    by_power = gpu_cost(h100, hours=D(2), energy_joules=None, avg_power_watts=D(700))
    assert by_power.energy == D("0.2184")
    assert by_power.total == D("2.4184")
    assert by_power.per_hour == D("1.2092")
    assert h100.hourly_cost(D(700)) == D("1.2092")
    # measured joules win over a power reading
    measured = gpu_cost(h100, hours=D(1), energy_joules=D(0), avg_power_watts=D(700))
    assert measured.energy == 0


def test_it_flags_an_unknown_energy_instead_of_inventing_one(h100) -> None:
    cost = gpu_cost(h100, hours=D(1), energy_joules=None)
    assert not cost.energy_known
    assert cost.total == D("1.10")


def test_it_shares_dr_and_upgrades_into_the_fixed_cost() -> None:
    model = GpuCostModel(
        gpu_model="A100",
        currency="CNY",
        purchase_price=D("87600"),
        depreciation_years=D("5"),
        power_price_per_kwh=D("0.8"),
        pue=D("1.5"),
        ops_cost_per_year=D("8760"),
        dr_cost_per_year=D("4380"),
        upgrade_cost_per_event=D("21900"),
        upgrades_per_5y=D("2"),
    )
    assert model.capex_per_hour == D("2")  # 87,600 / (5 * 8,760)
    # (8,760 + 4,380 + 21,900 * 2 / 5) / 8,760 = (13,140 + 8,760) / 8,760 = 2.5
    assert model.fixed_per_hour == D("2.5")
    assert model.energy_cost(D(3_600_000)) == D("1.2")  # 1 kWh * 1.5 * 0.8


def test_it_costs_idle_time_at_the_full_hourly_rate_plus_idle_power(h100) -> None:
    # three idle hours at 100 W: 3 * 1.10 + 0.3 kWh * 1.3 * 0.12
    assert idle_cost(h100, idle_hours=D(3), idle_power_watts=D(100)) == D("3.3468")
    assert idle_cost(h100, idle_hours=D(3), idle_energy_joules=D(1_080_000)) == D("3.3468")
    assert idle_cost(h100, idle_hours=D(0)) == 0


def test_it_puts_the_allocation_basis_above_the_usage_basis(h100) -> None:
    busy = gpu_cost(h100, hours=D(1), energy_joules=D(2_520_000)).total
    idle = idle_cost(h100, idle_hours=D(3), idle_power_watts=D(100))
    result = cost_per_million_tokens(
        allocated_cost=busy + idle, busy_cost=busy, tokens=D(2_000_000)
    )
    assert result == CostPerMillion(allocation_basis=D("2.278"), usage_basis=D("0.6046"))


def test_it_has_no_cost_per_million_without_tokens() -> None:
    assert cost_per_million_tokens(allocated_cost=D(5), busy_cost=D(0), tokens=D(0)) == (
        CostPerMillion(None, None)
    )


def test_it_rejects_a_busy_cost_above_the_allocated_cost() -> None:
    with pytest.raises(ValueError, match="exceeds the allocated cost"):
        cost_per_million_tokens(allocated_cost=D(1), busy_cost=D(2), tokens=D(10))


def test_it_finds_the_monthly_break_even_volume(h100) -> None:
    local = monthly_cost(h100, gpu_count=2)  # 2 GPUs * 730 h * 1.10, energy left out
    assert local == D("1606")
    # against 0.28 USD per million: 1,606 / 0.28 million tokens
    tokens = break_even_tokens_per_month(
        local_monthly_cost=local, cloud_price_per_million=D("0.28")
    )
    assert tokens.quantize(D(1)) == D("5735714286")
    assert break_even_tokens_per_month(
        local_monthly_cost=D("100"), cloud_price_per_million=D("0.5")
    ) == D("200000000")


def test_it_refuses_a_break_even_against_a_free_cloud() -> None:
    with pytest.raises(ValueError, match="no break-even against a cloud price of 0"):
        break_even_tokens_per_month(local_monthly_cost=D(100), cloud_price_per_million=D(0))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("purchase_price", D(-1), "purchase_price must not be negative"),
        ("depreciation_years", D(0), "depreciation_years must be above 0"),
        ("pue", D("0.9"), "pue must be at least 1"),
        ("power_price_per_kwh", 0.12, "power_price_per_kwh must be a Decimal"),
        ("currency", "dollars", "ISO 4217"),
    ],
)
def test_it_rejects_a_bad_model_naming_the_field(h100, field, value, message) -> None:
    values = {f: getattr(h100, f) for f in h100.__dataclass_fields__}
    values[field] = value
    with pytest.raises(ValueError, match=message):
        GpuCostModel(**values)


def test_it_rejects_negative_hours_and_energy(h100) -> None:
    with pytest.raises(ValueError, match="hours"):
        gpu_cost(h100, hours=D(-1), energy_joules=None)
    with pytest.raises(ValueError, match="energy"):
        gpu_cost(h100, hours=D(1), energy_joules=D(-5))
