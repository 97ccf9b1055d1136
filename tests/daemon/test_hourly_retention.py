"""Hour rollups from minute rows, and retention in bounded batches (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from daemon.hourly import roll_hours
from daemon.retention import RetentionPolicy, enforce
from daemon.store.db import open_store
from daemon.store.models import CacheRollup, Gpu, GpuRollup, InferenceRollup, Node

H0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def seed(session: Session, start: datetime, minutes: int) -> None:
    node = Node(name="n1", first_seen=start, last_seen=start)
    session.add(node)
    session.flush()
    assert node.id is not None
    session.add(
        Gpu(uuid="GPU-1", node_id=node.id, index=0, name="H100", first_seen=start, last_seen=start)
    )
    for i in range(minutes):
        at = start + timedelta(minutes=i)
        session.add(
            GpuRollup(
                gpu_uuid="GPU-1",
                bucket_start=at,
                samples=4 if i % 2 else 2,
                avg_utilization_ratio=0.2 if i % 2 else 0.8,
                max_utilization_ratio=0.1 * (i % 10),
                avg_memory_used_bytes=1000.0,
                avg_power_watts=100.0 if i % 2 else 400.0,
                energy_joules=60.0,
                idle_seconds=30.0,
            )
        )
        session.add(
            InferenceRollup(
                node="n1",
                model="m",
                instance="i",
                bucket_start=at,
                prompt_tokens=10,
                generation_tokens=5,
                cache_queries=8,
                cache_hits=2 if i < 30 else 6,
                requests=1,
                engine="vllm",
                gpu_uuids=["GPU-1"],
            )
        )
        session.add(CacheRollup(name="gateway", bucket_start=at, hits=3, lookups=4))
    session.commit()


@pytest.fixture
def engine(db_url: str):
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def test_it_rolls_complete_hours_with_weighted_averages_and_sums(engine) -> None:
    with Session(engine) as session:
        seed(session, H0, 120)
    with Session(engine) as session:
        assert roll_hours(session, H0 + timedelta(hours=1, minutes=4)) == []  # within the delay
        assert roll_hours(session, H0 + timedelta(hours=1, minutes=5)) == [H0]
        session.commit()
    with Session(engine) as session:
        (hour,) = session.exec(select(GpuRollup).where(GpuRollup.resolution_seconds == 3600)).all()
        assert hour.bucket_start == H0
        assert hour.samples == 30 * 2 + 30 * 4
        # weighted by samples: (30*2*0.8 + 30*4*0.2) / 180
        assert hour.avg_utilization_ratio == pytest.approx((48 + 24) / 180)
        assert hour.max_utilization_ratio == pytest.approx(0.9)
        assert hour.energy_joules == pytest.approx(3600)
        assert hour.idle_seconds == pytest.approx(1800)
        (model,) = session.exec(
            select(InferenceRollup).where(InferenceRollup.resolution_seconds == 3600)
        ).all()
        assert (model.prompt_tokens, model.cache_queries, model.cache_hits) == (600, 480, 240)
        # the hour's hit rate is Δhits/Δqueries, not a mean of minute ratios
        assert model.cache_hits / model.cache_queries == pytest.approx(0.5)
        assert model.gpu_uuids == ["GPU-1"] and model.engine == "vllm"
        (cache,) = session.exec(
            select(CacheRollup).where(CacheRollup.resolution_seconds == 3600)
        ).all()
        assert (cache.hits, cache.lookups) == (180, 240)


def test_it_rolls_each_hour_once_and_catches_up_in_bounded_steps(engine) -> None:
    with Session(engine) as session:
        seed(session, H0, 60 * 5)
    with Session(engine) as session:
        assert roll_hours(session, H0 + timedelta(hours=6), max_hours=2) == [
            H0,
            H0 + timedelta(hours=1),
        ]
        assert roll_hours(session, H0 + timedelta(hours=6), max_hours=10) == [
            H0 + timedelta(hours=h) for h in (2, 3, 4)
        ]
        assert roll_hours(session, H0 + timedelta(hours=6)) == []
        session.commit()
    with Session(engine) as session:
        hours = session.exec(
            select(GpuRollup.bucket_start).where(GpuRollup.resolution_seconds == 3600)
        ).all()
    assert sorted(hours) == [H0 + timedelta(hours=h) for h in range(5)]


def test_it_deletes_old_rows_in_bounded_batches(engine) -> None:
    with Session(engine) as session:
        seed(session, H0, 100)
    now = H0 + timedelta(minutes=100)
    policy = RetentionPolicy(
        minutes=timedelta(minutes=40), hours=timedelta(days=1), batch_size=7, max_batches=3
    )
    assert enforce(engine, now, policy) == 21  # three batches of seven, then it stops
    while enforce(engine, now, policy):
        pass
    with Session(engine) as session:
        left = session.exec(
            select(GpuRollup.bucket_start).where(col(GpuRollup.resolution_seconds) == 60)
        ).all()
        models = session.exec(select(InferenceRollup)).all()
    assert min(left) == now - timedelta(minutes=40)
    assert len(left) == 40 and len(models) == 40
