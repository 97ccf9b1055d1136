from __future__ import annotations

import ctypes
import re
import sys
from datetime import UTC, datetime, timedelta

import pytest

from collectors.base import CollectorDown, CollectorError
from collectors.nvml import NvmlCollector
from tests.collectors import fake_pynvml as fp
from tests.collectors.fake_pynvml import FakeNvml

NOW = datetime(2025, 6, 2, 14, 30, tzinfo=UTC)
UUID0 = "GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
UUID1 = "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77"


def make(fake: FakeNvml, **kwargs) -> NvmlCollector:
    return NvmlCollector(node="gpu-node-07", nvml=fake, **kwargs)


def by_uuid(snapshot):
    return {g.uuid: g for g in snapshot.gpus}


def test_it_reads_every_gpu_in_base_units(fake_nvml):
    snap = make(fake_nvml).collect(NOW)

    assert snap.collector == "nvml"
    assert snap.timestamp == NOW
    assert snap.down_gpus == ()
    assert [g.uuid for g in snap.gpus] == [UUID0, UUID1]
    g0 = by_uuid(snap)[UUID0]
    assert g0.node == "gpu-node-07"
    assert g0.index == 0
    assert g0.name == "NVIDIA H100 80GB HBM3"
    assert g0.timestamp == NOW
    assert g0.utilization_ratio == pytest.approx(0.45)
    assert g0.memory_used_bytes == 70_000_000_000  # v2: driver-reserved memory not included
    assert g0.memory_total_bytes == 85_520_809_984
    assert g0.power_watts == pytest.approx(312.456)
    assert g0.power_limit_watts == pytest.approx(700.0)
    assert g0.energy_joules == pytest.approx(4_335_301.032)
    assert g0.temperature_celsius == 54.0
    g1 = by_uuid(snap)[UUID1]
    assert g1.index == 1
    assert g1.utilization_ratio == 0.0
    assert g1.power_watts == pytest.approx(71.25)


def test_it_defaults_the_node_to_the_host_name(fake_nvml, monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "dgx-a")
    assert NvmlCollector(nvml=fake_nvml).collect(NOW).gpus[0].node == "dgx-a"


@pytest.mark.parametrize("code", [fp.NVML_ERROR_NOT_SUPPORTED, fp.NVML_ERROR_NO_PERMISSION])
@pytest.mark.parametrize(
    ("function", "attr"),
    [
        ("nvmlDeviceGetUtilizationRates", "utilization_ratio"),
        ("nvmlDeviceGetMemoryInfo", "memory_used_bytes"),
        ("nvmlDeviceGetPowerUsage", "power_watts"),
        ("nvmlDeviceGetEnforcedPowerLimit", "power_limit_watts"),
        ("nvmlDeviceGetTotalEnergyConsumption", "energy_joules"),
        ("nvmlDeviceGetTemperature", "temperature_celsius"),
    ],
)
def test_it_reports_an_unsupported_field_as_none(fake_nvml, code, function, attr):
    fake_nvml.gpus[0].errors[function] = code
    fake_nvml.gpus[0].memory_v2 = "missing"  # so a memory error reaches the v1 call too

    snap = make(fake_nvml).collect(NOW)

    g0 = by_uuid(snap)[UUID0]
    assert getattr(g0, attr) is None
    assert g0.energy_joules is not None or attr == "energy_joules"
    assert g0.power_watts is not None or attr == "power_watts"
    assert snap.down_gpus == ()
    assert getattr(by_uuid(snap)[UUID1], attr) is not None


def test_it_reports_an_unexpected_field_error_as_none_without_failing(fake_nvml):
    fake_nvml.gpus[1].errors["nvmlDeviceGetPowerUsage"] = fp.NVML_ERROR_UNKNOWN

    snap = make(fake_nvml).collect(NOW)

    assert by_uuid(snap)[UUID1].power_watts is None
    assert by_uuid(snap)[UUID1].utilization_ratio == 0.0
    assert snap.down_gpus == ()


