"""Per-hour rollups, computed in the store from the per-minute rows of complete hours.

An hour is rolled once its end is ``delay`` in the past (late minutes land first), at most
``max_hours`` per run so a long outage catches up in bounded steps. Rolling is idempotent:
an hour's rows are replaced, never added twice. Averages are weighted by sample counts;
energy, idle seconds, tokens and cache counts are sums; hit rates are never averaged (the
hour keeps the hits and queries; the engines' own gauges keep their last value).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func
from sqlmodel import Session, col, delete, select

from daemon.store.models import CacheRollup, GpuRollup, InferenceRollup

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
MINUTE_RESOLUTION = 60
HOUR_RESOLUTION = 3600


def hour_floor(moment: datetime) -> datetime:
    """The start of the hour ``moment`` falls in."""
    return moment.replace(minute=0, second=0, microsecond=0)


def _weighted(pairs: Iterable[tuple[float | None, int]]) -> float | None:
    known = [(value, weight) for value, weight in pairs if value is not None]
    weight = sum(w for _, w in known)
    return sum(v * w for v, w in known) / weight if weight else None


def _hours_to_roll(
    session: Session, now: datetime, delay: timedelta, max_hours: int
) -> list[datetime]:
    last_hour = session.exec(
        select(func.max(GpuRollup.bucket_start)).where(
            GpuRollup.resolution_seconds == HOUR_RESOLUTION
        )
    ).one()
    first_minute = session.exec(
        select(func.min(GpuRollup.bucket_start)).where(
            GpuRollup.resolution_seconds == MINUTE_RESOLUTION
        )
    ).one()
    if last_hour is not None:
        start = hour_floor(last_hour) + HOUR
    elif first_minute is not None:
        start = hour_floor(first_minute)
    else:
        return []
    hours: list[datetime] = []
    while start + HOUR + delay <= now and len(hours) < max_hours:
        hours.append(start)
        start += HOUR
    return hours


def roll_hours(
    session: Session, now: datetime, *, delay: timedelta = timedelta(minutes=5), max_hours: int = 24
) -> list[datetime]:
    """Write hour rollups for the complete hours not rolled yet; return the hours written."""
    hours = _hours_to_roll(session, now, delay, max_hours)
    for hour in hours:
        roll_hour(session, hour)
    if hours:
        logger.debug("rolled %d hour(s) up to %s", len(hours), hours[-1])
    return hours


def roll_hour(session: Session, hour: datetime) -> None:
    """Replace the hour rollups of ``hour`` with the aggregate of its minute rows."""
    end = hour + HOUR
    for model in (GpuRollup, InferenceRollup, CacheRollup):
        session.exec(
            delete(model).where(
                col(model.resolution_seconds) == HOUR_RESOLUTION, col(model.bucket_start) == hour
            )
        )
    _roll_gpus(session, hour, end)
    _roll_models(session, hour, end)
    _roll_caches(session, hour, end)
    session.flush()


Rollup = TypeVar("Rollup", GpuRollup, InferenceRollup, CacheRollup)


def _minutes(
    session: Session, model: type[Rollup], hour: datetime, end: datetime
) -> Sequence[Rollup]:
    return session.exec(
        select(model).where(
            model.resolution_seconds == MINUTE_RESOLUTION,
            col(model.bucket_start) >= hour,
            col(model.bucket_start) < end,
        )
    ).all()


def _roll_gpus(session: Session, hour: datetime, end: datetime) -> None:
    groups: dict[str, list[GpuRollup]] = defaultdict(list)
    for row in _minutes(session, GpuRollup, hour, end):
        groups[row.gpu_uuid].append(row)
    for uuid, rows in groups.items():
        energies = [r.energy_joules for r in rows if r.energy_joules is not None]
        maxima = [r.max_utilization_ratio for r in rows if r.max_utilization_ratio is not None]
        session.add(
            GpuRollup(
                gpu_uuid=uuid,
                resolution_seconds=HOUR_RESOLUTION,
                bucket_start=hour,
                samples=sum(r.samples for r in rows),
                avg_utilization_ratio=_weighted((r.avg_utilization_ratio, r.samples) for r in rows),
                max_utilization_ratio=max(maxima) if maxima else None,
                avg_memory_used_bytes=_weighted((r.avg_memory_used_bytes, r.samples) for r in rows),
                avg_power_watts=_weighted((r.avg_power_watts, r.samples) for r in rows),
                energy_joules=sum(energies) if energies else None,
                idle_seconds=sum(r.idle_seconds for r in rows),
            )
        )


def _roll_models(session: Session, hour: datetime, end: datetime) -> None:
    groups: dict[tuple[str, str, str], list[InferenceRollup]] = defaultdict(list)
    for row in _minutes(session, InferenceRollup, hour, end):
        groups[(row.node, row.model, row.instance)].append(row)
    for (node, model, instance), rows in groups.items():
        rows.sort(key=lambda r: r.bucket_start)
        ratios = [r.cache_hit_ratio for r in rows if r.cache_hit_ratio is not None]
        uuids = sorted({uuid for r in rows for uuid in (r.gpu_uuids or [])})
        session.add(
            InferenceRollup(
                node=node,
                model=model,
                instance=instance,
                resolution_seconds=HOUR_RESOLUTION,
                bucket_start=hour,
                prompt_tokens=sum(r.prompt_tokens for r in rows),
                generation_tokens=sum(r.generation_tokens for r in rows),
                cache_queries=sum(r.cache_queries for r in rows),
                cache_hits=sum(r.cache_hits for r in rows),
                requests=sum(r.requests for r in rows),
                gpu_uuids=uuids,
                engine=rows[-1].engine,
                cache_hit_ratio=ratios[-1] if ratios else None,
            )
        )


def _roll_caches(session: Session, hour: datetime, end: datetime) -> None:
    groups: dict[str, list[CacheRollup]] = defaultdict(list)
    for row in _minutes(session, CacheRollup, hour, end):
        groups[row.name].append(row)
    for name, rows in groups.items():
        session.add(
            CacheRollup(
                name=name,
                resolution_seconds=HOUR_RESOLUTION,
                bucket_start=hour,
                hits=sum(r.hits for r in rows),
                lookups=sum(r.lookups for r in rows),
            )
        )
