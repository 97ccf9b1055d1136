"""One /metrics scrape with 1,024 GPUs: our snapshot collector vs classic ``Gauge`` objects.

Ours: ``generate_latest`` over ``TcowatchCollector`` (families rebuilt from ``LiveState``), and
what ``/metrics`` really serves: ``ExpositionCache``, which renders once per state change, so a
scrape between collection cycles is a cache hit. Baselines, measured in the same run: the same
GPU readings held in ``Gauge(...).labels(...).set(...)`` / ``Counter`` objects; the *floor* is
``generate_latest`` over those objects already filled (no update), the classic cycle is an
update plus ``generate_latest``. Issue 3's target: ours at most 1.2x the floor per render, and a
cached scrape far below it.

Run: ``python -m bench.bench_metrics [--gpus 1024] [--repeat 30]``. Not part of the test run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from collectors.base import GpuSample
from daemon.exporter import ExpositionCache, build_registry
from daemon.state import LiveState

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
LABELS = ("node", "gpu", "uuid", "model_name")
GAUGES = (
    ("utilization_ratio", "tcowatch_gpu_utilization_ratio"),
    ("memory_used_bytes", "tcowatch_gpu_memory_used_bytes"),
    ("memory_total_bytes", "tcowatch_gpu_memory_total_bytes"),
    ("power_watts", "tcowatch_gpu_power_watts"),
    ("power_limit_watts", "tcowatch_gpu_power_limit_watts"),
    ("temperature_celsius", "tcowatch_gpu_temperature_celsius"),
)


def fleet(gpus: int, cycle: int) -> tuple[GpuSample, ...]:
    return tuple(
        GpuSample(
            uuid=f"GPU-{i:08x}-0000-0000-0000-000000000000",
            node=f"node-{i // 8:03d}",
            index=i % 8,
            name="NVIDIA H100 80GB HBM3",
            timestamp=NOW,
            utilization_ratio=((i + cycle) % 100) / 100,
            memory_used_bytes=(i % 80) * 2**30,
            memory_total_bytes=80 * 2**30,
            power_watts=100.0 + (i + cycle) % 600,
            power_limit_watts=700.0,
            energy_joules=1e6 + cycle * 1e4 + i,
            temperature_celsius=40.0 + (i + cycle) % 40,
        )
        for i in range(gpus)
    )


class Baseline:
    """The classic instrumentation: long-lived metric objects updated in place."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = {
            attr: Gauge(name, f"{attr} (baseline)", LABELS, registry=self.registry)
            for attr, name in GAUGES
        }
        self.up = Gauge("tcowatch_gpu_up", "up (baseline)", LABELS, registry=self.registry)
        self.idle = Gauge("tcowatch_gpu_idle", "idle (baseline)", LABELS, registry=self.registry)
        self.energy = Counter(
            "tcowatch_gpu_energy_joules", "energy (baseline)", LABELS, registry=self.registry
        )
        self.last_energy: dict[str, float] = {}

    def update(self, samples: tuple[GpuSample, ...], idle: set[str]) -> None:
        for gpu in samples:
            values = (gpu.node, str(gpu.index), gpu.uuid, gpu.name)
            for attr, _ in GAUGES:
                reading = getattr(gpu, attr)
                if reading is not None:
                    self.gauges[attr].labels(*values).set(reading)
            self.up.labels(*values).set(1)
            self.idle.labels(*values).set(1 if gpu.uuid in idle else 0)
            if gpu.energy_joules is not None:
                delta = gpu.energy_joules - self.last_energy.get(gpu.uuid, 0.0)
                self.energy.labels(*values).inc(max(delta, 0.0))
                self.last_energy[gpu.uuid] = gpu.energy_joules


def timed(fn: Callable[[int], bytes], repeat: int) -> tuple[list[float], int]:
    times: list[float] = []
    size = 0
    for cycle in range(repeat):
        start = time.perf_counter()
        size = len(fn(cycle))
        times.append(time.perf_counter() - start)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    cycles = [fleet(args.gpus, c) for c in range(args.repeat + 1)]
    idle = {cycles[0][0].uuid}

    state = LiveState()
    ours_registry = build_registry(state)
    state.set_idle(idle)

    def ours(cycle: int) -> bytes:
        # the sampling job's own write into LiveState is not part of a scrape
        return generate_latest(ours_registry)

    def ours_with_update(cycle: int) -> bytes:
        state.record_samples(cycles[cycle + 1], (), ())
        return generate_latest(ours_registry)

    baseline = Baseline()
    baseline.update(cycles[0], idle)

    def classic(cycle: int) -> bytes:
        baseline.update(cycles[cycle + 1], idle)
        return generate_latest(baseline.registry)

    floor_baseline = Baseline()
    floor_baseline.update(cycles[0], idle)

    def floor(cycle: int) -> bytes:
        return generate_latest(floor_baseline.registry)

    state.record_samples(cycles[0], (), ())
    cache = ExpositionCache(state, ours_registry)

    def cached(cycle: int) -> bytes:
        return cache.render()

    for fn in (ours, ours_with_update, classic, floor, cached):  # warm-up
        fn(0)

    rows = [
        ("ours: render (no cache)", *timed(ours, args.repeat)),
        ("ours: record + render", *timed(ours_with_update, args.repeat)),
        ("ours: /metrics scrape (cached)", *timed(cached, args.repeat)),
        ("baseline: Gauge.set + scrape", *timed(classic, args.repeat)),
        ("baseline floor: filled Gauges", *timed(floor, args.repeat)),
    ]
    base_median = statistics.median(rows[-1][1])
    print(f"{args.gpus} GPUs, {args.repeat} runs each (median / p90 in ms)")
    print(f"{'variant':<32} {'median':>9} {'p90':>9} {'bytes':>9} {'vs floor':>12}")
    for name, times, size in rows:
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        ratio = median / base_median
        print(f"{name:<32} {median * 1e3:>9.2f} {p90 * 1e3:>9.2f} {size:>9} {ratio:>11.3f}x")


if __name__ == "__main__":
    main()