@pytest.mark.parametrize(
    "code",
    [
        fp.NVML_ERROR_GPU_IS_LOST,
        fp.NVML_ERROR_DRIVER_NOT_LOADED,
        fp.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
        fp.NVML_ERROR_GPU_NOT_FOUND,
        fp.NVML_ERROR_UNINITIALIZED,
        fp.NVML_ERROR_RESET_REQUIRED,
    ],
)
def test_it_marks_a_lost_gpu_down_and_reinitialises_next_cycle(fake_nvml, code):
    fake_nvml.gpus[1].errors["nvmlDeviceGetPowerUsage"] = code
    collector = make(fake_nvml)

    snap = collector.collect(NOW)

    assert snap.down_gpus == (UUID1,)
    assert [g.uuid for g in snap.gpus] == [UUID0]
    assert fake_nvml.calls["nvmlInit"] == 1
    assert fake_nvml.calls["nvmlShutdown"] == 0

    fake_nvml.gpus[1].errors.clear()
    snap = collector.collect(NOW + timedelta(seconds=15))

    assert fake_nvml.calls["nvmlShutdown"] == 1
    assert fake_nvml.calls["nvmlInit"] == 2
    assert snap.down_gpus == ()
    assert [g.uuid for g in snap.gpus] == [UUID0, UUID1]
    collector.collect(NOW + timedelta(seconds=30))
    assert fake_nvml.calls["nvmlInit"] == 2  # healthy cycles keep the session


def test_it_keys_a_gpu_lost_before_its_uuid_by_node_and_index(fake_nvml):
    fake_nvml.gpus[0].errors["nvmlDeviceGetHandleByIndex"] = fp.NVML_ERROR_GPU_IS_LOST

    snap = make(fake_nvml).collect(NOW)

    assert snap.down_gpus == ("gpu-node-07/0",)
    assert [g.uuid for g in snap.gpus] == [UUID1]


def test_it_fails_the_cycle_when_the_gpu_list_cannot_be_read(fake_nvml):
    fake_nvml.count_error = fp.NVML_ERROR_DRIVER_NOT_LOADED
    collector = make(fake_nvml)

    with pytest.raises(CollectorError) as raised:
        collector.collect(NOW)

    assert not isinstance(raised.value, CollectorDown)
    assert "cannot list GPUs" in raised.value.reason
    fake_nvml.count_error = None
    assert len(collector.collect(NOW + timedelta(seconds=15)).gpus) == 2
    assert fake_nvml.calls["nvmlInit"] == 2


def test_it_is_down_when_the_library_is_missing_and_backs_off(fake_nvml):
    fake_nvml.init_error = fp.NVML_ERROR_LIBRARY_NOT_FOUND
    collector = make(fake_nvml, retry_backoff=timedelta(seconds=60))

    with pytest.raises(CollectorDown) as raised:
        collector.collect(NOW)
    assert raised.value.reason.startswith(
        "NVML library not found (libnvidia-ml.so.1): install the NVIDIA driver on this node, "
        "or enable collectors.simulated for a demo"
    )
    assert "\n" not in raised.value.reason
    assert fake_nvml.calls["nvmlInit"] == 1

    with pytest.raises(CollectorDown) as again:
        collector.collect(NOW + timedelta(seconds=59))
    assert again.value.reason.startswith("NVML library not found")
    assert "next retry after" in again.value.reason
    assert fake_nvml.calls["nvmlInit"] == 1  # within the back-off: NVML not touched

    with pytest.raises(CollectorDown):
        collector.collect(NOW + timedelta(seconds=60))
    assert fake_nvml.calls["nvmlInit"] == 2  # back-off over: tried again

    fake_nvml.init_error = None
    snap = collector.collect(NOW + timedelta(seconds=121))
    assert fake_nvml.calls["nvmlInit"] == 3
    assert len(snap.gpus) == 2


def test_it_says_what_to_do_when_the_driver_is_not_loaded(fake_nvml):
    fake_nvml.init_error = fp.NVML_ERROR_DRIVER_NOT_LOADED

    with pytest.raises(CollectorDown) as raised:
        make(fake_nvml).collect(NOW)

    assert raised.value.reason.startswith("NVIDIA driver not loaded")


