"""GPU history for the fleet pages, aggregated in SQL into time buckets.

The store keeps per-minute rows (``resolution_seconds`` 60) for days and per-hour rows (3600)
for months. A read never loads rows as objects: one grouped query per resolution returns a
few sums per (GPU, bucket). Buckets of an hour or more read the hour rows and fill the hours
not rolled up yet from the minute rows; shorter buckets read minute rows only.

Sums are kept weighted by sample counts, so two partial aggregates of one bucket (hour rows
and the minute tail) merge by adding, and averages come out the same as the hourly rollup's.

Error contract: functions raise ``ValueError`` for a bucket width that is not a positive whole
number of minutes or a window that is not aligned to it; database errors propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, Integer, case, cast, func, literal_column
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from daemon.store.models import GpuRollup, as_utc

logger = logging.getLogger(__name__)

MINUTE_RESOLUTION = 60
HOUR_RESOLUTION = 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Measures = Literal["all", "utilization", "idle"]
"""Which sums a read fills: every one, utilization only, or idle time only."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Sums over one time bucket of one GPU; weighted sums, so partial buckets add up."""

    samples: int = 0
    utilization_sum: float = 0.0
    """Sum of ``avg_utilization_ratio * samples`` over the rows that report utilization."""
    utilization_weight: int = 0
    utilization_max: float | None = None
    memory_sum: float = 0.0
    memory_weight: int = 0
    power_sum: float = 0.0
    power_weight: int = 0
    idle_seconds: float = 0.0
    idle_joules: float = 0.0
    """Sum of ``idle_seconds * avg_power_watts``: energy drawn while idle (an estimate)."""
    idle_power_known: bool = False
    """Whether any idle row had a power reading (else ``idle_joules`` is unknown, not 0)."""
    energy_joules: float | None = None

    def __add__(self, other: Bucket) -> Bucket:
        maxima = [m for m in (self.utilization_max, other.utilization_max) if m is not None]
        energies = [e for e in (self.energy_joules, other.energy_joules) if e is not None]
        return Bucket(
            samples=self.samples + other.samples,
            utilization_sum=self.utilization_sum + other.utilization_sum,
            utilization_weight=self.utilization_weight + other.utilization_weight,
            utilization_max=max(maxima) if maxima else None,
            memory_sum=self.memory_sum + other.memory_sum,
            memory_weight=self.memory_weight + other.memory_weight,
            power_sum=self.power_sum + other.power_sum,
            power_weight=self.power_weight + other.power_weight,
            idle_seconds=self.idle_seconds + other.idle_seconds,
            idle_joules=self.idle_joules + other.idle_joules,
            idle_power_known=self.idle_power_known or other.idle_power_known,
            energy_joules=sum(energies) if energies else None,
        )

    @property
    def utilization_ratio(self) -> float | None:
        """Sample-weighted mean utilization (``None`` when no row reported it)."""
        return self.utilization_sum / self.utilization_weight if self.utilization_weight else None

    @property
    def memory_used_bytes(self) -> float | None:
        """Sample-weighted mean memory in use."""
        return self.memory_sum / self.memory_weight if self.memory_weight else None

    @property
    def power_watts(self) -> float | None:
        """Sample-weighted mean power draw."""
        return self.power_sum / self.power_weight if self.power_weight else None


