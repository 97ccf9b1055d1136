"""Self-hosted costs exported as FOCUS: GPU lines carry the cost, token lines the volume."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session

from collectors.focus import open_focus
from daemon.costs.export import (
    FOCUS_COLUMNS,
    SkippedGpu,
    self_hosted_lines,
    write_focus_csv,
)
from daemon.costs.localcost import GpuCostModel
from daemon.store.db import open_store
from daemon.store.models import Gpu, GpuRollup, InferenceRollup, Node

D = Decimal
DAY = datetime(2026, 11, 2, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"
INSTANCE = "http://n1:8000"


def h100(currency: str = "USD") -> GpuCostModel:
    # capex 1.00/h, fixed 0.10/h, energy 0.7 kWh * 1.3 * 0.12 = 0.1092 per 700 W-hour
    return GpuCostModel(
        gpu_model=H100,
        currency=currency,
        purchase_price=D("35040"),
        depreciation_years=D("4"),
        power_price_per_kwh=D("0.12"),
        pue=D("1.3"),
        ops_cost_per_year=D("876"),
    )


def minute(uuid: str, at: datetime, **values) -> GpuRollup:
    return GpuRollup(gpu_uuid=uuid, resolution_seconds=60, bucket_start=at, samples=4, **values)


def tokens(
    at: datetime, resolution: int, prompt: float, generation: float, hits: float, requests: float
) -> InferenceRollup:
    return InferenceRollup(
        node="n1",
        model="qwen",
        instance=INSTANCE,
        resolution_seconds=resolution,
        bucket_start=at,
        prompt_tokens=prompt,
        generation_tokens=generation,
        cache_queries=hits * 2,
        cache_hits=hits,
        requests=requests,
        gpu_uuids=["GPU-1"],
        engine="vllm",
    )


@pytest.fixture
def engine(tmp_path: Path):
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    with Session(engine) as session:
        node = Node(name="n1", first_seen=DAY, last_seen=DAY)
        session.add(node)
        session.flush()
        assert node.id is not None
        for index, (uuid, name) in enumerate(
            [("GPU-1", H100), ("GPU-2", "Mystery GPU"), ("GPU-3", "NVIDIA L4")]
        ):
            session.add(
                Gpu(
                    uuid=uuid,
                    node_id=node.id,
                    index=index,
                    name=name,
                    first_seen=DAY,
                    last_seen=DAY,
                )
            )
        session.flush()
        ten, eleven = DAY + timedelta(hours=10), DAY + timedelta(hours=11)
        # 10:00: an hourly row (700 W for the hour, 600 s idle) and its minute rows, which the
        # export must not count a second time
        session.add(
            GpuRollup(
                gpu_uuid="GPU-1",
                resolution_seconds=3600,
                bucket_start=ten,
                samples=240,
                avg_power_watts=700.0,
                energy_joules=2_520_000.0,
                idle_seconds=600.0,
            )
        )
        for i in range(60):
            session.add(
                minute(
                    "GPU-1",
                    ten + timedelta(minutes=i),
                    energy_joules=42_000.0,
                    avg_power_watts=700.0,
                    idle_seconds=10.0,
                )
            )
        # 11:00-11:29: minute rows only (the hour is not rolled yet), 700 W, 30 s idle each
        for i in range(30):
            session.add(
                minute(
                    "GPU-1",
                    eleven + timedelta(minutes=i),
                    energy_joules=42_000.0,
                    avg_power_watts=700.0,
                    idle_seconds=30.0,
                )
            )
        # next day 00:00-00:59: no joules, only a power reading of 350 W
        for i in range(60):
            session.add(
                minute(
                    "GPU-1",
                    DAY + timedelta(days=1, minutes=i),
                    avg_power_watts=350.0,
                    idle_seconds=0.0,
                )
            )
        # GPUs without a cost model of their own
        for uuid in ("GPU-2", "GPU-3"):
            for i in range(6):
                session.add(minute(uuid, eleven + timedelta(minutes=i), energy_joules=6000.0))
        # tokens: an hourly row at 10:00 (plus minute rows inside it), minute rows from 11:00
        session.add(tokens(ten, 3600, 6000, 3000, 100, 10))
        for i in range(60):
            session.add(tokens(ten + timedelta(minutes=i), 60, 1, 1, 1, 1))
        for i in range(30):
            session.add(tokens(eleven + timedelta(minutes=i), 60, 100, 50, 40, 2))
        session.commit()
    yield engine
    engine.dispose()


def export(engine, **kwargs):
    kwargs.setdefault("start", DAY)
    kwargs.setdefault("end", DAY + timedelta(days=2))
    kwargs.setdefault("models", {H100: h100()})
    kwargs.setdefault("currency", "USD")
    with Session(engine) as session:
        return list(self_hosted_lines(session, **kwargs))


def test_it_bills_one_gpu_line_per_day_from_hours_and_minutes_without_double_counting(engine):
    skipped: list[SkippedGpu] = []
    lines = export(engine, skipped=skipped)
    gpu_lines = [line for line in lines if line.consumed_unit == "Hours"]
    assert [(line.resource_id, line.charge_period_start) for line in gpu_lines] == [
        ("GPU-1", DAY),
        ("GPU-1", DAY + timedelta(days=1)),
    ]
    first, second = gpu_lines
    # 1.5 h: capex 1.50 + fixed 0.15 + energy (2,520,000 + 30 * 42,000 J = 1.05 kWh) * 1.3 * 0.12
    assert first.consumed_quantity == D("1.5")
    assert first.billed_cost == D("1.8138")
    assert first.effective_cost == first.list_cost == D("1.8138")
    assert first.extra["x_GpuHours"] == "1.5"
    assert first.extra["x_EnergyJoules"] == "3780000"
    assert first.extra["x_IdleHours"] == "0.4166666667"  # (600 + 30 * 30) / 3600
    assert (
        first.extra["x_CapexCost"],
        first.extra["x_FixedCost"],
        first.extra["x_EnergyCost"],
    ) == ("1.5", "0.15", "0.1638")
    assert first.charge_period_end == DAY + timedelta(days=1)
    assert first.billing_period_start == datetime(2026, 11, 1, tzinfo=UTC)
    assert first.billing_period_end == datetime(2026, 12, 1, tzinfo=UTC)
    assert first.tags == {"gpu_model": H100, "node": "n1", "gpu_index": 0}
    assert (first.provider, first.service_name, first.service_category, first.charge_category) == (
        "self-hosted",
        "Self-hosted inference",
        "AI and Machine Learning",
        "Usage",
    )
    # the next day: 1 h at 350 W from the power reading: 1.10 + 0.35 * 1.3 * 0.12
    assert second.billed_cost == D("1.1546")
    assert second.extra["x_EnergyJoules"] == "1260000"
    assert [s.uuid for s in skipped] == ["GPU-2", "GPU-3"]
    assert "no cost model for GPU model 'Mystery GPU'" in skipped[0].reason


def test_it_puts_tokens_on_their_own_zero_cost_lines(engine):
    token_lines = [line for line in export(engine) if line.consumed_unit == "Tokens"]
    assert len(token_lines) == 1
    line = token_lines[0]
    # hourly 10:00 row (6000/3000/100/10) + 30 minute rows (100/50/40/2); the 10:00 minutes ignored
    assert line.consumed_quantity == D("13500")
    assert line.extra == {
        "x_PromptTokens": "9000",
        "x_GenerationTokens": "4500",
        "x_CachedTokens": "1300",
        "x_Requests": "70",
    }
    assert line.billed_cost == 0 and line.billing_currency == "USD"
    assert line.resource_id == INSTANCE and line.sku_id == "qwen"
    assert line.tags == {"node": "n1", "model": "qwen", "engine": "vllm", "gpus": "GPU-1"}


def test_it_uses_minutes_when_the_range_cuts_an_hour(engine):
    lines = export(
        engine, start=DAY + timedelta(hours=10, minutes=30), end=DAY + timedelta(hours=11)
    )
    (gpu_line,) = [line for line in lines if line.consumed_unit == "Hours"]
    assert gpu_line.consumed_quantity == D("0.5")
    assert gpu_line.charge_period_start == DAY + timedelta(hours=10, minutes=30)
    assert gpu_line.charge_period_end == DAY + timedelta(hours=11)
    (token_line,) = [line for line in lines if line.consumed_unit == "Tokens"]
    assert token_line.consumed_quantity == D("60")


def test_it_prices_unknown_gpus_with_the_default_model_by_name(engine):
    lines = export(engine, models={H100: h100(), "fallback": h100()}, default_model="fallback")
    gpu_ids = sorted({line.resource_id for line in lines if line.consumed_unit == "Hours"})
    assert gpu_ids == ["GPU-1", "GPU-2", "GPU-3"]
    gpu2 = next(line for line in lines if line.resource_id == "GPU-2")
    # 0.1 h: 0.11 + 36,000 J = 0.01 kWh * 1.3 * 0.12
    assert gpu2.billed_cost == D("0.11156")
    assert gpu2.sku_id == "Mystery GPU"
    with pytest.raises(ValueError, match="'nope' is not one of"):
        export(engine, default_model="nope")


def test_it_skips_a_gpu_priced_in_another_currency(engine):
    skipped: list[SkippedGpu] = []
    lines = export(engine, models={H100: h100("CNY")}, currency="USD", skipped=skipped)
    assert not [line for line in lines if line.consumed_unit == "Hours"]
    assert skipped[0] == SkippedGpu("GPU-1", H100, f"cost model {H100!r} is in CNY, not USD")


def test_it_refuses_naive_or_reversed_ranges(engine):
    with pytest.raises(ValueError, match="aware"):
        export(engine, start=datetime(2026, 11, 2))
    with pytest.raises(ValueError, match="must be after start"):
        export(engine, start=DAY, end=DAY)


def test_it_writes_focus_csv_that_the_focus_reader_reads_back_identically(engine, tmp_path):
    lines = export(engine)
    out = tmp_path / "self-hosted.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        assert write_focus_csv(lines, fh) == len(lines) == 3
    with out.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header[: len(FOCUS_COLUMNS)] == list(FOCUS_COLUMNS)
    assert header[len(FOCUS_COLUMNS) :] == [
        "x_GpuHours",
        "x_IdleHours",
        "x_EnergyJoules",
        "x_CapexCost",
        "x_FixedCost",
        "x_EnergyCost",
        "x_PromptTokens",
        "x_GenerationTokens",
        "x_CachedTokens",
        "x_Requests",
    ]
    with open_focus(out) as reader:
        back = list(reader.rows())
        assert reader.info.version == "1.2"
    assert len(back) == len(lines)
    for original, read in zip(lines, back, strict=True):
        assert read.billed_cost == original.billed_cost
        assert read.effective_cost == original.effective_cost
        assert read.list_cost == original.list_cost
        assert read.consumed_quantity == original.consumed_quantity
        assert read.consumed_unit == original.consumed_unit
        assert read.billing_currency == original.billing_currency
        assert read.charge_period_start == original.charge_period_start
        assert read.charge_period_end == original.charge_period_end
        assert read.billing_period_start == original.billing_period_start
        assert read.resource_id == original.resource_id
        assert read.provider == "self-hosted"
        assert read.service_category == "AI and Machine Learning"
        assert read.service_name == "Self-hosted inference"
        assert dict(read.tags) == dict(original.tags)
        for key, value in original.extra.items():
            assert read.extra.get(key) == value
    assert sum(r.billed_cost for r in back) == D("1.8138") + D("1.1546")


def test_it_writes_plain_decimals_and_z_datetimes():
    from collectors.base import CostLine

    line = CostLine(
        row_key="k",
        provider="self-hosted",
        billed_cost=D("1E-7"),
        billing_currency="USD",
        charge_period_start=DAY,
        charge_period_end=DAY + timedelta(days=1),
        consumed_quantity=D("2.50"),
        consumed_unit="Hours",
        extra={"x_Note": "a,b", "Other": "dropped"},
    )
    buffer = io.StringIO()
    write_focus_csv([line], buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert rows[0]["BilledCost"] == "0.0000001"
    assert rows[0]["ChargePeriodStart"] == "2026-11-02T00:00:00Z"
    assert rows[0]["ConsumedQuantity"] == "2.50"
    assert rows[0]["x_Note"] == "a,b"
    assert "Other" not in rows[0]
    assert rows[0]["BillingAccountId"] == "self-hosted"
    assert rows[0]["Tags"] == ""
