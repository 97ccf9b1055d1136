from __future__ import annotations

from datetime import UTC, datetime

from collectors.base import GpuProcess
from collectors.exposition.nvidia_smi import gpus_from_nvidia_smi, normalise_uuid
from collectors.exposition.parser import parse_exposition

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

# Shaped like utkuozdemir/nvidia_gpu_exporter's recorded H100 captures
# (internal/integration/testdata/*.metrics): sorted families, bare UUIDs, values already scaled
# ([MiB] -> bytes, [%] -> ratio, [MHz] -> Hz), identity only on nvidia_smi_gpu_info, the opt-in
# compute-app families, plus the NVML backend's energy counter. Two GPUs: one busy, one idle.
PAYLOAD = """\
# HELP nvidia_smi_clocks_current_memory_clock_hz clocks.current.memory [MHz]
# TYPE nvidia_smi_clocks_current_memory_clock_hz gauge
nvidia_smi_clocks_current_memory_clock_hz{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 2.619e+09
nvidia_smi_clocks_current_memory_clock_hz{uuid="c0ffee00-1234-4abc-8def-001122334455"} 2.619e+09
# HELP nvidia_smi_clocks_current_sm_clock_hz clocks.current.sm [MHz]
# TYPE nvidia_smi_clocks_current_sm_clock_hz gauge
nvidia_smi_clocks_current_sm_clock_hz{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 1.98e+09
nvidia_smi_clocks_current_sm_clock_hz{uuid="c0ffee00-1234-4abc-8def-001122334455"} 3.45e+08
# HELP nvidia_smi_clocks_event_reasons_gpu_idle clocks_event_reasons.gpu_idle
# TYPE nvidia_smi_clocks_event_reasons_gpu_idle gauge
nvidia_smi_clocks_event_reasons_gpu_idle{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 0
nvidia_smi_clocks_event_reasons_gpu_idle{uuid="c0ffee00-1234-4abc-8def-001122334455"} 1
# HELP nvidia_smi_command_exit_code Exit code of the most recent nvidia-smi run
# TYPE nvidia_smi_command_exit_code gauge
nvidia_smi_command_exit_code 0
# HELP nvidia_smi_compute_app_info A metric with a constant '1' value labeled by the identity of a process with a compute context on a GPU.
# TYPE nvidia_smi_compute_app_info gauge
nvidia_smi_compute_app_info{pid="11327",process_name="/usr/bin/python3",uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 1
nvidia_smi_compute_app_info{pid="2045",process_name="vllm serve",uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 1
# HELP nvidia_smi_compute_app_used_memory_bytes GPU memory used by the process. Absent when the driver cannot report it (e.g. Windows WDDM).
# TYPE nvidia_smi_compute_app_used_memory_bytes gauge
nvidia_smi_compute_app_used_memory_bytes{pid="11327",process_name="/usr/bin/python3",uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 2.690646016e+09
nvidia_smi_compute_app_used_memory_bytes{pid="2045",process_name="vllm serve",uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 7.2945238016e+10
# HELP nvidia_smi_compute_apps Number of processes with a compute context on the GPU.
# TYPE nvidia_smi_compute_apps gauge
nvidia_smi_compute_apps{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 2
nvidia_smi_compute_apps{uuid="c0ffee00-1234-4abc-8def-001122334455"} 0
# HELP nvidia_smi_compute_apps_last_collect_success Whether the most recent per-process collection succeeded (1) or not (0)
# TYPE nvidia_smi_compute_apps_last_collect_success gauge
nvidia_smi_compute_apps_last_collect_success 1
# HELP nvidia_smi_energy_joules_total Total energy consumed by the GPU since the driver was loaded.
# TYPE nvidia_smi_energy_joules_total counter
nvidia_smi_energy_joules_total{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 9.1827364512e+07
# HELP nvidia_smi_enforced_power_limit_watts enforced.power.limit [W]
# TYPE nvidia_smi_enforced_power_limit_watts gauge
nvidia_smi_enforced_power_limit_watts{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 700
nvidia_smi_enforced_power_limit_watts{uuid="c0ffee00-1234-4abc-8def-001122334455"} 700
# HELP nvidia_smi_gpu_info A metric with a constant '1' value labeled by gpu uuid, name, driver_model_current, driver_model_pending, vbios_version, driver_version, pci_bus_id, serial, compute_cap, pci_sub_device_id, index, cuda_version.
# TYPE nvidia_smi_gpu_info gauge
nvidia_smi_gpu_info{compute_cap="9.0",cuda_version="13.1",driver_model_current="[N/A]",driver_model_pending="[N/A]",driver_version="590.48.01",index="0",name="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:18:00.0",pci_sub_device_id="0x16C110DE",serial="1654923001234",uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10",vbios_version="96.00.A5.00.01"} 1
nvidia_smi_gpu_info{compute_cap="9.0",cuda_version="13.1",driver_model_current="[N/A]",driver_model_pending="[N/A]",driver_version="590.48.01",index="1",name="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:2A:00.0",pci_sub_device_id="0x16C110DE",serial="1654923005678",uuid="c0ffee00-1234-4abc-8def-001122334455",vbios_version="96.00.A5.00.01"} 1
# HELP nvidia_smi_last_collect_success Whether the most recent collection succeeded (1) or not (0)
# TYPE nvidia_smi_last_collect_success gauge
nvidia_smi_last_collect_success 1
# HELP nvidia_smi_memory_free_bytes memory.free [MiB]
# TYPE nvidia_smi_memory_free_bytes gauge
nvidia_smi_memory_free_bytes{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 6.423576576e+09
nvidia_smi_memory_free_bytes{uuid="c0ffee00-1234-4abc-8def-001122334455"} 8.4954578944e+10
# HELP nvidia_smi_memory_reserved_bytes memory.reserved [MiB]
# TYPE nvidia_smi_memory_reserved_bytes gauge
nvidia_smi_memory_reserved_bytes{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 5.02267904e+08
nvidia_smi_memory_reserved_bytes{uuid="c0ffee00-1234-4abc-8def-001122334455"} 5.02267904e+08
# HELP nvidia_smi_memory_total_bytes memory.total [MiB]
# TYPE nvidia_smi_memory_total_bytes gauge
nvidia_smi_memory_total_bytes{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 8.5520809984e+10
nvidia_smi_memory_total_bytes{uuid="c0ffee00-1234-4abc-8def-001122334455"} 8.5520809984e+10
# HELP nvidia_smi_memory_used_bytes memory.used [MiB]
# TYPE nvidia_smi_memory_used_bytes gauge
nvidia_smi_memory_used_bytes{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 7.8594965504e+10
nvidia_smi_memory_used_bytes{uuid="c0ffee00-1234-4abc-8def-001122334455"} 6.3963136e+07
# HELP nvidia_smi_mig_mode_current mig.mode.current
# TYPE nvidia_smi_mig_mode_current gauge
nvidia_smi_mig_mode_current{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 0
nvidia_smi_mig_mode_current{uuid="c0ffee00-1234-4abc-8def-001122334455"} 0
# HELP nvidia_smi_power_draw_watts power.draw [W]
# TYPE nvidia_smi_power_draw_watts gauge
nvidia_smi_power_draw_watts{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 631.95
nvidia_smi_power_draw_watts{uuid="c0ffee00-1234-4abc-8def-001122334455"} 71.37
# HELP nvidia_smi_pstate pstate
# TYPE nvidia_smi_pstate gauge
nvidia_smi_pstate{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 0
nvidia_smi_pstate{uuid="c0ffee00-1234-4abc-8def-001122334455"} 8
# HELP nvidia_smi_temperature_gpu temperature.gpu
# TYPE nvidia_smi_temperature_gpu gauge
nvidia_smi_temperature_gpu{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 59
nvidia_smi_temperature_gpu{uuid="c0ffee00-1234-4abc-8def-001122334455"} 31
# HELP nvidia_smi_utilization_gpu_ratio utilization.gpu [%]
# TYPE nvidia_smi_utilization_gpu_ratio gauge
nvidia_smi_utilization_gpu_ratio{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 0.97
nvidia_smi_utilization_gpu_ratio{uuid="c0ffee00-1234-4abc-8def-001122334455"} 0
# HELP nvidia_smi_utilization_memory_ratio utilization.memory [%]
# TYPE nvidia_smi_utilization_memory_ratio gauge
nvidia_smi_utilization_memory_ratio{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 0.41
nvidia_smi_utilization_memory_ratio{uuid="c0ffee00-1234-4abc-8def-001122334455"} 0
"""

