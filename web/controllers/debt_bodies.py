"""What the tech-debt pages and API accept: the create/edit and move forms (text fields) and
the JSON bodies (typed; Litestar answers a wrong type with 400 naming the field). The values are
checked once more, field by field, by ``daemon.board.debt_fields``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from daemon.board.debt import DebtRow
from daemon.board.debt_fields import MAX_TITLE

logger = logging.getLogger(__name__)

Status = Literal["backlog", "planned", "in_progress", "done"]
Severity = Literal["low", "medium", "high", "critical"]
FORM_FIELDS = (
    "title",
    "description",
    "owner",
    "status",
    "severity",
    "monthly_cost",
    "currency",
    "effort_days",
    "due_date",
    "links",
)


@dataclass
class DebtForm:
    """The create/edit form: every field as typed text (``links``: one URL per line)."""

    title: str = ""
    description: str = ""
    owner: str = ""
    status: str = "backlog"
    severity: str = "medium"
    monthly_cost: str = ""
    currency: str = "USD"
    effort_days: str = ""
    due_date: str = ""
    links: str = ""


@dataclass
class MoveForm:
    """A card's move form: the target column, and where to go afterwards."""

    status: str = ""
    next: str = ""


class DebtCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new item (JSON). ``monthly_cost`` is the debt's interest per month: a decimal (text
    or number) >= 0; ``links``: absolute http(s) URLs only."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TITLE)]
    description: str = ""
    owner: str = ""
    status: Status = "backlog"
    severity: Severity = "medium"
    monthly_cost: Decimal = Decimal(0)
    currency: str = "USD"
    effort_days: float | None = None
    due_date: date | None = None
    links: list[str] = msgspec.field(default_factory=list)


class DebtPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Changes to an item (JSON): only the fields given change; ``null`` clears the effort
    estimate or the due date. Changing ``status`` moves the item (``done`` closes it)."""

    title: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    owner: str | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET
    severity: Severity | msgspec.UnsetType = msgspec.UNSET
    monthly_cost: Decimal | msgspec.UnsetType = msgspec.UNSET
    currency: str | msgspec.UnsetType = msgspec.UNSET
    effort_days: float | msgspec.UnsetType | None = msgspec.UNSET
    due_date: date | msgspec.UnsetType | None = msgspec.UNSET
    links: list[str] | msgspec.UnsetType = msgspec.UNSET


class MoveBody(msgspec.Struct, forbid_unknown_fields=True):
    """The column to move an item to (``done`` closes it)."""

    status: Status


def given(data: msgspec.Struct) -> dict[str, Any]:
    """The fields of ``data`` that were sent."""
    fields = {name: getattr(data, name) for name in data.__struct_fields__}
    return {name: value for name, value in fields.items() if value is not msgspec.UNSET}


def form_values(row: DebtRow) -> dict[str, str]:
    return {
        "title": row.title,
        "description": row.description,
        "owner": row.owner,
        "status": row.status,
        "severity": row.severity,
        "monthly_cost": str(row.monthly_cost),
        "currency": row.currency,
        "effort_days": "" if row.effort_days is None else f"{row.effort_days:g}",
        "due_date": row.due_date.isoformat() if row.due_date else "",
        "links": "\n".join(row.links),
    }
