"""The simulated fleet rendered as dcgm-exporter and vLLM text, and served over real HTTP."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn

from collectors.base import GpuSample, ModelSample, Snapshot
from collectors.exposition.dcgm import gpus_from_dcgm
from collectors.exposition.parser import parse_exposition
from collectors.inference import models_from_exposition
from collectors.scrape import ScrapeCollector
from collectors.simulated import SimulatedFleet
from collectors.simulated_exposition import SimulatedEndpoints, render_dcgm, render_vllm

MIB = 2**20
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NODE = "gpu-node-01"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fleet_snapshot() -> tuple[SimulatedFleet, Snapshot]:
    fleet = SimulatedFleet(nodes=3, gpus_per_node=8, seed=7)
    fleet.collect(START)
    return fleet, fleet.collect(START + timedelta(minutes=5))


def node_gpus(snapshot: Snapshot, node: str) -> dict[str, GpuSample]:
    return {g.uuid: g for g in snapshot.gpus if g.node == node}


def test_it_renders_dcgm_exporter_lines_for_one_node_only():
    _, snapshot = fleet_snapshot()
    expected = node_gpus(snapshot, NODE)

    text = render_dcgm(snapshot, NODE)

    lines = text.splitlines()
    assert lines[:2] == [
        "# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).",
        "# TYPE DCGM_FI_DEV_SM_CLOCK gauge",
    ]
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter" in lines
    assert "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W)." in lines
    assert set(re.findall(r'UUID="([^"]+)"', text)) == set(expected)
    gpu0 = next(g for g in expected.values() if g.index == 0)
    power = next(line for line in lines if line.startswith("DCGM_FI_DEV_POWER_USAGE{"))
    assert power == (
        f'DCGM_FI_DEV_POWER_USAGE{{gpu="0",UUID="{gpu0.uuid}",pci_bus_id="00000000:18:00.0",'
        f'device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="{NODE}",'
        f'DCGM_FI_DRIVER_VERSION="550.90.07"}} {gpu0.power_watts:.6f}'
    )
    energy = next(line for line in lines if line.startswith("DCGM_FI_DEV_TOTAL_ENERGY"))
    assert re.fullmatch(r".* \d+", energy)  # an integer count of mJ, as DCGM prints int64
    assert text.endswith("\n")


def test_it_round_trips_gpu_readings_through_the_parser_and_mapping():
    _, snapshot = fleet_snapshot()
    expected = node_gpus(snapshot, NODE)

    gpus, notes = gpus_from_dcgm(
        parse_exposition(render_dcgm(snapshot, NODE)), node="fallback", now=snapshot.timestamp
    )

    assert notes == []
    assert {g.uuid for g in gpus} == set(expected)
    for gpu in gpus:
        want = expected[gpu.uuid]
        assert (gpu.node, gpu.index, gpu.name) == (NODE, want.index, want.name)
        assert gpu.utilization_ratio == pytest.approx(want.utilization_ratio, abs=1e-9)
        assert gpu.power_watts == pytest.approx(want.power_watts, abs=1e-6)
        assert gpu.power_limit_watts == pytest.approx(want.power_limit_watts, abs=1e-6)
        assert gpu.energy_joules == pytest.approx(want.energy_joules, abs=1e-3)
        assert gpu.temperature_celsius == want.temperature_celsius
        assert want.memory_used_bytes is not None and gpu.memory_used_bytes is not None
        assert 0 <= want.memory_used_bytes - gpu.memory_used_bytes < MIB
        assert gpu.memory_total_bytes == want.memory_total_bytes  # a whole number of MiB
        assert gpu.pci_bus_id is not None and gpu.pci_bus_id.startswith("00000000:")


def test_it_round_trips_model_counters_through_the_parser_and_mapping():
    _, snapshot = fleet_snapshot()
    expected = {m.instance: m for m in snapshot.models if m.node == NODE}

    payloads = render_vllm(snapshot, NODE)

    assert set(payloads) == set(expected)
    for instance, text in payloads.items():
        want = expected[instance]
        [model], _ = models_from_exposition(
            parse_exposition(text), node=NODE, instance=instance, now=snapshot.timestamp
        )
        assert (model.model, model.engine, model.instance) == (want.model, "vllm", f"{instance}/0")
        assert model.prompt_tokens_total == want.prompt_tokens_total
        assert model.generation_tokens_total == want.generation_tokens_total
        assert model.cache_queries_total == want.cache_queries_total
        assert model.cache_hits_total == want.cache_hits_total
        assert model.requests_total == want.requests_total
        assert model.requests_running is not None


def test_it_prints_created_gauges_like_prometheus_client():
    _, snapshot = fleet_snapshot()
    created = datetime(2025, 7, 29, 13, 22, 6, 935312, tzinfo=UTC)

    text = next(iter(render_vllm(snapshot, NODE, created=created).values()))

    assert "# TYPE vllm:prompt_tokens_created gauge" in text
    assert re.search(
        r'^vllm:prompt_tokens_created\{engine="0",model_name="[^"]+"\} 1\.753795326935312e\+09$',
        text,
        re.M,
    )
    assert re.search(r'finished_reason="stop"', text)


def test_it_reports_no_running_requests_on_an_idle_staging_instance():
    fleet, snapshot = fleet_snapshot()
    idle: list[ModelSample] = [m for m in snapshot.models if set(m.gpu_uuids) <= fleet.idle_uuids]
    assert idle, "the seeded fleet has idle staging instances"
    model = idle[0]

    text = render_vllm(snapshot, model.node)[model.instance]

    [parsed], _ = models_from_exposition(
        parse_exposition(text), node=model.node, instance="x", now=snapshot.timestamp
    )
    assert parsed.requests_running == 0.0


def test_it_renders_nothing_for_an_unknown_node():
    _, snapshot = fleet_snapshot()

    assert render_dcgm(snapshot, "gpu-node-99") == ""
    assert render_vllm(snapshot, "gpu-node-99") == {}


@pytest.fixture
def served() -> Iterator[tuple[SimulatedEndpoints, SimulatedFleet, FakeClock, str]]:
    """SimulatedEndpoints under uvicorn on a free loopback port, stopped afterwards."""
    fleet = SimulatedFleet(nodes=2, gpus_per_node=4, seed=11)
    clock = FakeClock(START)
    endpoints = SimulatedEndpoints(fleet, clock, min_interval=timedelta(seconds=15))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue in the backlog until the server accepts: no start wait
    server = uvicorn.Server(uvicorn.Config(endpoints, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield endpoints, fleet, clock, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive()


def test_it_serves_the_fleet_through_the_real_scrape_path(served):
    endpoints, fleet, _, base = served

    targets = endpoints.targets(base)
    snapshot = ScrapeCollector(targets=targets).collect(START)

    truth = endpoints.snapshot()
    assert all(status.up for status in snapshot.targets), snapshot.targets
    assert {t.kind for t in targets} == {"dcgm", "vllm"}
    assert {g.uuid for g in snapshot.gpus} == set(fleet.uuids)
    want = {g.uuid: g for g in truth.gpus}
    for gpu in snapshot.gpus:
        assert gpu.node == want[gpu.uuid].node
        assert gpu.energy_joules == pytest.approx(want[gpu.uuid].energy_joules, abs=1e-3)
    models = {(m.node, m.instance): m for m in snapshot.models}
    assert len(models) == len(truth.models)
    for m in truth.models:
        got = models[(m.node, f"{m.instance}/0")]
        assert got.prompt_tokens_total == m.prompt_tokens_total
        assert got.gpu_uuids == m.gpu_uuids


def test_it_recollects_the_fleet_at_most_once_per_interval(served):
    endpoints, _, clock, base = served
    url = f"{base}/nodes/gpu-node-01/dcgm/metrics"

    with httpx.Client() as client:
        first = client.get(url)
        clock.now += timedelta(seconds=14)
        same = client.get(url)
        clock.now += timedelta(seconds=1)
        later = client.get(url)

    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert same.text == first.text
    assert later.text != first.text  # energy counters moved on
    assert endpoints.snapshot().timestamp == START + timedelta(seconds=15)


def test_it_answers_unknown_paths_and_methods(served):
    _, _, _, base = served

    with httpx.Client(base_url=base) as client:
        missing_node = client.get("/nodes/gpu-node-99/dcgm/metrics")
        missing_instance = client.get("/nodes/gpu-node-01/vllm/nope/metrics")
        elsewhere = client.get("/metrics")
        post = client.post("/nodes/gpu-node-01/dcgm/metrics")

    assert [r.status_code for r in (missing_node, missing_instance, elsewhere, post)] == [
        404,
        404,
        404,
        405,
    ]
