"""The fleet as the board shows it: nodes and their GPUs (one GPU: ``fleet_detail``).

Live readings come from a ``LiveView`` (no I/O); history comes from ``gpu_rollup``, bucketed in
SQL (``daemon.board.fleet_history``); costs come from the latest ``CostFigures`` in the view.
Pure functions over the caller's ``Session``; the clock comes in as ``now``; nothing writes.

A GPU's state: ``down`` (its last collection failed), ``idle`` (classified idle now), ``busy``
(reporting and not idle), or ``unknown`` (in the store but not reported since this process
started). Readings of a down or unknown GPU are not shown as current (``None``).

Error contract: ``list_fleet`` raises only database errors. Missing cost inputs give ``None``
amounts with a ``cost_note`` that says why ("no cost model", "cost figures not computed yet").
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from collectors.base import GpuSample
from daemon.board.fleet_demo import seed_demo_fleet as seed_demo_fleet
from daemon.board.fleet_history import Bucket, Window, dense, gpu_buckets
from daemon.costs.figures import Money
from daemon.costs.localcost import GpuCostModel, idle_cost
from daemon.state import LiveView
from daemon.store.models import Gpu, Node

logger = logging.getLogger(__name__)

BUSY, IDLE, DOWN, UNKNOWN = "busy", "idle", "down", "unknown"
STRIP_MINUTES = 60
TREND_BUCKET_SECONDS = 4 * 3600
TREND_BUCKETS = 42
"""The fleet list's 7-day trend: 42 buckets of 4 hours."""
NO_COST_MODEL = "no cost model"
NO_FIGURES = "cost figures not computed yet"
CENT_FRACTIONS = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class FleetGpu:
    """One GPU on the fleet page; readings in base units, ``None`` = not reported now."""

    uuid: str
    uuid_short: str
    node: str
    index: int | None
    name: str
    state: str
    utilization_ratio: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    power_watts: float | None
    power_limit_watts: float | None
    temperature_celsius: float | None
    last_seen: datetime | None
    hourly_cost: Money | None
    """Cost of one hour at the current power draw (``CostFigures.gpu_hourly``)."""
    cost_note: str
    """Why a cost is missing (empty when both are known)."""
    idle_hours_today: float
    """Idle time since 00:00 UTC from the per-minute rollups' ``idle_seconds``."""
    idle_cost_today: Money | None
    """Idle hours today at the GPU's cost model, energy from power while idle (estimated)."""
    utilization_last_hour: list[float | None]
    """Per-minute mean utilization of the last hour, oldest first (``None`` = no data)."""
    utilization_7d: list[float | None]
    """Mean utilization per 4 hours over 7 days, oldest first."""


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """One node: GPU counts by state, power now, the hourly cost of its GPUs, idle hours."""

    name: str
    gpus: int
    busy: int
    idle: int
    down: int
    unknown: int
    power_watts: float | None
    power_limit_watts: float | None
    hourly_cost: list[Money]
    """Sum of its GPUs' hourly costs, one amount per currency."""
    idle_hours_today: float


@dataclass(frozen=True, slots=True)
class FleetPage:
    """One page of GPUs (``total`` counts every match) and every matching node."""

    generated_at: datetime
    items: list[FleetGpu]
    total: int
    limit: int
    offset: int
    node: str | None
    idle: bool | None
    nodes: list[NodeSummary]
    """Every node with a matching GPU, summarised over all matches (not just this page)."""
    node_names: list[str]
    """Every node known, whatever the filters (to choose a filter from)."""
    strip_start: datetime
    """Start of ``utilization_last_hour`` (one cell per minute)."""
    trend_start: datetime
    """Start of ``utilization_7d`` (one value per ``trend_bucket_seconds``)."""
    trend_bucket_seconds: int
    costs_computed_at: datetime | None
    notes: list[str]


@dataclass(frozen=True, slots=True)
class KnownGpu:
    """What is known of a GPU before history: the store's inventory and the live sample."""

    uuid: str
    node: str
    index: int | None
    name: str
    memory_total_bytes: int | None
    state: str
    sample: GpuSample | None
    last_seen: datetime | None


def short_uuid(uuid: str) -> str:
    """``GPU-1a2b3c4d-...`` -> ``GPU-1a2b3c4d``: enough to tell GPUs apart on a screen."""
    head, sep, _ = uuid.partition("-")
    if sep and head.upper() == "GPU":
        return uuid[: len(head) + 9]
    return uuid[:12]


