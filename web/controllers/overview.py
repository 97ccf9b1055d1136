"""The board overview as plain data: one ``LiveView`` plus the store's figures, as HTML and JSON.

Pure: no I/O, the clock comes in as ``now`` and the store's part (``StoreOverviewResult``, read
and cached by ``daemon.board.overview``) comes in ready. The HTML page and ``/api/v1/overview``
serialise the same ``Overview`` so the two never drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.board.overview import StoreOverview, StoreOverviewResult
from daemon.state import AlertView, CollectorStatus, LiveView
from web.controllers.cost_summary import CostSummary, build_cost_summary

if TYPE_CHECKING:
    from collectors.base import GpuSample

logger = logging.getLogger(__name__)

BUSY = "busy"
IDLE = "idle"
DOWN = "down"


@dataclass(frozen=True, slots=True)
class GpuRow:
    """One GPU as the board lists it. Readings are in base units; ``None`` = not reported."""

    node: str
    index: int | None
    name: str
    uuid: str
    uuid_short: str
    state: str
    utilization_ratio: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    power_watts: float | None
    temperature_celsius: float | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One pending or firing alert instance."""

    fingerprint: str
    alertname: str
    state: str
    labels: dict[str, str]
    summary: str
    active_at: datetime


@dataclass(frozen=True, slots=True)
class CollectorRow:
    """Health of one collector; ``reason`` says why it is down."""

    name: str
    up: bool
    reason: str
    last_success: datetime | None
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything on the board's front page."""

    title: str
    demo: bool
    generated_at: datetime
    fleet_utilization_ratio: float | None
    """Mean latest utilization of the GPUs that are up and report it; ``None`` when none do."""
    gpus_busy: int
    gpus_idle: int
    gpus_down: int
    gpus: list[GpuRow]
    alerts_firing: int
    alerts_pending: int
    alerts: list[AlertRow]
    collectors: list[CollectorRow]
    costs: CostSummary | None = None
    """Spend, budgets and cost per million tokens (``None`` until first computed)."""
    store: StoreOverview | None = None
    """Spend by source, 7-day utilization, idle waste and cache hit rates from the store
    (``None`` when the store could not be read: ``store_problem`` says why)."""
    store_problem: str = ""


def _short(uuid: str) -> str:
    """``GPU-1a2b3c4d-...`` -> ``GPU-1a2b3c4d``: enough to tell GPUs apart on a screen."""
    head, sep, _ = uuid.partition("-")
    if sep and head.upper() == "GPU":
        return uuid[: len(head) + 9]
    return uuid[:12]


def _gpu_row(gpu: GpuSample, state: str) -> GpuRow:
    reported = state != DOWN
    return GpuRow(
        node=gpu.node,
        index=gpu.index,
        name=gpu.name,
        uuid=gpu.uuid,
        uuid_short=_short(gpu.uuid),
        state=state,
        utilization_ratio=gpu.utilization_ratio if reported else None,
        memory_used_bytes=gpu.memory_used_bytes if reported else None,
        memory_total_bytes=gpu.memory_total_bytes,
        power_watts=gpu.power_watts if reported else None,
        temperature_celsius=gpu.temperature_celsius if reported else None,
        last_seen=gpu.timestamp,
    )


def _unknown_down_row(key: str) -> GpuRow:
    """A down GPU that never answered: ``key`` is its UUID or ``node/index``."""
    node, sep, index = key.rpartition("/")
    if sep and index.isdigit():
        return GpuRow(node, int(index), "", "", "", DOWN, None, None, None, None, None, None)
    return GpuRow("", None, "", key, _short(key), DOWN, None, None, None, None, None, None)


def _gpu_rows(view: LiveView) -> list[GpuRow]:
    rows: list[GpuRow] = []
    for uuid, gpu in view.gpus.items():
        if uuid in view.down_gpus:
            state = DOWN
        elif uuid in view.idle_gpus:
            state = IDLE
        else:
            state = BUSY
        rows.append(_gpu_row(gpu, state))
    rows.extend(_unknown_down_row(key) for key in view.down_gpus - view.gpus.keys())
    rows.sort(key=lambda r: (r.node, -1 if r.index is None else r.index, r.uuid))
    return rows


def _alert_row(alert: AlertView) -> AlertRow:
    labels = {k: v for k, v in sorted(alert.labels.items()) if k != "alertname"}
    return AlertRow(
        fingerprint=alert.fingerprint,
        alertname=alert.alertname,
        state=alert.state,
        labels=labels,
        summary=alert.annotations.get("summary", ""),
        active_at=alert.active_at,
    )


def _collector_row(status: CollectorStatus) -> CollectorRow:
    return CollectorRow(
        name=status.name,
        up=status.up,
        reason=status.reason,
        last_success=status.last_success,
        duration_seconds=status.duration_seconds,
    )


def build_overview(
    view: LiveView,
    *,
    now: datetime,
    title: str,
    demo: bool,
    store: StoreOverviewResult | None = None,
) -> Overview:
    """Summarise ``view`` and ``store`` for the board; never raises for a consistent view."""
    gpus = _gpu_rows(view)
    readings = [
        r.utilization_ratio for r in gpus if r.state != DOWN and r.utilization_ratio is not None
    ]
    active = [a for a in view.alerts if a.state in ("firing", "pending")]
    active.sort(key=lambda a: (a.state != "firing", a.active_at, a.alertname))
    return Overview(
        title=title,
        demo=demo,
        generated_at=now,
        fleet_utilization_ratio=sum(readings) / len(readings) if readings else None,
        gpus_busy=sum(r.state == BUSY for r in gpus),
        gpus_idle=sum(r.state == IDLE for r in gpus),
        gpus_down=sum(r.state == DOWN for r in gpus),
        gpus=gpus,
        alerts_firing=sum(a.state == "firing" for a in active),
        alerts_pending=sum(a.state == "pending" for a in active),
        alerts=[_alert_row(a) for a in active],
        collectors=[_collector_row(view.collectors[n]) for n in sorted(view.collectors)],
        costs=build_cost_summary(view.costs),
        store=store.figures if store is not None else None,
        store_problem=store.problem if store is not None else "",
    )
