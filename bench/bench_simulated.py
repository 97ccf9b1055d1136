"""Side by side: ``SimulatedFleet.collect`` on 1,024 GPUs vs the naive way of drawing that fleet.

The baseline is what one writes first: per GPU and per sample, a fresh ``random.Random`` seeded
with (seed, uuid, minute) for the noise, and ``datetime`` arithmetic for the hour of day and the
time since the last sample. Run: ``python bench/bench_simulated.py [cycles]``.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collectors.base import GpuSample, ModelSample, Snapshot
from collectors.simulated import SimulatedFleet

NODES, GPUS_PER_NODE = 128, 8
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)


@dataclass
class _NaiveGpu:
    uuid: str
    node: str
    index: int
    idle: bool
    idle_watts: float
    memory_used: int
    energy: float = 0.0
    last_power: float | None = None
    last_time: datetime | None = None


@dataclass
class _NaiveInstance:
    node: str
    name: str
    gpus: list[_NaiveGpu]
    prompt: float = 0.0
    generation: float = 0.0
    last_time: datetime | None = None


class NaiveFleet:
    """The same fleet shape, drawn with a per-sample ``random.Random`` and datetime maths."""

    def __init__(self, seed: int = 42) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.gpus: list[_NaiveGpu] = []
        self.instances: list[_NaiveInstance] = []
        total = NODES * GPUS_PER_NODE
        idle = set(rng.sample(range(total), total // 8))
        for g in range(total):
            h = f"{rng.getrandbits(128):032x}"
            self.gpus.append(
                _NaiveGpu(
                    uuid=f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                    node=f"gpu-node-{g // GPUS_PER_NODE + 1:02d}",
                    index=g % GPUS_PER_NODE,
                    idle=g in idle,
                    idle_watts=rng.uniform(70, 90),
                    memory_used=int(rng.uniform(60e9, 75e9)) if g in idle else 76_000_000_000,
                )
            )
        for n in range(0, total, 4):  # one instance per 4 GPUs
            members = self.gpus[n : n + 4]
            self.instances.append(_NaiveInstance(members[0].node, f"inst-{n}", members))

    def collect(self, now: datetime) -> Snapshot:
        samples = []
        for gpu in self.gpus:
            minute = now.replace(second=0, microsecond=0)
            rng = random.Random(f"{self.seed}:{gpu.uuid}:{minute.isoformat()}")
            local = now.astimezone(UTC)
            hour = local.hour + local.minute / 60 + local.second / 3600
            curve = 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)
            if gpu.idle:
                util = rng.choice([0.0, 0.01, 0.02])
                power = gpu.idle_watts + rng.uniform(-2, 2)
            else:
                util = min(1.0, max(0.1, 0.2 + 0.65 * curve + rng.uniform(-0.06, 0.06)))
                power = gpu.idle_watts + util * (700 - gpu.idle_watts)
            if gpu.last_time is not None and gpu.last_power is not None:
                dt = (now - gpu.last_time) / timedelta(seconds=1)
                gpu.energy += (gpu.last_power + power) / 2 * max(dt, 0.0)
            gpu.last_time, gpu.last_power = now, power
            samples.append(
                GpuSample(
                    uuid=gpu.uuid,
                    node=gpu.node,
                    index=gpu.index,
                    name="NVIDIA H100 80GB HBM3",
                    timestamp=now,
                    utilization_ratio=round(util, 2),
                    memory_used_bytes=gpu.memory_used,
                    memory_total_bytes=85_520_809_984,
                    power_watts=round(power, 3),
                    power_limit_watts=700.0,
                    energy_joules=gpu.energy,
                    temperature_celsius=float(round(30 + power * 0.065)),
                )
            )
        models = []
        for inst in self.instances:
            load = sum(0.0 if g.idle else 0.5 for g in inst.gpus) / len(inst.gpus)
            if inst.last_time is not None:
                dt = (now - inst.last_time).total_seconds()
                inst.prompt += 9_000 * load * dt
                inst.generation += 1_400 * load * dt
            inst.last_time = now
            models.append(
                ModelSample(
                    node=inst.node,
                    model="Qwen/Qwen2.5-72B-Instruct",
                    instance=inst.name,
                    timestamp=now,
                    prompt_tokens_total=inst.prompt,
                    generation_tokens_total=inst.generation,
                    cache_queries_total=inst.prompt,
                    cache_hits_total=inst.prompt * 0.5,
                    requests_total=inst.prompt / 1_800,
                    gpu_uuids=tuple(g.uuid for g in inst.gpus),
                )
            )
        return Snapshot("naive", now, tuple(samples), tuple(models))


def _time(collect: object, cycles: int) -> list[float]:
    assert callable(collect)
    durations = []
    for i in range(cycles):
        began = time.perf_counter()
        collect(T0 + i * STEP)
        durations.append((time.perf_counter() - began) * 1000)
    return durations


def main(cycles: int = 200) -> None:
    ours = _time(SimulatedFleet(nodes=NODES, gpus_per_node=GPUS_PER_NODE).collect, cycles)
    baseline = _time(NaiveFleet().collect, cycles)
    print(f"SimulatedFleet.collect, {NODES * GPUS_PER_NODE} GPUs, {cycles} cycles (ms per collect)")
    print(f"{'':>8} {'ours':>9} {'baseline':>9} {'ratio':>7}")
    for label, pick in (
        ("mean", statistics.mean),
        ("median", statistics.median),
        ("p95", lambda xs: statistics.quantiles(xs, n=20)[-1]),
        ("max", max),
    ):
        a, b = pick(ours), pick(baseline)
        print(f"{label:>8} {a:9.2f} {b:9.2f} {b / a:6.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
