"""Map a parsed utkuozdemir/nvidia_gpu_exporter payload (``nvidia_smi_*``) into ``GpuSample``s.

That exporter names series ``nvidia_smi_`` + the nvidia-smi query field, already scaled to base
units (``_ratio``, ``_bytes``, ``_watts``, ``_clock_hz``). Per-GPU series carry only a ``uuid``
label, usually without the ``GPU-`` prefix; the identity (name, index, PCI bus id) is joined from
``nvidia_smi_gpu_info{uuid,name,index,pci_bus_id,...} 1``. Fields nvidia-smi cannot read are not
exported at all, and non-finite values are treated the same way: absent, with a note.

Processes come from the opt-in ``nvidia_smi_compute_app_info{pid,process_name,uuid}`` and
``nvidia_smi_compute_app_used_memory_bytes`` families: ``processes`` is ``None`` when the payload
has no per-process families (not collected) or says the per-process query failed, and ``()`` for
a GPU with no process.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from collectors.base import GpuProcess, GpuSample
from collectors.exposition.parser import Exposition, Sample
from collectors.exposition.readings import reading_fields

logger = logging.getLogger(__name__)

_BARE_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}").fullmatch

_INFO = "nvidia_smi_gpu_info"
_APP_INFO = "nvidia_smi_compute_app_info"
_APP_MEMORY = "nvidia_smi_compute_app_used_memory_bytes"
_APP_COUNT = "nvidia_smi_compute_apps"
_APP_SUCCESS = "nvidia_smi_compute_apps_last_collect_success"

_FIELDS: dict[str, str] = {
    "nvidia_smi_utilization_gpu_ratio": "utilization_ratio",
    "nvidia_smi_utilization_memory_ratio": "memory_utilization_ratio",
    "nvidia_smi_memory_used_bytes": "memory_used_bytes",
    "nvidia_smi_memory_total_bytes": "memory_total_bytes",
    "nvidia_smi_memory_reserved_bytes": "memory_reserved_bytes",
    "nvidia_smi_power_draw_watts": "power_watts",
    "nvidia_smi_enforced_power_limit_watts": "power_limit_watts",
    "nvidia_smi_energy_joules_total": "energy_joules",
    "nvidia_smi_temperature_gpu": "temperature_celsius",
    "nvidia_smi_clocks_current_sm_clock_hz": "sm_clock_hz",
    "nvidia_smi_clocks_current_memory_clock_hz": "memory_clock_hz",
    "nvidia_smi_pstate": "pstate",
    "nvidia_smi_clocks_event_reasons_gpu_idle": "clock_event_idle",
    "nvidia_smi_clocks_throttle_reasons_gpu_idle": "clock_event_idle",
    "nvidia_smi_mig_mode_current": "mig_enabled",
}
"""Series name -> ``GpuSample`` field. ``clocks_throttle_reasons`` is nvidia-smi's older name."""


def normalise_uuid(uuid: str) -> str:
    """``GPU-`` + ``uuid`` when it is a bare 8-4-4-4-12 hex UUID, else ``uuid`` unchanged."""
    return f"GPU-{uuid}" if _BARE_UUID(uuid) else uuid


@dataclass(slots=True)
class _Notes:
    no_uuid: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    non_finite: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.no_uuid:
            out.append(f"{self.no_uuid} series without a uuid label skipped")
        if self.non_finite:
            names = ", ".join(sorted(self.non_finite))
            out.append(f"{sum(self.non_finite.values())} non-finite values ignored ({names})")
        if self.bad:
            names = ", ".join(sorted(self.bad))
            out.append(f"{sum(self.bad.values())} out-of-range values ignored ({names})")
        return out


@dataclass(slots=True)
class _Gpu:
    index: int = -1
    name: str = ""
    pci_bus_id: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    processes: dict[int, GpuProcess] = field(default_factory=dict)


def _uuid(sample: Sample, notes: _Notes) -> str:
    uuid = sample.labels.get("uuid", "")
    if not uuid:
        notes.no_uuid += 1
    return normalise_uuid(uuid)


def _finite(sample: Sample, notes: _Notes) -> float | None:
    if math.isfinite(sample.value):
        return sample.value
    notes.non_finite[sample.name] += 1
    return None


