"""The costs page's queries on SQLite and PostgreSQL: bills by provider / service / account,
per-currency totals, daily trends, tags, the local cost model over rollups, and budgets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from collectors.base import CostLine
from daemon.board.costs import (
    LOCAL_SOURCE,
    MAX_DAYS,
    CostQuery,
    InputError,
    bill_rows,
    budget_rows,
    cloud_trends,
    cost_query,
    currency_totals,
    dimensions,
    local_cost,
    rollup_spans,
    tag_keys,
    tag_rows,
)
from daemon.costs.budget import Budget
from daemon.costs.ledger import add_lines
from daemon.costs.localcost import GpuCostModel
from daemon.store.db import open_store, session_scope
from daemon.store.models import Gpu, GpuRollup, Node

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
EVIL = "<script>alert(1)</script>"
H100 = "NVIDIA H100 80GB HBM3"
A_UUID = "GPU-aaaaaaaa-0000"
B_UUID = "GPU-bbbbbbbb-0000"
MODEL = GpuCostModel(
    gpu_model=H100,
    currency="USD",
    purchase_price=Decimal(35040),
    depreciation_years=Decimal(4),
    power_price_per_kwh=Decimal("0.12"),
    pue=Decimal("1.3"),
    ops_cost_per_year=Decimal(876),
)
"""The README's worked example: 1.1 USD an hour plus 0.1092 USD of energy at 700 W."""
FULL_HOUR = Decimal("1.2092")


def day(n: int) -> datetime:
    return datetime(2026, 8, n, tzinfo=UTC)


