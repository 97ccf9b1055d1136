"""The /metrics exporter: families from the live state, absent-not-NaN, promtool-clean."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collectors.base import GpuSample, ModelSample
from daemon.exporter import TcowatchCollector, build_registry
from daemon.state import AlertView, CollectorStatus, LiveState

NOW = datetime(2026, 8, 20, 10, 0, 0, tzinfo=UTC)


def _gpu(index: int, node: str = "node-1", **fields: float | int | None) -> GpuSample:
    values: dict[str, float | int | None] = {
        "utilization_ratio": 0.75,
        "memory_used_bytes": 40 * 2**30,
        "memory_total_bytes": 80 * 2**30,
        "power_watts": 350.0,
        "power_limit_watts": 700.0,
        "energy_joules": 1.5e6,
        "temperature_celsius": 61.0,
    }
    values.update(fields)
    return GpuSample(
        uuid=f"GPU-{node}-{index:04d}",
        node=node,
        index=index,
        name="NVIDIA H100 80GB HBM3",
        timestamp=NOW,
        **values,  # type: ignore[arg-type]
    )


def _labels(gpu: GpuSample) -> dict[str, str]:
    return {"node": gpu.node, "gpu": str(gpu.index), "uuid": gpu.uuid, "model_name": gpu.name}


@pytest.fixture
def state() -> LiveState:
    return LiveState()


@pytest.fixture
def registry(state: LiveState) -> CollectorRegistry:
    return build_registry(state)


def test_it_exports_gpu_readings_in_base_units(state: LiveState, registry: CollectorRegistry):
    gpu = _gpu(0)
    state.record_samples((gpu,), (), ())
    labels = _labels(gpu)
    assert registry.get_sample_value("tcowatch_gpu_utilization_ratio", labels) == 0.75
    assert registry.get_sample_value("tcowatch_gpu_memory_used_bytes", labels) == 40 * 2**30
    assert registry.get_sample_value("tcowatch_gpu_memory_total_bytes", labels) == 80 * 2**30
    assert registry.get_sample_value("tcowatch_gpu_power_watts", labels) == 350.0
    assert registry.get_sample_value("tcowatch_gpu_power_limit_watts", labels) == 700.0
    assert registry.get_sample_value("tcowatch_gpu_energy_joules_total", labels) == 1.5e6
    assert registry.get_sample_value("tcowatch_gpu_temperature_celsius", labels) == 61.0
    assert registry.get_sample_value("tcowatch_gpu_up", labels) == 1.0
    assert registry.get_sample_value("tcowatch_gpu_idle", labels) == 0.0


def test_it_declares_the_energy_family_as_a_counter(state: LiveState, registry: CollectorRegistry):
    state.record_samples((_gpu(0),), (), ())
    types = {m.name: m.type for m in registry.collect()}
    assert types["tcowatch_gpu_energy_joules"] == "counter"
    assert types["tcowatch_gpu_power_watts"] == "gauge"


def test_it_leaves_a_missing_reading_absent_not_nan_or_zero(
    state: LiveState, registry: CollectorRegistry
):
    gpu = _gpu(0, power_watts=None, temperature_celsius=None)
    state.record_samples((gpu,), (), ())
    labels = _labels(gpu)
    assert registry.get_sample_value("tcowatch_gpu_power_watts", labels) is None
    assert registry.get_sample_value("tcowatch_gpu_temperature_celsius", labels) is None
    assert registry.get_sample_value("tcowatch_gpu_utilization_ratio", labels) == 0.75
    for metric in registry.collect():
        for sample in metric.samples:
            assert not math.isnan(sample.value), sample
    text = generate_latest(registry).decode()
    assert "NaN" not in text
    assert "tcowatch_gpu_power_watts" not in text


def test_it_marks_a_down_gpu_up_0_without_stale_readings(
    state: LiveState, registry: CollectorRegistry
):
    healthy, lost = _gpu(0), _gpu(1)
    state.record_samples((healthy, lost), (), ())
    state.record_samples((healthy,), (), (lost.uuid, "node-2/3"))
    assert registry.get_sample_value("tcowatch_gpu_up", _labels(lost)) == 0.0
    assert registry.get_sample_value("tcowatch_gpu_power_watts", _labels(lost)) is None
    assert registry.get_sample_value("tcowatch_gpu_up", _labels(healthy)) == 1.0
    never_seen = {"node": "node-2", "gpu": "3", "uuid": "", "model_name": ""}
    assert registry.get_sample_value("tcowatch_gpu_up", never_seen) == 0.0


def test_it_flags_idle_gpus(state: LiveState, registry: CollectorRegistry):
    busy, idle = _gpu(0), _gpu(1, utilization_ratio=0.0)
    state.record_samples((busy, idle), (), ())
    state.set_idle({idle.uuid})
    assert registry.get_sample_value("tcowatch_gpu_idle", _labels(idle)) == 1.0
    assert registry.get_sample_value("tcowatch_gpu_idle", _labels(busy)) == 0.0


def test_it_exports_model_counters_by_kind(state: LiveState, registry: CollectorRegistry):
    model = ModelSample(
        node="node-1",
        model="deepseek-v3",
        instance="10.0.0.7:8000",
        timestamp=NOW,
        prompt_tokens_total=1000,
        generation_tokens_total=250,
        cache_queries_total=800,
        cache_hits_total=600,
        requests_total=12,
    )
    state.record_samples((), (model,), ())
    base = {"node": "node-1", "model": "deepseek-v3", "instance": "10.0.0.7:8000"}
    get = registry.get_sample_value
    assert get("tcowatch_llm_tokens_total", {**base, "kind": "prompt"}) == 1000
    assert get("tcowatch_llm_tokens_total", {**base, "kind": "generation"}) == 250
    assert get("tcowatch_llm_prefix_cache_queries_total", base) == 800
    assert get("tcowatch_llm_prefix_cache_hits_total", base) == 600
    assert get("tcowatch_llm_requests_total", base) == 12


def test_it_exports_collector_health(state: LiveState, registry: CollectorRegistry):
    state.record_collector(
        CollectorStatus(name="simulated", up=True, last_success=NOW, duration_seconds=0.25)
    )
    state.record_collector(CollectorStatus(name="nvml", up=False, reason="NVML library not found"))
    get = registry.get_sample_value
    assert get("tcowatch_collector_up", {"collector": "simulated"}) == 1.0
    assert get("tcowatch_collector_up", {"collector": "nvml"}) == 0.0
    assert get("tcowatch_collector_duration_seconds", {"collector": "simulated"}) == 0.25
    assert (
        get("tcowatch_collector_last_success_timestamp_seconds", {"collector": "simulated"})
        == NOW.timestamp()
    )
    assert get("tcowatch_collector_last_success_timestamp_seconds", {"collector": "nvml"}) is None


def test_it_exports_active_alerts_like_prometheus_alerts(
    state: LiveState, registry: CollectorRegistry
):
    active_at = datetime(2026, 8, 20, 9, 30, tzinfo=UTC)
    state.set_alerts(
        (
            AlertView(
                fingerprint="a",
                alertname="GPUIdle",
                state="firing",
                labels={"alertname": "GPUIdle", "gpu": "3", "severity": "warning"},
                annotations={"summary": "idle"},
                active_at=active_at,
            ),
            AlertView(
                fingerprint="b",
                alertname="CacheHitLow",
                state="pending",
                labels={"model": "qwen", "bad-label": "dropped"},
                annotations={},
                active_at=active_at,
            ),
            AlertView(
                fingerprint="c",
                alertname="Old",
                state="inactive",
                labels={},
                annotations={},
                active_at=active_at,
            ),
        )
    )
    get = registry.get_sample_value
    idle = {"alertname": "GPUIdle", "gpu": "3", "severity": "warning"}
    assert get("tcowatch_alerts", {**idle, "alertstate": "firing"}) == 1.0
    assert get("tcowatch_alerts_for_state", idle) == active_at.timestamp()
    cache = {"alertname": "CacheHitLow", "model": "qwen"}
    assert get("tcowatch_alerts", {**cache, "alertstate": "pending"}) == 1.0
    assert get("tcowatch_alerts_for_state", cache) == active_at.timestamp()
    alert_samples = [
        s for m in registry.collect() if m.name == "tcowatch_alerts" for s in m.samples
    ]
    assert len(alert_samples) == 2
    assert all("bad-label" not in s.labels for s in alert_samples)


def test_it_exports_process_counters(state: LiveState, registry: CollectorRegistry):
    state.ensure_job("rollup")
    state.count_job_failure("sample")
    state.count_notification("slack", "sent")
    state.count_notification("slack", "sent")
    state.set_outbox_pending(4)
    get = registry.get_sample_value
    assert get("tcowatch_job_failures_total", {"job": "sample"}) == 1.0
    assert get("tcowatch_job_failures_total", {"job": "rollup"}) == 0.0
    assert get("tcowatch_notifications_total", {"channel": "slack", "outcome": "sent"}) == 2.0
    assert get("tcowatch_outbox_pending", {}) == 4.0


def test_it_exports_notification_health_families(state: LiveState, registry: CollectorRegistry):
    state.count_suppressed("silenced")
    state.count_suppressed("silenced")
    state.count_suppressed("inhibited")
    state.set_outbox_oldest_age(42.5)
    state.set_channels_enabled({"slack": True, "hook": False})
    get = registry.get_sample_value
    assert get("tcowatch_notifications_suppressed_total", {"reason": "silenced"}) == 2.0
    assert get("tcowatch_notifications_suppressed_total", {"reason": "inhibited"}) == 1.0
    assert get("tcowatch_outbox_oldest_age_seconds", {}) == 42.5
    assert get("tcowatch_channel_enabled", {"channel": "slack"}) == 1.0
    assert get("tcowatch_channel_enabled", {"channel": "hook"}) == 0.0
    state.set_channels_enabled({"slack": True})
    assert get("tcowatch_channel_enabled", {"channel": "hook"}) is None


def test_it_declares_notification_families_before_any_sample(registry: CollectorRegistry):
    text = generate_latest(registry).decode()
    assert "# TYPE tcowatch_notifications_suppressed_total counter" in text
    assert "# TYPE tcowatch_channel_enabled gauge" in text
    assert "tcowatch_outbox_oldest_age_seconds 0.0" in text


def test_it_reflects_the_state_at_each_scrape_without_stale_series(
    state: LiveState, registry: CollectorRegistry
):
    state.set_alerts(
        (
            AlertView(
                fingerprint="a",
                alertname="GPUIdle",
                state="firing",
                labels={},
                annotations={},
                active_at=NOW,
            ),
        )
    )
    labels = {"alertname": "GPUIdle", "alertstate": "firing"}
    assert registry.get_sample_value("tcowatch_alerts", labels) == 1.0
    state.set_alerts(())
    assert registry.get_sample_value("tcowatch_alerts", labels) is None


def test_it_registers_without_collecting(state: LiveState):
    collector = TcowatchCollector(state)
    calls: list[int] = []
    original = collector.collect

    def counting_collect():  # type: ignore[no-untyped-def]
        calls.append(1)
        return original()

    collector.collect = counting_collect  # type: ignore[method-assign]
    CollectorRegistry(auto_describe=True).register(collector)
    assert calls == []


def _fleet(state: LiveState, gpus: int) -> None:
    samples = tuple(_gpu(i % 8, node=f"node-{i // 8}") for i in range(gpus))
    state.record_samples(samples, (), ())
    state.set_idle({samples[0].uuid})
    state.record_collector(
        CollectorStatus(name="simulated", up=True, last_success=NOW, duration_seconds=0.01)
    )
    state.set_alerts(
        (
            AlertView(
                fingerprint="a",
                alertname="GPUIdle",
                state="firing",
                labels={"alertname": "GPUIdle", "uuid": samples[0].uuid},
                annotations={},
                active_at=NOW,
            ),
        )
    )
    state.count_notification("slack", "sent")
    state.count_suppressed("silenced")
    state.set_outbox_oldest_age(12.0)
    state.set_channels_enabled({"slack": True, "hook": False})
    state.count_job_failure("sample")


def test_it_passes_promtool_check_metrics_with_16_gpus(
    state: LiveState, registry: CollectorRegistry
):
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool not installed (Debian package 'prometheus')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    _fleet(state, 16)
    exposition = generate_latest(registry)
    assert exposition.count(b"tcowatch_gpu_up{") == 16
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )
    problems = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, problems
    assert problems.strip() == ""


def test_it_renders_the_exposition_once_per_state_change():
    from daemon.exporter import ExpositionCache

    state = LiveState()
    registry = CollectorRegistry(auto_describe=False)
    calls = []

    class Counting:
        def describe(self):
            return []

        def collect(self):
            calls.append(1)
            return []

    registry.register(Counting())
    cache = ExpositionCache(state, registry)
    first = cache.render()
    assert cache.render() is first and len(calls) == 1
    state.count_job_failure("collect:x")
    cache.render()
    assert len(calls) == 2
