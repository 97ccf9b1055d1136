"""Per-minute rollups: averages, energy with counter resets, idle seconds, counter deltas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors.base import GpuSample, ModelSample, Snapshot
from daemon.rollup import MinuteBuffer

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def gpu(at: datetime, util: float | None, power: float, energy: float | None) -> GpuSample:
    return GpuSample(
        uuid="GPU-1",
        node="n1",
        index=0,
        name="H100",
        timestamp=at,
        utilization_ratio=util,
        memory_used_bytes=10 * 2**30,
        memory_total_bytes=80 * 2**30,
        power_watts=power,
        power_limit_watts=700.0,
        energy_joules=energy,
    )


def model(at: datetime, prompt: float, requests: float) -> ModelSample:
    return ModelSample(
        node="n1",
        model="m",
        instance="i0",
        timestamp=at,
        prompt_tokens_total=prompt,
        generation_tokens_total=0.0,
        cache_queries_total=prompt,
        cache_hits_total=prompt / 2,
        requests_total=requests,
        gpu_uuids=("GPU-1",),
    )


def feed(buffer: MinuteBuffer, *samples: GpuSample | ModelSample) -> None:
    for s in samples:
        if isinstance(s, GpuSample):
            buffer.add(Snapshot(collector="t", timestamp=s.timestamp, gpus=(s,)))
        else:
            buffer.add(Snapshot(collector="t", timestamp=s.timestamp, models=(s,)))


def test_it_waits_for_the_minute_to_complete() -> None:
    buffer = MinuteBuffer()
    feed(buffer, gpu(T0, 0.5, 300, 1000))
    assert not buffer.drain(before=T0 + timedelta(seconds=59))
    rows = buffer.drain(before=T0 + timedelta(minutes=1)).gpus
    assert [r.bucket_start for r in rows] == [T0]
    assert buffer.pending_minutes() == []


def test_it_averages_and_integrates_energy_across_a_counter_reset() -> None:
    buffer = MinuteBuffer()
    feed(
        buffer,
        gpu(T0, 0.2, 200, 1000),
        gpu(T0 + timedelta(seconds=15), 0.4, 400, 7000),
        gpu(T0 + timedelta(seconds=30), 0.6, 300, 50),  # driver reload: counter restarted
    )
    (row,) = buffer.drain(before=T0 + timedelta(minutes=1)).gpus
    assert row.samples == 3
    assert row.avg_utilization_ratio == pytest.approx(0.4)
    assert row.max_utilization_ratio == pytest.approx(0.6)
    assert row.avg_power_watts == pytest.approx(300)
    assert row.energy_joules == pytest.approx(6000 + 300 * 15)


def test_it_continues_deltas_across_minutes() -> None:
    buffer = MinuteBuffer()
    feed(buffer, gpu(T0 + timedelta(seconds=45), 0.5, 300, 1000))
    buffer.drain(before=T0 + timedelta(minutes=1))
    feed(buffer, gpu(T0 + timedelta(seconds=60), 0.5, 300, 5500))
    (row,) = buffer.drain(before=T0 + timedelta(minutes=2)).gpus
    assert row.energy_joules == pytest.approx(4500)


def test_it_counts_idle_seconds_only_without_inference() -> None:
    buffer = MinuteBuffer()
    feed(
        buffer,
        model(T0, 100, 1),
        gpu(T0, 0.0, 80, 0),
        gpu(T0 + timedelta(seconds=15), 0.0, 80, 1200),
        gpu(T0 + timedelta(seconds=30), 0.0, 80, 2400),
        model(T0 + timedelta(seconds=30), 100, 1),
    )
    drained = buffer.drain(before=T0 + timedelta(minutes=1))
    (row,), (m,) = drained.gpus, drained.models
    assert row.idle_seconds == pytest.approx(30)
    assert m.prompt_tokens == 0
    feed(
        buffer,
        gpu(T0 + timedelta(seconds=60), 0.0, 80, 3600),
        model(T0 + timedelta(seconds=60), 500, 3),
    )
    drained = buffer.drain(before=T0 + timedelta(minutes=2))
    (row,), (m,) = drained.gpus, drained.models
    assert m.prompt_tokens == 400 and m.requests == 2
    assert row.idle_seconds == 0  # tokens flowed on this GPU: not idle whatever util says


def test_it_treats_a_counter_going_down_as_a_restart() -> None:
    buffer = MinuteBuffer()
    feed(buffer, model(T0, 1000, 10), model(T0 + timedelta(seconds=30), 30, 2))
    (m,) = buffer.drain(before=T0 + timedelta(minutes=1)).models
    assert m.prompt_tokens == 30 and m.requests == 2


def test_it_leaves_unreported_fields_absent() -> None:
    buffer = MinuteBuffer()
    feed(buffer, gpu(T0, None, 100, None))
    (row,) = buffer.drain(before=T0 + timedelta(minutes=1)).gpus
    assert row.avg_utilization_ratio is None and row.max_utilization_ratio is None
    assert row.energy_joules is None


def test_it_drops_samples_that_arrive_after_their_minute_was_written() -> None:
    buffer = MinuteBuffer()
    feed(buffer, gpu(T0 + timedelta(seconds=50), 0.5, 300, 1000))
    assert len(buffer.drain(before=T0 + timedelta(minutes=1)).gpus) == 1
    feed(buffer, gpu(T0 + timedelta(seconds=55), 0.5, 300, 1500))  # a slow collection, late
    assert buffer.late_samples == 1
    feed(buffer, gpu(T0 + timedelta(seconds=75), 0.5, 300, 4000))
    (row,) = buffer.drain(before=T0 + timedelta(minutes=2)).gpus
    assert row.bucket_start == T0 + timedelta(minutes=1)
    assert row.energy_joules == pytest.approx(3000)  # measured from the last kept sample


def test_it_is_safe_to_add_while_draining_from_another_thread() -> None:
    import threading

    buffer = MinuteBuffer()
    stop = threading.Event()

    def producer() -> None:
        i = 0
        while not stop.is_set() and i < 20000:
            feed(buffer, gpu(T0 + timedelta(seconds=i % 3000), 0.5, 300, float(i)))
            i += 1

    thread = threading.Thread(target=producer)
    thread.start()
    for minute in range(1, 40):
        buffer.drain(before=T0 + timedelta(minutes=minute))
    stop.set()
    thread.join()
