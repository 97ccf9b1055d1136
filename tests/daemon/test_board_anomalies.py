"""The anomalies page's store layer: filters, figures, the open/acknowledged/resolved life,
comments and the demo rows, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from daemon.anomalies import series_key
from daemon.board.anomalies import (
    AnomalyFilter,
    TransitionRefused,
    acknowledge,
    check_filter,
    comment,
    dimension_values,
    get_anomaly,
    impact_percent,
    list_anomalies,
    parse_filter,
    reopen,
    resolve,
    seed_demo_anomalies,
)
from daemon.board.comments import FieldErrors, ItemNotFound
from daemon.store.db import open_store, session_scope
from daemon.store.models import Anomaly, Comment, DebtItem

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
D = Decimal


def add(
    session: Session,
    *,
    provider: str = "AWS",
    service: str = "EC2",
    day: date = date(2026, 11, 27),
    expected: str = "100",
    actual: str = "250",
    status: str = "open",
    causes: list[dict[str, object]] | None = None,
) -> int:
    labels = {"provider": provider, "service": service, "account": "111"}
    row = Anomaly(
        rule="CloudCostAnomaly",
        series_key=series_key(labels),
        dimensions=labels,
        day=datetime(day.year, day.month, day.day, tzinfo=UTC),
        expected_cost=D(expected),
        actual_cost=D(actual),
        impact=D(actual) - D(expected),
        currency="USD",
        root_causes=causes or [],
        status=status,
        created_at=NOW,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def seeded(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {
            "ec2": add(session, causes=[{"dimension": "sku_id", "value": "p5", "impact": "150"}]),
            "s3": add(session, service="S3", day=date(2026, 11, 25), actual="130"),
            "azure": add(session, provider="Microsoft", service="VMs", day=date(2026, 11, 20)),
            "done": add(session, provider="Microsoft", service="OpenAI", status="resolved"),
        }


def ids(engine: Engine, filters: AnomalyFilter, **page: int) -> list[int]:
    with Session(engine) as session:
        return [row.id for row in list_anomalies(session, filters, **page).items]


def test_it_lists_newest_day_first_and_biggest_impact_first_within_a_day(
    engine: Engine, seeded: dict[str, int]
) -> None:
    with session_scope(engine) as session:
        bigger = add(session, service="Bedrock", actual="400")  # same day, more impact
    assert ids(engine, AnomalyFilter()) == [
        bigger,
        seeded["done"],  # same day and impact as ec2: the newer row first
        seeded["ec2"],
        seeded["s3"],
        seeded["azure"],
    ]
    with Session(engine) as session:
        page = list_anomalies(session, AnomalyFilter(), limit=2, offset=1)
    assert page.total == 5 and len(page.items) == 2 and page.offset == 1


def test_it_filters_on_status_dimensions_and_an_inclusive_day_range(
    engine: Engine, seeded: dict[str, int]
) -> None:
    assert set(ids(engine, AnomalyFilter(status="open"))) == {
        seeded["ec2"],
        seeded["s3"],
        seeded["azure"],
    }
    assert set(ids(engine, AnomalyFilter(provider="Microsoft"))) == {
        seeded["azure"],
        seeded["done"],
    }
    assert ids(engine, AnomalyFilter(provider="AWS", service="S3")) == [seeded["s3"]]
    assert ids(engine, AnomalyFilter(provider="aws")) == []  # exact match
    in_range = AnomalyFilter(day_from=date(2026, 11, 20), day_to=date(2026, 11, 25))
    assert ids(engine, in_range) == [seeded["s3"], seeded["azure"]]
    with Session(engine) as session:
        assert list_anomalies(session, in_range).total == 2
        assert dimension_values(session, "provider") == ["AWS", "Microsoft"]


def test_it_reports_every_bad_filter_by_field() -> None:
    with pytest.raises(FieldErrors) as caught:
        parse_filter(status="closed", day_from="yesterday", day_to="2026-13-01")
    assert set(caught.value.errors) == {"status", "day_from", "day_to"}
    assert "YYYY-MM-DD" in caught.value.errors["day_from"]
    with pytest.raises(FieldErrors) as caught:
        check_filter(AnomalyFilter(day_from=date(2026, 11, 2), day_to=date(2026, 11, 1)))
    assert list(caught.value.errors) == ["day_to"]
    assert parse_filter(status="", provider=" AWS ", day_to="2026-11-02") == AnomalyFilter(
        provider="AWS", day_to=date(2026, 11, 2)
    )


def test_it_shows_exact_figures_impact_percent_and_root_causes(
    engine: Engine, seeded: dict[str, int]
) -> None:
    with Session(engine) as session:
        row = get_anomaly(session, seeded["ec2"]).anomaly
    assert (row.expected_cost, row.actual_cost, row.impact) == (D("100"), D("250"), D("150"))
    assert row.impact_percent == D("150.0") and row.currency == "USD"
    assert row.day == date(2026, 11, 27)
    cause = row.root_causes[0]
    assert (cause.dimension, cause.value, cause.impact, cause.expected) == (
        "sku_id",
        "p5",
        150,
        None,
    )
    assert impact_percent(D("5"), D("0")) is None
    assert impact_percent(D("-1"), D("3")) == D("-33.3")


def test_it_acknowledges_resolves_and_reopens(engine: Engine, seeded: dict[str, int]) -> None:
    target = seeded["ec2"]
    with session_scope(engine) as session:
        assert acknowledge(session, target, "user:alice", NOW) is True
        assert acknowledge(session, target, "user:bob", NOW) is False
    with Session(engine) as session:
        row = get_anomaly(session, target).anomaly
    assert (row.status, row.acknowledged_by, row.acknowledged_at) == (
        "acknowledged",
        "user:alice",
        NOW,
    )
    later = NOW + timedelta(hours=2)
    with session_scope(engine) as session:
        assert resolve(session, target, "user:bob", later) is True
        assert resolve(session, target, "user:bob", later) is False
        with pytest.raises(TransitionRefused, match="reopen it first"):
            acknowledge(session, target, "user:bob", later)
    with Session(engine) as session:
        row = get_anomaly(session, target).anomaly
    assert (row.status, row.acknowledged_by, row.resolved_at, row.updated_at) == (
        "resolved",
        "user:alice",
        later,
        later,
    )
    with session_scope(engine) as session:
        assert reopen(session, target, later) is True
        assert reopen(session, target, later) is False
    with Session(engine) as session:
        row = get_anomaly(session, target).anomaly
    assert (row.status, row.acknowledged_by, row.resolved_at) == ("open", "", None)


def test_it_counts_resolving_an_open_anomaly_as_acknowledging_it(
    engine: Engine, seeded: dict[str, int]
) -> None:
    with session_scope(engine) as session:
        assert resolve(session, seeded["s3"], "token:bot", NOW)
    with Session(engine) as session:
        row = get_anomaly(session, seeded["s3"]).anomaly
    assert (row.status, row.acknowledged_by, row.acknowledged_at) == ("resolved", "token:bot", NOW)


def test_it_refuses_unknown_anomalies(engine: Engine) -> None:
    with session_scope(engine) as session:
        for action in (
            lambda: acknowledge(session, 999, "user:a", NOW),
            lambda: resolve(session, 999, "user:a", NOW),
            lambda: reopen(session, 999, NOW),
            lambda: comment(session, 999, "user:a", "hi", NOW),
            lambda: get_anomaly(session, 999),
        ):
            with pytest.raises(ItemNotFound, match="no anomaly 999"):
                action()


def test_it_keeps_comments_in_order_and_refuses_empty_ones(
    engine: Engine, seeded: dict[str, int]
) -> None:
    target = seeded["azure"]
    with session_scope(engine) as session:
        comment(session, target, "user:alice", "  looking  ", NOW)
        comment(session, target, "user:bob", "reserved instance expired", NOW + timedelta(1))
        with pytest.raises(FieldErrors) as caught:
            comment(session, target, "user:bob", "   ", NOW)
        assert list(caught.value.errors) == ["body"]
        with pytest.raises(FieldErrors):
            comment(session, target, "user:bob", "x" * 10_001, NOW)
    with Session(engine) as session:
        detail = get_anomaly(session, target)
    assert [(c.author, c.body) for c in detail.comments] == [
        ("user:alice", "looking"),
        ("user:bob", "reserved instance expired"),
    ]
    assert detail.comments[0].created_at == NOW and detail.debt_item_id is None


def test_it_names_the_debt_item_raised_from_an_anomaly(
    engine: Engine, seeded: dict[str, int]
) -> None:
    with session_scope(engine) as session:
        item = DebtItem(
            title="t", created_at=NOW, source_kind="anomaly", source_ref=str(seeded["ec2"])
        )
        session.add(item)
        session.flush()
        item_id = item.id
    with Session(engine) as session:
        assert get_anomaly(session, seeded["ec2"]).debt_item_id == item_id
        assert get_anomaly(session, seeded["s3"]).debt_item_id is None


def test_it_seeds_demo_anomalies_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert seed_demo_anomalies(session, NOW) == 3
    with session_scope(engine) as session:  # a restart, even days later, adds nothing
        assert seed_demo_anomalies(session, NOW + timedelta(days=3)) == 0
    with Session(engine) as session:
        rows = session.exec(select(Anomaly).order_by(col(Anomaly.day))).all()
        comments = session.exec(select(Comment)).all()
        page = list_anomalies(session, AnomalyFilter(status="open"))
    assert [row.status for row in rows] == ["resolved", "acknowledged", "open"]
    assert len(comments) == 1
    spike = page.items[0]
    assert spike.dimensions["service"].startswith("Amazon Elastic Compute Cloud")
    assert spike.impact == spike.actual_cost - spike.expected_cost > 0
    assert spike.day == date(2026, 11, 26) and spike.root_causes
