"""The node agent: NVML into /metrics, no database, a down NVML visible, never a crash."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from collectors.nvml import NvmlCollector
from daemon.agent import Agent, metrics_app
from tests.collectors.fake_pynvml import FakeGpu, FakeNvml

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
BUSY = "GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
IDLE = "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77"


def fake_fleet() -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(uuid=BUSY),
            FakeGpu(uuid=IDLE, utilization_gpu=0, power_mw=71_250, temperature=31),
        ]
    )


def get(app, path: str) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def test_it_serves_gpu_metrics_from_nvml() -> None:
    agent = Agent(NvmlCollector(node="n1", nvml=fake_fleet()))
    assert agent.sample(T0) is not None
    response = get(metrics_app(agent), "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    body = response.text
    assert (
        f'tcowatch_gpu_idle{{gpu="0",model_name="NVIDIA H100 80GB HBM3",node="n1",uuid="{BUSY}"}} 0.0'
        in body
    )
    assert body.count("tcowatch_gpu_utilization_ratio{") == 2
    assert 'tcowatch_collector_up{collector="nvml"} 1.0' in body
    assert (
        f'tcowatch_gpu_idle{{gpu="1",model_name="NVIDIA H100 80GB HBM3",node="n1",uuid="{IDLE}"}} 1.0'
        in body
    )
    assert get(metrics_app(agent), "/healthz").json() == {"status": "ok"}
    assert get(metrics_app(agent), "/nope").status_code == 404


def test_it_shows_a_down_nvml_and_recovers() -> None:
    fake = fake_fleet()
    fake.init_error = 12  # NVML_ERROR_LIBRARY_NOT_FOUND
    agent = Agent(NvmlCollector(node="n1", nvml=fake, retry_backoff=timedelta(seconds=30)))
    assert agent.sample(T0) is None
    body = get(metrics_app(agent), "/metrics").text
    assert 'tcowatch_collector_up{collector="nvml"} 0.0' in body
    assert "tcowatch_gpu_utilization_ratio{" not in body
    fake.init_error = None
    assert agent.sample(T0 + timedelta(seconds=31)) is not None
    assert 'tcowatch_collector_up{collector="nvml"} 1.0' in get(metrics_app(agent), "/metrics").text


def test_its_metrics_are_read_back_by_the_agent_mapping() -> None:
    from collectors.exposition.agent import gpus_from_agent
    from collectors.exposition.parser import parse_exposition

    agent = Agent(NvmlCollector(node="n1", nvml=fake_fleet()))
    snapshot = agent.sample(T0)
    assert snapshot is not None
    gpus, _notes = gpus_from_agent(
        parse_exposition(agent.exposition.render()), node="fallback", now=T0
    )
    by_uuid = {g.uuid: g for g in gpus}
    for original in snapshot.gpus:
        read = by_uuid[original.uuid]
        assert read.node == "n1"
        assert read.utilization_ratio == pytest.approx(original.utilization_ratio)
        assert read.memory_used_bytes == original.memory_used_bytes
        assert read.power_watts == pytest.approx(original.power_watts)
        assert read.energy_joules == pytest.approx(original.energy_joules)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_agent_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "agent", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline and "tcowatch_collector_up" not in body:
            assert proc.poll() is None
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                time.sleep(0.2)  # polling for the server to listen
        # this machine has no NVIDIA driver: the agent keeps serving and says so
        assert 'tcowatch_collector_up{collector="nvml"}' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    _, err = proc.communicate()
    assert code == 0, err
    assert "Traceback" not in err
