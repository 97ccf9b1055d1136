"""Records every collector returns, the collector seam, and the table of built-in collectors.

Collectors read the outside world and return typed, frozen records in base units (watts, joules,
bytes, seconds, ratios 0..1). They never touch the store, the web or the rules.

Error contract of the seam: ``Collector.collect(now)`` returns a complete ``Snapshot`` or raises
``CollectorError`` (or a subclass); it never returns a half-filled snapshot. ``CollectorDown``
means the source itself is unavailable (library missing, driver not loaded): the daemon marks the
collector down with ``reason`` and retries on a back-off. Any other exception is a bug and is
treated like ``CollectorError`` by the job wrapper.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process holding a GPU (host PID namespace)."""

    pid: int
    used_memory_bytes: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One MIG GPU instance of a physical GPU.

    NVML reports no utilization for MIG instances; ``engine_active_ratio`` comes only from
    dcgm-exporter's ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` and is ``None`` otherwise.
    """

    gpu_instance_id: int
    profile: str | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    engine_active_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    """A Kubernetes container a GPU is assigned to (from dcgm-exporter's pod labels)."""

    namespace: str
    pod: str
    container: str = ""


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One reading of one GPU. ``None`` means "not reported", never zero."""

    uuid: str
    node: str
    index: int
    name: str
    timestamp: datetime
    utilization_ratio: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    energy_joules: float | None = None
    """Monotonic energy counter since driver load (resets are handled by the consumer)."""
    temperature_celsius: float | None = None
    pci_bus_id: str | None = None
    memory_utilization_ratio: float | None = None
    """Share of time memory was read or written (NVML ``utilization.memory``)."""
    memory_reserved_bytes: int | None = None
    sm_clock_hz: float | None = None
    memory_clock_hz: float | None = None
    pstate: int | None = None
    """Performance state 0 (max) .. 15 (min)."""
    clock_event_idle: bool | None = None
    """The ``GpuIdle`` clock-event (throttle) reason is active."""
    engine_active_ratio: float | None = None
    """dcgm-exporter ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (a better busy signal than utilization)."""
    processes: tuple[GpuProcess, ...] | None = None
    """Running compute processes; ``None`` = not known, ``()`` = none running."""
    mig_enabled: bool | None = None
    mig_instances: tuple[MigInstance, ...] = ()
    workloads: tuple[Workload, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelSample:
    """Cumulative inference counters of one model instance (an engine serving one model).

    Counters are as the engine reports them (they restart from 0 when the engine restarts);
    ``None`` means the engine does not report that counter.
    """

    node: str
    model: str
    instance: str
    timestamp: datetime
    prompt_tokens_total: float | None
    generation_tokens_total: float | None
    cache_queries_total: float | None
    """Prefix-cache lookups, in tokens (vLLM ``prefix_cache_queries``)."""
    cache_hits_total: float | None
    """Prefix-cache hits, in tokens: prompt tokens served from the cache."""
    requests_total: float | None
    gpu_uuids: tuple[str, ...] = ()
    """GPUs this instance runs on, when known; empty means "somewhere on ``node``"."""
    engine: str = ""
    """Inference server kind: ``vllm``, ``sglang``, ``tgi``, ``simulated``."""
    cache_hit_ratio: float | None = None
    """A hit-rate gauge from engines without counters (vLLM V0, SGLang); never averaged."""
    requests_running: float | None = None


@dataclass(frozen=True, slots=True)
class CacheSample:
    """Cumulative counters of a response cache in front of the models (gateway, Redis...)."""

    name: str
    timestamp: datetime
    hits_total: float
    lookups_total: float


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Outcome of scraping one target in one cycle."""

    target: str
    """The target's URL with any credentials removed."""
    kind: str
    up: bool
    duration_seconds: float
    error: str = ""
    """One line; for ``up`` targets, notes such as ignored non-finite values."""


@dataclass(frozen=True, slots=True)
class CostLine:
    """One billing line from any source, in FOCUS 1.2 terms (snake_case), money as ``Decimal``.

    ``row_key`` identifies the line within its source and billing period (stable across
    re-reads of the same line). Datetimes are aware UTC; periods are [start, end).
    """

    row_key: str
    provider: str
    billed_cost: Decimal
    billing_currency: str
    charge_period_start: datetime
    charge_period_end: datetime
    billing_period_start: datetime | None = None
    billing_period_end: datetime | None = None
    effective_cost: Decimal | None = None
    list_cost: Decimal | None = None
    charge_category: str | None = None
    service_name: str | None = None
    service_category: str | None = None
    resource_id: str | None = None
    region_id: str | None = None
    sku_id: str | None = None
    billing_account_id: str | None = None
    sub_account_id: str | None = None
    consumed_quantity: Decimal | None = None
    consumed_unit: str | None = None
    tags: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """``x_`` custom columns and provider-specific fields worth keeping, JSON-safe values."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one collector saw in one cycle."""

    collector: str
    timestamp: datetime
    gpus: tuple[GpuSample, ...] = ()
    models: tuple[ModelSample, ...] = ()
    down_gpus: tuple[str, ...] = field(default=())
    """UUIDs (or ``node/index`` when the UUID is unknown) of GPUs that failed this cycle."""
    caches: tuple[CacheSample, ...] = ()
    targets: tuple[TargetStatus, ...] = ()


class CollectorError(Exception):
    """A collection cycle failed; nothing from it is stored. ``reason`` is one actionable line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CollectorDown(CollectorError):
    """The source is unavailable as a whole (e.g. no NVML library); retry on a back-off."""


class Collector(Protocol):
    """A reader of one source. See the module docstring for the error contract."""

    name: ClassVar[str]

    def collect(self, now: datetime) -> Snapshot:
        """Read the source once; raise ``CollectorError``/``CollectorDown`` on failure."""
        ...

    def close(self) -> None:
        """Release the source (e.g. ``nvmlShutdown``). Never raises."""
        ...


COLLECTORS: Mapping[str, str] = {
    "simulated": "collectors.simulated.SimulatedFleet",
    "nvml": "collectors.nvml.NvmlCollector",
    "scrape": "collectors.scrape.ScrapeCollector",
}
"""Built-in collectors by config key, as dotted paths imported on first use."""


def load_collector_class(kind: str) -> Any:
    """Import the class registered under ``kind``; ``KeyError`` names the known kinds."""
    if kind not in COLLECTORS:
        known = ", ".join(sorted(COLLECTORS))
        raise KeyError(f"unknown collector {kind!r} (known: {known})")
    return pkgutil.resolve_name(COLLECTORS[kind])
