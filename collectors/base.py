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
from typing import Any, ClassVar, Protocol


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


@dataclass(frozen=True, slots=True)
class ModelSample:
    """Cumulative inference counters of one model instance (an engine serving one model)."""

    node: str
    model: str
    instance: str
    timestamp: datetime
    prompt_tokens_total: float
    generation_tokens_total: float
    cache_queries_total: float
    cache_hits_total: float
    requests_total: float
    gpu_uuids: tuple[str, ...] = ()
    """GPUs this instance runs on, when known; empty means "somewhere on ``node``"."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one collector saw in one cycle."""

    collector: str
    timestamp: datetime
    gpus: tuple[GpuSample, ...] = ()
    models: tuple[ModelSample, ...] = ()
    down_gpus: tuple[str, ...] = field(default=())
    """UUIDs (or ``node/index`` when the UUID is unknown) of GPUs that failed this cycle."""


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
}
"""Built-in collectors by config key, as dotted paths imported on first use."""


def load_collector_class(kind: str) -> Any:
    """Import the class registered under ``kind``; ``KeyError`` names the known kinds."""
    if kind not in COLLECTORS:
        known = ", ".join(sorted(COLLECTORS))
        raise KeyError(f"unknown collector {kind!r} (known: {known})")
    return pkgutil.resolve_name(COLLECTORS[kind])