def test_it_names_the_code_of_an_unexpected_init_failure(fake_nvml):
    fake_nvml.init_error = fp.NVML_ERROR_UNKNOWN

    with pytest.raises(CollectorDown) as raised:
        make(fake_nvml).collect(NOW)

    assert "NVML initialisation failed" in raised.value.reason
    assert "999" in raised.value.reason


def test_it_is_down_when_pynvml_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError

    with pytest.raises(CollectorDown) as raised:
        NvmlCollector(node="n").collect(NOW)

    assert "pip install nvidia-ml-py" in raised.value.reason


@pytest.mark.parametrize("mode", ["missing", "old-signature"])
def test_it_falls_back_to_v1_memory_info(fake_nvml, mode):
    fake_nvml.gpus[0].memory_v2 = mode

    g0 = by_uuid(make(fake_nvml).collect(NOW))[UUID0]

    assert fake_nvml.calls["nvmlDeviceGetMemoryInfo_v2"] >= 1
    assert g0.memory_used_bytes == 70_000_000_000 + 560_000_000  # v1 counts reserved memory
    assert g0.memory_total_bytes == 85_520_809_984


def test_it_decodes_byte_strings_from_old_bindings(fake_nvml):
    fake_nvml.gpus[0].uuid = UUID0.encode()
    fake_nvml.gpus[0].name = b"NVIDIA A100-SXM4-80GB"

    g0 = make(fake_nvml).collect(NOW).gpus[0]

    assert g0.uuid == UUID0
    assert g0.name == "NVIDIA A100-SXM4-80GB"


def test_it_shuts_nvml_down_on_close_and_never_raises(fake_nvml):
    collector = make(fake_nvml)
    collector.close()  # never initialised: nothing to do
    assert fake_nvml.calls["nvmlShutdown"] == 0

    collector.collect(NOW)
    fake_nvml.shutdown_error = fp.NVML_ERROR_UNKNOWN
    collector.close()
    collector.close()

    assert fake_nvml.calls["nvmlShutdown"] == 1


def _library_loadable() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def _real_gpu_present() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_it_is_down_with_a_clear_reason_on_a_machine_without_nvidia_driver():
    if _real_gpu_present():
        pytest.skip("a real NVIDIA GPU is present")
    collector = NvmlCollector(node="n")

    with pytest.raises(CollectorDown) as raised:
        collector.collect(datetime.now(UTC))

    if _library_loadable():  # a driver's library without a working driver
        assert "driver" in raised.value.reason
    else:
        assert "NVML library not found (libnvidia-ml.so.1)" in raised.value.reason
    collector.close()


def test_it_reads_real_gpus_when_present():
    if not _real_gpu_present():
        pytest.skip("no NVIDIA GPU on this machine")
    collector = NvmlCollector(node="n")
    try:
        snap = collector.collect(datetime.now(UTC))
    finally:
        collector.close()

    assert snap.gpus
    for gpu in snap.gpus:
        assert gpu.uuid.startswith(("GPU-", "MIG-"))
        assert gpu.memory_total_bytes is None or gpu.memory_total_bytes > 2**30
        assert gpu.power_watts is None or 0 < gpu.power_watts < 2_000
        assert gpu.utilization_ratio is None or 0 <= gpu.utilization_ratio <= 1
        assert gpu.memory_utilization_ratio is None or 0 <= gpu.memory_utilization_ratio <= 1
        assert gpu.pci_bus_id is None or re.fullmatch(
            r"[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.\d", gpu.pci_bus_id
        )
        assert gpu.sm_clock_hz is None or 0 <= gpu.sm_clock_hz < 5e9
        assert gpu.memory_clock_hz is None or 0 < gpu.memory_clock_hz < 2e10
        assert gpu.pstate is None or 0 <= gpu.pstate <= 15
        assert gpu.energy_joules is None or gpu.energy_joules > 0
        assert gpu.memory_reserved_bytes is None or gpu.memory_reserved_bytes < (
            gpu.memory_total_bytes or 0
        )
        assert gpu.processes is None or all(p.pid > 0 for p in gpu.processes)
        assert gpu.mig_enabled in (None, True, False)
        if gpu.mig_enabled:
            assert gpu.utilization_ratio is None
