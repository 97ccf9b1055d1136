"""The ledger replaces a source's period or window; nothing is ever counted twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from collectors.base import CostLine
from daemon.costs.ledger import add_lines, delete_billing_period, replace_window
from daemon.store.db import open_store
from daemon.store.models import CostRecord

D0 = datetime(2026, 11, 1, tzinfo=UTC)


def line(day: int, amount: str, key: str, period: datetime = D0) -> CostLine:
    start = D0 + timedelta(days=day)
    return CostLine(
        row_key=key,
        provider="AWS",
        billed_cost=Decimal(amount),
        billing_currency="USD",
        charge_period_start=start,
        charge_period_end=start + timedelta(days=1),
        billing_period_start=period,
        service_name="EC2",
        tags={"team": "ml"},
        extra={"x_Estimated": True},
    )


@pytest.fixture
def engine(db_url: str):
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def total(engine, source: str) -> tuple[Decimal, int]:
    with Session(engine) as session:
        amount, rows = session.exec(
            select(func.sum(CostRecord.billed_cost), func.count()).where(
                CostRecord.source == source
            )
        ).one()
    return Decimal(amount or 0), int(rows)


def test_it_replaces_a_window_so_restated_days_are_not_counted_twice(engine) -> None:
    with Session(engine) as session:
        add_lines(
            session,
            [line(d, "10.01", f"k{d}") for d in range(10)],
            source="aws_ce:prod",
            import_batch="b1",
        )
        session.commit()
    assert total(engine, "aws_ce:prod") == (Decimal("100.10"), 10)
    with Session(engine) as session:  # the last 3 days are restated
        replace_window(
            session,
            source="aws_ce:prod",
            start=D0 + timedelta(days=7),
            end=D0 + timedelta(days=10),
            lines=[line(d, "20.00", f"k{d}") for d in (7, 8, 9)],
            import_batch="b2",
        )
        session.commit()
    assert total(engine, "aws_ce:prod") == (Decimal("130.07"), 10)
    with Session(engine) as session:
        record = session.exec(select(CostRecord).where(CostRecord.row_key == "k9")).one()
    assert record.billed_cost == Decimal("20.00") and record.import_batch == "b2"
    assert record.tags == {"team": "ml"} and record.extra == {"x_Estimated": True}


def test_it_refuses_a_line_outside_the_window_and_changes_nothing(engine) -> None:
    with Session(engine) as session:
        add_lines(session, [line(0, "1.00", "a")], source="s", import_batch="b1")
        session.commit()
    with Session(engine) as session, pytest.raises(ValueError, match="line late is charged"):
        replace_window(
            session,
            source="s",
            start=D0,
            end=D0 + timedelta(days=1),
            lines=[line(5, "9.00", "late")],
            import_batch="b2",
        )
    assert total(engine, "s") == (Decimal("1.00"), 1)


def test_it_deletes_one_billing_period_of_one_source(engine) -> None:
    october = D0 - timedelta(days=31)
    with Session(engine) as session:
        add_lines(
            session, [line(0, "5.00", "n1"), line(1, "5.00", "n2")], source="f", import_batch="b"
        )
        add_lines(session, [line(-20, "7.00", "o1", period=october)], source="f", import_batch="b")
        add_lines(session, [line(0, "3.00", "x1")], source="other", import_batch="b")
        assert delete_billing_period(session, source="f", billing_period_start=D0) == 2
        session.commit()
    assert total(engine, "f") == (Decimal("7.00"), 1)
    assert total(engine, "other") == (Decimal("3.00"), 1)
