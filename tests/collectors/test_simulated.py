from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest

from collectors.base import Snapshot
from collectors.simulated import SimulatedFleet

T0 = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)
UUID_SHAPE = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def run(
    fleet: SimulatedFleet, steps: int, every: timedelta, start: datetime = T0
) -> list[Snapshot]:
    return [fleet.collect(start + i * every) for i in range(steps)]


def models_by_key(snapshot: Snapshot):
    return {(m.node, m.instance): m for m in snapshot.models}


def test_it_gives_the_same_samples_for_the_same_seed_and_times():
    a = run(SimulatedFleet(seed=7), 30, timedelta(minutes=7))
    b = run(SimulatedFleet(seed=7), 30, timedelta(minutes=7))
    c = run(SimulatedFleet(seed=8), 1, timedelta(minutes=7))

    assert a == b
    assert {g.uuid for g in c[0].gpus}.isdisjoint(g.uuid for g in a[0].gpus)


def test_it_draws_instant_readings_independently_of_how_often_it_was_called():
    often = SimulatedFleet(seed=3)
    rarely = SimulatedFleet(seed=3)
    run(often, 12, timedelta(minutes=5))
    rarely.collect(T0)

    later = T0 + timedelta(hours=1)
    a, b = often.collect(later), rarely.collect(later)

    assert [(g.utilization_ratio, g.power_watts) for g in a.gpus] == [
        (g.utilization_ratio, g.power_watts) for g in b.gpus
    ]


def test_it_names_nodes_and_gpus_like_a_real_fleet():
    fleet = SimulatedFleet(nodes=3, gpus_per_node=8)
    snap = fleet.collect(T0)

    assert len(snap.gpus) == 24
    assert {g.node for g in snap.gpus} == {"gpu-node-01", "gpu-node-02", "gpu-node-03"}
    assert all(UUID_SHAPE.match(g.uuid) for g in snap.gpus)
    assert len({g.uuid for g in snap.gpus}) == 24
    assert sorted(g.index for g in snap.gpus if g.node == "gpu-node-02") == list(range(8))
    assert {g.name for g in snap.gpus} == {"NVIDIA H100 80GB HBM3"}
    assert snap.collector == "simulated"
    assert snap.down_gpus == ()


def test_it_keeps_about_one_gpu_in_eight_idle_while_holding_memory():
    fleet = SimulatedFleet(nodes=4, gpus_per_node=8)
    idle = fleet.idle_uuids
    assert len(idle) == 4
    assert len(SimulatedFleet(nodes=1, gpus_per_node=2).idle_uuids) == 1
    assert SimulatedFleet(idle_gpus=0).idle_uuids == frozenset()

    for snap in run(fleet, 48, timedelta(minutes=30)):  # a whole day
        for gpu in snap.gpus:
            if gpu.uuid in idle:
                assert gpu.utilization_ratio is not None and gpu.utilization_ratio <= 0.02
                assert gpu.power_watts is not None and 70 <= gpu.power_watts <= 90
                assert gpu.memory_used_bytes is not None
                assert 60e9 <= gpu.memory_used_bytes <= 75e9
            else:
                assert gpu.utilization_ratio is not None and gpu.utilization_ratio >= 0.1
                assert gpu.power_watts is not None and gpu.power_watts > 120


def test_it_follows_a_daily_curve_low_at_night_high_in_the_afternoon():
    fleet = SimulatedFleet(nodes=8, gpus_per_node=8)
    busy = set(fleet.uuids) - fleet.idle_uuids

    def mean_util(at: datetime) -> float:
        snap = fleet.collect(at)
        return statistics.mean(g.utilization_ratio or 0.0 for g in snap.gpus if g.uuid in busy)

    night = mean_util(T0 + timedelta(hours=3))
    afternoon = mean_util(T0 + timedelta(hours=15))

    assert night < 0.35
    assert afternoon > 0.6


def test_it_makes_power_and_temperature_follow_load():
    snap = SimulatedFleet(nodes=4, gpus_per_node=8).collect(T0 + timedelta(hours=14))

    for gpu in snap.gpus:
        assert gpu.power_limit_watts == 700.0
        assert gpu.power_watts is not None and gpu.power_watts <= 700.0
    hot = max(snap.gpus, key=lambda g: g.power_watts or 0.0)
    cold = min(snap.gpus, key=lambda g: g.power_watts or 0.0)
    assert (hot.utilization_ratio or 0) > (cold.utilization_ratio or 0)
    assert (hot.temperature_celsius or 0) > (cold.temperature_celsius or 0) + 20


def test_it_integrates_power_into_a_monotonic_energy_counter():
    fleet = SimulatedFleet(seed=11)
    times = [T0 + timedelta(seconds=s) for s in (0, 15, 30, 47, 60, 300, 315, 3600, 3615)]
    snaps = [fleet.collect(t) for t in times]

    for uuid in fleet.uuids:
        readings = [next(g for g in s.gpus if g.uuid == uuid) for s in snaps]
        energy = [r.energy_joules for r in readings]
        assert all(e is not None for e in energy)
        assert energy == sorted(energy)
        expected = energy[0]
        for prev, cur, t_prev, t_cur in zip(readings, readings[1:], times, times[1:], strict=False):
            dt = (t_cur - t_prev).total_seconds()
            expected += (prev.power_watts + cur.power_watts) / 2 * dt
        assert energy[-1] == pytest.approx(expected, rel=1e-12)