def _inventory(session: Session) -> dict[str, tuple[str, int, str, int | None, datetime]]:
    rows = session.exec(
        select(  # type: ignore[call-overload]
            col(Gpu.uuid),
            col(Node.name),
            col(Gpu.index),
            col(Gpu.name),
            col(Gpu.memory_total_bytes),
            col(Gpu.last_seen),
        ).join(Node, col(Node.id) == col(Gpu.node_id))
    ).all()
    return {
        uuid: (node, index, name, memory, seen) for uuid, node, index, name, memory, seen in rows
    }


def _state(uuid: str, view: LiveView) -> str:
    if uuid in view.down_gpus:
        return DOWN
    if uuid not in view.gpus:
        return UNKNOWN
    return IDLE if uuid in view.idle_gpus else BUSY


def known_gpus(session: Session, view: LiveView) -> list[KnownGpu]:
    """Every GPU in the store or the live view, plus down GPUs known only as ``node/index``."""
    stored = _inventory(session)
    known: list[KnownGpu] = []
    for uuid in stored.keys() | view.gpus.keys():
        sample = view.gpus.get(uuid)
        if sample is not None:
            memory = sample.memory_total_bytes
            if memory is None and uuid in stored:
                memory = stored[uuid][3]
            known.append(
                KnownGpu(
                    uuid,
                    sample.node,
                    sample.index,
                    sample.name,
                    memory,
                    _state(uuid, view),
                    sample,
                    sample.timestamp,
                )
            )
        else:
            node, index, name, memory, seen = stored[uuid]
            known.append(KnownGpu(uuid, node, index, name, memory, _state(uuid, view), None, seen))
    by_slot = {(k.node, k.index): i for i, k in enumerate(known)}
    for key in sorted(view.down_gpus - stored.keys() - view.gpus.keys()):
        slot_node, sep, slot_index = key.rpartition("/")
        if not (sep and slot_index.isdigit()):
            known.append(KnownGpu(key, "", None, "", None, DOWN, None, None))
        elif (slot_node, int(slot_index)) in by_slot:  # listed by UUID already: mark it down
            i = by_slot[(slot_node, int(slot_index))]
            known[i] = replace(known[i], state=DOWN)
        else:
            known.append(KnownGpu("", slot_node, int(slot_index), "", None, DOWN, None, None))
    known.sort(key=lambda k: (k.node, -1 if k.index is None else k.index, k.uuid))
    return known


def rounded(amount: Decimal, currency: str) -> Money:
    """``amount`` to six decimal places (enough for any unit price), in ``currency``."""
    return Money(amount.quantize(CENT_FRACTIONS), currency)


def idle_cost_of(model: GpuCostModel | None, bucket: Bucket | None) -> Money | None:
    """What ``bucket``'s idle time cost under ``model`` (``None`` without a model): idle hours
    at the hourly capex and fixed share, plus energy drawn while idle when power was known."""
    if model is None:
        return None
    seconds = bucket.idle_seconds if bucket is not None else 0.0
    joules = None
    if bucket is not None and bucket.idle_power_known:
        joules = Decimal(str(bucket.idle_joules))
    amount = idle_cost(
        model, idle_hours=Decimal(str(seconds)) / Decimal(3600), idle_energy_joules=joules
    )
    return rounded(amount, model.currency)


def cost_inputs(figures: Any, known: KnownGpu) -> tuple[Money | None, GpuCostModel | None, str]:
    """(hourly cost, cost model, why something is missing) of a GPU from ``CostFigures``."""
    if figures is None:
        return None, None, NO_FIGURES
    model: GpuCostModel | None = figures.gpu_models.get(known.name)
    hourly: Money | None = figures.gpu_hourly.get(known.uuid) if known.uuid else None
    if hourly is not None:
        hourly = rounded(hourly.amount, hourly.currency)
    if model is None:
        return hourly, None, NO_COST_MODEL
    if hourly is None:
        return None, model, "no current power reading to price"
    return hourly, model, ""


def fleet_gpu(
    known: KnownGpu,
    figures: Any,
    today: Bucket | None,
    strip: Sequence[Bucket | None],
    trend: Sequence[Bucket | None],
) -> FleetGpu:
    """The fleet row of ``known``: live readings (none when down), costs and history."""
    sample = known.sample if known.state in (BUSY, IDLE) else None
    hourly, model, note = cost_inputs(figures, known)
    return FleetGpu(
        uuid=known.uuid,
        uuid_short=short_uuid(known.uuid) if known.uuid else "",
        node=known.node,
        index=known.index,
        name=known.name,
        state=known.state,
        utilization_ratio=sample.utilization_ratio if sample else None,
        memory_used_bytes=sample.memory_used_bytes if sample else None,
        memory_total_bytes=known.memory_total_bytes,
        power_watts=sample.power_watts if sample else None,
        power_limit_watts=known.sample.power_limit_watts if known.sample else None,
        temperature_celsius=sample.temperature_celsius if sample else None,
        last_seen=known.last_seen,
        hourly_cost=hourly,
        cost_note=note,
        idle_hours_today=(today.idle_seconds / 3600) if today else 0.0,
        idle_cost_today=idle_cost_of(model, today),
        utilization_last_hour=[b.utilization_ratio if b else None for b in strip],
        utilization_7d=[b.utilization_ratio if b else None for b in trend],
    )


