"""The TCO page's data: measurements from the store (SQLite and PostgreSQL), form parsing with
errors that name the field, the five-year table and the break-even volume."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.board.errors import InputError
from daemon.board.tco import (
    TcoMeasurements,
    break_even_tokens,
    measure_tco,
    parse_tco,
    tco_defaults,
    tco_report,
)
from daemon.config import CostsConfig, TcoConfig
from daemon.costs.figures import Money, cost_model
from daemon.costs.tco import TcoInputs
from daemon.store.db import open_store, session_scope
from daemon.store.models import Gpu, GpuRollup, InferenceRollup, Node

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"
COSTS = CostsConfig.model_validate(
    {
        "gpu_models": [
            {
                "gpu_model": H100,
                "currency": "USD",
                "purchase_price": "35040",
                "depreciation_years": "4",
                "power_price_per_kwh": "0.12",
            }
        ]
    }
)
USD_TCO = TcoConfig(currency="USD")
MODEL = cost_model(COSTS.gpu_models[0])


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def _gpu_row(uuid: str, start: datetime, resolution: int, ratio: float, samples: int) -> GpuRollup:
    return GpuRollup(
        gpu_uuid=uuid,
        resolution_seconds=resolution,
        bucket_start=start,
        samples=samples,
        avg_utilization_ratio=ratio,
    )


def _tokens(start: datetime, prompt: float, hits: float, generation: float) -> InferenceRollup:
    return InferenceRollup(
        node="node-a",
        model="m1",
        instance="10.0.0.7:8000",
        resolution_seconds=60,
        bucket_start=start,
        prompt_tokens=prompt,
        cache_hits=hits,
        generation_tokens=generation,
        gpu_uuids=["GPU-a"],
    )


def seed_measurements(engine: Engine) -> None:
    """Two H100s: an hour rollup at 07:00, minutes at 08:00 and 09:00, one row 40 days old;
    1.5 M tokens (0.4 M of them cache hits) served from 08:00."""
    with session_scope(engine) as session:
        node = Node(name="node-a", first_seen=NOW, last_seen=NOW)
        session.add(node)
        session.flush()
        assert node.id is not None
        for index, uuid in enumerate(("GPU-a", "GPU-b")):
            session.add(
                Gpu(
                    uuid=uuid,
                    node_id=node.id,
                    index=index,
                    name=H100,
                    first_seen=NOW,
                    last_seen=NOW,
                )
            )
        hour = NOW - timedelta(hours=3)
        session.add_all(
            [
                _gpu_row("GPU-a", hour, 3600, 0.25, 240),
                _gpu_row("GPU-a", hour + timedelta(minutes=5), 60, 0.0, 999),  # rolled already
                _gpu_row("GPU-a", NOW - timedelta(hours=2), 60, 0.5, 4),
                _gpu_row("GPU-b", NOW - timedelta(hours=1), 60, 1.0, 12),
                _gpu_row("GPU-b", NOW - timedelta(days=40), 60, 0.0, 1000),
                _tokens(NOW - timedelta(hours=2), 600_000, 400_000, 200_000),
                _tokens(NOW - timedelta(hours=1), 400_000, 0, 300_000),
                _tokens(NOW - timedelta(days=40), 9e9, 0, 9e9),
            ]
        )


@pytest.fixture
def measured(engine: Engine) -> Engine:
    seed_measurements(engine)
    return engine


def test_it_measures_gpus_utilization_tokens_and_prices_over_30_days(measured: Engine) -> None:
    with Session(measured) as session:
        m = measure_tco(session, NOW, COSTS)
    assert m.window_days == 30
    assert m.gpus == 2
    assert m.utilization == Decimal("0.2891")  # (0.25 x 240 + 0.5 x 4 + 1.0 x 12) / 256
    assert m.tokens == Decimal(1_500_000)
    assert m.observed_hours == Decimal(2)
    assert m.tokens_per_month == Decimal(1_500_000 * 730 // 2)
    # deepseek-chat: 0.028 hit, 0.28 miss, 0.42 output USD per million tokens
    expected = (
        Decimal("0.4") * Decimal("0.028")
        + Decimal("0.6") * Decimal("0.28")
        + Decimal("0.5") * Decimal("0.42")
    ) / Decimal("1.5")
    assert m.cloud_price_per_million == Money(expected.quantize(Decimal("0.0001")), "USD")
    assert m.gpu_capex_per_year == Money(Decimal("8760.00"), "USD")
    assert any("scaled to a month" in note for note in m.notes)


def test_it_measures_nothing_on_an_empty_store_and_says_so(engine: Engine) -> None:
    with Session(engine) as session:
        m = measure_tco(session, NOW, COSTS)
    assert (m.gpus, m.utilization, m.tokens, m.tokens_per_month) == (None, None, None, None)
    assert m.cloud_price_per_million is None and m.gpu_capex_per_year is None
    assert "no GPU reported in the last 30 days" in m.notes


def test_it_leaves_out_depreciation_when_a_gpu_has_no_cost_model(measured: Engine) -> None:
    with Session(measured) as session:
        m = measure_tco(session, NOW, CostsConfig())
        given = measure_tco(session, NOW, CostsConfig(), models={H100: MODEL})
    assert m.gpu_capex_per_year is None
    assert any("no costs.gpu_models entry" in note for note in m.notes)
    assert given.gpu_capex_per_year == Money(Decimal("8760.00"), "USD")


def test_it_prefills_measurements_and_uses_prices_only_in_the_tco_currency(
    measured: Engine,
) -> None:
    with Session(measured) as session:
        m = measure_tco(session, NOW, COSTS)
    usd, usd_notes = tco_defaults(USD_TCO, m)
    assert usd["tokens_per_month"] == "547500000"
    assert usd["gpus"] == "2" and usd["utilization"] == "0.2891"
    assert usd["gpu_capex_per_year"] == "8760.00" and usd_notes == []
    report = tco_report(parse_tco(usd, USD_TCO))
    assert report.measured_fields == ["cloud_usage_per_year", "hardware_depreciation_per_year"]
    rows = {r.category: r for r in report.rows}
    assert rows["hardware_depreciation"].local == Decimal(2 * 8760 * 5)
    price = Decimal(usd["cloud_price_per_million"])
    assert rows["cloud_usage"].cloud == 547_500_000 * 12 * price / 1_000_000 * 5
    cny, cny_notes = tco_defaults(TcoConfig(), m)
    assert "cloud_price_per_million" not in cny and "gpu_capex_per_year" not in cny
    assert cny["tokens_per_month"] == "547500000"
    assert len(cny_notes) == 2 and all("no live FX" in note for note in cny_notes)
    assert tco_report(parse_tco(cny, TcoConfig())).measured_fields == []


def test_it_reproduces_the_source_analysis_with_the_default_inputs() -> None:
    report = tco_report(parse_tco({}, TcoConfig()))
    assert (report.local_total, report.cloud_total) == (Decimal(2_350_000), Decimal(690_000))
    assert report.currency == "CNY" and report.years == 5 and report.cheaper == "cloud"
    assert [r.label for r in report.rows] == [
        "Hardware depreciation",
        "Operations staff",
        "Disaster recovery",
        "Upgrades / migration",
        "Cloud usage",
    ]
    assert report.yearly[-1].local == report.local_total
    assert report.break_even_tokens_per_month is None
    assert "price per million" in report.break_even_note


def test_it_finds_the_monthly_token_volume_where_local_pays_off() -> None:
    report = tco_report(parse_tco({"cloud_price_per_million": "2"}, TcoConfig()))
    # (2,350,000 local - 450,000 cloud ops and DR) / 60 months / 2 CNY per million tokens
    assert report.break_even_tokens_per_month == Decimal(15_833_333_333)
    assert report.cloud_total == Decimal(690_000)  # a price without tokens changes no input
    inputs = TcoInputs(cloud_ops_per_year=Decimal(600_000))
    assert break_even_tokens(inputs, Decimal(2_350_000), Decimal(2)) == 0
    free = tco_report(parse_tco({"cloud_price_per_million": "0"}, TcoConfig()))
    assert free.break_even_tokens_per_month is None and "free" in free.break_even_note


def test_it_applies_the_rented_gpu_basis_and_keeps_the_config_for_empty_fields() -> None:
    values = {
        "gpus": "4",
        "utilization": "0.5",
        "cloud_gpu_price_per_hour": "2",
        "ops_staff_per_year": " ",
        "currency": "usd",
    }
    request = parse_tco(values, TcoConfig())
    assert request.inputs.cloud_usage_per_year == Decimal(4 * 0.5 * 8760 * 2)
    assert request.inputs.ops_staff_per_year == Decimal(240_000)
    assert request.inputs.currency == "USD" and request.values["currency"] == "USD"
    only_shown = parse_tco({"utilization": "0.5", "tokens_per_month": "9"}, TcoConfig())
    assert only_shown.inputs.measured == frozenset()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"years": "0"}, "years"),
        ({"years": "31"}, "years"),
        ({"years": "five"}, "years"),
        ({"currency": "US"}, "currency"),
        ({"dr_per_year": "-1"}, "dr_per_year"),
        ({"ops_staff_per_year": "lots"}, "ops_staff_per_year"),
        ({"cloud_usage_per_year": "NaN"}, "cloud_usage_per_year"),
        ({"hardware_depreciation_per_year": "1e15"}, "hardware_depreciation_per_year"),
        ({"upgrades": "1.5"}, "upgrades"),
        ({"utilization": "1.5"}, "utilization"),
        ({"gpus": "-2"}, "gpus"),
        ({"cloud_gpu_price_per_hour": "2"}, "cloud_gpu_price_per_hour"),
        ({"gpu_capex_per_year": "9000"}, "gpus"),
        (
            {
                "tokens_per_month": "1",
                "cloud_price_per_million": "1",
                "gpus": "1",
                "utilization": "1",
                "cloud_gpu_price_per_hour": "1",
            },
            "cloud_gpu_price_per_hour",
        ),
    ],
)
def test_it_names_the_field_of_a_bad_value(values: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_tco(values, TcoConfig())
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_it_keeps_empty_measurements_out_of_the_form() -> None:
    empty = TcoMeasurements(30, None, None, None, None, None, None, None)
    values, notes = tco_defaults(TcoConfig(years=3), empty)
    assert values["years"] == "3" and "tokens_per_month" not in values and notes == []