@dataclass(frozen=True, slots=True)
class Window:
    """``count`` buckets of ``bucket_seconds`` from ``start`` (aligned to the Unix epoch)."""

    start: datetime
    bucket_seconds: int
    count: int

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0 or self.bucket_seconds % MINUTE_RESOLUTION:
            raise ValueError(
                f"bucket width must be a positive whole number of minutes, "
                f"got {self.bucket_seconds} s"
            )
        if self.count < 1:
            raise ValueError(f"a window needs at least one bucket, got {self.count}")
        if _epoch_seconds(self.start) % self.bucket_seconds:
            raise ValueError(
                f"window start {self.start.isoformat()} is not aligned to "
                f"{self.bucket_seconds} s buckets"
            )

    @property
    def end(self) -> datetime:
        """The end of the last bucket (exclusive)."""
        return self.start + timedelta(seconds=self.bucket_seconds * self.count)

    def starts(self) -> list[datetime]:
        """The start of every bucket, oldest first."""
        step = timedelta(seconds=self.bucket_seconds)
        return [self.start + step * i for i in range(self.count)]

    @classmethod
    def ending_at(cls, end: datetime, bucket_seconds: int, count: int) -> Window:
        """``count`` buckets whose last one contains ``end`` (or ends at it, when aligned)."""
        seconds = _epoch_seconds(end)
        last_end = -(-seconds // bucket_seconds) * bucket_seconds
        start = EPOCH + timedelta(seconds=last_end - bucket_seconds * count)
        return cls(start, bucket_seconds, count)


def _epoch_seconds(moment: datetime) -> int:
    return int((as_utc(moment) - EPOCH).total_seconds())


def _epoch_sql(dialect: str) -> ColumnElement[int]:
    """Seconds since the Unix epoch of ``gpu_rollup.bucket_start``, as an integer."""
    column = col(GpuRollup.bucket_start)
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.extract("epoch", column), BigInteger)


def _measures(measures: Measures) -> list[tuple[str, Any]]:
    """(Bucket field, SQL aggregate) pairs of ``measures``; fewer sums read faster."""
    samples = col(GpuRollup.samples)
    util, memory, power = (
        col(GpuRollup.avg_utilization_ratio),
        col(GpuRollup.avg_memory_used_bytes),
        col(GpuRollup.avg_power_watts),
    )
    idle = col(GpuRollup.idle_seconds)

    def weight(column: Any) -> Any:
        return func.sum(case((column.is_not(None), samples), else_=0))

    utilization = [
        ("utilization_sum", func.sum(util * samples)),
        ("utilization_weight", weight(util)),
    ]
    idleness = [
        ("idle_seconds", func.sum(idle)),
        ("idle_joules", func.sum(idle * power)),
        ("idle_power_known", func.sum(case(((idle > 0) & power.is_not(None), 1), else_=0))),
    ]
    counted = [("samples", func.sum(samples))]
    if measures == "utilization":
        return counted + utilization
    if measures == "idle":
        return counted + idleness
    return [
        *counted,
        *utilization,
        ("utilization_max", func.max(col(GpuRollup.max_utilization_ratio))),
        ("memory_sum", func.sum(memory * samples)),
        ("memory_weight", weight(memory)),
        ("power_sum", func.sum(power * samples)),
        ("power_weight", weight(power)),
        *idleness,
        ("energy_joules", func.sum(col(GpuRollup.energy_joules))),
    ]


_INTS = {"samples", "utilization_weight", "memory_weight", "power_weight"}
_OPTIONAL = {"utilization_max", "energy_joules"}


def _field(name: str, value: Any) -> Any:
    if name in _OPTIONAL:
        return None if value is None else float(value)
    if name == "idle_power_known":
        return bool(value)
    if name in _INTS:
        return int(value or 0)
    return float(value or 0.0)


