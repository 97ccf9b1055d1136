"""One GPU in detail for the board: 24 h and 7 d history, processes, MIG, alerts, idle cost.

Live readings come from a ``LiveView`` (no I/O); history from ``gpu_rollup`` bucketed in SQL
(``daemon.board.fleet_history``); alerts are the ``alert`` rows whose ``uuid`` label is the
GPU's. Pure functions over the caller's ``Session``; the clock comes in as ``now``.

Error contract: ``gpu_detail`` returns ``None`` for a UUID neither the store nor the live view
knows and raises only database errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, col, select

from daemon.board.fleet import (
    CENT_FRACTIONS,
    FleetGpu,
    cost_inputs,
    day_window,
    fleet_gpu,
    history_windows,
    idle_cost_of,
    known_gpus,
)
from daemon.board.fleet_history import Bucket, Window, dense, gpu_buckets
from daemon.costs.figures import Money
from daemon.costs.localcost import GpuCostModel
from daemon.state import LiveView
from daemon.store.models import Alert

logger = logging.getLogger(__name__)

DAY_BUCKET_SECONDS = 300
DAY_BUCKETS = 288
WEEK_BUCKET_SECONDS = 3600
WEEK_BUCKETS = 168
ALERT_LIMIT = 50
_STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One bucket of a GPU's history; ``None`` values = no data in the bucket."""

    start: datetime
    utilization_ratio: float | None
    max_utilization_ratio: float | None
    memory_used_bytes: float | None
    power_watts: float | None
    idle_seconds: float
    samples: int


@dataclass(frozen=True, slots=True)
class Series:
    """Buckets of ``bucket_seconds`` from ``start`` to ``end``, oldest first."""

    start: datetime
    end: datetime
    bucket_seconds: int
    points: list[SeriesPoint]


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """A compute process on the GPU (host PID namespace)."""

    pid: int
    name: str | None
    used_memory_bytes: int | None


@dataclass(frozen=True, slots=True)
class MigRow:
    """One MIG instance; utilization only when dcgm-exporter reports it."""

    gpu_instance_id: int
    profile: str | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    engine_active_ratio: float | None


@dataclass(frozen=True, slots=True)
class GpuAlert:
    """An alert whose ``uuid`` label is this GPU's (``resolved`` = the engine's inactive)."""

    fingerprint: str
    alertname: str
    state: str
    labels: dict[str, str]
    summary: str
    active_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class CostModelEcho:
    """The effective cost model of the GPU, so nobody has to guess a unit."""

    gpu_model: str
    currency: str
    capex_per_hour: Decimal
    fixed_per_hour: Decimal
    power_price_per_kwh: Decimal
    pue: Decimal


@dataclass(frozen=True, slots=True)
class GpuDetail:
    """One GPU: the fleet row, 24 h and 7 d history, processes, MIG, alerts and idle cost."""

    generated_at: datetime
    gpu: FleetGpu
    processes: list[ProcessRow] | None
    """``None`` = not known (the collector does not report processes); ``[]`` = none."""
    mig_enabled: bool | None
    mig_instances: list[MigRow]
    alerts: list[GpuAlert]
    day: Series
    """Last 24 hours in 5-minute buckets."""
    week: Series
    """Last 7 days in hourly buckets."""
    idle_hours_7d: float
    idle_cost_7d: Money | None
    cost_model: CostModelEcho | None
    costs_computed_at: datetime | None


def _series(bucket_map: Mapping[int, Bucket], window: Window) -> Series:
    points = [
        SeriesPoint(
            start=start,
            utilization_ratio=b.utilization_ratio if b else None,
            max_utilization_ratio=b.utilization_max if b else None,
            memory_used_bytes=b.memory_used_bytes if b else None,
            power_watts=b.power_watts if b else None,
            idle_seconds=b.idle_seconds if b else 0.0,
            samples=b.samples if b else 0,
        )
        for start, b in zip(window.starts(), dense(dict(bucket_map), window), strict=True)
    ]
    return Series(window.start, window.end, window.bucket_seconds, points)


def _gpu_alerts(session: Session, uuid: str) -> list[GpuAlert]:
    alerts = session.exec(
        select(Alert)
        .where(col(Alert.labels)["uuid"].as_string() == uuid)
        .order_by(col(Alert.active_at).desc())
        .limit(ALERT_LIMIT)
    ).all()
    rows = [
        GpuAlert(
            fingerprint=a.fingerprint,
            alertname=a.alertname,
            state="resolved" if a.state == "inactive" else a.state,
            labels={k: str(v) for k, v in sorted(a.labels.items()) if k != "alertname"},
            summary=str((a.annotations or {}).get("summary", "")),
            active_at=a.active_at,
            resolved_at=a.resolved_at,
        )
        for a in alerts
    ]
    rows.sort(key=lambda a: _STATE_ORDER.get(a.state, 3))
    return rows


def _echo(model: GpuCostModel | None) -> CostModelEcho | None:
    if model is None:
        return None
    return CostModelEcho(
        gpu_model=model.gpu_model,
        currency=model.currency,
        capex_per_hour=model.capex_per_hour.quantize(CENT_FRACTIONS),
        fixed_per_hour=model.fixed_per_hour.quantize(CENT_FRACTIONS),
        power_price_per_kwh=model.power_price_per_kwh,
        pue=model.pue,
    )


def gpu_detail(session: Session, view: LiveView, uuid: str, *, now: datetime) -> GpuDetail | None:
    """One GPU by UUID, or ``None`` when neither the store nor the live view knows it."""
    known = next((k for k in known_gpus(session, view) if k.uuid == uuid and uuid), None)
    if known is None:
        return None
    figures = view.costs
    strip_window, trend_window = history_windows(now)
    hours_24 = Window.ending_at(now, DAY_BUCKET_SECONDS, DAY_BUCKETS)
    days_7 = Window.ending_at(now, WEEK_BUCKET_SECONDS, WEEK_BUCKETS)
    today = gpu_buckets(session, [uuid], day_window(now), "idle")[uuid].get(0)
    strip = gpu_buckets(session, [uuid], strip_window, "utilization")[uuid]
    trend = gpu_buckets(session, [uuid], trend_window, "utilization")[uuid]
    day = gpu_buckets(session, [uuid], hours_24)[uuid]
    week = gpu_buckets(session, [uuid], days_7)[uuid]
    row = fleet_gpu(known, figures, today, dense(strip, strip_window), dense(trend, trend_window))
    _, model, _ = cost_inputs(figures, known)
    week_total = sum(week.values(), Bucket())
    sample = known.sample
    processes = None
    if sample is not None and sample.processes is not None:
        processes = [ProcessRow(p.pid, p.name, p.used_memory_bytes) for p in sample.processes]
        processes.sort(key=lambda p: -(p.used_memory_bytes or 0))
    return GpuDetail(
        generated_at=now,
        gpu=row,
        processes=processes,
        mig_enabled=sample.mig_enabled if sample else None,
        mig_instances=[
            MigRow(
                m.gpu_instance_id,
                m.profile,
                m.memory_used_bytes,
                m.memory_total_bytes,
                m.engine_active_ratio,
            )
            for m in (sample.mig_instances if sample else ())
        ],
        alerts=_gpu_alerts(session, uuid),
        day=_series(day, hours_24),
        week=_series(week, days_7),
        idle_hours_7d=week_total.idle_seconds / 3600,
        idle_cost_7d=idle_cost_of(model, week_total),
        cost_model=_echo(model),
        costs_computed_at=getattr(figures, "computed_at", None),
    )
