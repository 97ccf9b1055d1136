"""Agent overhead: sampling 8 fake GPUs every second for 60 s, CPU seconds per sample and peak RSS.

``NvmlCollector`` over the fake ``pynvml`` module of the tests, against the same 60 samples read
the naive way in the same run: per sample and per GPU, every pynvml function called directly in
its own ``try``/``except``, nothing cached (handle, UUID, name, PCI id, process names are asked
every time). The clock is injected: one sample per simulated second, no real sleeping. Both
readers must produce the same samples (checked). The fake answers in Python, so the absolute
numbers are the Python-side cost; the NVML calls per sample show what a real driver would see.

Run: ``python bench/bench_agent.py [samples] [gpus]``.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.base import GpuProcess, GpuSample
from collectors.nvml import NvmlCollector
from tests.collectors.fake_pynvml import FakeGpu, FakeNvml, FakeProcess

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
NODE = "bench-node"


def fleet(gpus: int) -> FakeNvml:
    """``gpus`` H100s, each running two processes; every other one idle at P8."""
    fakes = []
    for i in range(gpus):
        idle = i % 2 == 1
        fakes.append(
            FakeGpu(
                uuid=f"GPU-{i:08x}-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
                pci_bus_id=f"00000000:{0x1A + i:02X}:00.0".encode(),
                utilization_gpu=0 if idle else 87,
                pstate=8 if idle else 0,
                clock_event_reasons=0x1 if idle else 0x4,
                processes=[
                    FakeProcess(pid=1000 + 2 * i, name="VLLM::EngineCore"),
                    FakeProcess(pid=1001 + 2 * i, used_memory=None, name=b"/usr/bin/python3"),
                ],
            )
        )
    return FakeNvml(fakes)


def naive_collect(nvml: Any, now: datetime) -> list[GpuSample]:
    """Every reading asked directly, each in its own try/except, nothing cached."""

    def get(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except nvml.NVMLError:
            return None

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    samples = []
    for index in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = text(nvml.nvmlDeviceGetUUID(h))
        name = get(nvml.nvmlDeviceGetName, h)
        pci = get(nvml.nvmlDeviceGetPciInfo, h)
        mig = get(nvml.nvmlDeviceGetMigMode, h)
        util = get(nvml.nvmlDeviceGetUtilizationRates, h)
        mem = get(nvml.nvmlDeviceGetMemoryInfo, h, version=nvml.nvmlMemory_v2)
        power = get(nvml.nvmlDeviceGetPowerUsage, h)
        limit = get(nvml.nvmlDeviceGetEnforcedPowerLimit, h)
        energy = get(nvml.nvmlDeviceGetTotalEnergyConsumption, h)
        temp = get(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
        sm = get(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM)
        memclk = get(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_MEM)
        pstate = get(nvml.nvmlDeviceGetPerformanceState, h)
        reasons = get(nvml.nvmlDeviceGetCurrentClocksEventReasons, h)
        procs = get(nvml.nvmlDeviceGetComputeRunningProcesses, h)
        processes = None
        if procs is not None:
            processes = []
            for p in procs:
                pname = get(nvml.nvmlSystemGetProcessName, p.pid)
                processes.append(
                    GpuProcess(p.pid, p.usedGpuMemory, text(pname) if pname is not None else None)
                )
        samples.append(
            GpuSample(
                uuid=uuid,
                node=NODE,
                index=index,
                name=text(name) if name is not None else "unknown",
                timestamp=now,
                utilization_ratio=util.gpu / 100 if util is not None else None,
                memory_used_bytes=mem.used if mem is not None else None,
                memory_total_bytes=mem.total if mem is not None else None,
                power_watts=power / 1000 if power is not None else None,
                power_limit_watts=limit / 1000 if limit is not None else None,
                energy_joules=energy / 1000 if energy is not None else None,
                temperature_celsius=float(temp) if temp is not None else None,
                pci_bus_id=text(pci.busId) if pci is not None else None,
                memory_utilization_ratio=util.memory / 100 if util is not None else None,
                memory_reserved_bytes=mem.reserved if mem is not None else None,
                sm_clock_hz=sm * 1e6 if sm is not None else None,
                memory_clock_hz=memclk * 1e6 if memclk is not None else None,
                pstate=pstate,
                clock_event_idle=bool(reasons & 1) if reasons is not None else None,
                processes=tuple(processes) if processes is not None else None,
                mig_enabled=mig[0] == 1 if mig is not None else None,
            )
        )
    return samples


def run(readers: list[Callable[[datetime], list[GpuSample]]], samples: int) -> list[list[float]]:
    """CPU seconds of each reader's ``samples`` collections, one per simulated second; the
    readers take turns on each second so that machine noise hits them alike."""
    costs: list[list[float]] = [[] for _ in readers]
    for i in range(samples):
        now = T0 + timedelta(seconds=i)
        for reader, cost in zip(readers, costs, strict=True):
            start = time.process_time()
            reader(now)
            cost.append(time.process_time() - start)
    return costs


def main(samples: int = 60, gpus: int = 8) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    ours_fake = fleet(gpus)
    collector = NvmlCollector(node=NODE, nvml=ours_fake)
    naive_fake = fleet(gpus)
    naive_fake.nvmlInit()

    def ours(now: datetime) -> list[GpuSample]:
        return list(collector.collect(now).gpus)

    if ours(T0) != naive_collect(naive_fake, T0):
        raise SystemExit("the two readers disagree on the samples")
    ours_fake.calls.clear()
    naive_fake.calls.clear()

    ours_costs, naive_costs = run([ours, lambda now: naive_collect(naive_fake, now)], samples)
    collector.close()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    def calls(fake: FakeNvml) -> float:
        return (sum(fake.calls.values()) - fake.calls["nvmlDeviceGetMemoryInfo_v2"]) / samples

    def row(label: str, ours: float, naive: float, digits: int = 3) -> None:
        print(f"{label:28} {ours:10.{digits}f} {naive:10.{digits}f} {ours / naive:8.2f}")

    print(f"Agent overhead: {gpus} fake GPUs, one sample per second for {samples} s")
    print(f"{'':28} {'ours':>10} {'baseline':>10} {'ratio':>8}")
    mean, median = statistics.mean, statistics.median
    row("CPU ms per sample (mean)", mean(ours_costs) * 1e3, mean(naive_costs) * 1e3)
    row("CPU ms per sample (median)", median(ours_costs) * 1e3, median(naive_costs) * 1e3)
    row("CPU s over the run", sum(ours_costs), sum(naive_costs), 4)
    row("NVML calls per sample", calls(ours_fake), calls(naive_fake), 1)
    print(
        f"peak RSS of the whole process: {peak_rss / 1024:.1f} MiB"
        f" (before sampling: {rss_before / 1024:.1f} MiB)"
    )


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
