"""Fixtures for the collector tests: a fake ``pynvml`` module with two H100s."""

from __future__ import annotations

import pytest

from tests.collectors.fake_pynvml import FakeGpu, FakeNvml


@pytest.fixture
def fake_nvml() -> FakeNvml:
    """Two healthy fake GPUs; tests set ``gpus[i].errors`` or ``init_error`` to make calls fail."""
    return FakeNvml(
        [
            FakeGpu(uuid="GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"),
            FakeGpu(
                uuid="GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77",
                utilization_gpu=0,
                power_mw=71_250,
                energy_mj=1_000_500,
                temperature=31,
            ),
        ]
    )
