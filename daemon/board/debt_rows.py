"""The tech-debt board's read model: an item as the board shows it, its cost of delay and
the order of cards inside a column. Pure: no I/O (``daemon.board.debt`` does the store work).

**Cost of delay** = ``monthly_cost / max(effort_days, 0.5)``: the interest a month of waiting
costs per person-day needed to pay the debt off (the half-day floor keeps quick fixes from
dividing by ~0), to the cent, in the item's currency; ``None`` without an effort estimate.
Open columns sort by it, highest first, then by monthly cost, severity and id; items without
an estimate come after those with one. ``done`` sorts by closing time, newest first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from daemon.board.anomalies import plain
from daemon.board.comments import CommentRow
from daemon.board.debt_fields import STATUSES
from daemon.store.models import DebtItem, as_utc
from rules.debt import SEVERITIES

logger = logging.getLogger(__name__)

DONE = "done"
STATUS_LABELS = {
    "backlog": "Backlog",
    "planned": "Planned",
    "in_progress": "In progress",
    "done": "Done",
}
MIN_EFFORT_DAYS = Decimal("0.5")
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class DebtFilter:
    """List filters (exact match); ``None`` = any."""

    status: str | None = None
    owner: str | None = None
    severity: str | None = None


@dataclass(frozen=True, slots=True)
class DebtRow:
    """One item as the board shows it. ``cost_of_delay`` is per month per person-day of
    effort, in ``currency`` (``None`` without an effort estimate)."""

    id: int
    title: str
    description: str
    status: str
    owner: str
    severity: str
    monthly_cost: Decimal
    currency: str
    effort_days: float | None
    cost_of_delay: Decimal | None
    due_date: date | None
    overdue: bool
    links: list[str]
    source_kind: str
    source_ref: str
    created_at: datetime
    updated_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class DebtPage:
    """One page of the list; ``total`` counts every item matching the filters."""

    items: list[DebtRow]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class DebtColumn:
    """One column of the board: its first ``len(items)`` of ``total`` items, in order."""

    status: str
    label: str
    total: int
    items: list[DebtRow]


@dataclass(frozen=True, slots=True)
class CurrencyAmount:
    """An amount in one currency."""

    currency: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class DebtBoard:
    """The whole board: columns left to right, and what the open debt costs per month."""

    columns: list[DebtColumn]
    open_interest: list[CurrencyAmount]
    """Sum of the open items' monthly cost, per currency (never converted)."""
    open_items: int
    overdue_items: int
    generated_at: datetime


@dataclass(frozen=True, slots=True)
class DebtDetail:
    """One item with its comments."""

    item: DebtRow
    comments: list[CommentRow]


@dataclass(frozen=True, slots=True)
class Raised:
    """The item raised from a source; ``created`` is False when it existed already."""

    item: DebtRow
    created: bool


def cost_of_delay(monthly_cost: Decimal, effort_days: float | None) -> Decimal | None:
    """``monthly_cost / max(effort_days, 0.5)`` to the cent; ``None`` without an estimate."""
    if effort_days is None:
        return None
    effort = max(Decimal(str(effort_days)), MIN_EFFORT_DAYS)
    return (monthly_cost / effort).quantize(CENT, rounding=ROUND_HALF_UP)


def debt_row(item: DebtItem, now: datetime) -> DebtRow:
    """The stored item as the board shows it; ``overdue`` as of ``now``."""
    monthly = plain(Decimal(item.monthly_cost))
    due = as_utc(item.due_date) if item.due_date else None
    return DebtRow(
        id=item.id or 0,
        title=item.title,
        description=item.description or "",
        status=item.status,
        owner=item.owner,
        severity=item.severity,
        monthly_cost=monthly,
        currency=item.currency,
        effort_days=item.effort_days,
        cost_of_delay=cost_of_delay(monthly, item.effort_days),
        due_date=due.date() if due else None,
        overdue=due is not None and item.status != DONE and as_utc(now) > due,
        links=[str(link) for link in item.links or []],
        source_kind=item.source_kind,
        source_ref=item.source_ref,
        created_at=as_utc(item.created_at),
        updated_at=as_utc(item.updated_at) if item.updated_at else None,
        closed_at=as_utc(item.closed_at) if item.closed_at else None,
    )


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def column_order(row: DebtRow) -> tuple[Any, ...]:
    """Sort key inside a column (see the module docstring)."""
    if row.status == DONE:
        closed = row.closed_at.timestamp() if row.closed_at else float("-inf")
        return (-closed, -row.id)
    cod = row.cost_of_delay
    return (cod is None, -(cod or 0), -row.monthly_cost, -_severity_rank(row.severity), row.id)


def column_index(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)