BUSY = "GPU-8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"
IDLE = "GPU-c0ffee00-1234-4abc-8def-001122334455"


def from_text(text: str, node: str = "gpu-node-03"):
    return gpus_from_nvidia_smi(parse_exposition(text), node=node, now=NOW)


def test_it_joins_identity_from_gpu_info_and_maps_every_reading():
    gpus, notes = from_text(PAYLOAD)

    assert notes == []
    assert [g.uuid for g in gpus] == [BUSY, IDLE]
    busy = gpus[0]
    assert busy.node == "gpu-node-03"
    assert busy.index == 0
    assert busy.name == "NVIDIA H100 80GB HBM3"
    assert busy.pci_bus_id == "00000000:18:00.0"
    assert busy.timestamp == NOW
    assert busy.utilization_ratio == 0.97
    assert busy.memory_utilization_ratio == 0.41
    assert busy.memory_used_bytes == 78_594_965_504
    assert busy.memory_total_bytes == 85_520_809_984
    assert busy.memory_reserved_bytes == 502_267_904
    assert busy.power_watts == 631.95
    assert busy.power_limit_watts == 700.0
    assert busy.energy_joules == 91_827_364.512
    assert busy.temperature_celsius == 59.0
    assert busy.sm_clock_hz == 1.98e9
    assert busy.memory_clock_hz == 2.619e9
    assert busy.pstate == 0
    assert busy.clock_event_idle is False
    assert busy.mig_enabled is False
    assert busy.engine_active_ratio is None


