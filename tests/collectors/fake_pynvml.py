"""A fake ``pynvml`` module (nvidia-ml-py 13 shape) driven by a list of fake GPUs.

It mirrors the real bindings where the collector depends on them: ``NVMLError(value)`` returns an
instance of the generated subclass for that value (``NVMLError(3)`` is an
``NVMLError_NotSupported``), the ``NVML_ERROR_*`` values are nvml.h's, device calls before
``nvmlInit`` raise ``Uninitialized``, and ``nvmlShutdown`` without ``nvmlInit`` raises too.

Also as the real module: ``nvmlDeviceGetPciInfo(h).busId`` is ``bytes``; a process whose used
memory NVML cannot tell has ``usedGpuMemory = None``; the unversioned
``nvmlDeviceGetComputeRunningProcesses`` turns ``FUNCTION_NOT_FOUND`` into
``NVMLLibraryMismatchError`` (not an ``NVMLError``); utilization raises ``NotSupported`` on a
MIG-enabled GPU and on MIG device handles; empty MIG slots raise ``NotFound``.

A test makes any call fail with ``gpu.errors["nvmlDeviceGetPowerUsage"] = NVML_ERROR_GPU_IS_LOST``
(``mig.errors[...]`` for a MIG device handle, ``fake.process_name_errors[pid]`` for
``nvmlSystemGetProcessName``, ``fake.init_error = NVML_ERROR_LIBRARY_NOT_FOUND`` for ``nvmlInit``),
and removes a function from the bindings (``AttributeError``, as in old bindings) with
``fake.hide("nvmlDeviceGetCurrentClocksEventReasons")``.
"""

from __future__ import annotations

import string
import types
from collections import Counter
from ctypes import c_ulonglong
from dataclasses import dataclass, field
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22
NVML_ERROR_INSUFFICIENT_RESOURCES = 23
NVML_ERROR_FREQ_NOT_SUPPORTED = 24
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_INVALID_STATE = 29
NVML_ERROR_RESET_TYPE_NOT_SUPPORTED = 30
NVML_ERROR_UNKNOWN = 999

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_PSTATE_UNKNOWN = 32
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_VALUE_NOT_AVAILABLE_ulonglong = c_ulonglong(-1)
nvmlMemory_v2 = 0x02000028
nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonApplicationsClocksSetting = 0x2
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksThrottleReasonGpuIdle = 0x1
nvmlClocksThrottleReasonSwPowerCap = 0x4

_PUBLIC_CONSTANTS = (
    "NVML_TEMPERATURE_GPU", "NVML_CLOCK_GRAPHICS", "NVML_CLOCK_SM", "NVML_CLOCK_MEM",
    "NVML_PSTATE_UNKNOWN", "NVML_DEVICE_MIG_DISABLE", "NVML_DEVICE_MIG_ENABLE",
    "NVML_VALUE_NOT_AVAILABLE_ulonglong", "nvmlMemory_v2", "nvmlClocksEventReasonGpuIdle",
    "nvmlClocksEventReasonApplicationsClocksSetting", "nvmlClocksEventReasonSwPowerCap",
    "nvmlClocksThrottleReasonGpuIdle", "nvmlClocksThrottleReasonSwPowerCap",
)  # fmt: skip

_ERROR_CONSTANTS = {k: v for k, v in dict(globals()).items() if k.startswith("NVML_ERROR_")}


class NVMLError(Exception):
    """Like pynvml's: ``NVMLError(value)`` becomes the generated subclass for ``value``."""

    _valClassMapping: dict[int, type[NVMLError]] = {}
    value: int

    def __new__(cls, value: int, *args: Any) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int, *args: Any) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        names = {v: k for k, v in _ERROR_CONSTANTS.items()}
        return names.get(self.value, f"NVML Error with code {self.value}")


