"""Local GPUs through NVML (the ``pynvml`` module of NVIDIA's ``nvidia-ml-py``).

Every NVML call goes through one gateway, ``NvmlCollector._query``, which sorts NVML errors:

- ``NOT_SUPPORTED`` / ``NO_PERMISSION`` (and any other per-call error) on a field: the field is
  ``None``, never 0 or NaN;
- a lifecycle error (GPU lost, driver gone, library/driver mismatch, reset required...) on a GPU:
  that GPU goes into ``Snapshot.down_gpus`` for this cycle, and NVML is shut down and
  initialised again on the next cycle;
- ``nvmlInit`` failing (no library, no driver...) or ``import pynvml`` failing: ``CollectorDown``
  with one actionable line; further cycles within ``retry_backoff`` raise it again at once, without
  touching NVML.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any, ClassVar, NoReturn

from collectors.base import CollectorDown, CollectorError, GpuSample, Snapshot

logger = logging.getLogger(__name__)

# nvml.h return codes (stable ABI values; the bindings expose the same as NVML_ERROR_*).
NO_PERMISSION = 4
NOT_SUPPORTED = 3
UNINITIALIZED = 1
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

_ABSENT_FIELD_ERRORS = frozenset({NOT_SUPPORTED, NO_PERMISSION})
_DEMO_HINT = "or enable collectors.simulated for a demo"
_INIT_REASONS = {
    LIBRARY_NOT_FOUND: "NVML library not found (libnvidia-ml.so.1): install the NVIDIA driver "
    f"on this node, {_DEMO_HINT}",
    DRIVER_NOT_LOADED: "NVIDIA driver not loaded: load the nvidia kernel module "
    f"(nvidia-smi must work), {_DEMO_HINT}",
    LIB_RM_VERSION_MISMATCH: "NVML and the loaded NVIDIA driver differ in version (driver "
    "upgraded without reboot): reboot the node or reload the nvidia kernel modules",
    NO_PERMISSION: "no permission to open the NVIDIA devices: run tcowatch as a user (or "
    "container) with access to the GPU device files",
}
_IMPORT_REASON = (
    f"Python NVML bindings missing (import pynvml failed): pip install nvidia-ml-py, {_DEMO_HINT}"
)


class _Lifecycle(Exception):
    """Internal: a lifecycle NVML error; the GPU is down and NVML needs re-initialising."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _CallFailed(Exception):
    """Internal: a non-lifecycle NVML error on one call."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _text(value: object) -> str:
    """NVML strings are ``bytes`` on old bindings and ``str`` on new ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _import_pynvml() -> ModuleType:
    import pynvml  # lazy: a missing binding is a CollectorDown, and tests inject a fake

    module: ModuleType = pynvml
    return module


