"""The NVML readings beyond the basics: identity, clocks, P-state, idle reason, processes, MIG."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from collectors.base import GpuProcess, MigInstance
from collectors.nvml import NvmlCollector
from collectors.nvml_fields import mig_profile
from tests.collectors import fake_pynvml as fp
from tests.collectors.fake_pynvml import FakeMig, FakeNvml, FakeProcess

NOW = datetime(2025, 6, 2, 14, 30, tzinfo=UTC)
UUID0 = "GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
UUID1 = "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77"
MIG_ON = (fp.NVML_DEVICE_MIG_ENABLE, fp.NVML_DEVICE_MIG_ENABLE)


def make(fake: FakeNvml, **kwargs) -> NvmlCollector:
    return NvmlCollector(node="gpu-node-07", nvml=fake, **kwargs)


def gpu(fake: FakeNvml, uuid: str = UUID0, *, collector: NvmlCollector | None = None, now=NOW):
    snap = (collector or make(fake)).collect(now)
    assert snap.down_gpus == ()
    return {g.uuid: g for g in snap.gpus}[uuid]


def enable_mig(fake: FakeNvml) -> None:
    g = fake.gpus[0]
    g.mig_mode = MIG_ON
    g.migs = [
        FakeMig(slot=0, gpu_instance_id=7, memory_used=1_500_000_000),
        FakeMig(slot=2, gpu_instance_id=8, memory_used=0),
        FakeMig(
            slot=5,
            gpu_instance_id=1,
            name=b"NVIDIA H100 80GB HBM3 MIG 3g.40gb",
            memory_total=42_949_672_960,
            memory_used=20_000_000_000,
        ),
    ]


# -- identity, clocks, P-state, idle reason -------------------------------------------------


def test_it_reads_identity_clocks_and_state_in_base_units(fake_nvml):
    g0 = gpu(fake_nvml, UUID0)
    g1 = gpu(fake_nvml, UUID1)

    assert g0.pci_bus_id == "00000000:1A:00.0"  # bytes in the real struct, decoded
    assert g1.pci_bus_id == "00000000:2A:00.0"
    assert g0.memory_utilization_ratio == pytest.approx(0.22)
    assert g1.memory_utilization_ratio == 0.0
    assert g0.memory_reserved_bytes == 560_000_000
    assert g0.sm_clock_hz == 1_980_000_000.0
    assert g0.memory_clock_hz == 2_619_000_000.0
    assert g1.sm_clock_hz == 345_000_000.0
    assert g0.pstate == 0
    assert g1.pstate == 8
    assert g0.clock_event_idle is False  # only SwPowerCap set
    assert g1.clock_event_idle is True
    assert g0.mig_enabled is False
    assert g0.mig_instances == ()


def test_it_decodes_a_bus_id_given_as_text(fake_nvml):
    fake_nvml.gpus[0].pci_bus_id = "00000000:1A:00.0"

    assert gpu(fake_nvml).pci_bus_id == "00000000:1A:00.0"


@pytest.mark.parametrize("value", [fp.NVML_PSTATE_UNKNOWN, 16, -1])
def test_it_reports_an_unknown_pstate_as_none(fake_nvml, value):
    fake_nvml.gpus[0].pstate = value

    assert gpu(fake_nvml).pstate is None


def test_it_reports_memory_reserved_as_none_from_v1_memory_info(fake_nvml):
    fake_nvml.gpus[0].memory_v2 = "missing"

    g0 = gpu(fake_nvml)

    assert g0.memory_reserved_bytes is None
    assert g0.memory_total_bytes == 85_520_809_984


@pytest.mark.parametrize("code", [fp.NVML_ERROR_NOT_SUPPORTED, fp.NVML_ERROR_NO_PERMISSION])
@pytest.mark.parametrize(
    ("function", "attrs"),
    [
        ("nvmlDeviceGetPciInfo", ["pci_bus_id"]),
        ("nvmlDeviceGetUtilizationRates", ["utilization_ratio", "memory_utilization_ratio"]),
        ("nvmlDeviceGetMemoryInfo", ["memory_reserved_bytes", "memory_total_bytes"]),
        ("nvmlDeviceGetClockInfo", ["sm_clock_hz", "memory_clock_hz"]),
        ("nvmlDeviceGetClockInfo:1", ["sm_clock_hz"]),
        ("nvmlDeviceGetClockInfo:2", ["memory_clock_hz"]),
        ("nvmlDeviceGetPerformanceState", ["pstate"]),
        ("nvmlDeviceGetCurrentClocksEventReasons", ["clock_event_idle"]),
        ("nvmlDeviceGetComputeRunningProcesses", ["processes"]),
        ("nvmlDeviceGetMigMode", ["mig_enabled"]),
    ],
)
def test_it_reports_an_unsupported_new_field_as_none(fake_nvml, code, function, attrs):
    fake_nvml.gpus[1].errors[function] = code

    snap = make(fake_nvml).collect(NOW)

    assert snap.down_gpus == ()
    g0, g1 = snap.gpus
    for attr in attrs:
        assert getattr(g1, attr) is None, attr
        assert getattr(g0, attr) is not None, attr
    untouched = {"pstate", "sm_clock_hz", "processes", "pci_bus_id"} - set(attrs)
    assert all(getattr(g1, attr) is not None for attr in untouched)


def test_it_keeps_sm_and_memory_clocks_apart_when_one_is_unsupported(fake_nvml):
    fake_nvml.gpus[0].errors["nvmlDeviceGetClockInfo:2"] = fp.NVML_ERROR_NOT_SUPPORTED
    collector = make(fake_nvml)

    for cycle in range(2):
        g0 = gpu(fake_nvml, collector=collector, now=NOW + timedelta(seconds=cycle))
        assert g0.memory_clock_hz is None
        assert g0.sm_clock_hz == 1_980_000_000.0


@pytest.mark.parametrize(
    "function",
    [
        "nvmlDeviceGetPciInfo",
        "nvmlDeviceGetClockInfo",
        "nvmlDeviceGetPerformanceState",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetMigMode",
    ],
)
def test_it_marks_the_gpu_down_on_a_lifecycle_error_in_a_new_field(fake_nvml, function):
    fake_nvml.gpus[0].errors[function] = fp.NVML_ERROR_GPU_IS_LOST
    collector = make(fake_nvml)

    snap = collector.collect(NOW)

    assert snap.down_gpus == (UUID0,)
    assert [g.uuid for g in snap.gpus] == [UUID1]
    fake_nvml.gpus[0].errors.clear()
    snap = collector.collect(NOW + timedelta(seconds=15))
    assert fake_nvml.calls["nvmlInit"] == 2
    assert [g.uuid for g in snap.gpus] == [UUID0, UUID1]


def test_it_warns_once_about_an_unexpected_field_error(fake_nvml, caplog):
    fake_nvml.gpus[0].errors["nvmlDeviceGetPerformanceState"] = fp.NVML_ERROR_UNKNOWN
    collector = make(fake_nvml)

    with caplog.at_level(logging.WARNING, logger="collectors.nvml"):
        for cycle in range(3):
            assert (
                gpu(fake_nvml, collector=collector, now=NOW + timedelta(seconds=cycle)).pstate
                is None
            )

    warnings = [r for r in caplog.records if "nvmlDeviceGetPerformanceState" in r.getMessage()]
    assert len(warnings) == 1
    assert fake_nvml.calls["nvmlDeviceGetPerformanceState"] == 6  # not sticky: asked each cycle


# -- clock-event reasons: the older ThrottleReasons call ------------------------------------


def test_it_falls_back_to_throttle_reasons_when_the_binding_lacks_event_reasons(fake_nvml):
    fake_nvml.hide("nvmlDeviceGetCurrentClocksEventReasons", "nvmlClocksEventReasonGpuIdle")

    assert gpu(fake_nvml, UUID1).clock_event_idle is True
    assert gpu(fake_nvml, UUID0).clock_event_idle is False
    assert fake_nvml.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] >= 2


def test_it_falls_back_to_throttle_reasons_when_the_driver_lacks_event_reasons(fake_nvml):
    for g in fake_nvml.gpus:
        g.errors["nvmlDeviceGetCurrentClocksEventReasons"] = fp.NVML_ERROR_FUNCTION_NOT_FOUND
    collector = make(fake_nvml)

    assert gpu(fake_nvml, UUID1, collector=collector).clock_event_idle is True
    gpu(fake_nvml, UUID1, collector=collector, now=NOW + timedelta(seconds=1))

    assert fake_nvml.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 2  # once per GPU
    assert fake_nvml.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 4


def test_it_does_not_fall_back_when_event_reasons_are_unsupported(fake_nvml):
    fake_nvml.gpus[1].errors["nvmlDeviceGetCurrentClocksEventReasons"] = fp.NVML_ERROR_NOT_SUPPORTED

    assert gpu(fake_nvml, UUID1).clock_event_idle is None
    assert fake_nvml.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 0


# -- processes ------------------------------------------------------------------------------


def test_it_lists_running_processes_and_an_empty_tuple_when_none_run(fake_nvml):
    g0 = gpu(fake_nvml, UUID0)
    g1 = gpu(fake_nvml, UUID1)

    assert g0.processes == (
        GpuProcess(pid=4242, used_memory_bytes=68_719_476_736, name="VLLM::EngineCore"),
    )
    assert g1.processes == ()


@pytest.mark.parametrize("used", [None, 2**64 - 1])
def test_it_reports_process_memory_not_available_as_none(fake_nvml, used):
    fake_nvml.gpus[1].processes = [FakeProcess(pid=77, used_memory=used, name=b"/usr/bin/python3")]

    (process,) = gpu(fake_nvml, UUID1).processes

    assert process == GpuProcess(pid=77, used_memory_bytes=None, name="/usr/bin/python3")


@pytest.mark.parametrize("code", [fp.NVML_ERROR_NOT_FOUND, fp.NVML_ERROR_NO_PERMISSION])
def test_it_leaves_the_process_name_out_when_nvml_will_not_give_it(fake_nvml, code):
    fake_nvml.process_name_errors[4242] = code

    (process,) = gpu(fake_nvml).processes

    assert process.pid == 4242
    assert process.name is None
    assert process.used_memory_bytes == 68_719_476_736


def test_it_looks_each_process_name_up_once_while_the_process_runs(fake_nvml):
    shared = FakeProcess(pid=5151, name="ray::RayWorker")
    fake_nvml.gpus[0].processes.append(shared)
    fake_nvml.gpus[1].processes = [shared]
    collector = make(fake_nvml)

    for cycle in range(3):
        collector.collect(NOW + timedelta(seconds=cycle))

    assert fake_nvml.calls["nvmlSystemGetProcessName"] == 2  # 4242 and 5151, once each
    assert len(collector._names) == 2

    fake_nvml.gpus[0].processes = [shared]  # 4242 exits
    collector.collect(NOW + timedelta(seconds=3))
    assert len(collector._names) == 1  # bounded: names of exited PIDs are dropped

    fake_nvml.gpus[0].processes.append(FakeProcess(pid=4242, name="python3"))  # PID reused
    g0 = gpu(fake_nvml, collector=collector, now=NOW + timedelta(seconds=4))
    assert fake_nvml.calls["nvmlSystemGetProcessName"] == 3
    assert g0.processes[-1].name == "python3"


def test_it_asks_again_for_a_name_that_failed_unexpectedly(fake_nvml):
    fake_nvml.process_name_errors[4242] = fp.NVML_ERROR_UNKNOWN
    collector = make(fake_nvml)

    assert gpu(fake_nvml, collector=collector).processes[0].name is None
    del fake_nvml.process_name_errors[4242]
    g0 = gpu(fake_nvml, collector=collector, now=NOW + timedelta(seconds=1))

    assert g0.processes[0].name == "VLLM::EngineCore"


def test_it_marks_the_gpu_down_when_a_process_name_lookup_hits_a_lifecycle_error(fake_nvml):
    fake_nvml.process_name_errors[4242] = fp.NVML_ERROR_DRIVER_NOT_LOADED

    snap = make(fake_nvml).collect(NOW)

    assert snap.down_gpus == (UUID0,)


def test_it_falls_back_to_the_v2_process_call_on_a_library_mismatch(fake_nvml):
    fake_nvml.gpus[0].errors["nvmlDeviceGetComputeRunningProcesses"] = (
        fp.NVML_ERROR_FUNCTION_NOT_FOUND  # the real binding raises NVMLLibraryMismatchError
    )

    g0 = gpu(fake_nvml)

    assert [p.pid for p in g0.processes] == [4242]
    assert fake_nvml.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 1


def test_it_reports_processes_unknown_when_no_process_call_exists(fake_nvml):
    fake_nvml.hide(
        "nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2"
    )

    assert gpu(fake_nvml).processes is None


# -- MIG ------------------------------------------------------------------------------------


def test_it_enumerates_mig_instances_and_skips_empty_slots(fake_nvml):
    enable_mig(fake_nvml)

    g0 = gpu(fake_nvml, UUID0)

    assert g0.mig_enabled is True
    assert g0.mig_instances == (
        MigInstance(7, "1g.10gb", 1_500_000_000, 10_871_635_968, None),
        MigInstance(8, "1g.10gb", 0, 10_871_635_968, None),
        MigInstance(1, "3g.40gb", 20_000_000_000, 42_949_672_960, None),
    )
    assert fake_nvml.calls["nvmlDeviceGetMigDeviceHandleByIndex"] == 7  # every slot tried
    assert gpu(fake_nvml, UUID1).mig_instances == ()


def test_it_never_invents_utilization_on_a_mig_enabled_gpu(fake_nvml):
    enable_mig(fake_nvml)

    g0 = gpu(fake_nvml, UUID0)

    assert g0.utilization_ratio is None
    assert g0.memory_utilization_ratio is None
    assert all(m.engine_active_ratio is None for m in g0.mig_instances)
    assert g0.memory_used_bytes == 70_000_000_000  # the parent's other fields are still read
    assert g0.power_watts == pytest.approx(312.456)
    assert fake_nvml.calls["nvmlDeviceGetUtilizationRates"] == 1  # GPU 1 only


def test_it_treats_a_pending_mig_mode_as_not_enabled(fake_nvml):
    fake_nvml.gpus[0].mig_mode = (fp.NVML_DEVICE_MIG_DISABLE, fp.NVML_DEVICE_MIG_ENABLE)

    g0 = gpu(fake_nvml)

    assert g0.mig_enabled is False
    assert g0.mig_instances == ()
    assert g0.utilization_ratio == pytest.approx(0.45)


@pytest.mark.parametrize("code", [fp.NVML_ERROR_NOT_FOUND, fp.NVML_ERROR_INVALID_ARGUMENT])
def test_it_skips_a_mig_slot_that_reports_empty(fake_nvml, code):
    enable_mig(fake_nvml)
    fake_nvml.gpus[0].errors["nvmlDeviceGetMigDeviceHandleByIndex:2"] = code

    g0 = gpu(fake_nvml)

    assert [m.gpu_instance_id for m in g0.mig_instances] == [7, 1]


def test_it_leaves_out_a_mig_instance_without_an_id_and_keeps_absent_memory_none(fake_nvml):
    enable_mig(fake_nvml)
    migs = fake_nvml.gpus[0].migs
    migs[0].errors["nvmlDeviceGetGpuInstanceId"] = fp.NVML_ERROR_NO_PERMISSION
    migs[1].errors["nvmlDeviceGetMemoryInfo"] = fp.NVML_ERROR_NOT_SUPPORTED
    migs[2].name = "NVIDIA H100 80GB HBM3"

    g0 = gpu(fake_nvml)

    assert g0.mig_instances == (
        MigInstance(8, "1g.10gb", memory_used_bytes=None, memory_total_bytes=None),
        MigInstance(1, None, memory_used_bytes=20_000_000_000, memory_total_bytes=42_949_672_960),
    )


@pytest.mark.parametrize(
    "function",
    ["nvmlDeviceGetMaxMigDeviceCount", "nvmlDeviceGetMigDeviceHandleByIndex:0"],
)
def test_it_marks_the_gpu_down_on_a_lifecycle_error_during_mig_enumeration(fake_nvml, function):
    enable_mig(fake_nvml)
    fake_nvml.gpus[0].errors[function] = fp.NVML_ERROR_GPU_IS_LOST

    assert make(fake_nvml).collect(NOW).down_gpus == (UUID0,)


def test_it_marks_the_gpu_down_on_a_lifecycle_error_on_a_mig_device(fake_nvml):
    enable_mig(fake_nvml)
    fake_nvml.gpus[0].migs[1].errors["nvmlDeviceGetMemoryInfo"] = fp.NVML_ERROR_GPU_IS_LOST

    assert make(fake_nvml).collect(NOW).down_gpus == (UUID0,)


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "1g.10gb"),
        ("NVIDIA A100-SXM4-40GB MIG 1c.3g.20gb", "1c.3g.20gb"),
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb+me", "1g.10gb+me"),
        ("NVIDIA A30 MIG 2g.12gb ", "2g.12gb"),
        ("NVIDIA H100 80GB HBM3", None),
        ("MIG", None),
    ],
)
def test_it_takes_the_mig_profile_from_the_device_name(name, profile):
    assert mig_profile(name) == profile


# -- cost -----------------------------------------------------------------------------------


def nvml_calls(fake: FakeNvml) -> int:
    """NVML calls made so far (the fake also counts v2 memory calls under a second name)."""
    return sum(fake.calls.values()) - fake.calls["nvmlDeviceGetMemoryInfo_v2"]


def test_it_reads_static_gpu_facts_once_per_nvml_session(fake_nvml):
    enable_mig(fake_nvml)
    collector = make(fake_nvml)
    collector.collect(NOW)
    first = nvml_calls(fake_nvml)

    collector.collect(NOW + timedelta(seconds=1))

    steady = nvml_calls(fake_nvml) - first
    for fn in ["nvmlDeviceGetHandleByIndex", "nvmlDeviceGetUUID", "nvmlDeviceGetPciInfo"]:
        assert fake_nvml.calls[fn] == 2, fn  # once per GPU, first cycle only
    assert fake_nvml.calls["nvmlDeviceGetName"] == 2 + 2 * 3  # parents once, MIG devices each cycle
    assert fake_nvml.calls["nvmlDeviceGetMaxMigDeviceCount"] == 1
    assert fake_nvml.calls["nvmlSystemGetProcessName"] == 1
    per_gpu = 12  # MIG mode, utilization, memory, power, limit, energy, temp, 2 clocks,
    # P-state, clock-event reasons, processes
    per_mig_gpu = per_gpu - 1 + 7 + 3 * 3  # no utilization; 7 slots tried; 3 per instance
    assert steady == 1 + per_gpu + per_mig_gpu


def test_it_asks_for_an_unsupported_field_again_only_after_recheck_or_reinit(fake_nvml):
    fake_nvml.gpus[0].errors["nvmlDeviceGetTotalEnergyConsumption"] = fp.NVML_ERROR_NOT_SUPPORTED
    collector = make(fake_nvml, recheck_unsupported=timedelta(minutes=10))
    calls = fake_nvml.calls

    for second in range(0, 60, 15):
        assert (
            gpu(fake_nvml, collector=collector, now=NOW + timedelta(seconds=second)).energy_joules
            is None
        )
    assert calls["nvmlDeviceGetTotalEnergyConsumption"] == 2 + 3  # GPU 0 once, GPU 1 each cycle

    fake_nvml.gpus[0].errors.clear()  # e.g. a driver update exposing the counter
    g0 = gpu(fake_nvml, collector=collector, now=NOW + timedelta(minutes=10))
    assert g0.energy_joules == pytest.approx(4_335_301.032)

    fake_nvml.gpus[0].errors["nvmlDeviceGetTotalEnergyConsumption"] = fp.NVML_ERROR_NOT_SUPPORTED
    fake_nvml.gpus[1].errors["nvmlDeviceGetPowerUsage"] = fp.NVML_ERROR_GPU_IS_LOST
    collector.collect(NOW + timedelta(minutes=11))  # GPU 0: unsupported again; GPU 1 lost
    fake_nvml.gpus[0].errors.clear()
    fake_nvml.gpus[1].errors.clear()
    g0 = gpu(fake_nvml, collector=collector, now=NOW + timedelta(minutes=11, seconds=15))
    assert g0.energy_joules == pytest.approx(4_335_301.032)  # re-init forgot what was unsupported


def test_it_reads_a_name_again_until_nvml_gives_it(fake_nvml):
    fake_nvml.gpus[0].errors["nvmlDeviceGetName"] = fp.NVML_ERROR_UNKNOWN
    collector = make(fake_nvml)
    assert gpu(fake_nvml, collector=collector).name == "unknown"

    del fake_nvml.gpus[0].errors["nvmlDeviceGetName"]
    assert gpu(fake_nvml, collector=collector, now=NOW + timedelta(seconds=1)).name == (
        "NVIDIA H100 80GB HBM3"
    )
    gpu(fake_nvml, collector=collector, now=NOW + timedelta(seconds=2))
    assert fake_nvml.calls["nvmlDeviceGetName"] == 3  # GPU 0 twice, GPU 1 once