def bill(
    key: str,
    when: datetime,
    amount: str,
    *,
    provider: str = "AWS",
    service: str | None = "EC2",
    currency: str = "USD",
    sub: str | None = None,
    billing: str | None = "acct-1",
    tags: dict[str, str] | None = None,
) -> CostLine:
    return CostLine(
        row_key=key,
        provider=provider,
        billed_cost=Decimal(amount),
        billing_currency=currency,
        charge_period_start=when,
        charge_period_end=when + timedelta(days=1),
        service_name=service,
        billing_account_id=billing,
        sub_account_id=sub,
        tags=tags or {},
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def seed_bills(engine: Engine) -> None:
    """Bills in August 2026 from two sources, two currencies, and lines outside the period."""
    with session_scope(engine) as session:
        add_lines(
            session,
            [bill(f"ec2-{n}", day(n), "0.10000001", tags={"team": EVIL}) for n in range(1, 11)]
            + [
                bill("s3", day(3), "2.5", service="S3", tags={"team": "data"}),
                bill("sub", day(4), "7", sub="sub-9"),
                bill("noacct", day(4), "1.25", billing=None, service=None),
                bill("cny", day(5), "100.10", provider="Aliyun", service="ECS", currency="CNY"),
                bill("july", datetime(2026, 7, 31, tzinfo=UTC), "999"),
                bill("late", day(21), "999"),
            ],
            source="aws_ce:prod",
            import_batch="b1",
        )
        add_lines(
            session,
            [bill("focus-1", day(2), "3.3")],
            source="focus:export-08.csv",
            import_batch="b2",
        )


@pytest.fixture
def billed(engine: Engine) -> Engine:
    seed_bills(engine)
    return engine


def query(**kwargs: object) -> CostQuery:
    return cost_query(now=NOW, **kwargs)  # type: ignore[arg-type]


def test_it_defaults_to_this_month_and_names_the_field_of_a_bad_period() -> None:
    q = query()
    assert (q.first, q.last) == (date(2026, 8, 1), date(2026, 8, 20))
    assert query(first=date(2026, 8, 5)).last == date(2026, 8, 20)
    assert query(last=date(2026, 7, 10)).first == date(2026, 7, 1)
    assert query(provider="  ", service=" EC2 ").provider is None
    with pytest.raises(InputError) as bad_order:
        query(first=date(2026, 8, 9), last=date(2026, 8, 1))
    assert bad_order.value.field == "from"
    with pytest.raises(InputError) as too_long:
        query(first=date(2025, 1, 1), last=date(2025, 1, 1) + timedelta(days=MAX_DAYS))
    assert too_long.value.field == "to"


def test_it_groups_bills_by_provider_service_account_and_currency_exactly(
    billed: Engine,
) -> None:
    with Session(billed) as session:
        rows = bill_rows(session, query())
    found = {(r.provider, r.service, r.account, r.currency): r for r in rows}
    ec2 = found[("AWS", "EC2", "acct-1", "USD")]
    assert ec2.amount == Decimal("4.3000001")  # ten 0.10000001 plus 3.3: no float drift
    assert ec2.lines == 11
    assert ec2.sources == ["aws_ce:prod", "focus:export-08.csv"]
    assert found[("AWS", "EC2", "sub-9", "USD")].amount == Decimal(7)
    assert found[("AWS", "", "", "USD")].amount == Decimal("1.25")
    assert found[("Aliyun", "ECS", "acct-1", "CNY")].amount == Decimal("100.1")
    assert ("AWS", "EC2", "acct-1", "USD") in found and len(rows) == 5  # July and 21st left out
    assert [r.amount for r in rows if r.currency == "USD"] == sorted(
        (r.amount for r in rows if r.currency == "USD"), reverse=True
    )


def test_it_never_adds_currencies_together(billed: Engine) -> None:
    with Session(billed) as session:
        totals = currency_totals(bill_rows(session, query()))
    assert [(t.currency, t.amount, t.lines) for t in totals] == [
        ("CNY", Decimal("100.1"), 1),
        ("USD", Decimal("15.0500001"), 14),
    ]
    assert totals[1].sources == ["aws_ce:prod", "focus:export-08.csv"]


def test_it_filters_by_provider_service_account_and_the_last_day(billed: Engine) -> None:
    with Session(billed) as session:
        by_account = bill_rows(session, query(account="sub-9"))
        by_service = bill_rows(session, query(service="S3"))
        by_provider = bill_rows(session, query(provider="Aliyun"))
        last_day = bill_rows(session, query(first=date(2026, 8, 21), last=date(2026, 8, 21)))
        no_service = bill_rows(session, query(service=""))
    assert [(r.account, r.amount) for r in by_account] == [("sub-9", Decimal(7))]
    assert [(r.service, r.amount) for r in by_service] == [("S3", Decimal("2.5"))]
    assert [r.currency for r in by_provider] == ["CNY"]
    assert [r.amount for r in last_day] == [Decimal(999)]
    assert len(no_service) == 5  # an empty filter means all


def test_it_draws_daily_trends_per_currency_with_empty_days_as_zero(billed: Engine) -> None:
    q = query(first=date(2026, 8, 1), last=date(2026, 8, 6))
    with Session(billed) as session:
        trends = {t.currency: t for t in cloud_trends(session, q)}
    assert sorted(trends) == ["CNY", "USD"]
    usd = trends["USD"]
    assert [p.day for p in usd.points] == list(q.days)
    assert [p.amount for p in usd.points] == [
        Decimal("0.10000001"),
        Decimal("3.40000001"),
        Decimal("2.60000001"),
        Decimal("8.35000001"),
        Decimal("0.10000001"),
        Decimal("0.10000001"),
    ]
    assert [p.amount for p in trends["CNY"].points] == [0, 0, 0, 0, Decimal("100.1"), 0]
    assert trends["USD"].sources == ["aws_ce:prod", "focus:export-08.csv"]
    assert trends["CNY"].kind == "cloud"


def test_it_breaks_bills_down_by_a_tag_and_lists_tag_keys(billed: Engine) -> None:
    with Session(billed) as session:
        rows = tag_rows(session, query(), "team")
        keys = tag_keys(session, query())
    found = {(r.value, r.currency): (r.amount, r.lines) for r in rows}
    assert found[(EVIL, "USD")] == (Decimal("1.0000001"), 10)
    assert found[("data", "USD")] == (Decimal("2.5"), 1)
    assert found[("", "USD")] == (Decimal("11.55"), 3)  # lines without the tag
    assert found[("", "CNY")] == (Decimal("100.1"), 1)
    assert keys == ["team"]


def test_it_lists_the_dimensions_billed_in_the_period(billed: Engine) -> None:
    with Session(billed) as session:
        dims = dimensions(session, query(provider="AWS"))
    assert dims.providers == ["AWS", "Aliyun"]
    assert dims.services == ["EC2", "ECS", "S3"]
    assert dims.accounts == ["acct-1", "sub-9"]


def test_it_splits_rollups_at_the_last_rolled_hour() -> None:
    start, end, rolled = day(1), day(2), day(1) + timedelta(hours=5)
    assert rollup_spans(start, end, rolled) == [(3600, start, rolled), (60, rolled, end)]
    assert rollup_spans(start, end, datetime.min.replace(tzinfo=UTC)) == [(60, start, end)]
    assert rollup_spans(start, end, day(3)) == [(3600, start, end)]


def seed_fleet(engine: Engine) -> None:
    """GPU A (H100, priced): two rolled hours on the 19th (busy, then idle), minute rows after
    the last rolled hour, and one rolled minute that must not count twice; GPU B (unpriced)."""
    with session_scope(engine) as session:
        node = Node(name="node-a", first_seen=day(1), last_seen=NOW)
        session.add(node)
        session.flush()
        assert node.id is not None
        session.add(
            Gpu(uuid=A_UUID, node_id=node.id, index=0, name=H100, first_seen=day(1), last_seen=NOW)
        )
        session.add(
            Gpu(
                uuid=B_UUID,
                node_id=node.id,
                index=1,
                name="Tesla T4",
                first_seen=day(1),
                last_seen=NOW,
            )
        )
        start = day(19)
        for hour, idle in ((0, 0.0), (1, 3600.0)):
            session.add(
                GpuRollup(
                    gpu_uuid=A_UUID,
                    resolution_seconds=3600,
                    bucket_start=start + timedelta(hours=hour),
                    samples=240,
                    avg_power_watts=700.0,
                    energy_joules=2_520_000.0,
                    idle_seconds=idle,
                )
            )
        session.add(
            GpuRollup(
                gpu_uuid=B_UUID,
                resolution_seconds=3600,
                bucket_start=start,
                samples=240,
                energy_joules=100.0,
            )
        )
        rolled_minute = GpuRollup(
            gpu_uuid=A_UUID,
            resolution_seconds=60,
            bucket_start=start + timedelta(minutes=30),
            samples=4,
            energy_joules=42_000.0,
        )
        session.add(rolled_minute)
        for minute in range(60):
            session.add(
                GpuRollup(
                    gpu_uuid=A_UUID,
                    resolution_seconds=60,
                    bucket_start=start + timedelta(hours=2, minutes=minute),
                    samples=4,
                    avg_power_watts=700.0,
                    energy_joules=None if minute % 2 else 42_000.0,  # watts stand in
                )
            )


def test_it_prices_local_gpu_time_from_the_cost_model_without_counting_twice(
    engine: Engine,
) -> None:
    seed_fleet(engine)
    q = query(first=date(2026, 8, 18), last=date(2026, 8, 20))
    with Session(engine) as session:
        cost = local_cost(session, q, {H100: MODEL})
    (total,) = cost.totals
    assert total.currency == "USD" and total.source == LOCAL_SOURCE
    assert total.amount == (3 * FULL_HOUR).quantize(Decimal("0.01"))
    assert total.idle == FULL_HOUR.quantize(Decimal("0.01"))
    assert (total.gpu_hours, total.idle_hours, total.gpus) == (Decimal(3), Decimal(1), 1)
    (trend,) = cost.trends
    assert trend.kind == "local" and trend.sources == [LOCAL_SOURCE]
    assert [p.amount for p in trend.points] == [Decimal(0), Decimal("3.63"), Decimal(0)]
    assert cost.unpriced == {"Tesla T4": Decimal("1.00")}


def test_it_reports_no_local_cost_without_a_cost_model(engine: Engine) -> None:
    seed_fleet(engine)
    with Session(engine) as session:
        cost = local_cost(session, query(), {})
    assert cost.totals == [] and cost.trends == []
    assert cost.unpriced == {H100: Decimal("3.00"), "Tesla T4": Decimal("1.00")}


def test_it_shows_budgets_with_month_to_date_and_forecast(billed: Engine) -> None:
    budgets = [
        Budget("all-usd", Decimal(20), "USD"),
        Budget("s3", Decimal(10), "USD", provider="AWS", service="S3"),
        Budget("cny", Decimal(1000), "CNY"),
    ]
    with Session(billed) as session:
        rows = {r.name: r for r in budget_rows(session, budgets, NOW)}
    elapsed_hours = Decimal(19 * 24 + 10)
    usd = rows["all-usd"]
    assert usd.month_to_date == Decimal("15.0500001")  # the 21st is still to come
    forecast = usd.month_to_date * 744 / elapsed_hours
    assert usd.forecast == forecast.quantize(Decimal("0.01"))
    assert usd.forecast_ratio == (forecast / 20).quantize(Decimal("0.0001"))
    assert usd.forecast_ratio > 1
    assert rows["s3"].month_to_date == Decimal("2.5")
    assert rows["s3"].spent_ratio == Decimal("0.25")
    assert rows["cny"].month_to_date == Decimal("100.1")
    with Session(billed) as session:
        early = budget_rows(session, budgets[:1], day(1) + timedelta(minutes=10))
    assert early[0].forecast is None and early[0].forecast_ratio is None
