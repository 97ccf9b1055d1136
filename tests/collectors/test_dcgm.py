from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from collectors.base import MigInstance, Workload
from collectors.exposition.dcgm import gpus_from_dcgm
from collectors.exposition.parser import parse_exposition

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "exposition"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
MIB = 1 << 20


def from_text(text: str, node: str = "fallback-node"):
    return gpus_from_dcgm(parse_exposition(text), node=node, now=NOW)


def from_fixture(name: str, node: str = "fallback-node"):
    return from_text((FIXTURES / name).read_text(encoding="utf-8"), node)


# dcgm-exporter 3.3.x (released versions print ``Hostname``), H100 node, default counters plus
# the two users usually add (POWER_MGMT_LIMIT, FB_TOTAL) on GPU 0 only. Doubles print as %f.
H100_HOSTNAME = """\
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 1980
DCGM_FI_DEV_SM_CLOCK{gpu="1",UUID="GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 345
# HELP DCGM_FI_DEV_MEM_CLOCK Memory clock frequency (in MHz).
# TYPE DCGM_FI_DEV_MEM_CLOCK gauge
DCGM_FI_DEV_MEM_CLOCK{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 2619
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 61
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 612.473000
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 71.250000
# HELP DCGM_FI_DEV_POWER_MGMT_LIMIT Power management limit (in W).
# TYPE DCGM_FI_DEV_POWER_MGMT_LIMIT gauge
DCGM_FI_DEV_POWER_MGMT_LIMIT{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 700.000000
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 91827364512
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 0
# HELP DCGM_FI_DEV_MEM_COPY_UTIL Memory utilization (in %).
# TYPE DCGM_FI_DEV_MEM_COPY_UTIL gauge
DCGM_FI_DEV_MEM_COPY_UTIL{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 33
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 4915
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 81004
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 76160
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 4
# HELP DCGM_FI_DEV_FB_RESERVED Framebuffer memory reserved (in MiB).
# TYPE DCGM_FI_DEV_FB_RESERVED gauge
DCGM_FI_DEV_FB_RESERVED{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 484
DCGM_FI_DEV_FB_RESERVED{gpu="1",UUID="GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 551
# HELP DCGM_FI_DEV_FB_TOTAL Framebuffer memory total (in MiB).
# TYPE DCGM_FI_DEV_FB_TOTAL gauge
DCGM_FI_DEV_FB_TOTAL{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 81559
# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 0.812345
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="1",UUID="GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 0.000000
# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="0",UUID="GPU-1d2c3b4a-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",DCGM_FI_DRIVER_VERSION="550.54.15"} 0
"""


def test_it_maps_every_field_of_a_hostname_payload_in_base_units():
    gpus, notes = from_text(H100_HOSTNAME)

    assert notes == []
    assert [g.uuid for g in gpus] == [
        "GPU-1d2c3b4a-0000-1111-2222-333344445555",
        "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",
    ]
    busy = gpus[0]
    assert busy.node == "gpu-node-07"
    assert busy.index == 0
    assert busy.name == "NVIDIA H100 80GB HBM3"
    assert busy.pci_bus_id == "00000000:18:00.0"
    assert busy.timestamp == NOW
    assert busy.utilization_ratio == 0.87
    assert busy.memory_utilization_ratio == 0.33
    assert busy.memory_used_bytes == 76160 * MIB
    assert busy.memory_reserved_bytes == 484 * MIB
    assert busy.memory_total_bytes == 81559 * MIB
    assert busy.power_watts == 612.473
    assert busy.power_limit_watts == 700.0
    assert busy.energy_joules == 91827364.512
    assert busy.temperature_celsius == 61.0
    assert busy.sm_clock_hz == 1980e6
    assert busy.memory_clock_hz == 2619e6
    assert busy.engine_active_ratio == 0.812345
    assert busy.mig_enabled is None
    assert busy.mig_instances == ()
    assert busy.workloads == ()
    assert busy.processes is None
    assert busy.pstate is None


def test_it_adds_up_total_memory_when_fb_total_is_not_exported():
    gpus, _ = from_text(H100_HOSTNAME)
    idle = gpus[1]

    assert idle.index == 1
    assert idle.memory_total_bytes == (4 + 81004 + 551) * MIB
    assert idle.utilization_ratio == 0.0
    assert idle.power_limit_watts is None
    assert idle.energy_joules is None
    assert idle.memory_clock_hz is None
    assert idle.sm_clock_hz == 345e6


def test_it_leaves_total_memory_unknown_without_reserved_or_total():
    payload = (
        'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",Hostname="h"} 10\n'
        'DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a",Hostname="h"} 20\n'
    )
    (gpu,), _ = from_text(payload)

    assert gpu.memory_used_bytes == 10 * MIB
    assert gpu.memory_total_bytes is None


