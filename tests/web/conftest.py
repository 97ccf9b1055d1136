"""A hand-built ``Services`` over a small seeded fleet, and a test client on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.pool import StaticPool

from collectors.base import GpuSample, ModelSample
from daemon.config import WebConfig
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.state import AlertView, CollectorStatus, LiveState
from web.app import create_app

NOW = datetime(2026, 8, 20, 10, 0, 0, tzinfo=UTC)
NODE = "node-a"
BUSY_UUID = "GPU-11111111-aaaa-bbbb-cccc-000000000000"
IDLE_UUID = "GPU-22222222-aaaa-bbbb-cccc-000000000001"
PARTIAL_UUID = "GPU-33333333-aaaa-bbbb-cccc-000000000002"
DOWN_UUID = "GPU-44444444-aaaa-bbbb-cccc-000000000003"
NVML_REASON = "NVML library not found (libnvidia-ml.so.1): is the NVIDIA driver installed?"
EVIL = "<script>alert(1)</script>"


def _gpu(uuid: str, index: int, **fields: float | int | None) -> GpuSample:
    values: dict[str, float | int | None] = {
        "utilization_ratio": 0.8,
        "memory_used_bytes": 60 * 2**30,
        "memory_total_bytes": 80 * 2**30,
        "power_watts": 500.0,
        "power_limit_watts": 700.0,
        "energy_joules": 2.0e6,
        "temperature_celsius": 66.0,
    }
    values.update(fields)
    return GpuSample(
        uuid=uuid,
        node=NODE,
        index=index,
        name="NVIDIA H100 80GB HBM3",
        timestamp=NOW,
        **values,  # type: ignore[arg-type]
    )


def seeded_state() -> LiveState:
    """Four GPUs: busy (80%), idle (0%), busy without a power reading (40%), down."""
    state = LiveState()
    state.record_samples(
        (
            _gpu(BUSY_UUID, 0),
            _gpu(IDLE_UUID, 1, utilization_ratio=0.0, power_watts=70.0),
            _gpu(PARTIAL_UUID, 2, utilization_ratio=0.4, power_watts=None),
            _gpu(DOWN_UUID, 3, utilization_ratio=0.9),
        ),
        (
            ModelSample(
                node=NODE,
                model="deepseek-v3",
                instance="10.0.0.7:8000",
                timestamp=NOW,
                prompt_tokens_total=1000,
                generation_tokens_total=200,
                cache_queries_total=900,
                cache_hits_total=450,
                requests_total=7,
            ),
        ),
        (),
    )
    state.record_samples((), (), (DOWN_UUID,))
    state.set_idle({IDLE_UUID})
    state.record_collector(
        CollectorStatus(name="simulated", up=True, last_success=NOW, duration_seconds=0.012)
    )
    state.record_collector(CollectorStatus(name="nvml", up=False, reason=NVML_REASON))
    state.set_alerts(
        (
            AlertView(
                fingerprint="25c44c8b1df3cdaa",
                alertname="GPUIdle",
                state="firing",
                labels={"alertname": "GPUIdle", "gpu": "1", "team": EVIL},
                annotations={"summary": "GPU idle for 30m while allocated"},
                active_at=NOW - timedelta(minutes=30),
            ),
            AlertView(
                fingerprint="cfb912e31c2fa43c",
                alertname="CacheHitLow",
                state="pending",
                labels={"alertname": "CacheHitLow", "model": "deepseek-v3"},
                annotations={"summary": "prefix cache hit rate 50%"},
                active_at=NOW - timedelta(minutes=2),
            ),
        )
    )
    return state


@pytest.fixture
def problems() -> list[str]:
    """What ``readiness()`` reports; tests append to make the process not ready."""
    return []


@pytest.fixture
def services(problems: list[str]) -> Iterator[Services]:
    engine = sqlalchemy.create_engine("sqlite://", poolclass=StaticPool)
    state = seeded_state()
    yield Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=lambda: NOW,
        readiness=lambda: list(problems),
        title="tcowatch test",
        demo=True,
        csrf_secret="test-secret",
        web=WebConfig(anonymous_read=True),
    )
    engine.dispose()


@pytest.fixture
def app(services: Services) -> Litestar:
    return create_app(services)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app=app) as client:
        yield client
