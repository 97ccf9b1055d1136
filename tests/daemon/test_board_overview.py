"""The overview's store figures (daemon.board.overview) on SQLite and PostgreSQL, and its cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from daemon.board.overview import (
    BASIS_COUNTERS,
    BASIS_GAUGE,
    load_store_overview,
    store_overview,
)
from daemon.board.overview_cache import HourlyMemo, OverviewCache
from daemon.costs.figures import Money
from daemon.costs.localcost import GpuCostModel
from daemon.store.db import open_store, session_scope
from daemon.store.models import (
    CacheRollup,
    CostRecord,
    Gpu,
    GpuRollup,
    InferenceRollup,
    Node,
)

NOW = datetime(2026, 8, 20, 10, 30, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"
A, B, C = "GPU-aaaa", "GPU-bbbb", "GPU-cccc"
MODELS = {
    H100: GpuCostModel(
        gpu_model=H100,
        currency="USD",
        purchase_price=Decimal("35040"),
        depreciation_years=Decimal("4"),
        power_price_per_kwh=Decimal("0.12"),
        pue=Decimal("1.3"),
        ops_cost_per_year=Decimal("876"),
    )
}


def _at(day: int, hour: int, minute: int = 0, month: int = 8) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _gpu_row(
    uuid: str, resolution: int, start: datetime, *, samples: int, **values: float | None
) -> GpuRollup:
    fields: dict[str, float | None] = {
        "avg_utilization_ratio": 0.0,
        "energy_joules": None,
        "avg_power_watts": 100.0,
        "idle_seconds": 0.0,
    }
    fields.update(values)
    return GpuRollup(
        gpu_uuid=uuid,
        resolution_seconds=resolution,
        bucket_start=start,
        samples=samples,
        **fields,  # type: ignore[arg-type]
    )


def _bill(
    source: str, start: datetime, amount: str, currency: str = "USD", key: str = ""
) -> CostRecord:
    return CostRecord(
        source=source,
        import_batch="t",
        row_key=key or f"{source}:{start.isoformat()}:{amount}:{currency}",
        provider="AWS",
        billed_cost=Decimal(amount),
        billing_currency=currency,
        charge_period_start=start,
        charge_period_end=start + timedelta(days=1),
        service_name="EC2",
    )


def seed_overview_store(session: Session) -> None:
    """Three GPUs (two priced), rollups around a rolled hour, bills, caches (used by tests/web)."""
    node = Node(name="node-a", first_seen=NOW, last_seen=NOW)
    session.add(node)
    session.flush()
    assert node.id is not None
    for index, (uuid, name) in enumerate(((A, H100), (B, H100), (C, L4))):
        session.add(
            Gpu(uuid=uuid, node_id=node.id, index=index, name=name, first_seen=NOW, last_seen=NOW)
        )
    session.flush()
    rows = [
        # rolled hours (the last one ends at 10:00: the split)
        _gpu_row(A, 3600, _at(20, 8), avg_utilization_ratio=0.5, samples=240,
                 energy_joules=360000.0, idle_seconds=1800.0),
        _gpu_row(B, 3600, _at(20, 8), avg_utilization_ratio=1.0, samples=240),
        _gpu_row(A, 3600, _at(20, 9), avg_utilization_ratio=0.2, samples=240,
                 energy_joules=360000.0, idle_seconds=1800.0),
        _gpu_row(B, 3600, _at(20, 9), avg_utilization_ratio=None, samples=240),
        _gpu_row(C, 3600, _at(20, 9), avg_utilization_ratio=0.0, samples=240,
                 idle_seconds=3600.0),
        # 7 days and one hour ago: idle this month, outside the utilization window
        _gpu_row(A, 3600, _at(13, 9), avg_utilization_ratio=0.9, samples=240,
                 energy_joules=360000.0, idle_seconds=3600.0),
        # last month: neither
        _gpu_row(A, 3600, _at(31, 23, month=7), avg_utilization_ratio=0.9, samples=240,
                 energy_joules=360000.0, idle_seconds=3600.0),
        # a minute of a rolled hour: already in its hour row, must not count twice
        _gpu_row(A, 60, _at(20, 9, 30), avg_utilization_ratio=0.0, samples=4,
                 energy_joules=6000.0, idle_seconds=60.0),
        # minutes after the split
        _gpu_row(A, 60, _at(20, 10, 0), avg_utilization_ratio=0.4, samples=4,
                 energy_joules=6000.0, idle_seconds=60.0),
        _gpu_row(A, 60, _at(20, 10, 1), avg_utilization_ratio=0.4, samples=4,
                 energy_joules=None, avg_power_watts=100.0, idle_seconds=60.0),
        _gpu_row(B, 60, _at(20, 10, 0), avg_utilization_ratio=0.8, samples=4),
        _gpu_row(B, 60, _at(20, 10, 1), avg_utilization_ratio=0.8, samples=4),
    ]  # fmt: skip
    session.add_all(rows)
    session.add_all(
        [
            _bill("aws-ce", _at(20, 0), "10.10"),
            _bill("aws-ce", _at(20, 0), "0.20", key="s3"),
            _bill("aws-ce", _at(19, 0), "100.00"),
            _bill("aws-ce", _at(1, 0), "1000.00"),
            _bill("aws-ce", _at(31, 0, month=7), "5000.00"),  # last month
            _bill("aws-ce", _at(21, 0), "7.00"),  # charged after now
            _bill("focus:/bills/azure", _at(18, 0), "33.333"),
            _bill("aliyun", _at(20, 0), "88.80", currency="CNY"),
        ]
    )
    old = NOW - timedelta(hours=2)
    for model, start, hits, queries, gauge in (
        ("deepseek-v3", NOW - timedelta(minutes=5), 300.0, 400.0, None),
        ("deepseek-v3", NOW - timedelta(minutes=4), 100.0, 400.0, None),
        ("deepseek-v3", old, 0.0, 1000.0, None),
        ("qwen", NOW - timedelta(minutes=3), 0.0, 0.0, 0.25),
        ("qwen", NOW - timedelta(minutes=2), 0.0, 0.0, 0.75),
    ):
        session.add(
            InferenceRollup(
                node="node-a",
                model=model,
                instance=f"{model}:{start.minute}",
                bucket_start=start,
                cache_hits=hits,
                cache_queries=queries,
                cache_hit_ratio=gauge,
            )
        )
    session.add(
        CacheRollup(name="redis", bucket_start=NOW - timedelta(minutes=1), hits=3, lookups=4)
    )
    session.add(CacheRollup(name="redis", bucket_start=old, hits=0, lookups=100))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    with session_scope(engine) as session:
        seed_overview_store(session)
    yield engine
    engine.dispose()


def test_it_sums_spend_per_source_and_currency_exactly(engine: Engine):
    with Session(engine) as session:
        figures = store_overview(session, NOW, MODELS)
    sources = {(s.source, s.currency): s for s in figures.spend_by_source}
    aws = sources[("aws-ce", "USD")]
    assert aws.today == Money(Decimal("10.30"), "USD")
    assert aws.month_to_date == Money(Decimal("1110.30"), "USD")
    assert aws.lines == 4
    assert aws.data_until == _at(21, 0)
    assert sources[("focus:/bills/azure", "USD")].month_to_date.amount == Decimal("33.333")
    assert sources[("focus:/bills/azure", "USD")].today.amount == 0
    cny, usd = figures.spend_by_currency
    assert (cny.currency, cny.today, cny.sources) == (
        "CNY",
        Money(Decimal("88.80"), "CNY"),
        ["aliyun"],
    )
    assert usd.month_to_date == Money(Decimal("1143.633"), "USD")
    assert usd.sources == ["aws-ce", "focus:/bills/azure"]
    # 19 days 10.5 hours of a 31-day month have passed
    elapsed = Decimal(19 * 24 + 10.5)
    assert usd.forecast is not None
    assert usd.forecast.amount == pytest.approx(Decimal("1143.633") * 31 * 24 / elapsed)


def test_it_reads_seven_days_of_utilization_from_hours_and_the_rest_from_minutes(engine: Engine):
    with Session(engine) as session:
        history = store_overview(session, NOW, MODELS).utilization
    assert history.since == _at(13, 10)
    points = {p.hour: p for p in history.points}
    assert sorted(points) == [_at(20, 8), _at(20, 9), _at(20, 10)]
    assert points[_at(20, 8)].ratio == pytest.approx(0.75)
    assert points[_at(20, 9)].ratio == pytest.approx(0.1), "a GPU without a reading is left out"
    assert points[_at(20, 9)].gpus == 3
    assert points[_at(20, 10)].ratio == pytest.approx(0.6), "the 09:30 minute is in its hour"
    weighted = 0.5 * 240 + 1.0 * 240 + 0.2 * 240 + 0.0 * 240 + 0.4 * 8 + 0.8 * 8
    assert history.average_ratio == pytest.approx(weighted / (4 * 240 + 16))


def test_it_prices_this_months_idle_gpu_hours(engine: Engine):
    with Session(engine) as session:
        waste = store_overview(session, NOW, MODELS).idle_waste
    assert waste.since == _at(1, 0)
    h100, l4 = waste.rows
    # A: 1800 + 1800 + 3600 s in hours, 60 + 60 s in minutes after the split
    idle_seconds = Decimal(7320)
    # idle energy: half of two 360 kJ hours, all of one, and two 6 kJ minutes (one from 100 W)
    idle_joules = Decimal(180000 + 180000 + 360000 + 6000 + 6000)
    expected = idle_seconds / 3600 * Decimal("1.1") + idle_joules / Decimal(3_600_000) * Decimal(
        "1.3"
    ) * Decimal("0.12")
    assert h100.gpu_model == H100 and h100.gpus == 2
    assert h100.idle_gpu_hours == pytest.approx(7320 / 3600)
    assert h100.cost is not None and h100.cost.currency == "USD"
    assert h100.cost.amount == pytest.approx(expected, abs=Decimal("1e-12"))
    assert (l4.gpu_model, l4.idle_gpu_hours, l4.cost) == (L4, 1.0, None)
    assert waste.unpriced == [L4]
    assert waste.totals == [h100.cost]
    assert waste.idle_gpu_hours == pytest.approx(7320 / 3600 + 1)


def test_it_reports_cache_hit_rates_of_the_last_hour(engine: Engine):
    with Session(engine) as session:
        figures = store_overview(session, NOW, MODELS)
    deepseek, qwen = figures.cache_hits
    assert (deepseek.model, deepseek.basis) == ("deepseek-v3", BASIS_COUNTERS)
    assert deepseek.hit_ratio == pytest.approx(0.5), "hits / queries, the 2-hour-old row left out"
    assert (deepseek.hits, deepseek.queries) == (400.0, 800.0)
    assert (qwen.model, qwen.basis, qwen.hit_ratio) == ("qwen", BASIS_GAUGE, pytest.approx(0.5))
    (redis,) = figures.response_caches
    assert (redis.name, redis.hit_ratio, redis.lookups) == ("redis", 0.75, 4.0)


def test_it_reads_an_empty_store_as_no_data():
    engine = open_store("sqlite://")
    try:
        with Session(engine) as session:
            figures = store_overview(session, NOW, MODELS)
    finally:
        engine.dispose()
    assert figures.spend_by_currency == [] and figures.spend_by_source == []
    assert figures.utilization.points == [] and figures.utilization.average_ratio is None
    assert figures.idle_waste.rows == [] and figures.idle_waste.totals == []
    assert figures.cache_hits == [] and figures.response_caches == []


def test_it_turns_an_unreadable_store_into_a_problem(caplog: pytest.LogCaptureFixture):
    engine = sqlalchemy.create_engine("sqlite://", poolclass=StaticPool)  # no tables
    try:
        result = load_store_overview(engine, NOW, MODELS)
    finally:
        engine.dispose()
    assert result.figures is None
    assert result.problem.startswith("the store could not be read (OperationalError)")
    assert "SELECT" not in result.problem
    assert "OperationalError" in caplog.text


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def test_it_computes_once_per_minute_within_the_ttl():
    clock = FakeMonotonic()
    cache: OverviewCache[int] = OverviewCache(timedelta(seconds=15), monotonic=clock)
    calls: list[datetime] = []

    def compute(now: datetime) -> int:
        calls.append(now)
        return len(calls)

    assert cache.peek(NOW) is None
    assert cache.get(NOW, lambda: compute(NOW)) == 1
    clock.value += 14
    assert cache.get(NOW + timedelta(seconds=29), lambda: compute(NOW)) == 1
    assert cache.peek(NOW) == 1
    clock.value += 2  # past the ttl
    assert cache.get(NOW, lambda: compute(NOW)) == 2
    assert cache.get(NOW + timedelta(seconds=60), lambda: compute(NOW)) == 3, "a new minute"
    assert cache.computations == 3


def test_it_serves_the_previous_value_while_one_caller_refreshes():
    clock = FakeMonotonic()
    cache: OverviewCache[str] = OverviewCache(timedelta(seconds=15), monotonic=clock)
    cache.get(NOW, lambda: "old")
    clock.value += 60
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert release.wait(10)
        return "new"

    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(cache.get(NOW, slow)))
    worker.start()
    assert started.wait(10)
    assert cache.peek(NOW) == "old"
    assert cache.get(NOW, lambda: pytest.fail("a second computation ran")) == "old"
    release.set()
    worker.join(10)
    assert results == ["new"]
    assert cache.peek(NOW) == "new"
    assert cache.computations == 2


def test_it_caches_nothing_when_compute_fails():
    cache: OverviewCache[str] = OverviewCache()

    def broken() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.get(NOW, broken)
    assert cache.peek(NOW) is None
    assert cache.get(NOW, lambda: "ok") == "ok"


def test_it_reuses_what_it_read_from_hour_rollups_until_another_hour_is_rolled(engine: Engine):
    memo = HourlyMemo()
    with Session(engine) as session:
        first = store_overview(session, NOW, MODELS, memo)
    with session_scope(engine) as session:  # a late change inside the rolled hours
        session.add(_gpu_row(C, 3600, _at(20, 8), samples=240, idle_seconds=3600.0))
    with Session(engine) as session:
        again = store_overview(session, NOW, MODELS, memo)
        unmemoized = store_overview(session, NOW, MODELS)
    assert again.idle_waste == first.idle_waste
    assert again.utilization == first.utilization
    assert unmemoized.idle_waste.idle_gpu_hours == first.idle_waste.idle_gpu_hours + 1
    with session_scope(engine) as session:  # the 10:00 hour is rolled: the split moves
        session.add(_gpu_row(A, 3600, _at(20, 10), samples=8, avg_utilization_ratio=0.4,
                             energy_joules=12000.0, idle_seconds=120.0))  # fmt: skip
    with Session(engine) as session:
        rolled = store_overview(session, NOW, MODELS, memo)
    assert rolled.idle_waste.idle_gpu_hours == pytest.approx(unmemoized.idle_waste.idle_gpu_hours)
