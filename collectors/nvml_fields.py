"""The readings of one GPU through the NVML gateway: its ``GpuSample``, MIG instances, processes.

The readers here never call ``pynvml`` themselves: every call goes through a ``Gateway`` (the
``NvmlCollector``), which raises ``LifecycleError`` (the GPU is down this cycle; let it pass) or
``CallFailed`` (one call failed), and whose ``field`` turns a failed optional reading into
``None``. Values are converted to base units here: mW -> W, mJ -> J, MHz -> Hz, % -> ratio.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any, Protocol

from collectors.base import GpuProcess, GpuSample, MigInstance

logger = logging.getLogger(__name__)

# nvml.h return codes (stable ABI values; the bindings expose the same as NVML_ERROR_*).
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18
GPU_NOT_FOUND = 28

LIFECYCLE_ERRORS = frozenset(
    {GPU_IS_LOST, DRIVER_NOT_LOADED, LIB_RM_VERSION_MISMATCH, GPU_NOT_FOUND, UNINITIALIZED,
     RESET_REQUIRED}
)  # fmt: skip
"""Errors after which this NVML session cannot be trusted: re-initialise next cycle."""

ABSENT_FIELD_ERRORS = frozenset({NOT_SUPPORTED, NO_PERMISSION})
"""Expected per-field errors: the field is absent, logged at debug level only."""

_EMPTY_MIG_SLOT = frozenset({NOT_FOUND, INVALID_ARGUMENT})
_NO_PROCESS_NAME = frozenset({NOT_FOUND, NO_PERMISSION, NOT_SUPPORTED})

# nvml.h enum values, used when a binding lacks the named constant.
_CLOCK_SM = 1
_CLOCK_MEM = 2
_TEMPERATURE_GPU = 0
_MIG_ENABLE = 1
_GPU_IDLE_REASON = 0x1
_VALUE_NOT_AVAILABLE = 2**64 - 1
_MAX_PSTATE = 15

_MIG_PROFILE = re.compile(r"\bMIG\s+((?:\d+c\.)?\d+g\.\d+gb(?:\+\w+)*)\s*$", re.IGNORECASE)


class LifecycleError(Exception):
    """A lifecycle NVML error: the GPU is down this cycle and NVML needs re-initialising."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class CallFailed(Exception):
    """A non-lifecycle NVML error on one call (``FUNCTION_NOT_FOUND`` when the binding or the
    library lacks the function)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Gateway(Protocol):
    """The one way the readers reach NVML (implemented by ``NvmlCollector``)."""

    def query(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``pynvml.<fn>``; raises ``LifecycleError`` or ``CallFailed``."""
        ...

    def field(
        self, subject: str, fn: str, *args: Any, fallback: str | None = None, **kwargs: Any
    ) -> Any:
        """An optional reading about ``subject``: ``None`` when NVML does not give it; when
        ``fn`` does not exist, the older function ``fallback`` with the same positional
        arguments. ``LifecycleError`` passes."""
        ...

    def note_absent(self, subject: str, fn: str, failed: CallFailed) -> None:
        """Log a failed optional reading (a warning once for unexpected codes)."""
        ...


@dataclass(slots=True)
class GpuStatic:
    """What does not change for a GPU within one NVML session (read once, cached)."""

    handle: Any
    uuid: str
    name: str | None = None
    pci_bus_id: str | None = None
    max_mig_devices: int | None = None