class NvmlCollector:
    """Samples every local GPU through NVML, keyed by UUID.

    Error contract: ``collect`` returns a ``Snapshot`` (GPUs that failed this cycle in
    ``down_gpus``), raises ``CollectorDown`` when NVML cannot be loaded or initialised (and again,
    without retrying, until ``retry_backoff`` has passed), or ``CollectorError`` when the GPU list
    itself cannot be read. Only ``pynvml.NVMLError`` is caught; anything else is a bug.
    """

    name: ClassVar[str] = "nvml"

    def __init__(
        self,
        *,
        node: str | None = None,
        nvml: ModuleType | None = None,
        retry_backoff: timedelta = timedelta(seconds=60),
    ) -> None:
        """``nvml`` replaces ``import pynvml`` (tests pass a fake); ``node`` defaults to the
        host name."""
        self.node = node if node is not None else socket.gethostname()
        self._nvml = nvml
        self._retry_backoff = retry_backoff
        self._initialised = False
        self._reinit_pending = False
        self._down_reason: str | None = None
        self._retry_at: datetime | None = None
        self._warned: set[tuple[str, str, int]] = set()

    # -- the gateway -------------------------------------------------------------------------

    def _query(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one NVML function; ``_Lifecycle`` or ``_CallFailed`` on an NVML error."""
        nvml = self._module()
        try:
            return fn(*args, **kwargs)
        except nvml.NVMLError as err:
            code = int(err.value)
            if code in LIFECYCLE_ERRORS:
                self._reinit_pending = True
                raise _Lifecycle(code, f"{getattr(fn, '__name__', fn)}: {err}") from err
            raise _CallFailed(code, f"{getattr(fn, '__name__', fn)}: {err}") from err

    def _field(self, uuid: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One optional reading: ``None`` when NVML does not give it (lifecycle errors pass)."""
        try:
            return self._query(fn, *args)
        except _CallFailed as failed:
            self._note_absent(uuid, getattr(fn, "__name__", "?"), failed)
            return None

    def _note_absent(self, uuid: str, field: str, failed: _CallFailed) -> None:
        if failed.code in _ABSENT_FIELD_ERRORS or (uuid, field, failed.code) in self._warned:
            logger.debug("nvml %s on %s not available: %s", field, uuid, failed)
            return
        self._warned.add((uuid, field, failed.code))
        logger.warning("nvml %s on %s failed, reported as absent: %s", field, uuid, failed)

    # -- lifecycle ---------------------------------------------------------------------------

    def _module(self) -> ModuleType:
        if self._nvml is None:
            self._nvml = _import_pynvml()
        return self._nvml

    def _ensure_init(self, now: datetime) -> ModuleType:
        if self._initialised and self._reinit_pending:
            logger.info("re-initialising NVML after a lifecycle error")
            self._shutdown()
        self._reinit_pending = False
        if self._initialised:
            return self._module()
        if self._down_reason is not None and self._retry_at is not None and now < self._retry_at:
            retry = self._retry_at.isoformat(timespec="seconds")
            raise CollectorDown(f"{self._down_reason} (next retry after {retry})")
        try:
            nvml = self._module()
        except ImportError:
            self._mark_down(now, _IMPORT_REASON)
        try:
            self._query(nvml.nvmlInit)
        except (_Lifecycle, _CallFailed) as failed:
            fallback = f"NVML initialisation failed ({failed}, NVML error {failed.code})"
            self._mark_down(now, _INIT_REASONS.get(failed.code, fallback))
        self._initialised = True
        self._reinit_pending = False
        if self._down_reason is not None:
            logger.info("NVML is back after: %s", self._down_reason)
        self._down_reason = self._retry_at = None
        return nvml

    def _mark_down(self, now: datetime, reason: str) -> NoReturn:
        self._down_reason = reason
        self._retry_at = now + self._retry_backoff
        seconds = int(self._retry_backoff.total_seconds())
        raise CollectorDown(f"{reason} (retrying in {seconds} s)")

    def _shutdown(self) -> None:
        self._initialised = False
        if self._nvml is None:
            return
        try:
            self._query(self._nvml.nvmlShutdown)
        except (_Lifecycle, _CallFailed) as failed:
            logger.debug("nvmlShutdown failed (ignored): %s", failed)

    def close(self) -> None:
        """Shut NVML down if it was initialised. Never raises."""
        if self._initialised:
            self._shutdown()

    # -- sampling ----------------------------------------------------------------------------

    def collect(self, now: datetime) -> Snapshot:
        """Read every GPU once; see the class docstring for the error contract."""
        nvml = self._ensure_init(now)
        try:
            count = int(self._query(nvml.nvmlDeviceGetCount))
        except (_Lifecycle, _CallFailed) as failed:
            raise CollectorError(f"cannot list GPUs through NVML: {failed}") from None
        gpus: list[GpuSample] = []
        down: list[str] = []
        for index in range(count):
            key = f"{self.node}/{index}"
            try:
                handle = self._query(nvml.nvmlDeviceGetHandleByIndex, index)
                key = _text(self._query(nvml.nvmlDeviceGetUUID, handle))
                gpus.append(self._sample(nvml, handle, key, index, now))
            except (_Lifecycle, _CallFailed) as failed:
                logger.warning("GPU %s is down this cycle: %s", key, failed)
                down.append(key)
        return Snapshot(collector=self.name, timestamp=now, gpus=tuple(gpus), down_gpus=tuple(down))

    def _sample(
        self, nvml: ModuleType, handle: Any, uuid: str, index: int, now: datetime
    ) -> GpuSample:
        name = self._field(uuid, nvml.nvmlDeviceGetName, handle)
        util = self._field(uuid, nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = self._memory(nvml, handle, uuid)
        power_mw = self._field(uuid, nvml.nvmlDeviceGetPowerUsage, handle)
        limit_mw = self._field(uuid, nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        energy_mj = self._field(uuid, nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        temp = self._field(uuid, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        return GpuSample(
            uuid=uuid,
            node=self.node,
            index=index,
            name=_text(name) if name is not None else "unknown",
            timestamp=now,
            utilization_ratio=util.gpu / 100.0 if util is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else None,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            power_watts=power_mw / 1000.0 if power_mw is not None else None,
            power_limit_watts=limit_mw / 1000.0 if limit_mw is not None else None,
            energy_joules=energy_mj / 1000.0 if energy_mj is not None else None,
            temperature_celsius=float(temp) if temp is not None else None,
        )

    def _memory(self, nvml: ModuleType, handle: Any, uuid: str) -> Any:
        """v2 memory info (``used`` without driver-reserved memory), v1 where v2 is missing."""
        v2 = getattr(nvml, "nvmlMemory_v2", None)
        if v2 is not None:
            try:
                return self._query(nvml.nvmlDeviceGetMemoryInfo, handle, version=v2)
            except TypeError:  # bindings older than the version= keyword
                logger.debug("nvmlDeviceGetMemoryInfo takes no version; using v1")
            except _CallFailed as failed:
                if failed.code != FUNCTION_NOT_FOUND:
                    self._note_absent(uuid, "nvmlDeviceGetMemoryInfo", failed)
                    return None
        return self._field(uuid, nvml.nvmlDeviceGetMemoryInfo, handle)