def test_it_reads_lowercase_hostname_uuid_label_and_empty_pci_bus_id():
    # Current dcgm-exporter main (server_test.go) prints ``hostname`` and may leave pci_bus_id
    # empty; ``-o`` (old namespace) prints ``uuid`` instead of ``UUID``.
    payload = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-00000000-0000-0000-0000-000000000000",'
        'pci_bus_id="",device="nvidia0",modelName="NVIDIA T400 4GB",hostname="testhost"} 42\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",uuid="GPU-11111111-1111-1111-1111-111111111111",'
        'device="nvidia1",modelName="NVIDIA T400 4GB",hostname="testhost"} 7\n'
    )
    gpus, notes = from_text(payload, node="not-used")

    assert notes == []
    assert [(g.uuid, g.node, g.index, g.pci_bus_id, g.utilization_ratio) for g in gpus] == [
        ("GPU-00000000-0000-0000-0000-000000000000", "testhost", 0, None, 0.42),
        ("GPU-11111111-1111-1111-1111-111111111111", "testhost", 1, None, 0.07),
    ]


def test_it_maps_the_v100_fixture():
    (gpu,), notes = from_fixture("dcgm-exporter-v100.prom")

    assert notes == []
    assert gpu.uuid == "GPU-a6158b59-2c1e-1e63-0068-9178c4298abd"
    assert gpu.node == "r6i3n0"
    assert gpu.index == 0
    assert gpu.name == "Tesla V100-SXM2-32GB"
    assert gpu.utilization_ratio == 0.0
    assert gpu.power_watts is None
    assert gpu.pci_bus_id is None


def test_it_maps_mig_instances_with_their_profile_and_pod_from_the_h100_fixture():
    (gpu,), notes = from_fixture("dcgm-exporter-h100-mig.prom")

    assert notes == []
    assert gpu.uuid == "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77"
    assert gpu.node == "gsrh100-074"
    assert gpu.pci_bus_id == "00000000:1A:00.0"
    assert gpu.mig_enabled is True
    assert gpu.mig_instances == (
        MigInstance(gpu_instance_id=7, profile="1g.10gb", engine_active_ratio=0.0),
        MigInstance(gpu_instance_id=8, profile="1g.10gb", engine_active_ratio=0.0),
    )
    assert gpu.workloads == (
        Workload(
            namespace="model-playground-stg",
            pod="text-embedding-predictor-00008-deployment-57946f6c67-vdtjl",
            container="kserve-container",
        ),
    )
    # MIG instances report no utilization, and the GPU-wide one is never made up from them.
    assert gpu.utilization_ratio is None
    assert gpu.engine_active_ratio is None


def test_it_keeps_device_fields_of_mig_series_on_the_parent_and_memory_on_the_instance():
    labels = 'gpu="0",UUID="GPU-265c9814-6156-355b-e589-ff2064894f16",modelName="NVIDIA A30",Hostname="a30"'
    payload = (
        f'DCGM_FI_DEV_POWER_USAGE{{{labels},GPU_I_PROFILE="1g.6gb",GPU_I_ID="3"}} 52.636000\n'
        f'DCGM_FI_DEV_POWER_USAGE{{{labels},GPU_I_PROFILE="1g.6gb",GPU_I_ID="4"}} 52.636000\n'
        f'DCGM_FI_DEV_GPU_UTIL{{{labels},GPU_I_PROFILE="1g.6gb",GPU_I_ID="3"}} 55\n'
        f'DCGM_FI_DEV_FB_USED{{{labels},GPU_I_PROFILE="1g.6gb",GPU_I_ID="3"}} 1200\n'
        f'DCGM_FI_DEV_FB_FREE{{{labels},GPU_I_PROFILE="1g.6gb",GPU_I_ID="3"}} 4600\n'
        f'DCGM_FI_DEV_FB_USED{{{labels},GPU_I_PROFILE="1g.6gb",GPU_I_ID="4"}} 0\n'
        f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{labels},GPU_I_PROFILE="1g.6gb",GPU_I_ID="3"}} 0.250000\n'
    )
    (gpu,), notes = from_text(payload)

    assert notes == []
    assert gpu.power_watts == 52.636
    assert gpu.utilization_ratio is None
    assert gpu.memory_used_bytes is None
    assert gpu.mig_instances == (
        MigInstance(3, "1g.6gb", 1200 * MIB, 5800 * MIB, 0.25),
        MigInstance(4, "1g.6gb", 0, None, None),
    )


def test_it_gives_no_workload_for_the_legacy_empty_kubernetes_labels():
    (gpu,), notes = from_fixture("dcgm-exporter-legacy-empty-k8s-labels.prom", node="node-b")

    assert notes == []
    assert gpu.uuid == "GPU-6bf47ca9-ad3e-15db-beed-1079a7d74116"
    assert gpu.node == "node-b"
    assert gpu.name == ""
    assert gpu.workloads == ()
    assert gpu.power_watts == 302.206
    assert gpu.energy_joules == 4335301.032
    assert gpu.utilization_ratio == 0.44


