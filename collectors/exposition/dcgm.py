"""Map a parsed dcgm-exporter payload into ``GpuSample`` records.

dcgm-exporter prints one series per (field, GPU) with the identity in labels: ``gpu`` (index),
``UUID`` (``uuid`` with ``--use-old-namespace``), ``pci_bus_id``, ``modelName``, the host as
``Hostname`` (every release) or ``hostname`` (newer main), for MIG ``GPU_I_PROFILE``/``GPU_I_ID``,
and Kubernetes ``namespace``/``pod``/``container`` (old: ``pod_namespace``/``pod_name``/
``container_name``). Units are DCGM's: %, MiB, W, mJ, MHz; records are in base units.

Rules kept here:

- DCGM "blank" sentinels (int64 fields >= ``0x7ffffffffffffff0``, doubles >= ``2**47``) and
  non-finite values mean "not reported": the field is ``None`` and a note says so.
- On MIG GPUs, series labelled with a GPU instance give that instance's memory (``FB_*``) and
  engine activity (``DCGM_FI_PROF_GR_ENGINE_ACTIVE``). Device-wide fields printed on them (power,
  energy, temperature, clocks) belong to the parent GPU. ``DCGM_FI_DEV_GPU_UTIL`` is not
  supported on MIG, so the parent's utilization stays ``None`` unless a non-MIG series reports it.
- When several series report one field of one GPU (a GPU shared by several pods is printed once
  per pod), the first one wins; every pod becomes a ``Workload``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from collectors.base import GpuSample, MigInstance, Workload
from collectors.exposition.parser import Exposition, Sample

logger = logging.getLogger(__name__)

MIB = 1 << 20
DCGM_INT64_BLANK = 0x7FFFFFFFFFFFFFF0
"""``DCGM_INT64_BLANK``; +1..+3 are NOT_FOUND, NOT_SUPPORTED, NOT_PERMISSIONED."""
DCGM_FP64_BLANK = 140737488355328.0
"""``DCGM_FP64_BLANK`` (2**47); larger doubles are the other blank codes."""
_INT64_BLANK_AS_FLOAT = float(DCGM_INT64_BLANK)


@dataclass(frozen=True, slots=True)
class _Field:
    attr: str
    """Key in the accumulator: a ``GpuSample`` field name, or ``memory_free_bytes``."""
    int64: bool
    """DCGM int64 field (blank = ``DCGM_INT64_BLANK``) rather than a double."""
    multiply: float = 1.0
    divide: float = 1.0


_FIELDS: dict[str, _Field] = {
    "DCGM_FI_DEV_GPU_UTIL": _Field("utilization_ratio", int64=True, divide=100),
    "DCGM_FI_DEV_MEM_COPY_UTIL": _Field("memory_utilization_ratio", int64=True, divide=100),
    "DCGM_FI_DEV_FB_USED": _Field("memory_used_bytes", int64=True, multiply=MIB),
    "DCGM_FI_DEV_FB_FREE": _Field("memory_free_bytes", int64=True, multiply=MIB),
    "DCGM_FI_DEV_FB_RESERVED": _Field("memory_reserved_bytes", int64=True, multiply=MIB),
    "DCGM_FI_DEV_FB_TOTAL": _Field("memory_total_bytes", int64=True, multiply=MIB),
    "DCGM_FI_DEV_POWER_USAGE": _Field("power_watts", int64=False),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": _Field("power_limit_watts", int64=False),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": _Field("energy_joules", int64=True, divide=1000),
    "DCGM_FI_DEV_GPU_TEMP": _Field("temperature_celsius", int64=True),
    "DCGM_FI_DEV_SM_CLOCK": _Field("sm_clock_hz", int64=True, multiply=1e6),
    "DCGM_FI_DEV_MEM_CLOCK": _Field("memory_clock_hz", int64=True, multiply=1e6),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": _Field("engine_active_ratio", int64=False),
}

_BYTE_ATTRS = frozenset(
    {"memory_used_bytes", "memory_free_bytes", "memory_reserved_bytes", "memory_total_bytes"}
)
_MIG_ATTRS = _BYTE_ATTRS | {"engine_active_ratio"}
"""Fields that describe the GPU instance a MIG series is labelled with."""
_NOT_ON_MIG = frozenset({"utilization_ratio", "memory_utilization_ratio"})
"""Fields DCGM does not support per MIG instance: never attributed to the parent."""


@dataclass(slots=True)
class _MigAcc:
    profile: str | None
    values: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _GpuAcc:
    uuid: str
    node: str
    index: int
    name: str
    pci_bus_id: str | None
    values: dict[str, float] = field(default_factory=dict)
    mig: dict[int, _MigAcc] = field(default_factory=dict)
    workloads: dict[Workload, None] = field(default_factory=dict)


@dataclass(slots=True)
class _Notes:
    no_uuid: int = 0
    bad_mig_id: int = 0
    non_finite: Counter[str] = field(default_factory=Counter)
    blank: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.no_uuid:
            out.append(f"{self.no_uuid} series without a UUID label skipped")
        if self.bad_mig_id:
            out.append(f"{self.bad_mig_id} series with a non-integer GPU_I_ID skipped")
        if self.non_finite:
            names = ", ".join(sorted(self.non_finite))
            total = sum(self.non_finite.values())
            out.append(f"{total} non-finite values ignored ({names})")
        if self.blank:
            names = ", ".join(sorted(self.blank))
            total = sum(self.blank.values())
            out.append(f"{total} DCGM blank values treated as absent ({names})")
        return out


def _label(labels: dict[str, str], *names: str) -> str:
    """The first non-empty value among ``names``, else ``""``."""
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return ""


def _index(labels: dict[str, str]) -> int:
    try:
        return int(labels.get("gpu", ""))
    except ValueError:
        return -1


def _workload(labels: dict[str, str]) -> Workload | None:
    pod = _label(labels, "pod", "pod_name")
    if not pod:
        return None
    return Workload(
        namespace=_label(labels, "namespace", "pod_namespace"),
        pod=pod,
        container=_label(labels, "container", "container_name"),
    )


def _value(sample: Sample, spec: _Field, notes: _Notes) -> float | None:
    value = sample.value
    if not math.isfinite(value):
        notes.non_finite[sample.name] += 1
        return None
    if value >= (_INT64_BLANK_AS_FLOAT if spec.int64 else DCGM_FP64_BLANK):
        notes.blank[sample.name] += 1
        return None
    return value * spec.multiply / spec.divide


def _bytes(values: dict[str, float], attr: str) -> int | None:
    value = values.get(attr)
    return None if value is None else round(value)


def _total(values: dict[str, float], *, need_reserved: bool) -> int | None:
    """FB_TOTAL when reported, else used + free (+ reserved) when those are all reported."""
    total = _bytes(values, "memory_total_bytes")
    if total is not None:
        return total
    used = _bytes(values, "memory_used_bytes")
    free = _bytes(values, "memory_free_bytes")
    reserved = _bytes(values, "memory_reserved_bytes")
    if used is None or free is None or (need_reserved and reserved is None):
        return None
    return used + free + (reserved or 0)


def _gpu_acc(gpus: dict[str, _GpuAcc], uuid: str, labels: dict[str, str], node: str) -> _GpuAcc:
    acc = gpus.get(uuid)
    if acc is None:
        acc = _GpuAcc(
            uuid=uuid,
            node=_label(labels, "Hostname", "hostname") or node,
            index=_index(labels),
            name=labels.get("modelName", ""),
            pci_bus_id=labels.get("pci_bus_id") or None,
        )
        gpus[uuid] = acc
    else:
        if not acc.name:
            acc.name = labels.get("modelName", "")
        if acc.pci_bus_id is None:
            acc.pci_bus_id = labels.get("pci_bus_id") or None
    return acc


def _add(acc: _GpuAcc, sample: Sample, notes: _Notes) -> None:
    labels = sample.labels
    workload = _workload(labels)
    if workload is not None:
        acc.workloads.setdefault(workload, None)
    mig_id_text = labels.get("GPU_I_ID", "")
    mig: _MigAcc | None = None
    if mig_id_text:
        try:
            mig_id = int(mig_id_text)
        except ValueError:
            notes.bad_mig_id += 1
            return
        mig = acc.mig.get(mig_id)
        if mig is None:
            mig = acc.mig[mig_id] = _MigAcc(profile=labels.get("GPU_I_PROFILE") or None)
    spec = _FIELDS.get(sample.name)
    if spec is None:
        return
    value = _value(sample, spec, notes)
    if value is None:
        return
    if mig is None:
        acc.values.setdefault(spec.attr, value)
    elif spec.attr in _MIG_ATTRS:
        mig.values.setdefault(spec.attr, value)
    elif spec.attr in _NOT_ON_MIG:
        logger.debug("ignoring %s on MIG instance %s of %s", sample.name, mig_id_text, acc.uuid)
    else:
        acc.values.setdefault(spec.attr, value)


def _record(acc: _GpuAcc, now: datetime) -> GpuSample:
    values = acc.values
    instances = tuple(
        MigInstance(
            gpu_instance_id=mig_id,
            profile=mig.profile,
            memory_used_bytes=_bytes(mig.values, "memory_used_bytes"),
            memory_total_bytes=_total(mig.values, need_reserved=False),
            engine_active_ratio=mig.values.get("engine_active_ratio"),
        )
        for mig_id, mig in sorted(acc.mig.items())
    )
    return GpuSample(
        uuid=acc.uuid,
        node=acc.node,
        index=acc.index,
        name=acc.name,
        timestamp=now,
        utilization_ratio=values.get("utilization_ratio"),
        memory_utilization_ratio=values.get("memory_utilization_ratio"),
        memory_used_bytes=_bytes(values, "memory_used_bytes"),
        memory_total_bytes=_total(values, need_reserved=True),
        memory_reserved_bytes=_bytes(values, "memory_reserved_bytes"),
        power_watts=values.get("power_watts"),
        power_limit_watts=values.get("power_limit_watts"),
        energy_joules=values.get("energy_joules"),
        temperature_celsius=values.get("temperature_celsius"),
        sm_clock_hz=values.get("sm_clock_hz"),
        memory_clock_hz=values.get("memory_clock_hz"),
        engine_active_ratio=values.get("engine_active_ratio"),
        pci_bus_id=acc.pci_bus_id,
        mig_enabled=True if instances else None,
        mig_instances=instances,
        workloads=tuple(acc.workloads),
    )


def gpus_from_dcgm(
    expo: Exposition, *, node: str, now: datetime
) -> tuple[list[GpuSample], list[str]]:
    """Map every GPU in a dcgm-exporter payload to one ``GpuSample``, keyed by UUID.

    ``node`` is used when a series has no ``Hostname``/``hostname`` label. Returns the records
    (ordered by node, index, UUID) and one-line notes about what was skipped: series without a
    UUID, non-finite values, DCGM blank sentinels. Never raises for odd content: anything it
    cannot map is left out and noted. Only series whose name starts with ``DCGM_`` are read.
    """
    gpus: dict[str, _GpuAcc] = {}
    notes = _Notes()
    for sample in expo.samples:
        if not sample.name.startswith("DCGM_"):
            continue
        uuid = _label(sample.labels, "UUID", "uuid")
        if not uuid:
            notes.no_uuid += 1
            continue
        _add(_gpu_acc(gpus, uuid, sample.labels, node), sample, notes)
    records = [_record(acc, now) for acc in gpus.values()]
    records.sort(key=lambda gpu: (gpu.node, gpu.index, gpu.uuid))
    return records, notes.lines()