def test_it_maps_compute_apps_to_processes_and_an_idle_gpu_to_none_running():
    busy, idle = from_text(PAYLOAD)[0]

    assert busy.processes == (
        GpuProcess(pid=2045, used_memory_bytes=72_945_238_016, name="vllm serve"),
        GpuProcess(pid=11327, used_memory_bytes=2_690_646_016, name="/usr/bin/python3"),
    )
    assert idle.processes == ()
    assert idle.index == 1
    assert idle.pstate == 8
    assert idle.clock_event_idle is True
    assert idle.utilization_ratio == 0.0
    assert idle.energy_joules is None


def test_it_reports_processes_unknown_when_not_collected_or_when_the_query_failed():
    without = "\n".join(line for line in PAYLOAD.splitlines() if "compute_app" not in line) + "\n"
    failed = PAYLOAD.replace(
        "nvidia_smi_compute_apps_last_collect_success 1",
        "nvidia_smi_compute_apps_last_collect_success 0",
    )

    assert [g.processes for g in from_text(without)[0]] == [None, None]
    assert [g.processes for g in from_text(failed)[0]] == [None, None]


def test_it_keeps_a_process_whose_memory_is_not_reported():
    payload = (
        'nvidia_smi_gpu_info{uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10",index="0",name="X"} 1\n'
        'nvidia_smi_compute_app_info{pid="77",process_name="python.exe",'
        'uuid="8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"} 1\n'
    )
    (gpu,), _ = from_text(payload)

    assert gpu.processes == (GpuProcess(pid=77, used_memory_bytes=None, name="python.exe"),)


def test_it_prefixes_bare_uuids_only():
    assert normalise_uuid("8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10") == BUSY
    assert normalise_uuid(BUSY) == BUSY
    assert normalise_uuid("MIG-8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10") == (
        "MIG-8f3c1a52-6d4e-4b7a-9c21-0e5f7d8a9b10"
    )
    assert normalise_uuid("not-a-uuid") == "not-a-uuid"


def test_it_accepts_prefixed_uuids_and_a_gpu_without_info():
    payload = (
        f'nvidia_smi_utilization_gpu_ratio{{uuid="{BUSY}"}} 0.5\n'
        'nvidia_smi_power_draw_watts{uuid="c0ffee00-1234-4abc-8def-001122334455"} 80.5\n'
    )
    gpus, notes = from_text(payload)

    assert notes == []
    assert [(g.uuid, g.index, g.name, g.utilization_ratio, g.power_watts) for g in gpus] == [
        (BUSY, -1, "", 0.5, None),
        (IDLE, -1, "", None, 80.5),
    ]
    assert gpus[0].processes is None


def test_it_treats_non_finite_and_out_of_range_values_as_absent_and_says_so():
    payload = (
        f'nvidia_smi_gpu_info{{uuid="{BUSY}",index="0",name="X"}} 1\n'
        f'nvidia_smi_power_draw_watts{{uuid="{BUSY}"}} NaN\n'
        f'nvidia_smi_temperature_gpu{{uuid="{BUSY}"}} +Inf\n'
        f'nvidia_smi_pstate{{uuid="{BUSY}"}} 32\n'
        f'nvidia_smi_clocks_event_reasons_gpu_idle{{uuid="{BUSY}"}} 3\n'
        f'nvidia_smi_utilization_gpu_ratio{{uuid="{BUSY}"}} 0.25\n'
        "nvidia_smi_utilization_gpu_ratio 0.9\n"
    )
    (gpu,), notes = from_text(payload)

    assert gpu.power_watts is None
    assert gpu.temperature_celsius is None
    assert gpu.pstate is None
    assert gpu.clock_event_idle is None
    assert gpu.utilization_ratio == 0.25
    assert notes == [
        "1 series without a uuid label skipped",
        "2 non-finite values ignored (nvidia_smi_power_draw_watts, nvidia_smi_temperature_gpu)",
        "2 out-of-range values ignored "
        "(nvidia_smi_clocks_event_reasons_gpu_idle, nvidia_smi_pstate)",
    ]


def test_it_reads_the_older_throttle_reasons_name_for_gpu_idle():
    payload = f'nvidia_smi_clocks_throttle_reasons_gpu_idle{{uuid="{BUSY}"}} 1\n'
    (gpu,), _ = from_text(payload)

    assert gpu.clock_event_idle is True
