"""The live, in-memory view of the process: latest samples, collector health, alert counts.

Jobs write it; the ``/metrics`` exporter and the board read it. Reading never does I/O, so a
scrape costs nothing but a copy. Every method is thread-safe (jobs run in worker threads).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from collectors.base import CacheSample, GpuSample, ModelSample, Snapshot, TargetStatus


@dataclass(frozen=True, slots=True)
class CollectorStatus:
    """Health of one collector as of its last cycle."""

    name: str
    up: bool
    reason: str = ""
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AlertView:
    """One active (pending or firing) alert instance as the board and exporter show it."""

    fingerprint: str
    alertname: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: datetime
    value: float | None = None


@dataclass(frozen=True, slots=True)
class LiveView:
    """An immutable copy of the live state, safe to read without the lock."""

    gpus: dict[str, GpuSample]
    down_gpus: frozenset[str]
    idle_gpus: frozenset[str]
    models: dict[tuple[str, str, str], ModelSample]
    collectors: dict[str, CollectorStatus]
    alerts: tuple[AlertView, ...]
    job_failures: dict[str, int]
    notifications: dict[tuple[str, str], int]
    outbox_pending: int
    suppressed: dict[str, int] = field(default_factory=dict)
    """Alerts the dispatcher did not notify, by reason (silenced, inhibited, muted, ...)."""
    outbox_oldest_age_seconds: float = 0.0
    """Age of the oldest pending outbox row (0 when none)."""
    channels_enabled: dict[str, bool] = field(default_factory=dict)
    """Configured channels: ``True`` when enabled, ``False`` when disabled after an error."""
    caches: dict[str, CacheSample] = field(default_factory=dict)
    targets: dict[str, TargetStatus] = field(default_factory=dict)
    version: int = 0
    """Changes whenever the state changes (the exposition cache keys on it)."""
    costs: Any = None
    """The latest ``daemon.costs.figures.CostFigures`` (``None`` until first computed)."""


@dataclass
class LiveState:
    """Mutable live state; see the module docstring."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _gpus: dict[str, GpuSample] = field(default_factory=dict)
    _down: set[str] = field(default_factory=set)
    _idle: set[str] = field(default_factory=set)
    _models: dict[tuple[str, str, str], ModelSample] = field(default_factory=dict)
    _collectors: dict[str, CollectorStatus] = field(default_factory=dict)
    _alerts: tuple[AlertView, ...] = ()
    _job_failures: Counter[str] = field(default_factory=Counter)
    _notifications: Counter[tuple[str, str]] = field(default_factory=Counter)
    _outbox_pending: int = 0
    _suppressed: Counter[str] = field(default_factory=Counter)
    _outbox_oldest_age: float = 0.0
    _channels_enabled: dict[str, bool] = field(default_factory=dict)
    _caches: dict[str, CacheSample] = field(default_factory=dict)
    _targets: dict[str, TargetStatus] = field(default_factory=dict)
    _version: int = 0
    _costs: Any = None

    def record_samples(
        self, gpus: tuple[GpuSample, ...], models: tuple[ModelSample, ...], down: tuple[str, ...]
    ) -> None:
        """Replace the latest reading of each GPU and model seen in one collection cycle."""
        with self._lock:
            self._version += 1
            for gpu in gpus:
                self._gpus[gpu.uuid] = gpu
                self._down.discard(gpu.uuid)
            self._down.update(down)
            for model in models:
                self._models[(model.node, model.model, model.instance)] = model

    def record_snapshot(self, snapshot: Snapshot) -> None:
        """Record everything a collector returned in one cycle."""
        self.record_samples(snapshot.gpus, snapshot.models, snapshot.down_gpus)
        with self._lock:
            for cache in snapshot.caches:
                self._caches[cache.name] = cache
            for target in snapshot.targets:
                self._targets[target.target] = target

    def record_collector(self, status: CollectorStatus) -> None:
        """Store the outcome of a collector cycle, keeping the last success time on failure."""
        with self._lock:
            self._version += 1
            previous = self._collectors.get(status.name)
            if not status.up and previous is not None and status.last_success is None:
                status = replace(status, last_success=previous.last_success)
            self._collectors[status.name] = status

    def set_idle(self, uuids: set[str]) -> None:
        """Replace the set of GPUs currently classified idle."""
        with self._lock:
            self._version += 1
            self._idle = set(uuids)

    def set_alerts(self, alerts: tuple[AlertView, ...]) -> None:
        """Replace the active alerts after an evaluation."""
        with self._lock:
            self._version += 1
            self._alerts = alerts

    def set_costs(self, figures: Any) -> None:
        """Replace the cost figures (``daemon.costs.figures.CostFigures``)."""
        with self._lock:
            self._version += 1
            self._costs = figures

    def count_job_failure(self, job: str) -> None:
        """Count one failed run of ``job``."""
        with self._lock:
            self._version += 1
            self._job_failures[job] += 1

    def ensure_job(self, job: str) -> None:
        """Make ``job`` appear in the failure counter with 0 before any failure."""
        with self._lock:
            self._version += 1
            self._job_failures[job] += 0

    def count_notification(self, channel: str, outcome: str) -> None:
        """Count one delivery attempt of ``channel`` ending in ``outcome``."""
        with self._lock:
            self._version += 1
            self._notifications[(channel, outcome)] += 1

    def set_outbox_pending(self, pending: int) -> None:
        """Store how many outbox rows wait to be sent."""
        with self._lock:
            self._version += 1
            self._outbox_pending = pending

    def count_suppressed(self, reason: str) -> None:
        """Count one alert notification suppressed for ``reason`` (e.g. ``silenced``)."""
        with self._lock:
            self._version += 1
            self._suppressed[reason] += 1

    def set_outbox_oldest_age(self, seconds: float) -> None:
        """Store the age of the oldest pending outbox row (0 when the outbox is empty)."""
        with self._lock:
            self._version += 1
            self._outbox_oldest_age = max(0.0, float(seconds))

    def set_channels_enabled(self, enabled: dict[str, bool]) -> None:
        """Replace the enabled (``True``) / disabled (``False``) state of every channel."""
        with self._lock:
            self._version += 1
            self._channels_enabled = dict(enabled)

    @property
    def version(self) -> int:
        """A number that changes whenever the state changes (cheap: no copy)."""
        with self._lock:
            return self._version

    def view(self) -> LiveView:
        """Return an immutable copy of everything."""
        with self._lock:
            return LiveView(
                gpus=dict(self._gpus),
                down_gpus=frozenset(self._down),
                idle_gpus=frozenset(self._idle),
                models=dict(self._models),
                collectors=dict(self._collectors),
                alerts=self._alerts,
                job_failures=dict(self._job_failures),
                notifications=dict(self._notifications),
                outbox_pending=self._outbox_pending,
                suppressed=dict(self._suppressed),
                outbox_oldest_age_seconds=self._outbox_oldest_age,
                channels_enabled=dict(self._channels_enabled),
                caches=dict(self._caches),
                targets=dict(self._targets),
                version=self._version,
                costs=self._costs,
            )
