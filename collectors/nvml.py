"""Local GPUs through NVML (the ``pynvml`` module of NVIDIA's ``nvidia-ml-py``).

This module holds the NVML session (init, re-init, back-off) and the gateway; what is read per
GPU, and how it is converted, is in ``collectors.nvml_fields``.

Every NVML call goes through one gateway, ``NvmlCollector.query``, which sorts NVML errors:

- ``NOT_SUPPORTED`` / ``NO_PERMISSION`` (and any other per-call error) on a field: the field is
  ``None``, never 0 or NaN; a function the bindings or the driver lack (``AttributeError``,
  ``FUNCTION_NOT_FOUND``, pynvml's ``NVMLLibraryMismatchError``) likewise, or its older variant
  where there is one;
- a lifecycle error (GPU lost, driver gone, library/driver mismatch, reset required...) on a GPU:
  that GPU goes into ``Snapshot.down_gpus`` for this cycle, and NVML is shut down and
  initialised again on the next cycle;
- ``nvmlInit`` failing (no library, no driver...) or ``import pynvml`` failing: ``CollectorDown``
  with one actionable line; further cycles within ``retry_backoff`` raise it again at once, without
  touching NVML.

Cost: a GPU's handle, UUID, name, PCI bus id and MIG slot count are read once per NVML session;
a field that is ``NOT_SUPPORTED`` (or a missing function) is not asked again until the session
is re-initialised or ``recheck_unsupported`` has passed; process names are cached per PID. A
steady cycle costs one ``nvmlDeviceGetCount`` plus about a dozen calls per GPU.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any, ClassVar, NoReturn, TypeGuard

from collectors.base import CollectorDown, CollectorError, Snapshot
from collectors.nvml_fields import (
    ABSENT_FIELD_ERRORS,
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    LIB_RM_VERSION_MISMATCH,
    LIBRARY_NOT_FOUND,
    LIFECYCLE_ERRORS,
    NO_PERMISSION,
    NOT_SUPPORTED,
    CallFailed,
    GpuStatic,
    LifecycleError,
    ProcessNames,
    read_gpu,
    read_static,
    text,
)

logger = logging.getLogger(__name__)

_STICKY_ERRORS = frozenset({NOT_SUPPORTED, FUNCTION_NOT_FOUND})
"""Per-field errors that will not change within an NVML session: not asked again."""

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

_FieldKey = tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]


class _NeverRaised(Exception):
    """Stands in for ``NVMLLibraryMismatchError`` in bindings that do not define it."""


def _use(fallback: str | None, code: int) -> TypeGuard[str]:
    """Whether to call the older ``fallback`` after an error ``code``: the function is missing."""
    return fallback is not None and code == FUNCTION_NOT_FOUND


def _import_pynvml() -> ModuleType:
    import pynvml  # lazy: a missing binding is a CollectorDown, and tests inject a fake

    module: ModuleType = pynvml
    return module


class NvmlCollector:
    """Samples every local GPU through NVML, keyed by UUID.

    Error contract: ``collect`` returns a ``Snapshot`` (GPUs that failed this cycle in
    ``down_gpus``), raises ``CollectorDown`` when NVML cannot be loaded or initialised (and again,
    without retrying, until ``retry_backoff`` has passed), or ``CollectorError`` when the GPU list
    itself cannot be read. Only ``pynvml.NVMLError`` (and ``NVMLLibraryMismatchError``) is
    caught; anything else is a bug.
    """

    name: ClassVar[str] = "nvml"

    def __init__(
        self,
        *,
        node: str | None = None,
        nvml: ModuleType | None = None,
        retry_backoff: timedelta = timedelta(seconds=60),
        recheck_unsupported: timedelta = timedelta(minutes=10),
    ) -> None:
        """``nvml`` replaces ``import pynvml`` (tests pass a fake); ``node`` defaults to the
        host name; a field found unsupported is asked again after ``recheck_unsupported``."""
        self.node = node if node is not None else socket.gethostname()
        self._nvml = nvml
        self._retry_backoff = retry_backoff
        self._recheck_unsupported = recheck_unsupported
        self._initialised = False
        self._reinit_pending = False
        self._down_reason: str | None = None
        self._retry_at: datetime | None = None
        self._warned: set[tuple[str, str, int]] = set()
        self._unavailable: dict[str, dict[_FieldKey, int]] = {}
        self._functions: dict[str, Callable[..., Any]] = {}
        self._nvml_errors: tuple[type[BaseException], ...] = ()
        self._unavailable_since: datetime | None = None
        self._static: dict[int, GpuStatic] = {}
        self._names = ProcessNames()

    # -- the gateway -------------------------------------------------------------------------

    def query(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``pynvml.<fn>``: the one place NVML is called.

        Raises ``LifecycleError`` (and schedules a re-init) on a lifecycle error, ``CallFailed``
        on any other NVML error, with ``FUNCTION_NOT_FOUND`` when the bindings lack ``fn``.
        """
        call = self._functions.get(fn)
        if call is None:
            call = self._resolve(fn)
        try:
            return call(*args, **kwargs)
        except self._nvml_errors as err:
            code = int(getattr(err, "value", FUNCTION_NOT_FOUND))  # no value: library mismatch
            if code in LIFECYCLE_ERRORS:
                self._reinit_pending = True
                raise LifecycleError(code, f"{fn}: {err}") from err
            raise CallFailed(code, f"{fn}: {err}") from err

    def _resolve(self, fn: str) -> Callable[..., Any]:
        nvml = self._module()
        call: Callable[..., Any] | None = getattr(nvml, fn, None)
        if call is None:
            raise CallFailed(FUNCTION_NOT_FOUND, f"{fn}: not in these NVML bindings")
        self._functions[fn] = call
        return call

    def field(
        self, subject: str, fn: str, *args: Any, fallback: str | None = None, **kwargs: Any
    ) -> Any:
        """One optional reading about ``subject`` (a UUID): ``None`` when NVML does not give it;
        when ``fn`` does not exist, ``fallback`` (an older function) with the same positional
        arguments. ``LifecycleError`` passes.

        ``NOT_SUPPORTED`` and missing functions are remembered per subject and (fn, arguments
        after the handle) and not asked again until re-init or ``recheck_unsupported``.
        """
        unavailable = self._unavailable.get(subject)
        if unavailable is not None:  # rare: only subjects with an unsupported field
            code = unavailable.get((fn, args[1:], tuple(kwargs.items())))
            if code is not None:
                return self.field(subject, fallback, *args) if _use(fallback, code) else None
        try:
            return self.query(fn, *args, **kwargs)
        except CallFailed as failed:
            self.note_absent(subject, fn, failed)
            if failed.code in _STICKY_ERRORS:
                key = (fn, args[1:], tuple(kwargs.items()))
                self._unavailable.setdefault(subject, {})[key] = failed.code
            if _use(fallback, failed.code):
                return self.field(subject, fallback, *args)
            return None

    def note_absent(self, subject: str, fn: str, failed: CallFailed) -> None:
        """Debug for expected absences; a warning once per (subject, fn, code) otherwise."""
        if failed.code in ABSENT_FIELD_ERRORS or failed.code == FUNCTION_NOT_FOUND:
            logger.debug("nvml %s on %s not available: %s", fn, subject, failed)
            return
        if (subject, fn, failed.code) in self._warned:
            logger.debug("nvml %s on %s failed again: %s", fn, subject, failed)
            return
        self._warned.add((subject, fn, failed.code))
        logger.warning("nvml %s on %s failed, reported as absent: %s", fn, subject, failed)

    # -- lifecycle ---------------------------------------------------------------------------

    def _module(self) -> ModuleType:
        if self._nvml is None:
            self._nvml = _import_pynvml()
        if not self._nvml_errors:
            mismatch = getattr(self._nvml, "NVMLLibraryMismatchError", _NeverRaised)
            self._nvml_errors = (self._nvml.NVMLError, mismatch)
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
            self.query("nvmlInit")
        except (LifecycleError, CallFailed) as failed:
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
        self._static.clear()
        self._unavailable.clear()
        self._functions.clear()
        if self._nvml is None:
            return
        try:
            self.query("nvmlShutdown")
        except (LifecycleError, CallFailed) as failed:
            logger.debug("nvmlShutdown failed (ignored): %s", failed)

    def close(self) -> None:
        """Shut NVML down if it was initialised. Never raises."""
        if self._initialised:
            self._shutdown()

    # -- sampling ----------------------------------------------------------------------------

    def collect(self, now: datetime) -> Snapshot:
        """Read every GPU once; see the class docstring for the error contract."""
        nvml = self._ensure_init(now)
        since = self._unavailable_since
        if since is None or now - since >= self._recheck_unsupported or now < since:
            self._unavailable.clear()
            self._unavailable_since = now
        try:
            count = int(self.query("nvmlDeviceGetCount"))
        except (LifecycleError, CallFailed) as failed:
            raise CollectorError(f"cannot list GPUs through NVML: {failed}") from None
        if any(index >= count for index in self._static):
            self._static.clear()
        gpus = []
        down: list[str] = []
        try:
            for index in range(count):
                key = f"{self.node}/{index}"
                try:
                    gpu = self._static.get(index)
                    if gpu is None:
                        handle = self.query("nvmlDeviceGetHandleByIndex", index)
                        gpu = GpuStatic(handle, text(self.query("nvmlDeviceGetUUID", handle)))
                        self._static[index] = gpu
                    key = gpu.uuid
                    read_static(self, gpu)
                    sample = read_gpu(
                        self, nvml, gpu, index=index, node=self.node, now=now, names=self._names
                    )
                    gpus.append(sample)
                except (LifecycleError, CallFailed) as failed:
                    logger.warning("GPU %s is down this cycle: %s", key, failed)
                    down.append(key)
        finally:
            self._names.end_cycle()
        return Snapshot(collector=self.name, timestamp=now, gpus=tuple(gpus), down_gpus=tuple(down))
