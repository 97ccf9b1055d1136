"""A fake ``pynvml`` module (nvidia-ml-py 13 shape) driven by a list of fake GPUs.

It mirrors the real bindings where the collector depends on them: ``NVMLError(value)`` returns an
instance of the generated subclass for that value (``NVMLError(3)`` is an
``NVMLError_NotSupported``), the ``NVML_ERROR_*`` values are nvml.h's, device calls before
``nvmlInit`` raise ``Uninitialized``, and ``nvmlShutdown`` without ``nvmlInit`` raises too.

A test makes any call fail with ``gpu.errors["nvmlDeviceGetPowerUsage"] = NVML_ERROR_GPU_IS_LOST``
(or ``fake.init_error = NVML_ERROR_LIBRARY_NOT_FOUND`` for ``nvmlInit``).
"""

from __future__ import annotations

import string
import types
from collections import Counter
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
nvmlMemory_v2 = 0x02000028

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
class FakeGpu:
    """One fake GPU, values in NVML's own units (%, bytes, mW, mJ, degrees C)."""

    uuid: str | bytes = "GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    utilization_gpu: int = 45
    memory_total: int = 85_520_809_984
    memory_used: int = 70_000_000_000
    memory_reserved: int = 560_000_000
    power_mw: int = 312_456
    power_limit_mw: int = 700_000
    energy_mj: int = 4_335_301_032
    temperature: int = 54
    errors: dict[str, int] = field(default_factory=dict)
    """Function name -> NVML error code that call raises for this GPU."""
    memory_v2: str = "ok"
    """``ok``; ``missing``: v2 raises FunctionNotFound; ``old-signature``: TypeError on v2."""


@dataclass(frozen=True)
class Handle:
    index: int


class FakeNvml(types.ModuleType):
    """The fake module. ``calls`` counts every function called, by name."""

    def __init__(self, gpus: list[FakeGpu] | None = None) -> None:
        super().__init__("pynvml")
        for const, value in _ERROR_CONSTANTS.items():
            setattr(self, const, value)
        for name, cls in _ERROR_CLASSES.items():
            setattr(self, name, cls)
        self.NVMLError = NVMLError
        self.NVML_SUCCESS = NVML_SUCCESS
        self.NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
        self.nvmlMemory_v2 = nvmlMemory_v2
        self.gpus: list[FakeGpu] = list(gpus or [])
        self.init_error: int | None = None
        self.count_error: int | None = None
        self.shutdown_error: int | None = None
        self.calls: Counter[str] = Counter()
        self.refcount = 0

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
        self._maybe_fail(self.gpus[index], "nvmlDeviceGetHandleByIndex")
        return Handle(index)

    # -- devices ---------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: Handle) -> str | bytes:
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, handle: Handle) -> str | bytes:
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUtilizationRates(self, handle: Handle) -> Utilization:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        return Utilization(gpu=gpu.utilization_gpu, memory=gpu.utilization_gpu // 2)

    def nvmlDeviceGetMemoryInfo(self, handle: Handle, version: int | None = None) -> Any:
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

    # -- plumbing --------------------------------------------------------------------------

    def _enter(self, fn: str) -> None:
        self.calls[fn] += 1
        if self.refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: Handle, fn: str) -> FakeGpu:
        self._enter(fn)
        gpu = self.gpus[handle.index]
        self._maybe_fail(gpu, fn)
        return gpu

    @staticmethod
    def _maybe_fail(gpu: FakeGpu, fn: str) -> None:
        code = gpu.errors.get(fn)
        if code is not None:
            raise NVMLError(code)
