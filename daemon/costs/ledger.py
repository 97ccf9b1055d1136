"""Writing billing lines to the ``cost_record`` table: every billing source goes through here.

Bills are restated, so nothing is ever appended blindly: a source's billing period (files) or
re-read window (APIs) is replaced inside the caller's transaction, so a reader sees either the
old lines or the new ones, never both, and nothing is counted twice.

Error contract: functions raise ``ValueError`` for a line outside the period being replaced
(naming its row key) and let database errors propagate; the caller's transaction then rolls
back and the previous lines stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, delete, func, insert
from sqlmodel import Session, col

from collectors.base import CostLine
from daemon.store.models import CostRecord, as_utc

INSERT_BATCH = 1000


def _row(line: CostLine, source: str, import_batch: str) -> dict[str, Any]:
    return {
        "source": source,
        "import_batch": import_batch,
        "row_key": line.row_key,
        "provider": line.provider,
        "billed_cost": line.billed_cost,
        "effective_cost": line.effective_cost,
        "list_cost": line.list_cost,
        "billing_currency": line.billing_currency,
        "charge_period_start": as_utc(line.charge_period_start),
        "charge_period_end": as_utc(line.charge_period_end),
        "billing_period_start": (
            as_utc(line.billing_period_start) if line.billing_period_start else None
        ),
        "billing_period_end": as_utc(line.billing_period_end) if line.billing_period_end else None,
        "charge_category": line.charge_category,
        "service_name": line.service_name,
        "service_category": line.service_category,
        "resource_id": line.resource_id,
        "region_id": line.region_id,
        "sku_id": line.sku_id,
        "billing_account_id": line.billing_account_id,
        "sub_account_id": line.sub_account_id,
        "consumed_quantity": line.consumed_quantity,
        "consumed_unit": line.consumed_unit,
        "tags": dict(line.tags),
        "extra": dict(line.extra),
    }


def add_lines(
    session: Session, lines: Iterable[CostLine], *, source: str, import_batch: str
) -> int:
    """Insert ``lines`` in batches (no commit); return how many were inserted."""
    count = 0
    batch: list[dict[str, Any]] = []
    for line in lines:
        batch.append(_row(line, source, import_batch))
        if len(batch) >= INSERT_BATCH:
            session.execute(insert(CostRecord), batch)
            count += len(batch)
            batch = []
    if batch:
        session.execute(insert(CostRecord), batch)
        count += len(batch)
    return count


def delete_billing_period(session: Session, *, source: str, billing_period_start: datetime) -> int:
    """Delete a source's lines of one billing period (before re-importing it); no commit."""
    result = session.execute(
        delete(CostRecord).where(
            col(CostRecord.source) == source,
            col(CostRecord.billing_period_start) == as_utc(billing_period_start),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def replace_window(
    session: Session,
    *,
    source: str,
    start: datetime,
    end: datetime,
    lines: Iterable[CostLine],
    import_batch: str,
) -> int:
    """Replace a source's lines charged in [start, end) with ``lines`` (no commit).

    For API collectors that re-read the last days, which providers restate.
    """
    start, end = as_utc(start), as_utc(end)
    checked = []
    for line in lines:
        charged = as_utc(line.charge_period_start)
        if not start <= charged < end:
            raise ValueError(
                f"line {line.row_key} is charged at {charged.isoformat()}, outside "
                f"[{start.isoformat()}, {end.isoformat()})"
            )
        checked.append(line)
    session.execute(
        delete(CostRecord).where(
            col(CostRecord.source) == source,
            col(CostRecord.charge_period_start) >= start,
            col(CostRecord.charge_period_start) < end,
        )
    )
    return add_lines(session, checked, source=source, import_batch=import_batch)


SCALE = Decimal(10) ** 8
"""Money columns keep 8 decimal places."""


def money_sum(column: Any, dialect: str) -> Any:
    """A SQL ``SUM`` of a money column that stays exact on every backend.

    PostgreSQL sums ``NUMERIC`` exactly. SQLite would sum floats, so there the amounts are
    scaled to whole units of 1e-8 and summed as 64-bit integers (exact up to 92 billion);
    ``from_money_sum`` turns the result back into a ``Decimal``.
    """
    if dialect == "sqlite":
        return func.sum(func.cast(func.round(column * SCALE), Integer))
    return func.sum(column)


def from_money_sum(value: Any, dialect: str) -> Decimal:
    """The ``Decimal`` of a ``money_sum`` result (0 for no rows)."""
    if value is None:
        return Decimal(0)
    if dialect == "sqlite":
        return Decimal(int(value)) / SCALE
    return Decimal(value)
