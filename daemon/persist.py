"""Writing rollups and reading rule windows: the store side of the pipeline."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, case, cast, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, delete, select

from daemon.rollup import GpuMinute, Minutes
from daemon.store.models import CacheRollup, Gpu, GpuRollup, InferenceRollup, Node
from rules.base import GpuWindow


def upsert_inventory(session: Session, rows: Iterable[GpuMinute], now: datetime) -> None:
    """Create or refresh the ``node`` and ``gpu`` rows the minutes mention."""
    latest: dict[str, GpuMinute] = {}
    for row in rows:
        latest[row.uuid] = row
    if not latest:
        return
    node_names = {row.node for row in latest.values()}
    nodes = {n.name: n for n in session.exec(select(Node).where(col(Node.name).in_(node_names)))}
    for name in node_names:
        node = nodes.get(name)
        if node is None:
            node = Node(name=name, first_seen=now, last_seen=now)
            nodes[name] = node
        else:
            node.last_seen = now
        session.add(node)
    session.flush()
    gpus = {g.uuid: g for g in session.exec(select(Gpu).where(col(Gpu.uuid).in_(latest.keys())))}
    for uuid, row in latest.items():
        node_id = nodes[row.node].id
        assert node_id is not None
        gpu = gpus.get(uuid)
        if gpu is None:
            gpu = Gpu(
                uuid=uuid,
                node_id=node_id,
                index=row.index,
                name=row.name,
                memory_total_bytes=row.memory_total_bytes,
                first_seen=now,
                last_seen=now,
            )
        else:
            gpu.node_id, gpu.index, gpu.name = node_id, row.index, row.name
            gpu.memory_total_bytes = row.memory_total_bytes
            gpu.last_seen = now
        session.add(gpu)
    session.flush()


def _clear_existing(session: Session, minutes: Minutes) -> None:
    """Delete stored minute rows the batch is about to write again, so writing is idempotent
    (a restarted process, or a clock that went back, replaces a minute instead of failing)."""
    batches: tuple[tuple[Any, Any, set[datetime], set[str]], ...] = (
        (GpuRollup, GpuRollup.gpu_uuid,
         {r.bucket_start for r in minutes.gpus}, {r.uuid for r in minutes.gpus}),
        (InferenceRollup, InferenceRollup.instance,
         {r.bucket_start for r in minutes.models}, {r.instance for r in minutes.models}),
        (CacheRollup, CacheRollup.name,
         {r.bucket_start for r in minutes.caches}, {r.name for r in minutes.caches}),
    )  # fmt: skip
    for table, key, buckets, keys in batches:
        if buckets:
            session.exec(
                delete(table).where(
                    col(table.resolution_seconds) == 60,
                    col(table.bucket_start).in_(buckets),
                    col(key).in_(keys),
                )
            )


def write_rollups(session: Session, minutes: Minutes) -> None:
    """Write per-minute rollup rows, replacing any stored for the same minutes (inventory
    must exist; see ``upsert_inventory``)."""
    _clear_existing(session, minutes)
    for row in minutes.gpus:
        session.add(
            GpuRollup(
                gpu_uuid=row.uuid,
                resolution_seconds=60,
                bucket_start=row.bucket_start,
                samples=row.samples,
                avg_utilization_ratio=row.avg_utilization_ratio,
                max_utilization_ratio=row.max_utilization_ratio,
                avg_memory_used_bytes=row.avg_memory_used_bytes,
                avg_power_watts=row.avg_power_watts,
                energy_joules=row.energy_joules,
                idle_seconds=row.idle_seconds,
            )
        )
    for model in minutes.models:
        session.add(
            InferenceRollup(
                node=model.node,
                model=model.model,
                instance=model.instance,
                resolution_seconds=60,
                bucket_start=model.bucket_start,
                prompt_tokens=model.prompt_tokens,
                generation_tokens=model.generation_tokens,
                cache_queries=model.cache_queries,
                cache_hits=model.cache_hits,
                requests=model.requests,
                gpu_uuids=list(model.gpu_uuids),
                engine=model.engine,
                cache_hit_ratio=model.cache_hit_ratio,
            )
        )
    for cache in minutes.caches:
        session.add(
            CacheRollup(
                name=cache.name,
                resolution_seconds=60,
                bucket_start=cache.bucket_start,
                hits=cache.hits,
                lookups=cache.lookups,
            )
        )


def _weighted(column: Any) -> tuple[Any, Any]:
    """SQL sums of ``column * samples`` and of ``samples`` over the rows where it is known."""
    known = col(column).is_not(None)
    weight = col(GpuRollup.samples)
    return (
        func.sum(case((known, col(column) * weight), else_=None)),
        func.sum(case((known, weight), else_=None)),
    )


def _mean(total: float | None, weight: float | None) -> float | None:
    return float(total) / float(weight) if total is not None and weight else None


def gpu_windows(
    session: Session,
    *,
    since: datetime,
    down: frozenset[str],
    power_limits: dict[str, float | None],
) -> tuple[GpuWindow, ...]:
    """Per-GPU aggregates of the per-minute rollups with ``bucket_start >= since``.

    Aggregated in SQL (one row per GPU and one per node and model-instance mapping), never
    row by row: a rule over 1,024 GPUs reads 1,024 aggregates, not 30,000 rollup objects.
    Averages are weighted by each minute's sample count, over the minutes that report the
    field; ``None`` means no minute in the window reported it.
    """
    inventory = session.exec(select(Gpu, Node).join(Node, col(Gpu.node_id) == col(Node.id))).all()
    util_sum, util_weight = _weighted(GpuRollup.avg_utilization_ratio)
    power_sum, power_weight = _weighted(GpuRollup.avg_power_watts)
    memory_sum, memory_weight = _weighted(GpuRollup.avg_memory_used_bytes)
    aggregates = {
        row[0]: row[1:]
        for row in session.execute(
            sql_select(
                col(GpuRollup.gpu_uuid),
                func.count(),
                util_sum,
                util_weight,
                func.max(col(GpuRollup.max_utilization_ratio)),
                power_sum,
                power_weight,
                memory_sum,
                memory_weight,
            )
            .where(col(GpuRollup.resolution_seconds) == 60, col(GpuRollup.bucket_start) >= since)
            .group_by(col(GpuRollup.gpu_uuid))
        )
    }
    tokens_by_gpu: dict[str, float] = defaultdict(float)
    tokens_by_node: dict[str, float] = defaultdict(float)
    mapped: set[str] = set()
    mapping = cast(col(InferenceRollup.gpu_uuids), Text)
    for node_name, uuids_text, processed in session.execute(
        sql_select(
            col(InferenceRollup.node),
            mapping,
            func.sum(col(InferenceRollup.prompt_tokens) + col(InferenceRollup.generation_tokens)),
        )
        .where(
            col(InferenceRollup.resolution_seconds) == 60,
            col(InferenceRollup.bucket_start) >= since,
        )
        .group_by(col(InferenceRollup.node), mapping)
    ):
        amount = float(processed or 0.0)
        tokens_by_node[node_name] += amount
        for uuid in json.loads(uuids_text) if uuids_text else []:
            tokens_by_gpu[uuid] += amount
            mapped.add(uuid)
    windows: list[GpuWindow] = []
    empty: tuple[Any, ...] = (0, None, None, None, None, None, None, None)
    for gpu, node in inventory:
        minutes, u_sum, u_w, u_max, p_sum, p_w, m_sum, m_w = aggregates.get(gpu.uuid, empty)
        if gpu.uuid in mapped:
            tokens: float | None = tokens_by_gpu[gpu.uuid]
        else:
            tokens = tokens_by_node.get(node.name)
        windows.append(
            GpuWindow(
                uuid=gpu.uuid,
                node=node.name,
                index=gpu.index,
                name=gpu.name,
                minutes=int(minutes),
                avg_utilization_ratio=_mean(u_sum, u_w),
                max_utilization_ratio=float(u_max) if u_max is not None else None,
                avg_power_watts=_mean(p_sum, p_w),
                power_limit_watts=power_limits.get(gpu.uuid),
                avg_memory_used_bytes=_mean(m_sum, m_w),
                memory_total_bytes=gpu.memory_total_bytes,
                inference_tokens=tokens,
                down=gpu.uuid in down,
            )
        )
    return tuple(windows)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The first bucket start inside a window ending at ``now`` (complete minutes only)."""
    return now.replace(second=0, microsecond=0) - window
