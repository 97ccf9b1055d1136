"""``/metrics`` serves the app-owned registry in the Prometheus text format."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import BUSY_UUID, DOWN_UUID, NODE


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_it_serves_the_text_format_with_live_samples(client: TestClient[Litestar]):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(response.text)
    labels = {"node": NODE, "gpu": "0", "uuid": BUSY_UUID, "model_name": "NVIDIA H100 80GB HBM3"}
    assert samples[("tcowatch_gpu_utilization_ratio", frozenset(labels.items()))] == 0.8
    down = {**labels, "gpu": "3", "uuid": DOWN_UUID}
    assert samples[("tcowatch_gpu_up", frozenset(down.items()))] == 0.0
    assert samples[("tcowatch_collector_up", frozenset({("collector", "nvml")}))] == 0.0


def test_it_serves_only_the_app_registry(client: TestClient[Litestar]):
    text = client.get("/metrics").text
    assert "python_gc_objects_collected_total" not in text
    assert "process_cpu_seconds_total" not in text


def test_it_is_not_subject_to_csrf(client: TestClient[Litestar]):
    response = client.get("/metrics")
    assert "csrftoken" not in response.headers.get("set-cookie", "")
