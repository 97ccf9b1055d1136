from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest

from collectors.base import GpuProcess, GpuSample, MigInstance
from collectors.exposition.agent import gpus_from_agent
from collectors.exposition.parser import parse_exposition
from daemon.exporter import build_registry
from daemon.state import LiveState

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
GIB = 1 << 30


def from_text(text: str, node: str = "fallback-node"):
    return gpus_from_agent(parse_exposition(text), node=node, now=NOW)


def rendered(gpus: tuple[GpuSample, ...], down: tuple[str, ...] = ()) -> str:
    state = LiveState()
    state.record_samples(gpus, (), down)
    return generate_latest(build_registry(state)).decode()


FULL = GpuSample(
    uuid="GPU-5b7c0e2a-7a51-4f5e-9d0e-3c1f2a4b6d80",
    node="gpu-node-02",
    index=3,
    name="NVIDIA H100 80GB HBM3",
    timestamp=NOW,
    utilization_ratio=0.73,
    memory_used_bytes=71 * GIB,
    memory_total_bytes=81_559 * 2**20,
    power_watts=512.25,
    power_limit_watts=700.0,
    energy_joules=98_765_432.125,
    temperature_celsius=64.0,
    pci_bus_id="00000000:9A:00.0",
    memory_utilization_ratio=0.31,
    memory_reserved_bytes=479 * 2**20,
    sm_clock_hz=1.98e9,
    memory_clock_hz=2.619e9,
    pstate=0,
    clock_event_idle=False,
    engine_active_ratio=0.66,
    processes=(
        GpuProcess(pid=2045, used_memory_bytes=69 * GIB, name="python3"),
        GpuProcess(pid=3011, used_memory_bytes=2 * GIB, name="tritonserver"),
    ),
    mig_enabled=True,
    mig_instances=(
        MigInstance(
            gpu_instance_id=1,
            profile="3g.40gb",
            memory_used_bytes=GIB,
            memory_total_bytes=40 * GIB,
            engine_active_ratio=0.5,
        ),
        MigInstance(
            gpu_instance_id=2, profile="3g.40gb", memory_used_bytes=0, memory_total_bytes=40 * GIB
        ),
    ),
)


def test_it_reads_back_every_field_the_agent_exports():
    gpus, notes = from_text(rendered((FULL,)))

    assert notes == []
    assert gpus == [FULL]


def test_it_reads_back_a_gpu_with_nothing_but_identity_reported():
    bare = GpuSample(uuid="GPU-b", node="gpu-node-02", index=0, name="NVIDIA L40S", timestamp=NOW)

    gpus, notes = from_text(rendered((bare,)))

    assert notes == []
    assert gpus == [bare]


def test_it_reports_down_gpus_in_the_notes_and_not_as_records():
    text = rendered((FULL,), down=("GPU-dead", "gpu-node-02/5"))

    gpus, notes = from_text(text)

    assert [g.uuid for g in gpus] == [FULL.uuid]
    assert notes == ["down: GPU-dead", "down: gpu-node-02/5"]


def test_it_leaves_out_a_gpu_that_went_down_after_being_seen():
    text = rendered((FULL,), down=(FULL.uuid,))

    gpus, notes = from_text(text)

    assert gpus == []
    assert notes == [f"down: {FULL.uuid}"]


# The /metrics of an agent from before the identity/process/MIG families existed, hand-written
# the way prometheus_client prints it; the node label is missing here on purpose.
OLD_AGENT = """\
# HELP tcowatch_gpu_up 1 when the GPU answered the last collection cycle, 0 when it failed.
# TYPE tcowatch_gpu_up gauge
tcowatch_gpu_up{gpu="0",model_name="NVIDIA A100-SXM4-80GB",uuid="GPU-aaaa"} 1.0
tcowatch_gpu_up{gpu="1",model_name="NVIDIA A100-SXM4-80GB",uuid="GPU-bbbb"} 1.0
# HELP tcowatch_gpu_utilization_ratio GPU compute utilization over the last sample period (0..1).
# TYPE tcowatch_gpu_utilization_ratio gauge
tcowatch_gpu_utilization_ratio{gpu="0",model_name="NVIDIA A100-SXM4-80GB",uuid="GPU-aaaa"} 0.12
tcowatch_gpu_utilization_ratio{gpu="1",model_name="NVIDIA A100-SXM4-80GB",uuid="GPU-bbbb"} NaN
tcowatch_gpu_utilization_ratio{gpu="2",model_name="NVIDIA A100-SXM4-80GB",uuid=""} 0.5
# HELP tcowatch_gpu_power_watts GPU power draw.
# TYPE tcowatch_gpu_power_watts gauge
tcowatch_gpu_power_watts{gpu="0",model_name="NVIDIA A100-SXM4-80GB",uuid="GPU-aaaa"} 88.0
tcowatch_gpu_power_watts{gpu="1",model_name="NVIDIA A100-SXM4-80GB",uuid="GPU-bbbb"} +Inf
# HELP tcowatch_gpu_energy_joules_total GPU energy consumed since the driver was loaded.
# TYPE tcowatch_gpu_energy_joules_total counter
tcowatch_gpu_energy_joules_total{gpu="0",model_name="NVIDIA A100-SXM4-80GB",uuid="GPU-aaaa"} 1.5e+06
"""


def test_it_maps_an_older_agent_and_uses_the_fallback_node():
    gpus, notes = from_text(OLD_AGENT, node="10.0.0.7")

    assert [(g.uuid, g.node, g.index, g.name) for g in gpus] == [
        ("GPU-aaaa", "10.0.0.7", 0, "NVIDIA A100-SXM4-80GB"),
        ("GPU-bbbb", "10.0.0.7", 1, "NVIDIA A100-SXM4-80GB"),
    ]
    first, second = gpus
    assert first.utilization_ratio == 0.12
    assert first.power_watts == 88.0
    assert first.energy_joules == 1.5e6
    assert first.processes is None
    assert first.mig_enabled is None
    assert first.pci_bus_id is None
    assert second.utilization_ratio is None
    assert second.power_watts is None
    assert notes == [
        "1 series without a uuid label skipped",
        "2 non-finite values ignored (tcowatch_gpu_power_watts, tcowatch_gpu_utilization_ratio)",
    ]


def test_it_says_how_many_processes_it_could_not_list_and_knows_an_empty_gpu():
    unlisted = GpuSample(
        uuid="GPU-c",
        node="n",
        index=0,
        name="X",
        timestamp=NOW,
        processes=(GpuProcess(pid=1, used_memory_bytes=10, name="a"), GpuProcess(pid=2)),
    )
    empty = GpuSample(uuid="GPU-d", node="n", index=1, name="X", timestamp=NOW, processes=())

    gpus, notes = from_text(rendered((unlisted, empty)))

    assert gpus[0].processes == (GpuProcess(pid=1, used_memory_bytes=10, name="a"),)
    assert gpus[1].processes == ()
    assert notes == ["1 processes without a memory reading not listed"]
