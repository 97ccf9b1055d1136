"""Per-minute rollups of GPU samples and inference counters, computed in memory.

``MinuteBuffer`` collects samples as they arrive and, once a minute is complete, turns it into
rollup rows: averages, maxima, energy from the counter (resets handled by falling back to
power x time for that step), idle seconds by the one idle definition (``rules.idle``), and
counter deltas per model instance (a counter that goes down restarted: its new value is the
delta, as Prometheus' ``increase`` does). Pure computation: the caller writes the rows.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from collectors.base import CacheSample, GpuSample, ModelSample, Snapshot
from rules.idle import IdlePolicy

MINUTE = timedelta(minutes=1)


def minute_floor(moment: datetime) -> datetime:
    """The start of the minute ``moment`` falls in."""
    return moment.replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class GpuMinute:
    """One GPU over one minute."""

    uuid: str
    node: str
    index: int
    name: str
    memory_total_bytes: int | None
    bucket_start: datetime
    samples: int
    avg_utilization_ratio: float | None
    max_utilization_ratio: float | None
    avg_memory_used_bytes: float | None
    avg_power_watts: float | None
    energy_joules: float | None
    idle_seconds: float
    idle_ratio: float
    """Share of the covered time the GPU was idle (0..1)."""


@dataclass(frozen=True, slots=True)
class ModelMinute:
    """One model instance over one minute: counter increases."""

    node: str
    model: str
    instance: str
    bucket_start: datetime
    prompt_tokens: float
    generation_tokens: float
    cache_queries: float
    cache_hits: float
    requests: float
    gpu_uuids: tuple[str, ...]
    engine: str = ""
    cache_hit_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class CacheMinute:
    """One response cache over one minute: counter increases."""

    name: str
    bucket_start: datetime
    hits: float
    lookups: float


def _increase(previous: float | None, current: float | None) -> float:
    """Prometheus ``increase`` between two readings; a drop means the counter restarted."""
    if previous is None or current is None:
        return 0.0
    return current - previous if current >= previous else current


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class Minutes:
    """The rollup rows of the minutes drained in one go."""

    gpus: list[GpuMinute] = field(default_factory=list)
    models: list[ModelMinute] = field(default_factory=list)
    caches: list[CacheMinute] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.gpus or self.models or self.caches)


@dataclass
class MinuteBuffer:
    """Samples waiting for their minute to complete. Thread-safe: collect jobs ``add`` while
    the rollup job ``drain``s."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    idle: IdlePolicy = field(default_factory=IdlePolicy)
    max_step: timedelta = timedelta(minutes=2)
    """A gap longer than this between two samples is not counted as covered time."""
    _gpus: dict[datetime, dict[str, list[GpuSample]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    _models: dict[datetime, dict[tuple[str, str, str], list[ModelSample]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    _closed_before: datetime | None = None
    """Minutes before this were drained: later samples for them are late."""
    late_samples: int = 0
    """Samples dropped because their minute was already written. Their counters are not lost:
    the next minute's increase is taken from the last sample that was kept."""
    _last_gpu: dict[str, GpuSample] = field(default_factory=dict)
    _last_model: dict[tuple[str, str, str], ModelSample] = field(default_factory=dict)
    _caches: dict[datetime, dict[str, list[CacheSample]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    _last_cache: dict[str, CacheSample] = field(default_factory=dict)

    def add(self, snapshot: Snapshot) -> None:
        """Keep the snapshot's samples until their minute is drained (late ones are dropped)."""
        with self._lock:
            self._add(snapshot)

    def _add(self, snapshot: Snapshot) -> None:
        for gpu in snapshot.gpus:
            if self._open(gpu.timestamp):
                self._gpus[minute_floor(gpu.timestamp)][gpu.uuid].append(gpu)
        for model in snapshot.models:
            if self._open(model.timestamp):
                key = (model.node, model.model, model.instance)
                self._models[minute_floor(model.timestamp)][key].append(model)
        for cache in snapshot.caches:
            if self._open(cache.timestamp):
                self._caches[minute_floor(cache.timestamp)][cache.name].append(cache)

    def _open(self, moment: datetime) -> bool:
        if self._closed_before is not None and minute_floor(moment) < self._closed_before:
            self.late_samples += 1
            return False
        return True

    def pending_minutes(self) -> list[datetime]:
        """Minutes that hold samples, oldest first."""
        return sorted(set(self._gpus) | set(self._models) | set(self._caches))

    def drain(self, before: datetime) -> Minutes:
        """Roll up and forget every minute that ends at or before ``before``; samples for
        those minutes that arrive later are dropped (see ``late_samples``)."""
        with self._lock:
            return self._drain(before)

    def _drain(self, before: datetime) -> Minutes:
        result = Minutes()
        closed = minute_floor(before)
        if self._closed_before is None or closed > self._closed_before:
            self._closed_before = closed
        for bucket in self.pending_minutes():
            if bucket + MINUTE > before:
                break
            models = self._roll_models(bucket, self._models.pop(bucket, {}))
            result.models.extend(models)
            result.gpus.extend(self._roll_gpus(bucket, self._gpus.pop(bucket, {}), models))
            result.caches.extend(self._roll_caches(bucket, self._caches.pop(bucket, {})))
        return result

    def _roll_caches(
        self, bucket: datetime, samples: dict[str, list[CacheSample]]
    ) -> list[CacheMinute]:
        rows: list[CacheMinute] = []
        for name, series in samples.items():
            series.sort(key=lambda s: s.timestamp)
            hits = lookups = 0.0
            previous = self._last_cache.get(name)
            for sample in series:
                if previous is not None:
                    hits += _increase(previous.hits_total, sample.hits_total)
                    lookups += _increase(previous.lookups_total, sample.lookups_total)
                previous = sample
            self._last_cache[name] = series[-1]
            rows.append(CacheMinute(name=name, bucket_start=bucket, hits=hits, lookups=lookups))
        return rows

    def _roll_models(
        self, bucket: datetime, samples: dict[tuple[str, str, str], list[ModelSample]]
    ) -> list[ModelMinute]:
        rows: list[ModelMinute] = []
        for key, series in samples.items():
            series.sort(key=lambda s: s.timestamp)
            totals = [0.0, 0.0, 0.0, 0.0, 0.0]
            previous = self._last_model.get(key)
            for sample in series:
                for i, attr in enumerate(
                    (
                        "prompt_tokens_total",
                        "generation_tokens_total",
                        "cache_queries_total",
                        "cache_hits_total",
                        "requests_total",
                    )
                ):
                    before = getattr(previous, attr) if previous is not None else None
                    totals[i] += _increase(before, getattr(sample, attr))
                previous = sample
            self._last_model[key] = series[-1]
            ratios = [m.cache_hit_ratio for m in series if m.cache_hit_ratio is not None]
            rows.append(
                ModelMinute(
                    node=key[0],
                    model=key[1],
                    instance=key[2],
                    bucket_start=bucket,
                    prompt_tokens=totals[0],
                    generation_tokens=totals[1],
                    cache_queries=totals[2],
                    cache_hits=totals[3],
                    requests=totals[4],
                    gpu_uuids=series[-1].gpu_uuids,
                    engine=series[-1].engine,
                    cache_hit_ratio=ratios[-1] if ratios else None,
                )
            )
        return rows

    def _roll_gpus(
        self,
        bucket: datetime,
        samples: dict[str, list[GpuSample]],
        models: list[ModelMinute],
    ) -> list[GpuMinute]:
        tokens_by_gpu: dict[str, float] = defaultdict(float)
        tokens_by_node: dict[str, float] = defaultdict(float)
        mapped: set[str] = set()
        for model in models:
            processed = model.prompt_tokens + model.generation_tokens
            tokens_by_node[model.node] += processed
            for uuid in model.gpu_uuids:
                tokens_by_gpu[uuid] += processed
                mapped.add(uuid)
        rows: list[GpuMinute] = []
        for uuid, series in samples.items():
            series.sort(key=lambda s: s.timestamp)
            last = series[-1]
            if uuid in mapped:
                tokens: float | None = tokens_by_gpu[uuid]
            elif last.node in tokens_by_node:
                tokens = tokens_by_node[last.node]
            else:
                tokens = None
            rows.append(self._roll_gpu(bucket, uuid, series, tokens))
            self._last_gpu[uuid] = last
        return rows

    def _roll_gpu(
        self, bucket: datetime, uuid: str, series: list[GpuSample], tokens: float | None
    ) -> GpuMinute:
        previous = self._last_gpu.get(uuid)
        energy = 0.0
        energy_known = False
        idle_seconds = 0.0
        covered = 0.0
        for sample in series:
            if previous is not None:
                step = (sample.timestamp - previous.timestamp).total_seconds()
                if 0 < step <= self.max_step.total_seconds():
                    covered += step
                    if self.idle.is_idle(
                        utilization_ratio=sample.utilization_ratio,
                        power_watts=sample.power_watts,
                        power_limit_watts=sample.power_limit_watts,
                        inference_tokens=tokens,
                    ):
                        idle_seconds += step
                    if sample.energy_joules is not None and previous.energy_joules is not None:
                        delta = sample.energy_joules - previous.energy_joules
                        if delta >= 0:
                            energy += delta
                            energy_known = True
                        elif sample.power_watts is not None:
                            energy += sample.power_watts * step
                            energy_known = True
                    elif sample.power_watts is not None:
                        energy += sample.power_watts * step
                        energy_known = True
            previous = sample
        utils = [s.utilization_ratio for s in series if s.utilization_ratio is not None]
        memory = [float(s.memory_used_bytes) for s in series if s.memory_used_bytes is not None]
        power = [s.power_watts for s in series if s.power_watts is not None]
        last = series[-1]
        return GpuMinute(
            uuid=uuid,
            node=last.node,
            index=last.index,
            name=last.name,
            memory_total_bytes=last.memory_total_bytes,
            bucket_start=bucket,
            samples=len(series),
            avg_utilization_ratio=_mean(utils),
            max_utilization_ratio=max(utils) if utils else None,
            avg_memory_used_bytes=_mean(memory),
            avg_power_watts=_mean(power),
            energy_joules=energy if energy_known else None,
            idle_seconds=idle_seconds,
            idle_ratio=idle_seconds / covered if covered else 0.0,
        )
