"""The store on real SQLite and real PostgreSQL: migrations, money, time zones, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from daemon.store.db import (
    StoreError,
    current_revision,
    head_revision,
    masked,
    open_store,
    readiness_problems,
    resolve_url,
)
from daemon.store.models import CostRecord, DebtItem

TABLES = {
    "node",
    "gpu",
    "gpu_rollup",
    "inference_rollup",
    "alert",
    "outbox",
    "channel_state",
    "rollback",
    "debt_item",
    "anomaly",
    "cost_record",
    "cache_rollup",
}


def test_it_creates_every_table_through_migrations(db_url: str) -> None:
    engine = open_store(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert current_revision(engine) == head_revision()
    assert readiness_problems(engine) == []
    engine.dispose()


def test_it_upgrades_idempotently(db_url: str) -> None:
    open_store(db_url).dispose()
    engine = open_store(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_it_keeps_money_exact_as_decimal(db_url: str) -> None:
    engine = open_store(db_url)
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    with Session(engine) as session:
        session.add(
            CostRecord(
                source="focus:test",
                import_batch="b1",
                row_key="r1",
                provider="AWS",
                billed_cost=Decimal("1234.56789012"),
                billing_currency="USD",
                charge_period_start=moment,
                charge_period_end=moment,
            )
        )
        session.add(DebtItem(title="pin driver", monthly_cost=Decimal("0.10"), created_at=moment))
        session.commit()
    with Session(engine) as session:
        record = session.exec(select(CostRecord)).one()
        debt = session.exec(select(DebtItem)).one()
    assert isinstance(record.billed_cost, Decimal)
    assert record.billed_cost == Decimal("1234.56789012")
    assert debt.monthly_cost + debt.monthly_cost + debt.monthly_cost == Decimal("0.30")
    assert record.charge_period_start == moment
    assert record.charge_period_start.tzinfo is not None
    engine.dispose()


def test_it_uses_wal_and_a_busy_timeout_on_sqlite(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'w.db'}", busy_timeout_seconds=7)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 7000
    engine.dispose()


def test_it_reports_an_unreachable_database_in_one_line() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql+psycopg://tc:hunter2@127.0.0.1:1/none")
    message = str(info.value)
    assert "hunter2" not in message
    assert "cannot reach the database" in message
    assert "\n" not in message


def test_it_refuses_a_missing_folder_for_sqlite(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(resolve_url(str(tmp_path / "no" / "such" / "x.db"), None))


def test_it_places_the_default_database_beside_the_config(tmp_path: Path) -> None:
    url = resolve_url(None, tmp_path / "conf" / "tcowatch.yaml")
    assert url == f"sqlite:///{(tmp_path / 'conf').resolve() / 'tcowatch.db'}"
    assert resolve_url("postgresql+psycopg://u@h/db", None) == "postgresql+psycopg://u@h/db"


def test_it_masks_passwords() -> None:
    assert "s3cret" not in masked("postgresql+psycopg://u:s3cret@h/db")


def test_it_reports_a_schema_behind_as_not_ready(db_url: str) -> None:
    engine = open_store(db_url, migrate=False)
    problems = readiness_problems(engine)
    assert problems and "tcowatch db upgrade" in problems[0]
    engine.dispose()
