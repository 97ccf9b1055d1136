"""The audit log: every write, who did it (``user:alice``, ``token:deploy-bot``, ``cli``), when.

``record`` adds the entry to the caller's session, so it commits or rolls back with the write
it describes. Details are stored as given: callers never put secrets (passwords, tokens,
webhook URLs) in them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from daemon.store.models import AuditEntry, as_utc

MAX_LIMIT = 500
TARGET_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Exact-match filters; ``None`` = any."""

    actor: str | None = None
    action: str | None = None


def record(
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
    remote: str = "",
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Add one entry to the caller's transaction (``at`` defaults to the wall clock)."""
    entry = AuditEntry(
        at=as_utc(at) if at is not None else datetime.now(UTC),
        actor=actor[:255],
        action=action[:64],
        target=target[:TARGET_LIMIT],
        details=dict(details or {}),
        remote=remote[:64],
    )
    session.add(entry)
    session.flush()
    return entry


def _filtered(query: SelectOfScalar[Any], filters: AuditFilter | None) -> SelectOfScalar[Any]:
    if filters is None:
        return query
    if filters.actor:
        query = query.where(AuditEntry.actor == filters.actor)
    if filters.action:
        query = query.where(AuditEntry.action == filters.action)
    return query


def list_entries(
    session: Session, limit: int = 100, offset: int = 0, filters: AuditFilter | None = None
) -> Sequence[AuditEntry]:
    """Entries newest first; ``limit`` is clamped to 1..500 and ``offset`` to 0 or more."""
    limit = min(max(limit, 1), MAX_LIMIT)
    query = _filtered(select(AuditEntry), filters)
    query = query.order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
    return session.exec(query.offset(max(offset, 0)).limit(limit)).all()


def count_entries(session: Session, filters: AuditFilter | None = None) -> int:
    """How many entries match ``filters`` (for pagination)."""
    query = _filtered(select(func.count()).select_from(AuditEntry), filters)
    return int(session.exec(query).one())
