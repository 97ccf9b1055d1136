"""Demo history for the fleet pages: the simulated fleet's past, written as rollup rows.

The demo's pipeline only stores what it sees from the moment it starts, so the 24 h and 7 d
charts would be empty for hours. ``seed_demo_fleet`` replays a private copy of the demo's
simulated fleet (same config, so the same UUIDs and daily load curve) over the past: minute
rows for the last 24 hours (one sample a minute) and hour rows for the days before (six
samples an hour). It never replaces a row: minutes or hours already in the store are kept, so
running it twice, or beside the live pipeline, counts nothing twice.

Error contract: raises ``ValueError`` for ``days`` under 1; database errors propagate (the
caller's transaction rolls back). It does not commit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from collectors.base import GpuSample
from collectors.simulated import SimulatedFleet
from daemon.config import SimulatedConfig
from daemon.store.models import Gpu, GpuRollup, Node, as_utc
from rules.idle import IdlePolicy

logger = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
HOURLY_SAMPLES = 6
INSERT_BATCH = 5000


def _inventory(session: Session, samples: Iterable[GpuSample], now: datetime) -> None:
    """Create the ``node`` and ``gpu`` rows the simulated GPUs need (existing ones are kept)."""
    samples = list(samples)
    names = {s.node for s in samples}
    nodes = {n.name: n for n in session.exec(select(Node).where(col(Node.name).in_(names)))}
    for name in sorted(names - nodes.keys()):
        nodes[name] = Node(name=name, first_seen=now, last_seen=now)
        session.add(nodes[name])
    session.flush()
    uuids = {s.uuid for s in samples}
    known = set(session.exec(select(Gpu.uuid).where(col(Gpu.uuid).in_(uuids))).all())
    for s in samples:
        node_id = nodes[s.node].id
        if s.uuid in known or node_id is None:
            continue
        session.add(
            Gpu(
                uuid=s.uuid,
                node_id=node_id,
                index=s.index,
                name=s.name,
                memory_total_bytes=s.memory_total_bytes,
                first_seen=now,
                last_seen=now,
            )
        )
    session.flush()


def _row(
    sample_set: list[GpuSample], start: datetime, seconds: float, idle: IdlePolicy, busy: bool
) -> dict[str, Any]:
    """One rollup row from equally spaced samples covering ``seconds``."""
    utils = [s.utilization_ratio for s in sample_set if s.utilization_ratio is not None]
    powers = [s.power_watts for s in sample_set if s.power_watts is not None]
    memory = [float(s.memory_used_bytes) for s in sample_set if s.memory_used_bytes is not None]
    step = seconds / len(sample_set)
    idle_seconds = sum(
        step
        for s in sample_set
        if idle.is_idle(
            utilization_ratio=s.utilization_ratio,
            power_watts=s.power_watts,
            power_limit_watts=s.power_limit_watts,
            inference_tokens=1.0 if busy else 0.0,
        )
    )
    return {
        "gpu_uuid": sample_set[0].uuid,
        "resolution_seconds": int(seconds),
        "bucket_start": start,
        "samples": len(sample_set),
        "avg_utilization_ratio": sum(utils) / len(utils) if utils else None,
        "max_utilization_ratio": max(utils) if utils else None,
        "avg_memory_used_bytes": sum(memory) / len(memory) if memory else None,
        "avg_power_watts": sum(powers) / len(powers) if powers else None,
        "energy_joules": sum(powers) / len(powers) * seconds if powers else None,
        "idle_seconds": idle_seconds,
    }


def _existing(
    session: Session, uuids: set[str], resolution: int, start: datetime, end: datetime
) -> set[tuple[str, datetime]]:
    rows = session.exec(
        select(col(GpuRollup.gpu_uuid), col(GpuRollup.bucket_start)).where(
            col(GpuRollup.gpu_uuid).in_(uuids),
            col(GpuRollup.resolution_seconds) == resolution,
            col(GpuRollup.bucket_start) >= start,
            col(GpuRollup.bucket_start) < end,
        )
    ).all()
    return {(uuid, as_utc(moment)) for uuid, moment in rows}


def seed_demo_fleet(
    session: Session, now: datetime, simulated: SimulatedConfig, *, days: int = 7
) -> int:
    """Write ``days`` of the simulated fleet's history before ``now``; return rows written.

    Minute rows cover the 24 hours before the current minute, hour rows the ``days`` before
    the current hour (both resolutions overlap for the last day, as the rollup job leaves
    them). See the module docstring for what is never overwritten.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    now = as_utc(now)
    fleet = SimulatedFleet(
        nodes=simulated.nodes,
        gpus_per_node=simulated.gpus_per_node,
        seed=simulated.seed,
        idle_gpus=simulated.idle_gpus,
    )
    idle_by_design = fleet.idle_uuids
    policy = IdlePolicy()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    this_minute = now.replace(second=0, microsecond=0)
    first_hour = this_hour - days * 24 * HOUR
    first_minute = this_minute - 24 * HOUR
    hourly: dict[tuple[str, datetime], list[GpuSample]] = defaultdict(list)
    rows: list[dict[str, Any]] = []
    uuids = set(fleet.uuids)
    have_hours = _existing(session, uuids, 3600, first_hour, this_hour)
    have_minutes = _existing(session, uuids, 60, first_minute, this_minute)
    step = HOUR / HOURLY_SAMPLES
    moment = first_hour + step / 2
    while moment < first_minute:  # older days: a few samples an hour is enough
        for sample in fleet.collect(moment).gpus:
            hourly[(sample.uuid, moment.replace(minute=0, second=0, microsecond=0))].append(sample)
        moment += step
    last: list[GpuSample] = []
    minute = first_minute
    while minute < this_minute:  # the last day: one sample a minute, mid-minute
        last = list(fleet.collect(minute + MINUTE / 2).gpus)
        for sample in last:
            busy = sample.uuid not in idle_by_design
            if (sample.uuid, minute) not in have_minutes:
                rows.append(_row([sample], minute, 60, policy, busy))
            hourly[(sample.uuid, minute.replace(minute=0))].append(sample)
        minute += MINUTE
    for (uuid, hour), samples in hourly.items():
        if hour < this_hour and (uuid, hour) not in have_hours:
            rows.append(_row(samples, hour, 3600, policy, uuid not in idle_by_design))
    _inventory(session, last or fleet.collect(now).gpus, now)
    for i in range(0, len(rows), INSERT_BATCH):
        session.execute(insert(GpuRollup), rows[i : i + INSERT_BATCH])
    logger.info("demo: seeded %d fleet history rows over %d days", len(rows), days)
    return len(rows)
