"""Writing rollups is idempotent: a minute written again replaces the stored one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select

from daemon.persist import upsert_inventory, write_rollups
from daemon.rollup import GpuMinute, Minutes, ModelMinute
from daemon.store.db import open_store
from daemon.store.models import GpuRollup, InferenceRollup

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def minute(util: float, tokens: float) -> Minutes:
    return Minutes(
        gpus=[
            GpuMinute(
                uuid="GPU-1",
                node="n1",
                index=0,
                name="H100",
                memory_total_bytes=1,
                bucket_start=T0,
                samples=4,
                avg_utilization_ratio=util,
                max_utilization_ratio=util,
                avg_memory_used_bytes=1.0,
                avg_power_watts=100.0,
                energy_joules=6000.0,
                idle_seconds=0.0,
                idle_ratio=0.0,
            )
        ],
        models=[
            ModelMinute(
                node="n1",
                model="m",
                instance="i",
                bucket_start=T0,
                prompt_tokens=tokens,
                generation_tokens=0.0,
                cache_queries=0.0,
                cache_hits=0.0,
                requests=1.0,
                gpu_uuids=("GPU-1",),
            )
        ],
    )


def test_it_replaces_a_minute_written_twice(db_url: str) -> None:
    engine = open_store(db_url)
    for util, tokens in ((0.2, 10.0), (0.7, 99.0)):
        with Session(engine) as session:
            batch = minute(util, tokens)
            upsert_inventory(session, batch.gpus, T0)
            write_rollups(session, batch)
            session.commit()
    with Session(engine) as session:
        (gpu,) = session.exec(select(GpuRollup)).all()
        (model,) = session.exec(select(InferenceRollup)).all()
    assert gpu.avg_utilization_ratio == 0.7 and model.prompt_tokens == 99.0
    engine.dispose()