def text(value: object) -> str:
    """NVML strings are ``bytes`` on old bindings (and in structs) and ``str`` on new ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def read_static(gw: Gateway, gpu: GpuStatic) -> None:
    """Fill in the name and PCI bus id of ``gpu`` until NVML gives them (then kept)."""
    if gpu.name is None:
        name = gw.field(gpu.uuid, "nvmlDeviceGetName", gpu.handle)
        gpu.name = text(name) if name is not None else None
    if gpu.pci_bus_id is None:
        pci = gw.field(gpu.uuid, "nvmlDeviceGetPciInfo", gpu.handle)
        bus_id = getattr(pci, "busId", None) if pci is not None else None
        gpu.pci_bus_id = (text(bus_id) or None) if bus_id is not None else None


def read_gpu(
    gw: Gateway,
    nvml: ModuleType,
    gpu: GpuStatic,
    *,
    index: int,
    node: str,
    now: datetime,
    names: ProcessNames,
) -> GpuSample:
    """Every reading of one GPU. ``LifecycleError`` passes (the GPU is down this cycle).

    On a MIG-enabled GPU, NVML reports no utilization (``NotSupported``), so
    ``utilization_ratio`` and ``memory_utilization_ratio`` are ``None`` there, never invented.
    """
    uuid, handle = gpu.uuid, gpu.handle
    mig_enabled = read_mig_mode(gw, handle, uuid)
    util = None if mig_enabled else gw.field(uuid, "nvmlDeviceGetUtilizationRates", handle)
    used, total, reserved = read_memory(gw, nvml, handle, uuid)
    power_mw = gw.field(uuid, "nvmlDeviceGetPowerUsage", handle)
    limit_mw = gw.field(uuid, "nvmlDeviceGetEnforcedPowerLimit", handle)
    energy_mj = gw.field(uuid, "nvmlDeviceGetTotalEnergyConsumption", handle)
    sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", _TEMPERATURE_GPU)
    temp = gw.field(uuid, "nvmlDeviceGetTemperature", handle, sensor)
    sm_mhz = gw.field(
        uuid, "nvmlDeviceGetClockInfo", handle, getattr(nvml, "NVML_CLOCK_SM", _CLOCK_SM)
    )
    mem_mhz = gw.field(
        uuid, "nvmlDeviceGetClockInfo", handle, getattr(nvml, "NVML_CLOCK_MEM", _CLOCK_MEM)
    )
    pstate = gw.field(uuid, "nvmlDeviceGetPerformanceState", handle)
    return GpuSample(
        uuid=uuid,
        node=node,
        index=index,
        name=gpu.name if gpu.name is not None else "unknown",
        timestamp=now,
        utilization_ratio=util.gpu / 100.0 if util is not None else None,
        memory_used_bytes=used,
        memory_total_bytes=total,
        power_watts=power_mw / 1000.0 if power_mw is not None else None,
        power_limit_watts=limit_mw / 1000.0 if limit_mw is not None else None,
        energy_joules=energy_mj / 1000.0 if energy_mj is not None else None,
        temperature_celsius=float(temp) if temp is not None else None,
        pci_bus_id=gpu.pci_bus_id,
        memory_utilization_ratio=util.memory / 100.0 if util is not None else None,
        memory_reserved_bytes=reserved,
        sm_clock_hz=sm_mhz * 1e6 if sm_mhz is not None else None,
        memory_clock_hz=mem_mhz * 1e6 if mem_mhz is not None else None,
        pstate=int(pstate) if pstate is not None and 0 <= int(pstate) <= _MAX_PSTATE else None,
        clock_event_idle=read_idle_reason(gw, nvml, handle, uuid),
        processes=read_processes(gw, handle, uuid, names),
        mig_enabled=mig_enabled,
        mig_instances=read_mig_instances(gw, gpu) if mig_enabled else (),
    )


def read_memory(
    gw: Gateway, nvml: ModuleType, handle: Any, uuid: str
) -> tuple[int | None, int | None, int | None]:
    """(used, total, reserved) bytes: v2 (``used`` without driver-reserved memory), else v1 with
    ``reserved`` unknown. A v2 error other than a missing function leaves memory absent."""
    v2 = getattr(nvml, "nvmlMemory_v2", None)
    fn = "nvmlDeviceGetMemoryInfo"
    info: Any = None
    if v2 is not None:
        try:
            info = gw.field(uuid, fn, handle, version=v2, fallback=fn)
        except TypeError:  # bindings older than the version= keyword
            logger.debug("nvmlDeviceGetMemoryInfo takes no version; using v1")
            info = gw.field(uuid, fn, handle)
    else:
        info = gw.field(uuid, fn, handle)
    if info is None:
        return None, None, None
    reserved = getattr(info, "reserved", None)
    return int(info.used), int(info.total), int(reserved) if reserved is not None else None


def read_idle_reason(gw: Gateway, nvml: ModuleType, handle: Any, uuid: str) -> bool | None:
    """The ``GpuIdle`` clock-event reason; the older ``...ThrottleReasons`` call where the
    bindings or the driver lack ``nvmlDeviceGetCurrentClocksEventReasons``."""
    reasons = gw.field(
        uuid,
        "nvmlDeviceGetCurrentClocksEventReasons",
        handle,
        fallback="nvmlDeviceGetCurrentClocksThrottleReasons",
    )
    if reasons is None:
        return None
    bit = getattr(
        nvml,
        "nvmlClocksEventReasonGpuIdle",
        getattr(nvml, "nvmlClocksThrottleReasonGpuIdle", _GPU_IDLE_REASON),
    )
    return bool(int(reasons) & bit)


def read_processes(
    gw: Gateway, handle: Any, uuid: str, names: ProcessNames
) -> tuple[GpuProcess, ...] | None:
    """Running compute processes (host PIDs); ``None`` when the list cannot be read, ``()`` when
    none run. A memory NVML cannot tell (``None``/``NVML_VALUE_NOT_AVAILABLE``) is ``None``."""
    raw = gw.field(
        uuid,
        "nvmlDeviceGetComputeRunningProcesses",
        handle,
        fallback="nvmlDeviceGetComputeRunningProcesses_v2",
    )
    if raw is None:
        return None
    processes = []
    for info in raw:
        pid = int(info.pid)
        memory = getattr(info, "usedGpuMemory", None)
        if memory is not None and int(memory) >= _VALUE_NOT_AVAILABLE:
            memory = None
        used = int(memory) if memory is not None else None
        processes.append(GpuProcess(pid=pid, used_memory_bytes=used, name=names.get(gw, pid)))
    return tuple(processes)


def read_mig_mode(gw: Gateway, handle: Any, uuid: str) -> bool | None:
    """Whether MIG is on now (the current mode, not the pending one); ``None`` when the GPU has
    no MIG (``NotSupported``)."""
    mode = gw.field(uuid, "nvmlDeviceGetMigMode", handle)
    if mode is None:
        return None
    return int(mode[0]) == _MIG_ENABLE


def read_mig_instances(gw: Gateway, gpu: GpuStatic) -> tuple[MigInstance, ...]:
    """The GPU instances of a MIG-enabled GPU with their memory; empty slots are skipped.

    NVML does not report utilization for MIG devices, so ``engine_active_ratio`` stays ``None``
    (only dcgm-exporter's ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` gives it). An instance whose GPU
    instance id cannot be read is left out (logged); ``LifecycleError`` passes.
    """
    if gpu.max_mig_devices is None:
        count = gw.field(gpu.uuid, "nvmlDeviceGetMaxMigDeviceCount", gpu.handle)
        if count is None:
            return ()
        gpu.max_mig_devices = int(count)
    instances = []
    for slot in range(gpu.max_mig_devices):
        subject = f"{gpu.uuid} MIG slot {slot}"
        try:
            mig = gw.query("nvmlDeviceGetMigDeviceHandleByIndex", gpu.handle, slot)
        except CallFailed as failed:
            if failed.code not in _EMPTY_MIG_SLOT:
                gw.note_absent(subject, "nvmlDeviceGetMigDeviceHandleByIndex", failed)
            continue
        gi_id = gw.field(subject, "nvmlDeviceGetGpuInstanceId", mig)
        if gi_id is None:
            continue
        name = gw.field(subject, "nvmlDeviceGetName", mig)
        memory = gw.field(subject, "nvmlDeviceGetMemoryInfo", mig)
        instances.append(
            MigInstance(
                gpu_instance_id=int(gi_id),
                profile=mig_profile(text(name)) if name is not None else None,
                memory_used_bytes=int(memory.used) if memory is not None else None,
                memory_total_bytes=int(memory.total) if memory is not None else None,
            )
        )
    return tuple(instances)


def mig_profile(name: str) -> str | None:
    """``"NVIDIA H100 80GB HBM3 MIG 1g.10gb"`` -> ``"1g.10gb"``; ``None`` if the name has none."""
    match = _MIG_PROFILE.search(name)
    return match.group(1) if match else None


class ProcessNames:
    """Process names by PID, looked up once per process through ``nvmlSystemGetProcessName``.

    Bounded: ``end_cycle`` drops the PIDs not seen since the previous ``end_cycle``. A name NVML
    will not give (``NotFound``, e.g. another PID namespace; ``NoPermission``) is cached as
    ``None``; other failures are retried next cycle. ``LifecycleError`` passes.
    """

    def __init__(self) -> None:
        self._names: dict[int, str | None] = {}
        self._seen: set[int] = set()

    def __len__(self) -> int:
        return len(self._names)

    def get(self, gw: Gateway, pid: int) -> str | None:
        """The name of ``pid`` or ``None``."""
        self._seen.add(pid)
        if pid in self._names:
            return self._names[pid]
        try:
            raw = gw.query("nvmlSystemGetProcessName", pid)
        except CallFailed as failed:
            if failed.code not in _NO_PROCESS_NAME:
                gw.note_absent("process names", "nvmlSystemGetProcessName", failed)
                return None
            logger.debug("no name for pid %d: %s", pid, failed)
            name = None
        else:
            name = text(raw) or None
        self._names[pid] = name
        return name

    def end_cycle(self) -> None:
        """Forget the PIDs not seen this cycle."""
        for pid in self._names.keys() - self._seen:
            del self._names[pid]
        self._seen.clear()
