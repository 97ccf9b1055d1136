"""Fixtures for the collector tests: a fake ``pynvml`` module with two H100s."""

from __future__ import annotations

import pytest

from tests.collectors.fake_pynvml import FakeGpu, FakeNvml, FakeProcess

BUSY_PROCESS = FakeProcess(pid=4242, used_memory=68_719_476_736, name="VLLM::EngineCore")


@pytest.fixture
def fake_nvml() -> FakeNvml:
    """Two healthy fake GPUs; tests set ``gpus[i].errors`` or ``init_error`` to make calls fail.

    GPU 0 is busy (one vLLM process, power-capped clocks); GPU 1 is idle (no process, P8, the
    ``GpuIdle`` clock-event reason set).
    """
    return FakeNvml(
        [
            FakeGpu(
                uuid="GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
                clock_event_reasons=0x4,  # SwPowerCap only
                processes=[BUSY_PROCESS],
            ),
            FakeGpu(
                uuid="GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77",
                utilization_gpu=0,
                utilization_memory=0,
                power_mw=71_250,
                energy_mj=1_000_500,
                temperature=31,
                pci_bus_id=b"00000000:2A:00.0",
                sm_clock_mhz=345,
                mem_clock_mhz=405,
                pstate=8,
                clock_event_reasons=0x1,  # GpuIdle
            ),
        ]
    )