def _aggregate(
    session: Session,
    resolution: int,
    uuids: Collection[str],
    start: datetime,
    end: datetime,
    window: Window,
    measures: Measures,
) -> dict[tuple[str, int], Bucket]:
    """One grouped query: (uuid, bucket index) -> sums of the rows in [start, end)."""
    bind = session.get_bind()
    # Integer literals (not bound parameters): PostgreSQL must see the same expression in
    # SELECT and GROUP BY, and two bound parameters would not be "the same".
    origin = literal_column(str(_epoch_seconds(window.start)), Integer)
    width = literal_column(str(window.bucket_seconds), Integer)
    bucket = ((_epoch_sql(bind.dialect.name) - origin) // width).label("bucket")
    fields = _measures(measures)
    query = (
        select(col(GpuRollup.gpu_uuid), bucket, *(aggregate for _, aggregate in fields))
        .where(
            col(GpuRollup.gpu_uuid).in_(list(uuids)),
            col(GpuRollup.resolution_seconds) == resolution,
            col(GpuRollup.bucket_start) >= start,
            col(GpuRollup.bucket_start) < end,
        )
        .group_by(col(GpuRollup.gpu_uuid), bucket)
    )
    names = [name for name, _ in fields]
    build = _BUILDERS.get(measures)
    result: dict[tuple[str, int], Bucket] = {}
    # Core rows (no ORM row processing): thousands of small tuples per read.
    for uuid, index, *values in session.connection().execute(query):
        if build is not None:
            result[(uuid, int(index))] = build(values)
        else:
            result[(uuid, int(index))] = Bucket(
                **{name: _field(name, value) for name, value in zip(names, values, strict=True)}
            )
    return result


def _utilization_bucket(values: Sequence[Any]) -> Bucket:
    samples, total, weight = values
    return Bucket(
        samples=int(samples or 0),
        utilization_sum=float(total or 0.0),
        utilization_weight=int(weight or 0),
    )


def _idle_bucket(values: Sequence[Any]) -> Bucket:
    samples, seconds, joules, power_known = values
    return Bucket(
        samples=int(samples or 0),
        idle_seconds=float(seconds or 0.0),
        idle_joules=float(joules or 0.0),
        idle_power_known=bool(power_known),
    )


_BUILDERS: dict[str, Callable[[Sequence[Any]], Bucket]] = {
    "utilization": _utilization_bucket,
    "idle": _idle_bucket,
}


def _hours_covered_until(
    session: Session, uuids: Collection[str], start: datetime, end: datetime
) -> dict[str, datetime]:
    """Per GPU, the end of its newest hour row in [start, end) (absent: no hour row)."""
    rows = session.exec(
        select(col(GpuRollup.gpu_uuid), func.max(col(GpuRollup.bucket_start)))
        .where(
            col(GpuRollup.gpu_uuid).in_(list(uuids)),
            col(GpuRollup.resolution_seconds) == HOUR_RESOLUTION,
            col(GpuRollup.bucket_start) >= start,
            col(GpuRollup.bucket_start) < end,
        )
        .group_by(col(GpuRollup.gpu_uuid))
    ).all()
    hour = timedelta(seconds=HOUR_RESOLUTION)
    return {uuid: as_utc(newest) + hour for uuid, newest in rows if newest is not None}


def gpu_buckets(
    session: Session, uuids: Collection[str], window: Window, measures: Measures = "all"
) -> dict[str, dict[int, Bucket]]:
    """Per GPU, the buckets of ``window`` that have data (bucket index -> sums).

    Buckets of whole hours come from hour rows, each GPU's not-yet-rolled tail from its minute
    rows; shorter buckets come from minute rows. GPUs whose hour rows end at the same time
    (normally all of them) share one query, so a read is a handful of indexed queries.
    ``measures`` "utilization" or "idle" fills only those fields (and ``samples``), faster.
    """
    result: dict[str, dict[int, Bucket]] = {uuid: {} for uuid in uuids}
    if not uuids:
        return result
    start, end = window.start, window.end
    parts: list[dict[tuple[str, int], Bucket]] = []
    minutes_from: dict[datetime, list[str]] = {}
    covered: dict[str, datetime] = {}
    if window.bucket_seconds % HOUR_RESOLUTION == 0:
        covered = _hours_covered_until(session, uuids, start, end)
        if covered:
            parts.append(
                _aggregate(session, HOUR_RESOLUTION, covered, start, end, window, measures)
            )
    for uuid in result:
        minutes_from.setdefault(covered.get(uuid, start), []).append(uuid)
    for since, group in sorted(minutes_from.items()):
        if since < end:
            parts.append(
                _aggregate(session, MINUTE_RESOLUTION, group, since, end, window, measures)
            )
    for part in parts:
        for (uuid, index), bucket in part.items():
            if 0 <= index < window.count and uuid in result:
                known = result[uuid].get(index)
                result[uuid][index] = bucket if known is None else known + bucket
    return result


def dense(buckets: dict[int, Bucket], window: Window) -> Sequence[Bucket | None]:
    """Every bucket of ``window`` in order, ``None`` where there is no data."""
    return [buckets.get(i) for i in range(window.count)]