def _identity(expo: Exposition, gpus: dict[str, _Gpu], notes: _Notes) -> None:
    for sample in expo.named(_INFO):
        uuid = _uuid(sample, notes)
        if not uuid:
            continue
        labels = sample.labels
        try:
            index = int(labels.get("index", ""))
        except ValueError:
            index = -1
        gpu = gpus.setdefault(uuid, _Gpu())
        gpu.index = index
        gpu.name = labels.get("name", "")
        gpu.pci_bus_id = labels.get("pci_bus_id") or None


def _readings(expo: Exposition, gpus: dict[str, _Gpu], notes: _Notes) -> None:
    for metric, attr in _FIELDS.items():
        for sample in expo.named(metric):
            uuid = _uuid(sample, notes)
            if not uuid:
                continue
            gpu = gpus.setdefault(uuid, _Gpu())
            value = _finite(sample, notes)
            if value is None:
                continue
            if attr == "pstate" and not (value == int(value) and 0 <= value <= 15):
                notes.bad[metric] += 1
                continue
            if attr in ("clock_event_idle", "mig_enabled") and value not in (0.0, 1.0):
                notes.bad[metric] += 1
                continue
            gpu.values.setdefault(attr, value)


def _processes_known(expo: Exposition) -> bool:
    """Whether the payload carries per-process data at all (and its query did not fail)."""
    success = expo.named(_APP_SUCCESS)
    if success and all(sample.value != 1.0 for sample in success):
        return False
    families = (_APP_INFO, _APP_MEMORY, _APP_COUNT)
    return any(name in expo.types or expo.named(name) for name in families)


def _processes(expo: Exposition, gpus: dict[str, _Gpu], notes: _Notes) -> None:
    memory: dict[tuple[str, str], float] = {}
    for sample in expo.named(_APP_MEMORY):
        value = _finite(sample, notes)
        if value is not None:
            uuid = normalise_uuid(sample.labels.get("uuid", ""))
            memory[(uuid, sample.labels.get("pid", ""))] = value
    for sample in expo.named(_APP_INFO):
        uuid = _uuid(sample, notes)
        pid_text = sample.labels.get("pid", "")
        try:
            pid = int(pid_text)
        except ValueError:
            notes.bad[_APP_INFO] += 1
            continue
        if not uuid:
            continue
        used = memory.get((uuid, pid_text))
        gpu = gpus.setdefault(uuid, _Gpu())
        gpu.processes[pid] = GpuProcess(
            pid=pid,
            used_memory_bytes=None if used is None else round(used),
            name=sample.labels.get("process_name") or None,
        )


def _record(uuid: str, gpu: _Gpu, node: str, now: datetime, with_processes: bool) -> GpuSample:
    values = gpu.values
    processes = tuple(gpu.processes[pid] for pid in sorted(gpu.processes))
    return GpuSample(
        uuid=uuid,
        node=node,
        index=gpu.index,
        name=gpu.name,
        timestamp=now,
        pci_bus_id=gpu.pci_bus_id,
        processes=processes if with_processes else None,
        **reading_fields(values),
    )


def gpus_from_nvidia_smi(
    expo: Exposition, *, node: str, now: datetime
) -> tuple[list[GpuSample], list[str]]:
    """Map every GPU in an nvidia_gpu_exporter payload to one ``GpuSample``, keyed by UUID.

    The exporter has no host label, so every record gets ``node``. A GPU seen only in readings
    (no ``nvidia_smi_gpu_info``) keeps index -1 and an empty name. Returns the records (ordered by
    index, then UUID) and one-line notes (series without a uuid, non-finite or out-of-range
    values). Never raises for odd content: what cannot be mapped is left out and noted.
    """
    gpus: dict[str, _Gpu] = {}
    notes = _Notes()
    _identity(expo, gpus, notes)
    _readings(expo, gpus, notes)
    with_processes = _processes_known(expo)
    if with_processes:
        _processes(expo, gpus, notes)
    records = [_record(uuid, gpu, node, now, with_processes) for uuid, gpu in gpus.items()]
    records.sort(key=lambda gpu: (gpu.index, gpu.uuid))
    return records, notes.lines()
