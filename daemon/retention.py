"""Retention: old rollup rows are deleted in bounded batches, oldest first.

Each batch is its own short transaction (a few thousand ids), so retention never holds a
long lock on SQLite or bloats one PostgreSQL transaction; a run stops after ``max_batches``
and the next run carries on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from daemon.store.models import CacheRollup, GpuRollup, InferenceRollup

logger = logging.getLogger(__name__)

ROLLUP_TABLES = (GpuRollup, InferenceRollup, CacheRollup)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each resolution is kept and how much one run may delete."""

    minutes: timedelta = timedelta(days=14)
    hours: timedelta = timedelta(days=400)
    batch_size: int = 5000
    max_batches: int = 20


def enforce(engine: Engine, now: datetime, policy: RetentionPolicy) -> int:
    """Delete rollup rows past their retention; return how many rows were deleted."""
    deleted = 0
    batches = 0
    for resolution, keep in ((60, policy.minutes), (3600, policy.hours)):
        cutoff = now - keep
        for table in ROLLUP_TABLES:
            while batches < policy.max_batches:
                with Session(engine) as session:
                    ids = session.exec(
                        select(table.id)
                        .where(
                            table.resolution_seconds == resolution,
                            col(table.bucket_start) < cutoff,
                        )
                        .order_by(col(table.bucket_start))
                        .limit(policy.batch_size)
                    ).all()
                    if not ids:
                        break
                    session.exec(delete(table).where(col(table.id).in_(ids)))
                    session.commit()
                batches += 1
                deleted += len(ids)
    if deleted:
        logger.info("retention deleted %d rollup rows", deleted)
    return deleted
