"""Exporter families beyond the plain per-GPU readings: identity, processes, MIG, clock-event
idle, response caches and scrape targets. Split from ``daemon.exporter`` to keep rooms small.

Like the rest of the exporter: no I/O, absent readings give no sample, never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from collectors.base import GpuSample
from daemon.state import LiveView


class FamilySink(Protocol):
    """Where families are added (``daemon.exporter._Families``)."""

    def add(self, name: str, typ: str, doc: str, labels: Mapping[str, str], value: float) -> None:
        """Add one sample to family ``name``."""
        ...

    def declare(self, name: str, typ: str, doc: str) -> None:
        """Make sure family ``name`` is emitted even with no samples."""
        ...


def add_gpu_details(gpu: GpuSample, labels: Mapping[str, str], out: FamilySink) -> None:
    """Identity, clock-event idle, processes and MIG instances of one GPU that is up."""
    out.add(
        "gpu_info",
        "gauge",
        "GPU identity (always 1): PCI bus id beside the usual labels.",
        {**labels, "pci_bus_id": gpu.pci_bus_id or ""},
        1,
    )
    if gpu.clock_event_idle is not None:
        out.add(
            "gpu_clock_event_idle",
            "gauge",
            "1 when the driver reports the GpuIdle clock-event reason.",
            labels,
            1 if gpu.clock_event_idle else 0,
        )
    if gpu.processes is not None:
        out.add(
            "gpu_processes",
            "gauge",
            "Compute processes running on the GPU.",
            labels,
            len(gpu.processes),
        )
        for process in gpu.processes:
            if process.used_memory_bytes is None:
                continue
            out.add(
                "gpu_process_memory_bytes",
                "gauge",
                "GPU memory held by one compute process.",
                {**labels, "pid": str(process.pid), "process_name": process.name or ""},
                process.used_memory_bytes,
            )
    if gpu.mig_enabled is not None:
        out.add(
            "gpu_mig_enabled",
            "gauge",
            "1 when MIG mode is on for the GPU.",
            labels,
            1 if gpu.mig_enabled else 0,
        )
    for instance in gpu.mig_instances:
        mig_labels = {
            **labels,
            "gpu_instance_id": str(instance.gpu_instance_id),
            "profile": instance.profile or "",
        }
        for value, name, doc in (
            (instance.memory_used_bytes, "gpu_mig_memory_used_bytes", "MIG instance memory used."),
            (
                instance.memory_total_bytes,
                "gpu_mig_memory_total_bytes",
                "MIG instance memory in total.",
            ),
            (
                instance.engine_active_ratio,
                "gpu_mig_engine_active_ratio",
                "MIG instance engine activity (DCGM profiling, 0..1); NVML reports none.",
            ),
        ):
            if value is not None:
                out.add(name, "gauge", doc, mig_labels, value)


def add_scrape_families(view: LiveView, out: FamilySink) -> None:
    """Response caches and per-target scrape health."""
    for name in sorted(view.caches):
        cache = view.caches[name]
        out.add(
            "response_cache_hits",
            "counter",
            "Hits of a response cache in front of the models.",
            {"cache": name},
            cache.hits_total,
        )
        out.add(
            "response_cache_lookups",
            "counter",
            "Lookups of a response cache in front of the models.",
            {"cache": name},
            cache.lookups_total,
        )
    for key in sorted(view.targets):
        target = view.targets[key]
        labels = {"target": target.target, "kind": target.kind}
        out.add(
            "scrape_target_up",
            "gauge",
            "1 when the last scrape of the target succeeded.",
            labels,
            1 if target.up else 0,
        )
        out.add(
            "scrape_target_duration_seconds",
            "gauge",
            "Duration of the last scrape of the target.",
            labels,
            target.duration_seconds,
        )
        if target.error:
            out.add(
                "scrape_target_last_error_info",
                "gauge",
                "The last scrape's error or note for the target, as the error label (always 1).",
                {**labels, "error": target.error[:200]},
                1,
            )
