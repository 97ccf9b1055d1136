"""Rule contexts from the store: only the fields a rule needs, over its window, exact money,
one query per (field, window) per tick."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import ClassVar

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from collectors.base import CostLine
from daemon.costs.budget import Budget
from daemon.costs.ledger import add_lines
from daemon.persist import upsert_inventory, write_rollups
from daemon.rollup import GpuMinute, Minutes
from daemon.rule_context import ContextBuilder, complete_days
from daemon.store.db import open_store
from daemon.store.models import CacheRollup, DebtItem, InferenceRollup, Rollback
from rules.base import Finding, RuleContext
from rules.series import SERIES

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)  # a Sunday
TODAY = NOW.date()
D = Decimal
MIN = timedelta(minutes=1)


@dataclass
class FakeRule:
    """A rule that asks for some fields and finds nothing."""

    needs: frozenset[str]
    window: timedelta = timedelta(minutes=10)
    series_names: frozenset[str] = frozenset()
    kind: ClassVar[str] = "fake"
    seen: list[RuleContext] = field(default_factory=list)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        self.seen.append(ctx)
        return []


def rule(*needs: str, window: timedelta = timedelta(minutes=10), series: str = "") -> FakeRule:
    names = frozenset({series}) if series else frozenset()
    return FakeRule(needs=frozenset(needs), window=window, series_names=names)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def gpu_minute(uuid: str, start: datetime, util: float, *, node: str = "n1") -> GpuMinute:
    return GpuMinute(
        uuid=uuid,
        node=node,
        index=int(uuid[-1]),
        name="H100",
        memory_total_bytes=80 * 2**30,
        bucket_start=start,
        samples=4,
        avg_utilization_ratio=util,
        max_utilization_ratio=util,
        avg_memory_used_bytes=2**30,
        avg_power_watts=100.0,
        energy_joules=6000.0,
        idle_seconds=0.0,
        idle_ratio=0.0,
    )


def write_gpus(engine: Engine, rows: list[GpuMinute]) -> None:
    with Session(engine) as session:
        upsert_inventory(session, rows, NOW)
        write_rollups(session, Minutes(gpus=rows))
        session.commit()


def inference(
    model: str,
    node: str,
    instance: str,
    start: datetime,
    *,
    resolution: int = 60,
    requests: float = 1.0,
    ratio: float | None = None,
    queries: float = 0.0,
    hits: float = 0.0,
) -> InferenceRollup:
    return InferenceRollup(
        node=node,
        model=model,
        instance=instance,
        resolution_seconds=resolution,
        bucket_start=start,
        prompt_tokens=10.0,
        generation_tokens=5.0,
        requests=requests,
        cache_queries=queries,
        cache_hits=hits,
        cache_hit_ratio=ratio,
    )


def add(engine: Engine, *rows: object) -> None:
    with Session(engine) as session:
        for row in rows:
            session.add(row)
        session.commit()


def bill(
    key: str,
    day: date,
    cost: str,
    *,
    provider: str = "aws",
    service: str | None = "Amazon EC2",
    sub: str | None = "111",
    account: str | None = "999",
    currency: str = "USD",
    sku: str | None = "sku-a",
    hour: int = 5,
) -> CostLine:
    start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return CostLine(
        row_key=key,
        provider=provider,
        billed_cost=D(cost),
        billing_currency=currency,
        charge_period_start=start,
        charge_period_end=start + timedelta(hours=1),
        service_name=service,
        sub_account_id=sub,
        billing_account_id=account,
        sku_id=sku,
        region_id="us-east-1",
        charge_category="Usage",
    )


def write_bills(engine: Engine, lines: list[CostLine]) -> None:
    with Session(engine) as session:
        add_lines(session, lines, source="test", import_batch="b1")
        session.commit()


def build(
    engine: Engine,
    *rules: FakeRule,
    down: frozenset[str] = frozenset(),
    power_limits: dict[str, float | None] | None = None,
    budgets: list[Budget] | None = None,
) -> list[RuleContext]:
    with Session(engine) as session:
        builder = ContextBuilder(
            session, NOW, down=down, power_limits=power_limits, budgets=budgets or []
        )
        return [builder.build(r) for r in rules]


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def test_it_counts_complete_days_back_from_yesterday() -> None:
    assert complete_days(NOW, timedelta(days=3)) == (days_ago(3), days_ago(2), days_ago(1))
    assert complete_days(NOW, timedelta(minutes=5)) == (days_ago(1),)
    assert len(complete_days(NOW, timedelta(days=28, hours=1))) == 29


def test_it_fills_only_the_fields_a_rule_needs(engine: Engine) -> None:
    write_gpus(engine, [gpu_minute("GPU-1", NOW - 3 * MIN, 0.5)])
    add(engine, inference("m", "n1", "i1", NOW - 2 * MIN))
    (gpus_only,) = build(engine, rule("gpus"))
    assert [g.uuid for g in gpus_only.gpus] == ["GPU-1"]
    assert gpus_only.models == () and gpus_only.costs == () and gpus_only.series == ()
    assert gpus_only.now == NOW and gpus_only.window == timedelta(minutes=10)


def test_it_builds_gpu_windows_over_the_rules_own_window(engine: Engine) -> None:
    write_gpus(
        engine,
        [gpu_minute("GPU-1", NOW - k * MIN, 0.1 * k) for k in range(1, 21)]
        + [gpu_minute("GPU-2", NOW - 15 * MIN, 0.9)],
    )
    short, long_ = build(
        engine,
        rule("gpus", window=timedelta(minutes=10)),
        rule("gpus", window=timedelta(minutes=20)),
        down=frozenset({"GPU-2"}),
        power_limits={"GPU-1": 700.0},
    )
    by_uuid = {g.uuid: g for g in short.gpus}
    assert by_uuid["GPU-1"].minutes == 10
    assert by_uuid["GPU-1"].avg_utilization_ratio == pytest.approx(0.55)
    assert by_uuid["GPU-1"].power_limit_watts == 700.0
    assert by_uuid["GPU-2"].minutes == 0 and by_uuid["GPU-2"].down is True
    assert {g.uuid: g.minutes for g in long_.gpus} == {"GPU-1": 20, "GPU-2": 1}


def test_it_sums_model_minutes_per_model_and_node_with_the_last_gauge(engine: Engine) -> None:
    add(
        engine,
        # two instances of one model on n1: minutes count once, sums add up
        inference("llama", "n1", "i1", NOW - 3 * MIN, requests=2, queries=100, hits=40, ratio=0.2),
        inference("llama", "n1", "i2", NOW - 3 * MIN, requests=3, queries=50, hits=10, ratio=0.4),
        inference("llama", "n1", "i1", NOW - 2 * MIN, requests=1, ratio=0.6),
        inference("llama", "n1", "i1", NOW - MIN, requests=1),  # no gauge in the last minute
        inference("llama", "n2", "i3", NOW - MIN, requests=7),
        inference("llama", "n1", "i1", NOW - 11 * MIN, requests=100),  # before the window
        inference("llama", "n1", "i1", NOW, requests=100),  # not complete yet
        inference("llama", "n1", "i1", NOW - 5 * MIN, resolution=3600, requests=100),
    )
    (ctx,) = build(engine, rule("models"))
    n1, n2 = ctx.models
    assert (n1.model, n1.node, n2.node) == ("llama", "n1", "n2")
    assert n1.minutes == 3
    assert n1.requests == 7 and n1.prompt_tokens == 40 and n1.generation_tokens == 20
    assert (n1.cache_queries, n1.cache_hits) == (150, 50)
    assert n1.cache_hit_ratio == pytest.approx(0.6)  # latest minute with a gauge reading
    assert n2.minutes == 1 and n2.requests == 7 and n2.cache_hit_ratio is None


def test_it_averages_the_gauges_of_instances_reporting_in_the_same_last_minute(
    engine: Engine,
) -> None:
    add(
        engine,
        inference("qwen", "n1", "a", NOW - 2 * MIN, ratio=0.2),
        inference("qwen", "n1", "b", NOW - 2 * MIN, ratio=0.4),
    )
    (ctx,) = build(engine, rule("models"))
    assert ctx.models[0].cache_hit_ratio == pytest.approx(0.3)


def test_it_builds_daily_cost_series_zero_filled_and_exact(engine: Engine) -> None:
    write_bills(
        engine,
        [
            # 0.1 + 0.2 must be exactly 0.3 (SQLite would add floats)
            bill("a1", days_ago(3), "0.1"),
            bill("a2", days_ago(3), "0.2", hour=23),
            bill("a3", days_ago(1), "0.00000001", sku="sku-b"),
            bill("a6", days_ago(1), "0.5", sku=None),
            bill("a4", days_ago(9), "50"),  # before a 5-day window
            bill("a5", TODAY, "70"),  # today is not complete
            # no sub-account: the billing account; neither: ""
            bill("b1", days_ago(2), "4", sub=None, account="acct-2"),
            bill("c1", days_ago(2), "5", service=None, sub="", account=None),
        ],
    )
    (ctx,) = build(engine, rule("costs", window=timedelta(days=5)))
    by_labels = {(s.labels["service"], s.labels["account"]): s for s in ctx.costs}
    assert set(by_labels) == {("Amazon EC2", "111"), ("Amazon EC2", "acct-2"), ("", "")}
    ec2 = by_labels[("Amazon EC2", "111")]
    assert ec2.labels == {"provider": "aws", "service": "Amazon EC2", "account": "111"}
    assert ec2.currency == "USD"
    assert ec2.days == (days_ago(3), days_ago(2), days_ago(1))  # from its first day
    assert ec2.costs == (D("0.3"), D("0"), D("0.50000001"))
    assert all(isinstance(c, Decimal) for c in ec2.costs)
    assert by_labels[("Amazon EC2", "acct-2")].days == (days_ago(2), days_ago(1))
    assert by_labels[("Amazon EC2", "acct-2")].costs == (D("4"), D("0"))
    # lines without a SKU are left out of the breakdown, not counted as a SKU ""
    assert ec2.by_dimension["sku_id"] == {
        "sku-a": (D("0.3"), D("0"), D("0")),
        "sku-b": (D("0"), D("0"), D("0.00000001")),
    }
    # one region and one charge category carry the whole series: they explain nothing
    assert set(ec2.by_dimension) == {"sku_id"}


def test_it_keeps_the_ten_biggest_values_of_each_dimension(engine: Engine) -> None:
    lines = [
        bill(f"s{i}-{d}", days_ago(d), str(i + 1), sku=f"sku-{i:02d}")
        for i in range(12)
        for d in (1, 2)
    ]
    lines.append(bill("late", days_ago(1), "100", sku="sku-00"))  # sku-00 becomes the largest
    write_bills(engine, lines)
    (ctx,) = build(engine, rule("costs", window=timedelta(days=2)))
    (series,) = ctx.costs
    skus = series.by_dimension["sku_id"]
    assert len(skus) == 10
    assert "sku-01" not in skus and "sku-02" not in skus  # the two smallest totals
    assert skus["sku-00"] == (D("1"), D("101"))
    assert skus["sku-11"] == (D("12"), D("12"))
    assert series.costs[1] == sum((D(i + 1) for i in range(12)), D(0)) + 100


def test_it_adds_a_currency_label_only_where_one_series_has_two_currencies(
    engine: Engine,
) -> None:
    write_bills(
        engine,
        [
            bill("u", days_ago(1), "1"),
            bill("e", days_ago(1), "2", currency="EUR"),
            bill("g", days_ago(1), "3", provider="gcp"),
        ],
    )
    (ctx,) = build(engine, rule("costs", window=timedelta(days=1)))
    labels = sorted(tuple(sorted(s.labels.items())) for s in ctx.costs)
    assert len(set(labels)) == 3
    by_provider = {(s.labels["provider"], s.currency): s.labels for s in ctx.costs}
    assert by_provider[("aws", "EUR")]["currency"] == "EUR"
    assert by_provider[("aws", "USD")]["currency"] == "USD"
    assert "currency" not in by_provider[("gcp", "USD")]


def test_it_reports_budgets_month_to_date_and_forecast(engine: Engine) -> None:
    write_bills(
        engine,
        [
            bill("m1", date(2026, 11, 1), "10.10"),
            bill("m2", date(2026, 11, 14), "19.90"),
            bill("g1", date(2026, 11, 14), "100", provider="gcp"),
            bill("eur", date(2026, 11, 14), "500", currency="EUR"),
            bill("oct", date(2026, 10, 31), "900"),
        ],
    )
    budgets = [
        Budget(name="all", amount=D("1000"), currency="USD"),
        Budget(name="aws", amount=D("50"), currency="USD", provider="aws"),
        Budget(name="ec2", amount=D("50"), currency="USD", service="Amazon EC2", provider="gcp"),
    ]
    (ctx,) = build(engine, rule("budgets"), budgets=budgets)
    views = {v.name: v for v in ctx.budgets}
    assert views["all"].month_to_date == D("130.00")
    assert views["aws"].month_to_date == D("30.00") and views["aws"].provider == "aws"
    assert views["ec2"].month_to_date == D("100")
    elapsed = NOW - datetime(2026, 11, 1, tzinfo=UTC)
    expected = D("30.00") * D(30 * 86400) / D(int(elapsed.total_seconds()))
    assert views["aws"].forecast == expected


def test_it_lists_open_rollbacks_and_those_restored_in_the_window(engine: Engine) -> None:
    started = NOW - timedelta(hours=6)
    add(
        engine,
        Rollback(service="api", from_version="2", to_version="1", started_at=started),
        Rollback(
            service="chat",
            from_version="5",
            to_version="4",
            started_at=started,
            restored_at=NOW - timedelta(minutes=30),
            sla_target_seconds=600,
            created_by="ana",
        ),
        Rollback(
            service="old",
            from_version="9",
            to_version="8",
            started_at=started,
            restored_at=NOW - timedelta(hours=2),
        ),
    )
    (ctx,) = build(engine, rule("rollbacks", window=timedelta(hours=1)))
    assert [r.service for r in ctx.rollbacks] == ["api", "chat"]
    api, chat = ctx.rollbacks
    assert api.restored_at is None and api.sla_target == timedelta(hours=4)
    assert api.started_at == started
    assert chat.sla_target == timedelta(minutes=10) and chat.owner == "ana"


def test_it_lists_debt_items_that_are_not_done(engine: Engine) -> None:
    due = datetime(2026, 11, 1, tzinfo=UTC)
    add(
        engine,
        DebtItem(
            title="a", status="backlog", monthly_cost=D("12.34"), due_date=due, created_at=NOW
        ),
        DebtItem(title="b", status="done", created_at=NOW),
        DebtItem(title="c", status="in_progress", severity="high", created_at=NOW),
    )
    (ctx,) = build(engine, rule("debts"))
    assert [d.title for d in ctx.debts] == ["a", "c"]
    assert ctx.debts[0].monthly_cost == D("12.34") and ctx.debts[0].due_date == due
    assert ctx.debts[1].severity == "high" and ctx.debts[1].due_date is None


def test_it_counts_daily_requests_from_hour_rows_then_minute_rows(engine: Engine) -> None:
    d3 = datetime.combine(days_ago(3), datetime.min.time(), UTC)
    d2 = d3 + timedelta(days=1)
    d1 = d2 + timedelta(days=1)
    add(
        engine,
        # day -3: hour rows (its minute rows were retired)
        inference("m", "n1", "i", d3 + timedelta(hours=1), resolution=3600, requests=100),
        inference("m", "n1", "i", d3 + timedelta(hours=2), resolution=3600, requests=50),
        # day -2: hours 0-1 rolled up AND still present as minutes: counted once
        inference("m", "n1", "i", d2, resolution=3600, requests=60),
        inference("m", "n1", "i", d2 + timedelta(minutes=5), requests=60),
        # after the last rolled hour: minute rows
        inference("m", "n1", "i", d2 + timedelta(hours=1, minutes=1), requests=7),
        inference("m", "n1", "i", d2 + timedelta(hours=20), requests=3),
        # day -1 has no rows for m (not observed); another model has one
        inference("q", "n1", "j", d1 + timedelta(hours=3), requests=4),
        # today is not complete
        inference("m", "n1", "i", NOW - MIN, requests=999),
    )
    (ctx,) = build(engine, rule("daily_requests", window=timedelta(days=3)))
    assert ctx.daily_requests == {"m": (150.0, 70.0), "q": (4.0,)}


def test_it_reads_stored_series_per_label_set(engine: Engine) -> None:
    write_gpus(
        engine,
        [gpu_minute("GPU-1", NOW - k * MIN, 0.1 * k) for k in (1, 2)]
        + [gpu_minute("GPU-2", NOW - MIN, 0.9, node="n2")],
    )
    add(
        engine,
        inference("m", "n1", "i", NOW - 2 * MIN, ratio=0.5),
        inference("m", "n1", "i", NOW - MIN),
        CacheRollup(name="gw", bucket_start=NOW - MIN, hits=3, lookups=4),
    )
    util, limit, ratio, lookups = build(
        engine,
        rule("series", window=timedelta(minutes=5), series="tcowatch_gpu_utilization_ratio"),
        rule("series", window=timedelta(minutes=5), series="tcowatch_gpu_power_limit_watts"),
        rule("series", window=timedelta(minutes=5), series="tcowatch_llm_cache_hit_ratio"),
        rule("series", window=timedelta(minutes=5), series="tcowatch_response_cache_lookups"),
        power_limits={"GPU-1": 700.0},
    )
    first, second = util.series
    assert first.name == "tcowatch_gpu_utilization_ratio"
    assert first.labels == {"gpu": "1", "node": "n1", "uuid": "GPU-1"}
    assert [t for t, _ in first.points] == [NOW - 2 * MIN, NOW - MIN]
    assert [v for _, v in first.points] == pytest.approx([0.2, 0.1])
    assert second.labels["node"] == "n2" and len(second.points) == 1
    (only,) = limit.series  # GPU-2's limit is unknown: no points, no series
    assert only.labels["uuid"] == "GPU-1" and [v for _, v in only.points] == [700.0, 700.0]
    (gauge,) = ratio.series  # the minute without a reading is left out
    assert gauge.labels == {"instance": "i", "model": "m", "node": "n1"}
    assert gauge.points == ((NOW - 2 * MIN, 0.5),)
    assert lookups.series[0].labels == {"cache": "gw"} and lookups.series[0].points[0][1] == 4.0


def test_it_reads_cloud_cost_as_a_daily_series(engine: Engine) -> None:
    write_bills(engine, [bill("a", days_ago(2), "1.5"), bill("b", days_ago(2), "2.25")])
    (ctx,) = build(engine, rule("series", window=timedelta(days=3), series="tcowatch_cloud_cost"))
    (series,) = ctx.series
    assert series.labels == {
        "provider": "aws",
        "service": "Amazon EC2",
        "account": "111",
        "currency": "USD",
    }
    start = datetime.combine(days_ago(2), datetime.min.time(), UTC)
    assert series.points == ((start, 3.75), (start + timedelta(days=1), 0.0))


def test_it_builds_every_known_series_name(engine: Engine) -> None:
    write_gpus(engine, [gpu_minute("GPU-1", NOW - MIN, 0.3)])
    add(engine, inference("m", "n1", "i", NOW - MIN, ratio=0.5))
    for name in SERIES:
        (ctx,) = build(engine, rule("series", series=name))
        assert all(s.name == name for s in ctx.series)


def test_it_shares_one_query_between_rules_with_the_same_field_and_window(
    engine: Engine,
) -> None:
    write_gpus(engine, [gpu_minute("GPU-1", NOW - MIN, 0.3)])
    with Session(engine) as session:
        builder = ContextBuilder(session, NOW)
        first = builder.build(rule("gpus", "debts"))
        second = builder.build(rule("gpus", "debts"))
        assert builder.computed == 2
        assert first.gpus is second.gpus
        builder.build(rule("gpus", window=timedelta(minutes=30)))
        assert builder.computed == 3


def test_it_refuses_a_naive_clock_unknown_fields_and_unknown_series(engine: Engine) -> None:
    with Session(engine) as session:
        with pytest.raises(ValueError, match="aware"):
            ContextBuilder(session, NOW.replace(tzinfo=None))
        builder = ContextBuilder(session, NOW)
        with pytest.raises(ValueError, match=r"unknown fields.*'weather'"):
            builder.build(rule("weather"))
        with pytest.raises(ValueError, match="unknown series 'nope'"):
            builder.build(rule("series", series="nope"))
