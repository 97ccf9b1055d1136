"""Writing rollups and reading rule windows: the store side of the pipeline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

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


def _weighted_mean(pairs: list[tuple[float, int]]) -> float | None:
    weight = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / weight if weight else None


def gpu_windows(
    session: Session,
    *,
    since: datetime,
    down: frozenset[str],
    power_limits: dict[str, float | None],
) -> tuple[GpuWindow, ...]:
    """Per-GPU aggregates of the per-minute rollups with ``bucket_start >= since``."""
    inventory = session.exec(select(Gpu, Node).join(Node, col(Gpu.node_id) == col(Node.id))).all()
    rollups: dict[str, list[GpuRollup]] = defaultdict(list)
    for rollup in session.exec(
        select(GpuRollup).where(
            GpuRollup.resolution_seconds == 60, col(GpuRollup.bucket_start) >= since
        )
    ):
        rollups[rollup.gpu_uuid].append(rollup)
    tokens_by_gpu: dict[str, float] = defaultdict(float)
    tokens_by_node: dict[str, float] = defaultdict(float)
    mapped: set[str] = set()
    for inference in session.exec(
        select(InferenceRollup).where(
            InferenceRollup.resolution_seconds == 60, col(InferenceRollup.bucket_start) >= since
        )
    ):
        processed = inference.prompt_tokens + inference.generation_tokens
        tokens_by_node[inference.node] += processed
        for uuid in inference.gpu_uuids or []:
            tokens_by_gpu[uuid] += processed
            mapped.add(uuid)
    windows: list[GpuWindow] = []
    for gpu, node in inventory:
        rows = rollups.get(gpu.uuid, [])
        util = [
            (r.avg_utilization_ratio, r.samples)
            for r in rows
            if r.avg_utilization_ratio is not None
        ]
        maxes = [r.max_utilization_ratio for r in rows if r.max_utilization_ratio is not None]
        power = [(r.avg_power_watts, r.samples) for r in rows if r.avg_power_watts is not None]
        memory = [
            (r.avg_memory_used_bytes, r.samples)
            for r in rows
            if r.avg_memory_used_bytes is not None
        ]
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
                minutes=len(rows),
                avg_utilization_ratio=_weighted_mean(util),
                max_utilization_ratio=max(maxes) if maxes else None,
                avg_power_watts=_weighted_mean(power),
                power_limit_watts=power_limits.get(gpu.uuid),
                avg_memory_used_bytes=_weighted_mean(memory),
                memory_total_bytes=gpu.memory_total_bytes,
                inference_tokens=tokens,
                down=gpu.uuid in down,
            )
        )
    return tuple(windows)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The first bucket start inside a window ending at ``now`` (complete minutes only)."""
    return now.replace(second=0, microsecond=0) - window