def test_it_starts_counters_at_zero_at_a_given_start():
    start = T0 - timedelta(minutes=10)
    snap = SimulatedFleet(start=start).collect(T0)

    for gpu in snap.gpus:
        assert gpu.energy_joules == pytest.approx(gpu.power_watts * 600)
    assert sum(m.prompt_tokens_total for m in snap.models) > 0
    seeded = SimulatedFleet().collect(T0)
    assert min(g.energy_joules or 0.0 for g in seeded.gpus) > 1e7  # "since driver load", days ago


def test_it_grows_token_counters_with_traffic_but_not_for_the_idle_instance():
    fleet = SimulatedFleet(nodes=4, gpus_per_node=8)
    snaps = run(fleet, 20, timedelta(minutes=1), start=T0 + timedelta(hours=13))
    first, last = models_by_key(snaps[0]), models_by_key(snaps[-1])

    idle_instances = {k for k, m in first.items() if set(m.gpu_uuids) <= fleet.idle_uuids}
    assert len(idle_instances) == len(fleet.idle_uuids)
    owners = [u for m in snaps[0].models for u in m.gpu_uuids]
    assert sorted(owners) == sorted(fleet.uuids)  # every GPU in exactly one instance
    assert any(len(m.gpu_uuids) > 1 for m in snaps[0].models)  # tensor-parallel groups exist
    assert {"deepseek-ai/DeepSeek-V3", "Qwen/Qwen2.5-72B-Instruct"} <= {
        m.model for m in snaps[0].models
    }

    for key in first:
        series = [models_by_key(s)[key] for s in snaps]
        for field in ("prompt_tokens_total", "generation_tokens_total", "cache_queries_total",
                      "cache_hits_total", "requests_total"):  # fmt: skip
            values = [getattr(m, field) for m in series]
            assert values == sorted(values)
            if key in idle_instances:
                assert values[0] == values[-1]
            else:
                assert values[-1] > values[0]
        if key not in idle_instances:
            queries = last[key].cache_queries_total - first[key].cache_queries_total
            hits = last[key].cache_hits_total - first[key].cache_hits_total
            assert 0.4 <= hits / queries <= 0.7


def test_it_makes_an_idle_gpu_busy_and_its_instance_serve_on_override():
    fleet = SimulatedFleet(seed=5)
    target = sorted(fleet.idle_uuids)[0]

    def instance_of(snap: Snapshot):
        return next(m for m in snap.models if target in m.gpu_uuids)

    def gpu(snap: Snapshot):
        return next(g for g in snap.gpus if g.uuid == target)

    before = fleet.collect(T0)
    fleet.override_load(target, 0.9)
    busy = fleet.collect(T0 + timedelta(minutes=1))

    assert gpu(busy).utilization_ratio == 0.9
    assert gpu(busy).power_watts > 600
    assert instance_of(busy).prompt_tokens_total > instance_of(before).prompt_tokens_total
    assert target in fleet.idle_uuids  # still idle "by design"

    fleet.override_load(target, None)
    fleet.collect(T0 + timedelta(minutes=2))
    settled = fleet.collect(T0 + timedelta(minutes=3))
    again = fleet.collect(T0 + timedelta(minutes=4))
    assert gpu(again).utilization_ratio <= 0.02
    assert instance_of(again).prompt_tokens_total == instance_of(settled).prompt_tokens_total


def test_it_rejects_bad_overrides_and_fleets():
    fleet = SimulatedFleet()
    with pytest.raises(KeyError):
        fleet.override_load("GPU-00000000-0000-0000-0000-000000000000", 0.5)
    with pytest.raises(ValueError):
        fleet.override_load(fleet.uuids[0], 1.5)
    with pytest.raises(ValueError):
        SimulatedFleet(nodes=0)
    with pytest.raises(ValueError):
        SimulatedFleet(nodes=1, gpus_per_node=2, idle_gpus=3)


def test_it_never_runs_counters_backwards_when_time_does():
    fleet = SimulatedFleet()
    a = fleet.collect(T0 + timedelta(minutes=10))
    b = fleet.collect(T0)  # clock stepped back
    for ga, gb in zip(a.gpus, b.gpus, strict=True):
        assert gb.energy_joules >= ga.energy_joules
    for ma, mb in zip(a.models, b.models, strict=True):
        assert mb.prompt_tokens_total >= ma.prompt_tokens_total


def test_it_simulates_1024_gpus_quickly():
    fleet = SimulatedFleet(nodes=128, gpus_per_node=8)
    fleet.collect(T0)
    durations = []
    for i in range(1, 6):
        began = time.perf_counter()
        snap = fleet.collect(T0 + timedelta(seconds=15 * i))
        durations.append(time.perf_counter() - began)

    assert len(snap.gpus) == 1024
    assert len({g.uuid for g in snap.gpus}) == 1024
    assert {g.node for g in snap.gpus} >= {"gpu-node-01", "gpu-node-128"}
    assert len(fleet.idle_uuids) == 128
    assert statistics.median(durations) < 0.5  # loose guard; bench/ measures the real figure
