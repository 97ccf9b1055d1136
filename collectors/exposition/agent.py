"""Map a tcowatch agent's own ``/metrics`` (``tcowatch_gpu_*``) back into ``GpuSample`` records.

The names and labels are those ``daemon.exporter`` writes: every per-GPU series carries
``node``, ``gpu`` (index), ``uuid`` and ``model_name``; readings are already in base units.
``tcowatch_gpu_info`` adds ``pci_bus_id``; per-process memory adds ``pid``/``process_name``; MIG
series add ``gpu_instance_id``/``profile``. A GPU with ``tcowatch_gpu_up 0`` is reported in the
notes as ``down: <uuid>`` (or ``down: <node>/<index>`` when the agent never knew its UUID) and
never as a record. An absent series means "not reported", as the exporter never writes NaN.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from collectors.base import GpuProcess, GpuSample, MigInstance
from collectors.exposition.parser import Exposition, Sample
from collectors.exposition.readings import reading_fields

logger = logging.getLogger(__name__)

PREFIX = "tcowatch_gpu_"
_UP = "tcowatch_gpu_up"
_INFO = "tcowatch_gpu_info"
_PROCESS_COUNT = "tcowatch_gpu_processes"
_PROCESS_MEMORY = "tcowatch_gpu_process_memory_bytes"

_FIELDS: dict[str, str] = {
    "tcowatch_gpu_utilization_ratio": "utilization_ratio",
    "tcowatch_gpu_memory_used_bytes": "memory_used_bytes",
    "tcowatch_gpu_memory_total_bytes": "memory_total_bytes",
    "tcowatch_gpu_power_watts": "power_watts",
    "tcowatch_gpu_power_limit_watts": "power_limit_watts",
    "tcowatch_gpu_energy_joules_total": "energy_joules",
    "tcowatch_gpu_temperature_celsius": "temperature_celsius",
    "tcowatch_gpu_memory_utilization_ratio": "memory_utilization_ratio",
    "tcowatch_gpu_memory_reserved_bytes": "memory_reserved_bytes",
    "tcowatch_gpu_sm_clock_hertz": "sm_clock_hz",
    "tcowatch_gpu_memory_clock_hertz": "memory_clock_hz",
    "tcowatch_gpu_pstate": "pstate",
    "tcowatch_gpu_engine_active_ratio": "engine_active_ratio",
    "tcowatch_gpu_clock_event_idle": "clock_event_idle",
    "tcowatch_gpu_mig_enabled": "mig_enabled",
}
"""Per-GPU reading series -> ``GpuSample`` field."""

_MIG_FIELDS: dict[str, str] = {
    "tcowatch_gpu_mig_memory_used_bytes": "memory_used_bytes",
    "tcowatch_gpu_mig_memory_total_bytes": "memory_total_bytes",
    "tcowatch_gpu_mig_engine_active_ratio": "engine_active_ratio",
}
"""Per-MIG-instance series -> ``MigInstance`` field."""


@dataclass(slots=True)
class _Notes:
    no_uuid: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    non_finite: Counter[str] = field(default_factory=Counter)
    unlisted_processes: int = 0

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.no_uuid:
            out.append(f"{self.no_uuid} series without a uuid label skipped")
        if self.non_finite:
            names = ", ".join(sorted(self.non_finite))
            out.append(f"{sum(self.non_finite.values())} non-finite values ignored ({names})")
        if self.bad:
            names = ", ".join(sorted(self.bad))
            out.append(f"{sum(self.bad.values())} malformed series ignored ({names})")
        if self.unlisted_processes:
            out.append(f"{self.unlisted_processes} processes without a memory reading not listed")
        return out


@dataclass(slots=True)
class _Mig:
    profile: str | None
    values: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Gpu:
    node: str
    index: int
    name: str
    pci_bus_id: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    process_count: int | None = None
    processes: dict[int, GpuProcess] = field(default_factory=dict)
    mig: dict[int, _Mig] = field(default_factory=dict)


def _int_label(labels: dict[str, str], name: str) -> int | None:
    try:
        return int(labels.get(name, ""))
    except ValueError:
        return None


def _gpu(gpus: dict[str, _Gpu], sample: Sample, node: str, notes: _Notes) -> _Gpu | None:
    labels = sample.labels
    uuid = labels.get("uuid", "")
    if not uuid:
        notes.no_uuid += 1
        return None
    gpu = gpus.get(uuid)
    if gpu is None:
        index = _int_label(labels, "gpu")
        gpu = gpus[uuid] = _Gpu(
            node=labels.get("node") or node,
            index=-1 if index is None else index,
            name=labels.get("model_name", ""),
        )
    return gpu


def _finite(sample: Sample, notes: _Notes) -> float | None:
    if math.isfinite(sample.value):
        return sample.value
    notes.non_finite[sample.name] += 1
    return None


def _down(expo: Exposition) -> list[str]:
    """Keys of GPUs the agent reports down: UUID, or ``node/index`` when the UUID is unknown."""
    down: list[str] = []
    for sample in expo.named(_UP):
        if sample.value != 0.0:
            continue
        labels = sample.labels
        uuid = labels.get("uuid", "")
        down.append(uuid or f"{labels.get('node', '')}/{labels.get('gpu', '')}")
    return sorted(set(down))


def _readings(expo: Exposition, gpus: dict[str, _Gpu], node: str, notes: _Notes) -> None:
    for metric, attr in _FIELDS.items():
        for sample in expo.named(metric):
            gpu = _gpu(gpus, sample, node, notes)
            value = _finite(sample, notes)
            if gpu is not None and value is not None:
                gpu.values.setdefault(attr, value)
    for sample in expo.named(_INFO):
        gpu = _gpu(gpus, sample, node, notes)
        if gpu is not None:
            gpu.pci_bus_id = sample.labels.get("pci_bus_id") or None


def _processes(expo: Exposition, gpus: dict[str, _Gpu], node: str, notes: _Notes) -> None:
    for sample in expo.named(_PROCESS_COUNT):
        gpu = _gpu(gpus, sample, node, notes)
        value = _finite(sample, notes)
        if gpu is not None and value is not None:
            gpu.process_count = round(value)
    for sample in expo.named(_PROCESS_MEMORY):
        gpu = _gpu(gpus, sample, node, notes)
        value = _finite(sample, notes)
        pid = _int_label(sample.labels, "pid")
        if pid is None:
            notes.bad[sample.name] += 1
            continue
        if gpu is not None and value is not None:
            name = sample.labels.get("process_name") or None
            gpu.processes[pid] = GpuProcess(pid=pid, used_memory_bytes=round(value), name=name)


def _mig(expo: Exposition, gpus: dict[str, _Gpu], node: str, notes: _Notes) -> None:
    for metric, attr in _MIG_FIELDS.items():
        for sample in expo.named(metric):
            gpu = _gpu(gpus, sample, node, notes)
            value = _finite(sample, notes)
            instance_id = _int_label(sample.labels, "gpu_instance_id")
            if instance_id is None:
                notes.bad[metric] += 1
                continue
            if gpu is None or value is None:
                continue
            mig = gpu.mig.get(instance_id)
            if mig is None:
                mig = gpu.mig[instance_id] = _Mig(profile=sample.labels.get("profile") or None)
            mig.values.setdefault(attr, value)


def _int(values: dict[str, float], attr: str) -> int | None:
    value = values.get(attr)
    return None if value is None else round(value)


def _record(uuid: str, gpu: _Gpu, now: datetime, notes: _Notes) -> GpuSample:
    values = gpu.values
    processes: tuple[GpuProcess, ...] | None = None
    if gpu.process_count is not None or gpu.processes:
        processes = tuple(gpu.processes[pid] for pid in sorted(gpu.processes))
        notes.unlisted_processes += max(0, (gpu.process_count or 0) - len(processes))
    instances = tuple(
        MigInstance(
            gpu_instance_id=instance_id,
            profile=mig.profile,
            memory_used_bytes=_int(mig.values, "memory_used_bytes"),
            memory_total_bytes=_int(mig.values, "memory_total_bytes"),
            engine_active_ratio=mig.values.get("engine_active_ratio"),
        )
        for instance_id, mig in sorted(gpu.mig.items())
    )
    return GpuSample(
        uuid=uuid,
        node=gpu.node,
        index=gpu.index,
        name=gpu.name,
        timestamp=now,
        pci_bus_id=gpu.pci_bus_id,
        processes=processes,
        mig_instances=instances,
        **reading_fields(values),
    )


def gpus_from_agent(
    expo: Exposition, *, node: str, now: datetime
) -> tuple[list[GpuSample], list[str]]:
    """Map a tcowatch agent's ``/metrics`` back into one ``GpuSample`` per GPU that is up.

    ``node`` is used for series without a ``node`` label. GPUs with ``tcowatch_gpu_up 0`` are
    left out and listed in the notes as ``down: <key>``; the other notes are one-line remarks
    (series without a uuid, non-finite values, processes the agent could not list). Records are
    ordered by node, index, UUID. Never raises for odd content.
    """
    gpus: dict[str, _Gpu] = {}
    notes = _Notes()
    _readings(expo, gpus, node, notes)
    _processes(expo, gpus, node, notes)
    _mig(expo, gpus, node, notes)
    down = _down(expo)
    down_set = set(down)
    records = [_record(uuid, gpu, now, notes) for uuid, gpu in gpus.items() if uuid not in down_set]
    records.sort(key=lambda gpu: (gpu.node, gpu.index, gpu.uuid))
    return records, [f"down: {key}" for key in down] + notes.lines()
