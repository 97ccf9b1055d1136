"""Parse one dcgm-exporter page for a 1,024-GPU fleet: ours vs prometheus_client's parser.

The payload has the families switched on in dcgm-exporter's ``default-counters.csv`` (with
``# HELP``/``# TYPE`` lines) and the label set of dcgm-exporter 4.x on Kubernetes (gpu, UUID,
pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION, container, namespace, pod).
Ours: ``parse_exposition``. Baseline, in the same process: consuming every sample of
``prometheus_client.parser.text_string_to_metric_families``. Both parses are checked to agree on
every (name, labels, value) before anything is timed. When the dcgm mapping is importable, the
time to parse and map into ``GpuSample`` records is shown too.

Run: ``python -m bench.bench_exposition [--gpus 1024] [--repeat 10]``. Not part of the test run.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from collectors.exposition.parser import parse_exposition

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)

# (field, type, help, value kind): the families enabled in etc/default-counters.csv.
FAMILIES: tuple[tuple[str, str, str, str], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "int"),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", "int"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", "int"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "int"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "float"),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
        "energy",
    ),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", "int"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "int"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "int"),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", "int"),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", "int"),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", "int"),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "int"),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "int"),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).", "int"),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "counter",
        "Total number of NVLink bandwidth counters for all lanes.",
        "energy",
    ),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status", "int"),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for uncorrectable errors",
        "int",
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for correctable errors",
        "int",
    ),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed", "int"),
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gauge",
        "Ratio of time the graphics engine is active.",
        "ratio",
    ),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        "ratio",
    ),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        "ratio",
    ),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge", "The rate of data transmitted over PCIe.", "int"),
    ("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge", "The rate of data received over PCIe.", "int"),
)


def _value(kind: str, gpu: int, family: int) -> str:
    seed = gpu * 31 + family * 17
    if kind == "float":
        return f"{100.0 + (seed % 6000) / 10.123:f}"
    if kind == "ratio":
        return f"{(seed % 1000) / 1000:f}"
    if kind == "energy":
        return str(4_335_301_032 + seed * 7919)
    return str(seed % 1500)


def dcgm_payload(gpus: int = 1024, families: int = len(FAMILIES)) -> str:
    """A dcgm-exporter 4.x page: ``gpus`` GPUs, 8 per node, each with a Kubernetes workload."""
    label_sets = []
    for i in range(gpus):
        node, index = divmod(i, 8)
        label_sets.append(
            f'gpu="{index}",UUID="GPU-{i:08x}-13cc-013a-d88f-2bcf5ae8bc77",'
            f'pci_bus_id="00000000:{0x18 + index * 0x10:02X}:00.0",device="nvidia{index}",'
            f'modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-{node:03d}",'
            f'DCGM_FI_DRIVER_VERSION="535.129.03",container="vllm",'
            f'namespace="inference-prod",pod="llama-70b-predictor-{node:03d}-{index}-6f7c9d"'
        )
    out: list[str] = []
    for f, (name, kind, help_text, value_kind) in enumerate(FAMILIES[:families]):
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        out.extend(
            f"{name}{{{labels}}} {_value(value_kind, i, f)}\n"
            for i, labels in enumerate(label_sets)
        )
    return "".join(out)


Key = tuple[str, tuple[tuple[str, str], ...], float]


def ours_keys(body: str) -> set[Key]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value) for s in parse_exposition(body).samples
    }


def baseline_keys(body: str, names: set[str]) -> set[Key]:
    """prometheus_client's samples, undoing its ``_total`` suffix on counters without one."""
    keys: set[Key] = set()
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            name = s.name
            if name not in names and name.endswith("_total"):
                name = name[: -len("_total")]
            keys.add((name, tuple(sorted(s.labels.items())), float(s.value)))
    return keys


def consume_baseline(body: str) -> int:
    count = 0
    for family in text_string_to_metric_families(body):
        for _ in family.samples:
            count += 1
    return count


def consume_ours(body: str) -> int:
    return len(parse_exposition(body).samples)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--baseline-repeat", type=int, default=3)
    args = parser.parse_args()

    body = dcgm_payload(args.gpus)
    ours = ours_keys(body)
    theirs = baseline_keys(body, {name for name, _, _ in ours})
    if ours != theirs:
        raise SystemExit(
            f"parsers disagree: {len(ours - theirs)} only ours, {len(theirs - ours)} only theirs"
        )
    if any(math.isnan(value) for _, _, value in ours):
        raise SystemExit("unexpected NaN in the benchmark payload")

    lines = body.count("\n")
    print(
        f"payload: {args.gpus} GPUs, {len(FAMILIES)} families, {len(ours)} samples, "
        f"{lines} lines, {len(body) / 2**20:.1f} MiB; both parsers agree on every sample"
    )
    rows: list[tuple[str, list[float]]] = [
        ("parse_exposition", timed(lambda: consume_ours(body), args.repeat)),
        (
            "prometheus_client text_string_to_metric_families",
            timed(lambda: consume_baseline(body), args.baseline_repeat),
        ),
    ]
    try:
        mapper = importlib.import_module("collectors.exposition.dcgm").gpus_from_dcgm
    except (ImportError, AttributeError):
        mapper = None
    if mapper is not None:

        def parse_and_map() -> None:
            records, _notes = mapper(parse_exposition(body), node="fallback", now=NOW)
            assert len(records) == args.gpus, len(records)

        rows.insert(1, ("parse_exposition + gpus_from_dcgm", timed(parse_and_map, args.repeat)))

    baseline = statistics.median(rows[-1][1])
    print(f"{'':52} {'median ms':>10} {'min ms':>9} {'runs':>5} {'vs baseline':>12}")
    for label, times in rows:
        median = statistics.median(times)
        print(
            f"{label:52} {median * 1e3:10.1f} {min(times) * 1e3:9.1f} {len(times):5d} "
            f"{baseline / median:11.1f}x"
        )
    ratio = baseline / statistics.median(rows[0][1])
    verdict = "meets" if ratio >= 5 else "MISSES"
    print(f"ours is {ratio:.1f}x faster than prometheus_client ({verdict} the 5x target)")


if __name__ == "__main__":
    main()