def test_it_lists_each_pod_sharing_a_gpu_once_including_old_label_names():
    base = 'gpu="0",UUID="GPU-a",Hostname="h"'
    payload = (
        f'DCGM_FI_DEV_GPU_UTIL{{{base},container="c1",namespace="ns",pod="p1"}} 30\n'
        f'DCGM_FI_DEV_GPU_UTIL{{{base},container="c2",namespace="ns",pod="p2"}} 30\n'
        f'DCGM_FI_DEV_FB_USED{{{base},container="c1",namespace="ns",pod="p1"}} 100\n'
        f'DCGM_FI_DEV_FB_USED{{{base},container="c2",namespace="ns",pod="p2"}} 100\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",Hostname="h",'
        'container_name="old",pod_name="legacy-pod",pod_namespace="legacy-ns"} 5\n'
    )
    gpus, notes = from_text(payload)

    assert notes == []
    assert gpus[0].workloads == (Workload("ns", "p1", "c1"), Workload("ns", "p2", "c2"))
    assert gpus[0].utilization_ratio == 0.3
    assert gpus[0].memory_used_bytes == 100 * MIB
    assert gpus[1].workloads == (Workload("legacy-ns", "legacy-pod", "old"),)


def test_it_treats_dcgm_blank_sentinels_as_absent_and_says_so():
    base = 'gpu="0",UUID="GPU-a",Hostname="h"'
    payload = (
        # README sample: DCGM_INT64_BLANK + 2 (NOT_SUPPORTED) printed as a value.
        f"DCGM_FI_DEV_GPU_UTIL{{{base}}} 9223372036854775794\n"
        f"DCGM_FI_DEV_FB_USED{{{base}}} 9223372036854775792\n"
        f"DCGM_FI_DEV_POWER_USAGE{{{base}}} 140737488355328.000000\n"
        f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{base}}} 140737488355330.000000\n"
        f"DCGM_FI_DEV_GPU_TEMP{{{base}}} 45\n"
        # A large but real int64 reading stays: 1.4e14 mJ is below the int64 sentinel.
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{base}}} 140737488355328\n"
    )
    (gpu,), notes = from_text(payload)

    assert gpu.utilization_ratio is None
    assert gpu.memory_used_bytes is None
    assert gpu.power_watts is None
    assert gpu.engine_active_ratio is None
    assert gpu.temperature_celsius == 45.0
    assert gpu.energy_joules == 140737488355.328
    assert notes == [
        "4 DCGM blank values treated as absent (DCGM_FI_DEV_FB_USED, DCGM_FI_DEV_GPU_UTIL, "
        "DCGM_FI_DEV_POWER_USAGE, DCGM_FI_PROF_GR_ENGINE_ACTIVE)"
    ]


def test_it_treats_non_finite_values_as_absent_and_says_so():
    base = 'gpu="0",UUID="GPU-a",Hostname="h"'
    payload = (
        f"DCGM_FI_DEV_GPU_UTIL{{{base}}} NaN\n"
        f"DCGM_FI_DEV_POWER_USAGE{{{base}}} +Inf\n"
        f"DCGM_FI_DEV_GPU_TEMP{{{base}}} -Inf\n"
        f"DCGM_FI_DEV_SM_CLOCK{{{base}}} 1410\n"
    )
    (gpu,), notes = from_text(payload)

    assert gpu.utilization_ratio is None
    assert gpu.power_watts is None
    assert gpu.temperature_celsius is None
    assert gpu.sm_clock_hz == 1410e6
    assert notes == [
        "3 non-finite values ignored "
        "(DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_POWER_USAGE)"
    ]


def test_it_skips_series_without_a_uuid_and_other_families():
    payload = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",Hostname="h"} 50\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="",Hostname="h"} 50\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="2",UUID="GPU-c",Hostname="h"} 50\n'
        "go_goroutines 42\n"
        "process_resident_memory_bytes 1.2e+08\n"
    )
    gpus, notes = from_text(payload)

    assert [g.uuid for g in gpus] == ["GPU-c"]
    assert notes == ["2 series without a UUID label skipped"]


def test_it_uses_index_minus_one_when_the_gpu_label_is_missing_or_not_a_number():
    payload = (
        'DCGM_FI_DEV_GPU_UTIL{UUID="GPU-a",Hostname="h"} 1\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="x",UUID="GPU-b",Hostname="h"} 1\n'
    )
    gpus, _ = from_text(payload)

    assert [(g.uuid, g.index) for g in gpus] == [("GPU-a", -1), ("GPU-b", -1)]


def test_it_takes_identity_from_a_later_series_when_the_first_lacks_it():
    payload = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",Hostname="h"} 1\n'
        'DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-a",pci_bus_id="00000000:3B:00.0",'
        'modelName="NVIDIA L40S",Hostname="h"} 40\n'
    )
    (gpu,), _ = from_text(payload)

    assert gpu.name == "NVIDIA L40S"
    assert gpu.pci_bus_id == "00000000:3B:00.0"
