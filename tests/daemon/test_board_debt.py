"""The tech-debt board's store layer: validation, cost-of-delay order, moves and closing,
raising from alerts and anomalies (once), and the demo items, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from daemon.board.anomalies import seed_demo_anomalies
from daemon.board.comments import FieldErrors, ItemNotFound
from daemon.board.debt import (
    DebtFilter,
    board,
    comment,
    cost_of_delay,
    create_item,
    get_item,
    list_items,
    move_item,
    raise_from_alert,
    raise_from_anomaly,
    seed_demo_debt,
    update_item,
)
from daemon.board.debt_fields import clean_fields
from daemon.store.db import open_store, session_scope
from daemon.store.models import Alert, Anomaly, DebtItem

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
D = Decimal


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def create(engine: Engine, **fields: Any) -> int:
    with session_scope(engine) as session:
        return create_item(session, {"title": "t", **fields}, NOW).id


def errors(**fields: Any) -> dict[str, str]:
    with pytest.raises(FieldErrors) as caught:
        clean_fields(fields)
    return caught.value.errors


# -- validation ---------------------------------------------------------------------------------


def test_it_refuses_javascript_and_other_non_http_links() -> None:
    for link in (
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "ftp://x/y",
        "/relative/path",
        "https://",
        "http://exa mple.com",
        "https://x\n.com",
    ):
        assert "links" in errors(links=[link]), link
    reason = errors(links=["https://ok.example/a", "javascript:alert(1)"])["links"]
    assert reason.startswith("link 2: only absolute http(s) URLs") and "javascript:" in reason
    assert clean_fields({"links": "https://a.example/x\n\n http://b.example \n"}) == {
        "links": ["https://a.example/x", "http://b.example"]
    }
    assert (
        "at most 20 links" in errors(links=[f"https://e.example/{i}" for i in range(21)])["links"]
    )


def test_it_checks_every_field_and_reports_them_all_at_once() -> None:
    bad = errors(
        title="   ",
        status="blocked",
        severity="urgent",
        monthly_cost="-5",
        currency="dollars",
        effort_days="-1",
        due_date="next week",
        colour="red",
    )
    assert set(bad) == {
        "title",
        "status",
        "severity",
        "monthly_cost",
        "currency",
        "effort_days",
        "due_date",
        "colour",
    }
    assert "ISO 4217" in bad["currency"] and "0 or more" in bad["monthly_cost"]
    assert "backlog, planned, in_progress, done" in bad["status"]
    assert "at most 500" in errors(title="x" * 501)["title"]
    assert clean_fields({"title": "x" * 500})["title"] == "x" * 500
    assert "float" in errors(monthly_cost=1.5)["monthly_cost"]
    assert "8 decimal places" in errors(monthly_cost="0.000000001")["monthly_cost"]
    assert "below" in errors(monthly_cost=D("1e12"))["monthly_cost"]
    assert "finite" in errors(monthly_cost="NaN")["monthly_cost"]
    assert "finite" in errors(effort_days="inf")["effort_days"]


def test_it_cleans_form_text_into_column_values() -> None:
    cleaned = clean_fields(
        {
            "title": "  Fix it ",
            "monthly_cost": "1,200.50",
            "currency": " eur",
            "effort_days": "",
            "due_date": "2026-12-01",
            "severity": "HIGH",
            "status": "in_progress",
        }
    )
    assert cleaned == {
        "title": "Fix it",
        "monthly_cost": D("1200.50"),
        "currency": "EUR",
        "effort_days": None,
        "due_date": datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC),
        "severity": "high",
        "status": "in_progress",
    }
    assert clean_fields({"monthly_cost": ""}) == {"monthly_cost": D(0)}


# -- reading and ordering -----------------------------------------------------------------------


def test_it_computes_cost_of_delay_with_a_half_day_effort_floor() -> None:
    assert cost_of_delay(D("1000"), 4.0) == D("250.00")
    assert cost_of_delay(D("1000"), 0.0) == D("2000.00")
    assert cost_of_delay(D("1000"), 0.25) == D("2000.00")
    assert cost_of_delay(D("100"), 3.0) == D("33.33")
    assert cost_of_delay(D("1000"), None) is None


def test_it_orders_each_column_by_cost_of_delay(engine: Engine) -> None:
    slow = create(engine, title="slow", monthly_cost="3000", effort_days=10)  # 300/day
    quick = create(engine, title="quick", monthly_cost="500", effort_days=1)  # 500/day
    tiny = create(engine, title="tiny", monthly_cost="200", effort_days=0)  # 400/day
    unknown = create(engine, title="unknown", monthly_cost="9000")  # no estimate: last
    planned = create(engine, title="planned", status="planned", monthly_cost="1", effort_days=1)
    with Session(engine) as session:
        columns = board(session, NOW).columns
        page = list_items(session, DebtFilter(), NOW, limit=3, offset=2)
    assert [c.status for c in columns] == ["backlog", "planned", "in_progress", "done"]
    assert [row.id for row in columns[0].items] == [quick, tiny, slow, unknown]
    assert [row.id for row in columns[1].items] == [planned]
    assert columns[0].total == 4 and columns[2].total == 0
    assert [row.id for row in page.items] == [slow, unknown, planned] and page.total == 5


def test_it_marks_items_overdue_once_their_due_day_is_over(engine: Engine) -> None:
    due_today = create(engine, due_date=NOW.date().isoformat())
    due_yesterday = create(engine, due_date=(NOW.date() - timedelta(days=1)).isoformat())
    closed = create(engine, due_date="2026-01-01", status="done")
    with Session(engine) as session:
        rows = {r.id: r for r in list_items(session, DebtFilter(), NOW).items}
        summary = board(session, NOW)
    assert not rows[due_today].overdue and rows[due_today].due_date == NOW.date()
    assert rows[due_yesterday].overdue
    assert not rows[closed].overdue
    assert summary.overdue_items == 1 and summary.open_items == 2


def test_it_sums_open_interest_per_currency_without_converting(engine: Engine) -> None:
    create(engine, monthly_cost="100.50")
    create(engine, monthly_cost="20", currency="EUR")
    create(engine, monthly_cost="30", currency="EUR")
    create(engine, monthly_cost="999", status="done")
    with Session(engine) as session:
        interest = board(session, NOW).open_interest
    assert [(a.currency, a.amount) for a in interest] == [("EUR", D("50")), ("USD", D("100.50"))]


def test_it_filters_the_list(engine: Engine) -> None:
    mine = create(engine, owner="alice", severity="high")
    create(engine, owner="bob", severity="high")
    create(engine, owner="alice", status="planned")
    with Session(engine) as session:
        page = list_items(session, DebtFilter(owner="alice", severity="high"), NOW)
        assert [r.id for r in page.items] == [mine]
        assert list_items(session, DebtFilter(status="planned"), NOW).total == 1


# -- writing ------------------------------------------------------------------------------------


def test_it_creates_with_defaults_and_exact_money(engine: Engine) -> None:
    item_id = create(
        engine,
        title="Upgrade driver",
        monthly_cost="1234.56789",
        links=["https://wiki.example/driver"],
    )
    with Session(engine) as session:
        row = get_item(session, item_id, NOW).item
    assert (row.status, row.severity, row.currency, row.owner) == ("backlog", "medium", "USD", "")
    assert row.monthly_cost == D("1234.56789") and isinstance(row.monthly_cost, Decimal)
    assert row.links == ["https://wiki.example/driver"]
    assert row.created_at == row.updated_at == NOW and row.closed_at is None


def test_it_stores_nothing_when_any_field_is_bad(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(FieldErrors) as caught:
        create_item(session, {"title": "", "links": ["javascript:alert(1)"]}, NOW)
    assert set(caught.value.errors) == {"title", "links"}
    item_id = create(engine, title="keep me")
    with session_scope(engine) as session, pytest.raises(FieldErrors):
        update_item(session, item_id, {"owner": "carol", "monthly_cost": "-1"}, NOW)
    with Session(engine) as session:
        assert get_item(session, item_id, NOW).item.owner == ""
        assert len(session.exec(select(DebtItem)).all()) == 1


def test_it_edits_and_reports_what_changed(engine: Engine) -> None:
    item_id = create(engine, title="old", owner="alice")
    later = NOW + timedelta(hours=1)
    with session_scope(engine) as session:
        changed = update_item(
            session, item_id, {"title": "new", "owner": "alice", "due_date": "2027-01-31"}, later
        )
        assert changed == ["title", "due_date"]
        assert update_item(session, item_id, {"title": " new "}, later) == []
    with Session(engine) as session:
        row = get_item(session, item_id, later).item
    assert (row.title, row.due_date, row.updated_at) == ("new", date(2027, 1, 31), later)


def test_it_moves_between_columns_and_closes_in_done(engine: Engine) -> None:
    item_id = create(engine)
    later = NOW + timedelta(days=2)
    with session_scope(engine) as session:
        assert move_item(session, item_id, "in_progress", NOW) == "backlog"
        assert move_item(session, item_id, "in_progress", NOW) is None
        assert move_item(session, item_id, "done", later) == "in_progress"
    with Session(engine) as session:
        row = get_item(session, item_id, later).item
    assert (row.status, row.closed_at, row.updated_at) == ("done", later, later)
    with session_scope(engine) as session:
        move_item(session, item_id, "planned", later)
        with pytest.raises(FieldErrors) as caught:
            move_item(session, item_id, "archived", later)
        assert list(caught.value.errors) == ["status"]
        with pytest.raises(ItemNotFound):
            move_item(session, 999, "done", later)
    with Session(engine) as session:
        row = get_item(session, item_id, later).item
    assert (row.status, row.closed_at) == ("planned", None)


def test_it_sorts_the_done_column_by_closing_time(engine: Engine) -> None:
    first, second = create(engine, monthly_cost="1"), create(engine, monthly_cost="9999")
    with session_scope(engine) as session:
        move_item(session, second, "done", NOW)
        move_item(session, first, "done", NOW + timedelta(hours=1))
    with Session(engine) as session:
        done = board(session, NOW).columns[3]
    assert [row.id for row in done.items] == [first, second]


def test_it_comments_on_items(engine: Engine) -> None:
    item_id = create(engine)
    with session_scope(engine) as session:
        comment(session, item_id, "user:alice", "started", NOW)
        with pytest.raises(ItemNotFound, match="no debt item 999"):
            comment(session, 999, "user:alice", "x", NOW)
    with Session(engine) as session:
        assert [c.body for c in get_item(session, item_id, NOW).comments] == ["started"]


# -- raising from alerts and anomalies ----------------------------------------------------------


def add_alert(engine: Engine, fingerprint: str = "25c44c8b1df3cdaa", **labels: str) -> None:
    with session_scope(engine) as session:
        session.add(
            Alert(
                fingerprint=fingerprint,
                alertname="GpuIdle",
                labels={"alertname": "GpuIdle", "gpu": "1", **labels},
                annotations={
                    "summary": "GPU 1 on node-a idle while holding memory",
                    "runbook_url": "https://runbooks.example/gpu-idle",
                    "dashboard_url": "javascript:alert(1)",
                },
                state="firing",
                active_at=NOW - timedelta(hours=1),
            )
        )


def test_it_raises_an_item_from_an_alert_once(engine: Engine) -> None:
    add_alert(engine, team="ml-platform", severity="warning")
    with session_scope(engine) as session:
        first = raise_from_alert(session, "25c44c8b1df3cdaa", NOW)
    with session_scope(engine) as session:
        again = raise_from_alert(session, "25c44c8b1df3cdaa", NOW + timedelta(hours=1))
    assert first.created and not again.created and again.item.id == first.item.id
    item = first.item
    assert item.title == "GpuIdle: GPU 1 on node-a idle while holding memory"
    assert (item.source_kind, item.source_ref) == ("alert", "25c44c8b1df3cdaa")
    assert (item.owner, item.severity, item.monthly_cost) == ("ml-platform", "medium", D(0))
    assert item.links == ["https://runbooks.example/gpu-idle"]  # the javascript: link is dropped
    assert "fingerprint 25c44c8b1df3cdaa" in item.description
    assert "gpu=1" in item.description and "estimate it" in item.description
    with Session(engine) as session:
        stored = session.get(DebtItem, item.id)
        assert stored is not None and stored.source_fingerprint == "25c44c8b1df3cdaa"
    with session_scope(engine) as session, pytest.raises(ItemNotFound, match="no alert"):
        raise_from_alert(session, "ffffffffffffffff", NOW)


def add_anomaly(engine: Engine, expected: str, actual: str) -> int:
    with session_scope(engine) as session:
        row = Anomaly(
            rule="CloudCostAnomaly",
            series_key='{provider="AWS",service="EC2"}',
            dimensions={"provider": "AWS", "service": "EC2"},
            day=datetime(2026, 11, 27, tzinfo=UTC),
            expected_cost=D(expected),
            actual_cost=D(actual),
            impact=D(actual) - D(expected),
            currency="EUR",
            root_causes=[{"dimension": "sku_id", "value": "p5", "impact": "800.5"}],
            created_at=NOW,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def test_it_raises_an_item_from_an_anomaly_with_a_monthly_estimate(engine: Engine) -> None:
    anomaly_id = add_anomaly(engine, "400", "1200.40")
    with session_scope(engine) as session:
        raised = raise_from_anomaly(session, anomaly_id, NOW)
        assert not raise_from_anomaly(session, anomaly_id, NOW).created
    item = raised.item
    assert raised.created
    assert item.monthly_cost == D("24012.00") and item.currency == "EUR"  # 800.40 x 30
    assert item.title == "Cost anomaly: AWS EC2 +800.40 EUR on 2026-11-27"
    assert "impact x 30 = 24,012.00 EUR" in item.description
    assert "Root cause: sku_id=p5 (+800.50 EUR)" in item.description
    assert item.severity == "high"  # +200%
    assert (item.source_kind, item.source_ref) == ("anomaly", str(anomaly_id))
    with session_scope(engine) as session, pytest.raises(ItemNotFound, match="no anomaly 999"):
        raise_from_anomaly(session, 999, NOW)


def test_it_never_estimates_a_negative_interest_from_a_drop(engine: Engine) -> None:
    anomaly_id = add_anomaly(engine, "400", "100")
    with session_scope(engine) as session:
        item = raise_from_anomaly(session, anomaly_id, NOW).item
    assert item.monthly_cost == 0 and item.severity == "medium"


def test_it_seeds_demo_items_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        seed_demo_anomalies(session, NOW)
        added = seed_demo_debt(session, NOW)
    with session_scope(engine) as session:
        assert seed_demo_debt(session, NOW + timedelta(days=1)) == 0
    with Session(engine) as session:
        summary = board(session, NOW)
        items = session.exec(select(DebtItem)).all()
    assert added == len(items) == 7
    assert all(column.total for column in summary.columns)
    assert summary.overdue_items == 1
    assert sum(1 for item in items if item.source_kind == "anomaly") == 1