def _generate_error_classes() -> dict[str, type[NVMLError]]:
    """``NVML_ERROR_GPU_IS_LOST`` -> ``NVMLError_GpuIsLost``, as pynvml names them."""
    classes: dict[str, type[NVMLError]] = {}
    for const, value in _ERROR_CONSTANTS.items():
        name = "NVMLError_" + string.capwords(const.removeprefix("NVML_ERROR_"), "_").replace(
            "_", ""
        )

        def new(cls: type[NVMLError], *args: Any, _value: int = value) -> NVMLError:
            return NVMLError.__new__(cls, _value)

        def init(self: NVMLError, *args: Any, _value: int = value) -> None:
            Exception.__init__(self, _value)

        cls = type(name, (NVMLError,), {"__new__": new, "__init__": init})
        cls.__module__ = __name__
        NVMLError._valClassMapping[value] = cls
        classes[name] = cls
    return classes


_ERROR_CLASSES = _generate_error_classes()
globals().update(_ERROR_CLASSES)


class NVMLLibraryMismatchError(Exception):
    """pynvml raises this (not an ``NVMLError``) from unversioned calls the library lacks."""


@dataclass
class Utilization:
    gpu: int
    memory: int


@dataclass
class Memory:
    total: int
    free: int
    used: int


@dataclass
class MemoryV2:
    version: int
    total: int
    reserved: int
    free: int
    used: int


@dataclass
class PciInfo:
    """``nvmlPciInfo_t``: ``busId`` is ``bytes`` (a ``c_char`` array), as in the real module."""

    busIdLegacy: str | bytes
    domain: int
    bus: int
    device: int
    pciDeviceId: int
    pciSubSystemId: int
    busId: str | bytes


class ProcessInfo:
    """Like pynvml's ``nvmlFriendlyObject`` for ``c_nvmlProcessInfo_v3_t``."""

    def __init__(self, pid: int, usedGpuMemory: int | None, gpuInstanceId: int) -> None:
        self.pid = pid
        self.usedGpuMemory = usedGpuMemory
        self.gpuInstanceId = gpuInstanceId
        self.computeInstanceId = 0xFFFFFFFF if gpuInstanceId == 0xFFFFFFFF else 0


@dataclass
class FakeProcess:
    """A compute process; ``used_memory`` None = NVML reports NVML_VALUE_NOT_AVAILABLE."""

    pid: int
    used_memory: int | None = 1_073_741_824
    name: str | bytes | None = "python3"
    """``None``: ``nvmlSystemGetProcessName`` raises NotFound (e.g. another PID namespace)."""
    gpu_instance_id: int = 0xFFFFFFFF


@dataclass
class FakeMig:
    """One MIG device (GPU instance) in slot ``slot`` of its parent."""

    slot: int
    gpu_instance_id: int
    name: str | bytes = "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
    memory_total: int = 10_871_635_968
    memory_used: int = 4_000_000_000
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class FakeGpu:
    """One fake GPU, values in NVML's own units (%, bytes, mW, mJ, degrees C, MHz)."""

    uuid: str | bytes = "GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    utilization_gpu: int = 45
    utilization_memory: int = 22
    memory_total: int = 85_520_809_984
    memory_used: int = 70_000_000_000
    memory_reserved: int = 560_000_000
    power_mw: int = 312_456
    power_limit_mw: int = 700_000
    energy_mj: int = 4_335_301_032
    temperature: int = 54
    pci_bus_id: str | bytes = b"00000000:1A:00.0"
    sm_clock_mhz: int = 1_980
    mem_clock_mhz: int = 2_619
    pstate: int = 0
    clock_event_reasons: int = 0
    processes: list[FakeProcess] = field(default_factory=list)
    mig_mode: tuple[int, int] = (NVML_DEVICE_MIG_DISABLE, NVML_DEVICE_MIG_DISABLE)
    max_mig_devices: int = 7
    migs: list[FakeMig] = field(default_factory=list)
    """MIG devices by slot (``FakeMig.slot``); slots without one are empty."""
    errors: dict[str, int] = field(default_factory=dict)
    """Function name -> NVML error code that call raises for this GPU."""
    memory_v2: str = "ok"
    """``ok``; ``missing``: v2 raises FunctionNotFound; ``old-signature``: TypeError on v2."""


