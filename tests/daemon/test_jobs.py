"""The process keeps running whatever a source or a job does; the scheduler is configured
the way the issue asks (coalesce, one instance, a misfire grace)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest

from collectors.nvml import NvmlCollector
from daemon.config import Config
from daemon.exporter import build_registry
from daemon.jobs import JobRunner, JobSpec
from daemon.process import build_pipeline
from daemon.scheduler import MIN_INTERVAL_SECONDS, SteppedScheduler, build_scheduler
from daemon.state import LiveState
from daemon.store.db import open_store
from tests.collectors.fake_pynvml import FakeGpu, FakeNvml

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
LIBRARY_NOT_FOUND = 12


def test_it_marks_nvml_down_with_the_reason_and_recovers_after_the_backoff(
    tmp_path: Path,
) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b")])
    fake.init_error = LIBRARY_NOT_FOUND
    collector = NvmlCollector(node="n1", nvml=fake, retry_backoff=timedelta(seconds=60))
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    state = LiveState()
    pipeline = build_pipeline(
        Config(), engine, state, collectors=[(collector, timedelta(seconds=15))]
    )
    scheduler = SteppedScheduler(pipeline.jobs(), JobRunner(state), T0)
    registry = build_registry(state)

    scheduler.run_until(T0 + timedelta(seconds=45))
    status = state.view().collectors["nvml"]
    assert status.up is False
    assert "NVML library not found" in status.reason
    assert registry.get_sample_value("tcowatch_collector_up", {"collector": "nvml"}) == 0
    assert state.view().job_failures["collect:nvml"] == 0  # a down source is not a crash
    assert b"install the NVIDIA driver" not in generate_latest(
        registry
    )  # reasons stay off /metrics

    fake.init_error = None  # the driver got installed
    scheduler.run_until(T0 + timedelta(seconds=75))
    assert state.view().collectors["nvml"].up is True
    assert registry.get_sample_value("tcowatch_collector_up", {"collector": "nvml"}) == 1
    assert "GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b" in state.view().gpus
    pipeline.close()
    engine.dispose()


def test_it_configures_every_job_coalesced_single_instance_with_a_grace_time() -> None:
    state = LiveState()
    runner = JobRunner(state)
    ran: list[datetime] = []
    jobs = [
        JobSpec("collect:x", timedelta(seconds=15), ran.append),
        JobSpec("rollup", timedelta(seconds=60), ran.append),
    ]
    scheduler = build_scheduler(jobs, runner, lambda: T0, speed=1.0)
    by_id = {job.id: job for job in scheduler.get_jobs()}
    assert set(by_id) == {"collect:x", "rollup"}
    for job in by_id.values():
        assert job.coalesce is True
        assert job.max_instances == 1
    assert by_id["collect:x"].misfire_grace_time == 7
    assert by_id["rollup"].misfire_grace_time == 30
    assert by_id["rollup"].trigger.interval == timedelta(seconds=60)
    fast = build_scheduler(jobs, runner, lambda: T0, speed=600)
    intervals = {job.id: job.trigger.interval.total_seconds() for job in fast.get_jobs()}
    assert intervals == {"collect:x": MIN_INTERVAL_SECONDS, "rollup": MIN_INTERVAL_SECONDS}


def test_it_runs_due_jobs_in_time_order_with_their_own_times() -> None:
    seen: list[tuple[str, datetime]] = []
    jobs = [
        JobSpec("a", timedelta(seconds=15), lambda now: seen.append(("a", now))),
        JobSpec("b", timedelta(seconds=20), lambda now: seen.append(("b", now))),
    ]
    SteppedScheduler(jobs, JobRunner(LiveState()), T0).run_until(T0 + timedelta(seconds=40))
    assert seen == [
        ("a", T0),
        ("b", T0),
        ("a", T0 + timedelta(seconds=15)),
        ("b", T0 + timedelta(seconds=20)),
        ("a", T0 + timedelta(seconds=30)),
        ("b", T0 + timedelta(seconds=40)),
    ]


def test_it_logs_a_repeated_job_failure_once(caplog) -> None:
    state = LiveState()
    runner = JobRunner(state)

    def broken(now: datetime) -> None:
        raise OSError("disk full")

    with caplog.at_level("DEBUG", logger="daemon.jobs"):
        for _ in range(3):
            assert runner.run("rollup", broken, T0) is False
        assert runner.run("rollup", lambda now: None, T0) is True
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "disk full" in errors[0].getMessage()
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert state.view().job_failures["rollup"] == 3