def day_window(now: datetime) -> Window:
    """Today (UTC) as one bucket."""
    return Window.ending_at(now, 86400, 1)


def history_windows(now: datetime) -> tuple[Window, Window]:
    """The last hour's complete minutes (the strip) and 7 days in 4-hour buckets (the trend)."""
    minute = now.replace(second=0, microsecond=0)
    strip = Window.ending_at(minute, 60, STRIP_MINUTES)
    trend = Window.ending_at(now, TREND_BUCKET_SECONDS, TREND_BUCKETS)
    return strip, trend


def _node_summaries(rows: Iterable[FleetGpu]) -> list[NodeSummary]:
    grouped: dict[str, list[FleetGpu]] = defaultdict(list)
    for row in rows:
        grouped[row.node].append(row)
    summaries: list[NodeSummary] = []
    for name in sorted(grouped):
        gpus = grouped[name]
        powers = [g.power_watts for g in gpus if g.power_watts is not None]
        limits = [g.power_limit_watts for g in gpus if g.power_limit_watts is not None]
        costs: dict[str, Decimal] = defaultdict(Decimal)
        for g in gpus:
            if g.hourly_cost is not None:
                costs[g.hourly_cost.currency] += g.hourly_cost.amount
        summaries.append(
            NodeSummary(
                name=name,
                gpus=len(gpus),
                busy=sum(g.state == BUSY for g in gpus),
                idle=sum(g.state == IDLE for g in gpus),
                down=sum(g.state == DOWN for g in gpus),
                unknown=sum(g.state == UNKNOWN for g in gpus),
                power_watts=sum(powers) if powers else None,
                power_limit_watts=sum(limits) if limits else None,
                hourly_cost=[Money(costs[c], c) for c in sorted(costs)],
                idle_hours_today=sum(g.idle_hours_today for g in gpus),
            )
        )
    return summaries


def _notes(figures: Any) -> list[str]:
    if figures is None:
        return [f"Costs: {NO_FIGURES} (the cost job runs every costs.interval)."]
    return [str(note) for note in figures.notes]


def list_fleet(
    session: Session,
    view: LiveView,
    *,
    now: datetime,
    node: str | None = None,
    idle: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> FleetPage:
    """GPUs (sorted by node, index) matching ``node`` (exact) and ``idle`` (idle now or not),
    ``limit`` from ``offset``; ``nodes`` summarises every match. Database errors propagate."""
    figures = view.costs
    everything = known_gpus(session, view)
    known = [
        k
        for k in everything
        if (node is None or k.node == node) and (idle is None or (k.state == IDLE) == idle)
    ]
    page = known[offset : offset + limit]
    day = day_window(now)
    strip_window, trend_window = history_windows(now)
    today = gpu_buckets(session, [k.uuid for k in known if k.uuid], day, "idle")
    page_uuids = [k.uuid for k in page if k.uuid]
    strips = gpu_buckets(session, page_uuids, strip_window, "utilization")
    trends = gpu_buckets(session, page_uuids, trend_window, "utilization")
    empty: dict[int, Bucket] = {}
    rows: list[FleetGpu] = []
    for position, k in enumerate(known):
        on_page = offset <= position < offset + limit  # only the page carries history
        rows.append(
            fleet_gpu(
                k,
                figures,
                today.get(k.uuid, empty).get(0),
                dense(strips.get(k.uuid, empty), strip_window) if on_page else (),
                dense(trends.get(k.uuid, empty), trend_window) if on_page else (),
            )
        )
    return FleetPage(
        generated_at=now,
        items=rows[offset : offset + limit],
        total=len(known),
        limit=limit,
        offset=offset,
        node=node,
        idle=idle,
        nodes=_node_summaries(rows),
        node_names=sorted({k.node for k in everything if k.node}),
        strip_start=strip_window.start,
        trend_start=trend_window.start,
        trend_bucket_seconds=TREND_BUCKET_SECONDS,
        costs_computed_at=getattr(figures, "computed_at", None),
        notes=_notes(figures),
    )