@dataclass(frozen=True)
class Handle:
    index: int


@dataclass(frozen=True)
class MigHandle:
    index: int
    slot: int


class FakeNvml(types.ModuleType):
    """The fake module. ``calls`` counts every function called, by name."""

    def __init__(self, gpus: list[FakeGpu] | None = None) -> None:
        super().__init__("pynvml")
        for const, value in _ERROR_CONSTANTS.items():
            setattr(self, const, value)
        for name, cls in _ERROR_CLASSES.items():
            setattr(self, name, cls)
        for const in _PUBLIC_CONSTANTS:
            setattr(self, const, globals()[const])
        self.NVMLError = NVMLError
        self.NVMLLibraryMismatchError = NVMLLibraryMismatchError
        self.NVML_SUCCESS = NVML_SUCCESS
        self.gpus: list[FakeGpu] = list(gpus or [])
        self.init_error: int | None = None
        self.count_error: int | None = None
        self.shutdown_error: int | None = None
        self.process_name_errors: dict[int, int] = {}
        self.calls: Counter[str] = Counter()
        self.refcount = 0

    def hide(self, *names: str) -> None:
        """Make ``pynvml.<name>`` raise ``AttributeError``, as with bindings that predate it."""

        def missing(_self: object) -> Any:
            raise AttributeError(names)

        hidden = {name: property(missing) for name in names}
        self.__class__ = type("FakeNvmlWithout", (self.__class__,), hidden)

    # -- library ---------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.refcount += 1

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        if self.refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        self.refcount -= 1
        if self.shutdown_error is not None:
            raise NVMLError(self.shutdown_error)

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        if self.count_error is not None:
            raise NVMLError(self.count_error)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        self._maybe_fail(self.gpus[index].errors, "nvmlDeviceGetHandleByIndex")
        return Handle(index)

    def nvmlSystemGetProcessName(self, pid: int) -> str | bytes:
        self._enter("nvmlSystemGetProcessName")
        if pid in self.process_name_errors:
            raise NVMLError(self.process_name_errors[pid])
        for gpu in self.gpus:
            for process in gpu.processes:
                if process.pid == pid and process.name is not None:
                    return process.name
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    # -- devices ---------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: Handle) -> str | bytes:
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, handle: Handle | MigHandle) -> str | bytes:
        if isinstance(handle, MigHandle):
            return self._mig(handle, "nvmlDeviceGetName").name
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetPciInfo(self, handle: Handle) -> PciInfo:
        gpu = self._gpu(handle, "nvmlDeviceGetPciInfo")
        return PciInfo(gpu.pci_bus_id[-12:], 0, 0x1A, 0, 0x233010DE, 0x16C110DE, gpu.pci_bus_id)

    def nvmlDeviceGetUtilizationRates(self, handle: Handle | MigHandle) -> Utilization:
        if isinstance(handle, MigHandle):
            self._mig(handle, "nvmlDeviceGetUtilizationRates")
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        if gpu.mig_mode[0] == NVML_DEVICE_MIG_ENABLE:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return Utilization(gpu=gpu.utilization_gpu, memory=gpu.utilization_memory)

    def nvmlDeviceGetMemoryInfo(
        self, handle: Handle | MigHandle, version: int | None = None
    ) -> Memory | MemoryV2:
        if isinstance(handle, MigHandle):
            mig = self._mig(handle, "nvmlDeviceGetMemoryInfo")
            free = mig.memory_total - mig.memory_used
            return Memory(total=mig.memory_total, free=free, used=mig.memory_used)
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        if version is None:  # v1: used includes the driver-reserved memory
            used = gpu.memory_used + gpu.memory_reserved
            return Memory(total=gpu.memory_total, free=gpu.memory_total - used, used=used)
        self.calls["nvmlDeviceGetMemoryInfo_v2"] += 1
        if gpu.memory_v2 == "old-signature":
            raise TypeError("nvmlDeviceGetMemoryInfo() got an unexpected keyword argument")
        if gpu.memory_v2 == "missing":
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        free = gpu.memory_total - gpu.memory_used - gpu.memory_reserved
        return MemoryV2(version, gpu.memory_total, gpu.memory_reserved, free, gpu.memory_used)

    def nvmlDeviceGetPowerUsage(self, handle: Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_mj

    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTemperature")
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def nvmlDeviceGetClockInfo(self, handle: Handle, type: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetClockInfo")
        self._maybe_fail(gpu.errors, f"nvmlDeviceGetClockInfo:{type}")
        if type == NVML_CLOCK_SM:
            return gpu.sm_clock_mhz
        if type == NVML_CLOCK_MEM:
            return gpu.mem_clock_mhz
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetPerformanceState(self, handle: Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetPerformanceState").pstate

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons").clock_event_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").clock_event_reasons

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Handle) -> list[ProcessInfo]:
        try:
            return self.nvmlDeviceGetComputeRunningProcesses_v3(handle, _name=None)
        except NVMLError as err:
            if err.value == NVML_ERROR_FUNCTION_NOT_FOUND:  # pynvml's @throwOnVersionMismatch
                raise NVMLLibraryMismatchError("Unversioned function called") from err
            raise

    def nvmlDeviceGetComputeRunningProcesses_v3(
        self, handle: Handle, _name: str | None = "nvmlDeviceGetComputeRunningProcesses_v3"
    ) -> list[ProcessInfo]:
        gpu = self._gpu(handle, _name or "nvmlDeviceGetComputeRunningProcesses")
        return [
            ProcessInfo(p.pid, p.used_memory, p.gpu_instance_id)  # pynvml maps N/A to None
            for p in gpu.processes
        ]

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: Handle) -> list[ProcessInfo]:
        return self.nvmlDeviceGetComputeRunningProcesses_v3(
            handle, _name="nvmlDeviceGetComputeRunningProcesses_v2"
        )

    # -- MIG -------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle: Handle) -> list[int]:
        return list(self._gpu(handle, "nvmlDeviceGetMigMode").mig_mode)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetMaxMigDeviceCount").max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Handle, index: int) -> MigHandle:
        gpu = self._gpu(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        self._maybe_fail(gpu.errors, f"nvmlDeviceGetMigDeviceHandleByIndex:{index}")
        if gpu.mig_mode[0] != NVML_DEVICE_MIG_ENABLE or not 0 <= index < gpu.max_mig_devices:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not any(mig.slot == index for mig in gpu.migs):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return MigHandle(handle.index, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: MigHandle) -> int:
        if not isinstance(handle, MigHandle):
            self._gpu(handle, "nvmlDeviceGetGpuInstanceId")
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self._mig(handle, "nvmlDeviceGetGpuInstanceId").gpu_instance_id

    # -- plumbing --------------------------------------------------------------------------

    def _enter(self, fn: str) -> None:
        self.calls[fn] += 1
        if self.refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: Handle, fn: str) -> FakeGpu:
        self._enter(fn)
        gpu = self.gpus[handle.index]
        self._maybe_fail(gpu.errors, fn)
        return gpu

    def _mig(self, handle: MigHandle, fn: str) -> FakeMig:
        self._enter(fn)
        gpu = self.gpus[handle.index]
        if gpu.mig_mode[0] != NVML_DEVICE_MIG_ENABLE:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)  # the MIG device went away with MIG mode
        mig = next(m for m in gpu.migs if m.slot == handle.slot)
        self._maybe_fail(mig.errors, fn)
        return mig

    @staticmethod
    def _maybe_fail(errors: dict[str, int], fn: str) -> None:
        code = errors.get(fn)
        if code is not None:
            raise NVMLError(code)
