"""Cost figures from the store: GPU-hour cost, idle cost, cost per million tokens on both bases,
API prices, cloud spend and budget forecasts, and their /metrics families."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from collectors.base import CostLine, GpuSample
from daemon.config import CostsConfig
from daemon.costs.figures import CostFiguresJob
from daemon.costs.ledger import add_lines
from daemon.costs.localcost import GpuCostModel, gpu_cost
from daemon.exporter import build_registry
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import Gpu, GpuRollup, InferenceRollup, Node

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"
COSTS = CostsConfig.model_validate(
    {
        "gpu_models": [
            {
                "gpu_model": H100,
                "purchase_price": "35040",
                "depreciation_years": "4",
                "power_price_per_kwh": "0.12",
                "pue": "1.3",
                "ops_cost_per_year": "876",
            }
        ],
        "budgets": [{"name": "cloud", "amount": "1000", "currency": "USD"}],
    }
)
MODEL = GpuCostModel(
    gpu_model=H100,
    currency="USD",
    purchase_price=Decimal("35040"),
    depreciation_years=Decimal("4"),
    power_price_per_kwh=Decimal("0.12"),
    pue=Decimal("1.3"),
    ops_cost_per_year=Decimal("876"),
)


@pytest.fixture
def engine(db_url: str):
    engine = open_store(db_url)
    with Session(engine) as session:
        node = Node(name="n1", first_seen=NOW, last_seen=NOW)
        session.add(node)
        session.flush()
        assert node.id is not None
        session.add(
            Gpu(uuid="GPU-1", node_id=node.id, index=0, name=H100, first_seen=NOW, last_seen=NOW)
        )
        for i in range(60):  # the last hour: 30 busy minutes at 700 W, 30 idle at 100 W
            at = NOW - timedelta(minutes=60 - i)
            idle = i >= 30
            session.add(
                GpuRollup(
                    gpu_uuid="GPU-1",
                    bucket_start=at,
                    samples=4,
                    avg_utilization_ratio=0.0 if idle else 0.9,
                    max_utilization_ratio=0.9,
                    avg_power_watts=100.0 if idle else 700.0,
                    energy_joules=6000.0 if idle else 42000.0,
                    idle_seconds=60.0 if idle else 0.0,
                )
            )
            session.add(
                InferenceRollup(
                    node="n1",
                    model="deepseek-v3",
                    instance="i0",
                    bucket_start=at,
                    prompt_tokens=0.0 if idle else 30000.0,
                    generation_tokens=0.0 if idle else 3333.0,
                    gpu_uuids=["GPU-1"],
                )
            )
        add_lines(
            session,
            [
                CostLine(
                    row_key=f"d{d}:{v}",
                    provider="AWS",
                    billed_cost=Decimal(v),
                    billing_currency="USD",
                    charge_period_start=NOW.replace(hour=0) - timedelta(days=d),
                    charge_period_end=NOW.replace(hour=0) - timedelta(days=d - 1),
                    service_name="EC2",
                )
                for d, v in ((0, "0.10"), (0, "0.20"), (1, "100.005"), (20, "999"))
            ],
            source="t",
            import_batch="b",
        )
        session.commit()
    yield engine
    engine.dispose()


def test_it_computes_every_figure_exactly(engine) -> None:
    state = LiveState()
    state.record_samples(
        (
            GpuSample(
                uuid="GPU-1",
                node="n1",
                index=0,
                name=H100,
                timestamp=NOW,
                utilization_ratio=0.9,
                power_watts=700.0,
                power_limit_watts=700.0,
            ),
        ),
        (),
        (),
    )
    job = CostFiguresJob(engine, state, COSTS)
    figures = job.run(NOW)

    assert figures.gpu_hourly["GPU-1"].amount == MODEL.hourly_cost(Decimal(700))
    assert figures.gpu_hourly["GPU-1"].currency == "USD"

    minute = Decimal(1) / 60
    busy = gpu_cost(MODEL, hours=minute, energy_joules=Decimal(42000)).total * 30
    idle = gpu_cost(MODEL, hours=minute, energy_joules=Decimal(6000)).total * 30
    tokens = Decimal(33333 * 30)
    allocation = figures.cost_per_million[("deepseek-v3", "allocation")].amount
    usage = figures.cost_per_million[("deepseek-v3", "usage")].amount
    assert allocation == pytest.approx((busy + idle) / tokens * 1_000_000)
    assert usage == pytest.approx(busy / tokens * 1_000_000)
    assert allocation > usage  # idle time is charged on the allocation basis
    monthly = MODEL.hourly_cost(Decimal(400)) * Decimal(730)  # average power over the hour
    assert figures.local_monthly["deepseek-v3"].amount == pytest.approx(monthly)

    assert figures.cloud_price[("deepseek", "deepseek-chat", "output")].currency == "USD"
    quote = job.book.quote("deepseek", "deepseek-chat", NOW)
    equivalent = figures.cloud_equivalent[("deepseek-v3", "deepseek", "deepseek-chat")]
    prompt, generation = Decimal(30000 * 30), Decimal(3333 * 30)
    assert equivalent.amount == (prompt * quote.miss + generation * quote.output) / (
        prompt + generation
    )
    break_even = figures.break_even_tokens[("deepseek-v3", "deepseek", "deepseek-chat")]
    assert break_even == pytest.approx(monthly / equivalent.amount * 1_000_000)
    today = figures.cloud_spend[("AWS", "EC2", "today")]
    month = figures.cloud_spend[("AWS", "EC2", "month")]
    assert today.amount == Decimal("0.30")  # exact, not 0.30000000000000004
    assert month.amount == Decimal("100.305")
    forecast = figures.budget_forecast["cloud"].amount
    elapsed = Decimal("14.5") / 30
    assert forecast == pytest.approx(Decimal("100.305") / elapsed)


def test_it_counts_idle_cost_from_new_minutes_only_and_exports_it(engine) -> None:
    state = LiveState()
    state.record_samples(
        (
            GpuSample(
                uuid="GPU-1",
                node="n1",
                index=0,
                name=H100,
                timestamp=NOW,
                utilization_ratio=0.0,
                power_watts=100.0,
            ),
        ),
        (),
        (),
    )
    job = CostFiguresJob(engine, state, COSTS)
    first = job.run(NOW - timedelta(minutes=1))  # the process starts: counts from now on
    second = job.run(NOW)
    assert (
        second.idle_cost_total["GPU-1"].amount
        >= first.idle_cost_total.get(
            "GPU-1", type(second.idle_cost_total["GPU-1"])(Decimal(0), "USD")
        ).amount
    )
    again = job.run(NOW)
    assert again.idle_cost_total["GPU-1"] == second.idle_cost_total["GPU-1"]  # nothing new
    registry = build_registry(state)
    labels = {"node": "n1", "gpu": "0", "uuid": "GPU-1", "model_name": H100, "currency": "USD"}
    assert registry.get_sample_value("tcowatch_gpu_hourly_cost", labels) == pytest.approx(
        float(MODEL.hourly_cost(Decimal(100)))
    )
    assert registry.get_sample_value("tcowatch_gpu_idle_cost_total", labels) is not None
    assert (
        registry.get_sample_value(
            "tcowatch_llm_cost_per_million_tokens",
            {"model": "deepseek-v3", "cost_basis": "allocation", "currency": "USD"},
        )
        is not None
    )
    assert registry.get_sample_value(
        "tcowatch_cloud_spend",
        {"provider": "AWS", "service": "EC2", "period": "today", "currency": "USD"},
    ) == pytest.approx(0.30)
    assert registry.get_sample_value(
        "tcowatch_gpu_cost_model_parameter",
        {"gpu_model": H100, "parameter": "power_price_per_kwh", "unit": "USD_per_kwh"},
    ) == pytest.approx(0.12)


def test_the_fleet_figure_charges_gpus_that_serve_nothing(engine) -> None:
    with Session(engine) as session:  # a second GPU holding a model but serving no tokens
        node_id = session.exec(select(Node.id)).one()
        session.add(
            Gpu(uuid="GPU-2", node_id=node_id, index=1, name=H100, first_seen=NOW, last_seen=NOW)
        )
        for i in range(60):
            session.add(
                GpuRollup(
                    gpu_uuid="GPU-2",
                    bucket_start=NOW - timedelta(minutes=60 - i),
                    samples=4,
                    avg_utilization_ratio=0.0,
                    avg_power_watts=80.0,
                    energy_joules=4800.0,
                    idle_seconds=60.0,
                )
            )
        session.commit()
    figures = CostFiguresJob(engine, LiveState(), COSTS).run(NOW)
    per_model = figures.cost_per_million[("deepseek-v3", "allocation")].amount
    fleet = figures.cost_per_million[("all", "allocation")].amount
    idle_gpu = gpu_cost(MODEL, hours=Decimal(1), energy_joules=Decimal(4800 * 60)).total
    assert fleet == pytest.approx(per_model + idle_gpu / Decimal(33333 * 30) * 1_000_000)
    assert figures.cost_per_million[("all", "usage")].amount < fleet
