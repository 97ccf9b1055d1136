"""The whole slice on the demo's simulated fleet, driven by a stepped clock:
simulated GPUs -> rollups in the store -> gpu_idle rule -> outbox -> a real webhook receiver,
and the board and /metrics of the same process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select

from daemon.cli_server import demo_config
from daemon.clock import ManualClock
from daemon.config import Config
from daemon.demo import start_demo_sources
from daemon.exporter import build_registry
from daemon.jobs import JobRunner, Pipeline
from daemon.process import build_pipeline
from daemon.scheduler import SteppedScheduler
from daemon.services import Services
from daemon.state import LiveState
from daemon.store.db import open_store, readiness_problems
from daemon.store.models import Alert, GpuRollup, Outbox
from web.app import create_app

START = datetime(2026, 11, 29, 14, 0, 5, tzinfo=UTC)
STEP = timedelta(seconds=15)


class Demo:
    def __init__(self, db_url: str, hook_url: str) -> None:
        base = Config.model_validate(
            {"channels": [{"name": "hook", "url": hook_url, "secret": "s3cr3t"}]}
        )
        self.config = demo_config(base, gpus=16, seed=42)
        self.clock = ManualClock(START)
        self.engine = open_store(db_url)
        self.state = LiveState()
        # the demo's sources: simulated exporters on loopback, read through the scrape path
        self.sources = start_demo_sources(self.config.collectors.simulated, self.clock.now)
        self.pipeline: Pipeline = build_pipeline(
            self.config, self.engine, self.state, collectors=self.sources.collectors()
        )
        self.scheduler = SteppedScheduler(self.pipeline.jobs(), JobRunner(self.state), START)
        self.fleet = self.sources.fleet
        self.services = Services(
            engine=self.engine,
            state=self.state,
            registry=build_registry(self.state),
            now=self.clock.now,
            readiness=lambda: readiness_problems(self.engine),
            demo=True,
            web=self.config.web,
        )

    def advance(self, delta: timedelta) -> None:
        end = self.clock.now() + delta
        while self.clock.now() < end:
            self.scheduler.run_until(self.clock.advance(STEP))

    def advance_until(self, predicate: Any, limit: timedelta) -> timedelta:
        waited = timedelta(0)
        while not predicate():
            assert waited < limit, f"condition not met within {limit}"
            self.advance(STEP)
            waited += STEP
        return waited

    def alert_state(self, uuid: str) -> str | None:
        with Session(self.engine) as session:
            for alert in session.exec(select(Alert).where(Alert.alertname == "GpuIdle")):
                if alert.labels.get("uuid") == uuid:
                    return alert.state
        return None


@pytest.fixture
def demo(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Demo]:
    d = Demo(f"sqlite:///{tmp_path / 'demo.db'}", httpserver.url_for("/hook"))
    yield d
    d.pipeline.close()
    d.sources.stop()
    d.engine.dispose()


def deliveries(httpserver: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(req.get_data()) for req, _ in httpserver.log if req.path == "/hook"]


def test_it_fires_delivers_and_resolves_an_idle_gpu_alert(
    demo: Demo, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    idle_uuid = sorted(demo.fleet.idle_uuids)[0]
    busy_uuids = {g.uuid for g in demo.state.view().gpus.values()} - set(demo.fleet.idle_uuids)

    demo.advance_until(lambda: demo.alert_state(idle_uuid) == "pending", timedelta(minutes=8))
    assert deliveries(httpserver) == []  # pending is never sent
    waited = demo.advance_until(
        lambda: demo.alert_state(idle_uuid) == "firing", timedelta(minutes=15)
    )
    assert waited >= timedelta(minutes=9)  # `for: 10m` holds it pending (evaluated every 30 s)
    demo.advance(timedelta(seconds=30))  # the outbox flushes every 10 s

    sent = deliveries(httpserver)
    assert sent, "the firing notification was not delivered"
    first = sent[0]
    assert first["version"] == "4" and first["status"] == "firing"
    assert first["notification_reason"] == "first notification"
    assert first["groupLabels"] == {"alertname": "GpuIdle"}
    firing_uuids = {a["labels"]["uuid"] for a in first["alerts"]}
    assert idle_uuid in firing_uuids
    assert not firing_uuids & busy_uuids, "a busy GPU was reported idle"
    alert = next(a for a in first["alerts"] if a["labels"]["uuid"] == idle_uuid)
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert "idle while holding memory" in alert["annotations"]["summary"]
    assert len(alert["fingerprint"]) == 16
    request = httpserver.log[0][0]
    assert request.headers["X-Tcowatch-Signature"].startswith("sha256=")

    with Session(demo.engine) as session:
        rows = session.exec(select(Outbox)).all()
        assert rows and all(r.status == "sent" for r in rows)
        assert session.exec(select(GpuRollup)).first() is not None

    client = TestClient(app=create_app(demo.services))
    with client:
        metrics = client.get("/metrics").text
        board = client.get("/").text
    assert metrics.count("tcowatch_gpu_utilization_ratio{") == 16
    targets = demo.state.view().targets
    assert len(targets) == len(demo.sources.endpoints.targets(demo.sources.base_url))
    assert targets and all(t.up for t in targets.values()), targets
    assert {t.kind for t in targets.values()} == {"dcgm", "vllm"}
    assert 'tcowatch_collector_up{collector="scrape"} 1.0' in metrics
    assert 'alertstate="firing"' in metrics and idle_uuid in metrics
    assert "GpuIdle" in board and "firing" in board

    demo.fleet.override_load(idle_uuid, 0.85)
    demo.advance_until(lambda: demo.alert_state(idle_uuid) == "inactive", timedelta(minutes=15))

    def resolved_alerts() -> list[dict[str, Any]]:
        return [
            a
            for payload in deliveries(httpserver)
            for a in payload["alerts"]
            if a["labels"]["uuid"] == idle_uuid and a["status"] == "resolved"
        ]

    # resolved alerts go out at the group's next `group_interval` tick (5 m), as Alertmanager
    waited = demo.advance_until(lambda: bool(resolved_alerts()), timedelta(minutes=6))
    resolved = resolved_alerts()
    assert resolved, "the resolved notification was not delivered"
    assert timedelta(0) < waited <= timedelta(minutes=5, seconds=30)
    assert resolved[0]["endsAt"] != "0001-01-01T00:00:00Z"


def test_it_keeps_for_progress_across_a_restart(demo: Demo, tmp_path: Path) -> None:
    idle_uuid = sorted(demo.fleet.idle_uuids)[0]
    demo.advance_until(lambda: demo.alert_state(idle_uuid) == "pending", timedelta(minutes=8))
    with Session(demo.engine) as session:
        active_at = next(
            a.active_at for a in session.exec(select(Alert)) if a.labels["uuid"] == idle_uuid
        )
    demo.advance(timedelta(minutes=2))
    # A new process on the same database: a fresh pipeline and buffer, same store.
    restarted = build_pipeline(
        demo.config, demo.engine, LiveState(), collectors=demo.sources.collectors()
    )
    now = demo.clock.now()
    restarted.evaluate(now)
    with Session(demo.engine) as session:
        alert = next(a for a in session.exec(select(Alert)) if a.labels["uuid"] == idle_uuid)
    assert alert.active_at == active_at
    restarted.close()


def test_it_counts_a_failing_job_and_keeps_going(demo: Demo) -> None:
    def broken(now: datetime) -> None:
        raise RuntimeError("disk on fire")

    runner = JobRunner(demo.state)
    assert runner.run("explode", broken, START) is False
    assert runner.run("explode", broken, START) is False
    assert demo.state.view().job_failures["explode"] == 2
    demo.advance(timedelta(minutes=2))
    assert demo.state.view().gpus  # the other jobs still ran
