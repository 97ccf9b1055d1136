"""The simulated fleet as real endpoints: dcgm-exporter and vLLM ``/metrics`` text.

``render_dcgm`` and ``render_vllm`` print a ``SimulatedFleet`` snapshot the way dcgm-exporter
(default label template, ``Hostname`` label, ``%d`` ints and ``%f`` doubles) and vLLM V1
(prometheus_client output with ``engine`` and ``model_name`` labels and ``_created`` gauges)
print theirs, so the demo exercises the real scrape path end to end.

What the simulator does not model is synthesised plausibly and documented here: the PCI bus id
(HGX slot order), the SM clock (1980 MHz when busy, 345 MHz when idle), the driver version,
reserved framebuffer memory (0 MiB unless the sample has it) and ``vllm:num_requests_running``
(0 below 5 % utilization of the instance's GPUs, else up to 64 at full load).

``SimulatedEndpoints`` is a plain ASGI app serving ``/nodes/<node>/dcgm/metrics`` and
``/nodes/<node>/vllm/<instance>/metrics``; it re-collects the fleet at most once per
``min_interval`` of its clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from prometheus_client import utils as _prom_utils

from collectors.base import GpuSample, ModelSample, Snapshot
from collectors.plain_asgi import Receive, Scope, Send, respond, run_lifespan
from collectors.scrape import Target
from collectors.simulated import SimulatedFleet

logger = logging.getLogger(__name__)

MIB = 2**20
DRIVER_VERSION = "550.90.07"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HGX_BUSES = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
_BUSY_SM_MHZ = 1980
_IDLE_SM_MHZ = 345
_RUNNING_AT_FULL_LOAD = 64
_IDLE_BELOW = 0.05

_go_float: Callable[[float], str] = _prom_utils.floatToGoString
"""prometheus_client's value formatting (``1.7537953269353123e+09``), as vLLM prints it."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _pci_bus_id(gpu: GpuSample) -> str:
    if gpu.pci_bus_id:
        return gpu.pci_bus_id
    bus = _HGX_BUSES[gpu.index] if gpu.index < len(_HGX_BUSES) else f"{gpu.index:02X}"
    return f"00000000:{bus}:00.0"


def _sm_mhz(gpu: GpuSample) -> int | None:
    if gpu.sm_clock_hz is not None:
        return round(gpu.sm_clock_hz / 1e6)
    if gpu.utilization_ratio is None:
        return None
    return _BUSY_SM_MHZ if gpu.utilization_ratio >= _IDLE_BELOW else _IDLE_SM_MHZ


def _fb(gpu: GpuSample) -> tuple[int | None, int | None, int | None]:
    """(used, free, reserved) MiB; used + free + reserved = total, as DCGM reports them."""
    reserved = (gpu.memory_reserved_bytes or 0) // MIB
    if gpu.memory_used_bytes is None:
        return None, None, None
    used = gpu.memory_used_bytes // MIB
    if gpu.memory_total_bytes is None:
        return used, None, None
    return used, max(0, gpu.memory_total_bytes // MIB - used - reserved), reserved


def _int(value: float | None) -> str | None:
    return None if value is None else str(round(value))


def _double(value: float | None) -> str | None:
    return None if value is None else f"{value:f}"


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    help: str
    typ: str
    value: Callable[[GpuSample], str | None]


_DCGM_FAMILIES: tuple[_Family, ...] = (
    _Family("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "gauge",
            lambda g: _int(_sm_mhz(g))),
    _Family("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "gauge",
            lambda g: _int(g.temperature_celsius)),
    _Family("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "gauge",
            lambda g: _double(g.power_watts)),
    _Family("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).",
            "counter", lambda g: _int(None if g.energy_joules is None else g.energy_joules * 1000)),
    _Family("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "gauge",
            lambda g: _int(None if g.utilization_ratio is None else g.utilization_ratio * 100)),
    _Family("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "gauge",
            lambda g: _int(_fb(g)[1])),
    _Family("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "gauge",
            lambda g: _int(_fb(g)[0])),
    _Family("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", "gauge",
            lambda g: _int(_fb(g)[2])),
    _Family("DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W).", "gauge",
            lambda g: _double(g.power_limit_watts)),
)  # fmt: skip
"""In the order of dcgm-exporter's default-counters.csv."""


def render_dcgm(snapshot: Snapshot, node: str) -> str:
    """dcgm-exporter text for the GPUs of ``node`` (empty families are left out).

    Never raises; a node without GPUs in the snapshot gives an empty string.
    """
    gpus = sorted((g for g in snapshot.gpus if g.node == node), key=lambda g: g.index)
    identities = [
        _labels(
            [
                ("gpu", str(g.index)),
                ("UUID", g.uuid),
                ("pci_bus_id", _pci_bus_id(g)),
                ("device", f"nvidia{g.index}"),
                ("modelName", g.name),
                ("Hostname", node),
                ("DCGM_FI_DRIVER_VERSION", DRIVER_VERSION),
            ]
        )
        for g in gpus
    ]
    lines: list[str] = []
    for family in _DCGM_FAMILIES:
        rows = [
            f"{family.name}{labels} {value}"
            for g, labels in zip(gpus, identities, strict=True)
            if (value := family.value(g)) is not None
        ]
        if rows:
            lines.append(f"# HELP {family.name} {family.help}")
            lines.append(f"# TYPE {family.name} {family.typ}")
            lines.extend(rows)
    return "".join(line + "\n" for line in lines)


def _requests_running(model: ModelSample, utilization: dict[str, float]) -> float | None:
    if model.requests_running is not None:
        return model.requests_running
    loads = [utilization[u] for u in model.gpu_uuids if u in utilization]
    if not loads:
        return None
    load = sum(loads) / len(loads)
    return 0.0 if load < _IDLE_BELOW else float(max(1, round(load * _RUNNING_AT_FULL_LOAD)))


def _vllm_payload(model: ModelSample, running: float | None, created: float) -> str:
    base = [("engine", "0"), ("model_name", model.model)]
    out: list[str] = []

    def counter(
        name: str, help_text: str, values: list[tuple[list[tuple[str, str]], float]]
    ) -> None:
        stem = name.removesuffix("_total")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} counter\n")
        out.extend(f"{name}{_labels(labels)} {_go_float(v)}\n" for labels, v in values)
        out.append(f"# HELP {stem}_created {help_text}\n# TYPE {stem}_created gauge\n")
        out.extend(
            f"{stem}_created{_labels(labels)} {_go_float(created)}\n" for labels, _ in values
        )

    if running is not None:
        out.append(
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{_labels(base)} {_go_float(running)}\n"
        )
    singles = (
        ("vllm:prefix_cache_queries_total", model.cache_queries_total,
         "Prefix cache queries, in terms of number of queried tokens."),
        ("vllm:prefix_cache_hits_total", model.cache_hits_total,
         "Prefix cache hits, in terms of number of cached tokens."),
        ("vllm:prompt_tokens_total", model.prompt_tokens_total,
         "Number of prefill tokens processed."),
        ("vllm:generation_tokens_total", model.generation_tokens_total,
         "Number of generation tokens processed."),
    )  # fmt: skip
    for name, value, help_text in singles:
        if value is not None:
            counter(name, help_text, [(base, value)])
    if model.requests_total is not None:
        reasons = (("stop", model.requests_total), ("length", 0.0), ("abort", 0.0))
        counter(
            "vllm:request_success_total",
            "Count of successfully processed requests.",
            [
                ([("engine", "0"), ("finished_reason", r), ("model_name", model.model)], v)
                for r, v in reasons
            ],
        )
    return "".join(out)


def render_vllm(
    snapshot: Snapshot, node: str, *, created: datetime | None = None
) -> dict[str, str]:
    """One vLLM V1 ``/metrics`` body per model instance on ``node``, keyed by instance name.

    ``created`` is the engines' start (the ``_created`` gauges); default: midnight UTC of the
    snapshot's day. Never raises.
    """
    if created is None:
        day = _aware(snapshot.timestamp)
        created = day.replace(hour=0, minute=0, second=0, microsecond=0)
    created_epoch = _aware(created).timestamp()
    utilization = {
        g.uuid: g.utilization_ratio
        for g in snapshot.gpus
        if g.node == node and g.utilization_ratio is not None
    }
    return {
        m.instance: _vllm_payload(m, _requests_running(m, utilization), created_epoch)
        for m in snapshot.models
        if m.node == node
    }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class SimulatedEndpoints:
    """An ASGI app serving a simulated fleet as dcgm-exporter and vLLM endpoints.

    Routes: ``GET /nodes/<node>/dcgm/metrics`` and ``GET /nodes/<node>/vllm/<instance>/metrics``
    (404 for anything else, 405 for other methods). The fleet is collected at ``clock()`` at most
    once per ``min_interval``; ``clock`` going backwards keeps the last snapshot. Safe to call
    from several threads (``targets()`` while a server thread serves).
    """

    def __init__(
        self,
        fleet: SimulatedFleet,
        clock: Callable[[], datetime],
        *,
        min_interval: timedelta = timedelta(seconds=1),
    ) -> None:
        self._fleet = fleet
        self._clock = clock
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._rendered: dict[str, tuple[str, dict[str, str]]] = {}
        self._created = clock()

    def snapshot(self) -> Snapshot:
        """The current snapshot, re-collected when ``min_interval`` has passed."""
        now = self._clock()
        with self._lock:
            last = self._snapshot
            if last is None or now - last.timestamp >= self._min_interval:
                last = self._snapshot = self._fleet.collect(now)
                self._rendered = {}
            return last

    def payload(self, node: str, source: str, instance: str = "") -> str | None:
        """The body of one endpoint (``source`` ``dcgm`` or ``vllm``), ``None`` if none."""
        snapshot = self.snapshot()
        with self._lock:
            if snapshot is not self._snapshot:  # replaced meanwhile: render what we were given
                rendered = self._render(snapshot, node)
            else:
                rendered = self._rendered.get(node) or self._render(snapshot, node)
                self._rendered[node] = rendered
        dcgm, vllm = rendered
        if source == "dcgm":
            return dcgm or None
        return vllm.get(instance) if source == "vllm" else None

    def _render(self, snapshot: Snapshot, node: str) -> tuple[str, dict[str, str]]:
        return render_dcgm(snapshot, node), render_vllm(snapshot, node, created=self._created)

    def targets(self, base_url: str) -> list[Target]:
        """Scrape targets for every endpoint, under ``base_url`` (e.g. ``http://127.0.0.1:9400``)."""
        base = base_url.rstrip("/")
        snapshot = self.snapshot()
        nodes = list(dict.fromkeys(g.node for g in snapshot.gpus))
        out = [
            Target(url=f"{base}/nodes/{quote(n, safe='')}/dcgm/metrics", kind="dcgm", node=n)
            for n in nodes
        ]
        out.extend(
            Target(
                url=f"{base}/nodes/{quote(m.node, safe='')}/vllm/{quote(m.instance, safe='')}"
                "/metrics",
                kind="vllm",
                node=m.node,
                labels={"instance": m.instance},
                gpu_uuids=m.gpu_uuids,
            )
            for m in snapshot.models
        )
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = self._route(scope)
        content_type = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
        await respond(send, status, content_type, body.encode(), head=scope["method"] == "HEAD")

    def _route(self, scope: Scope) -> tuple[int, str]:
        if scope["method"] not in ("GET", "HEAD"):
            return 405, "method not allowed\n"
        parts = [unquote(p) for p in str(scope["path"]).strip("/").split("/")]
        body: str | None = None
        if len(parts) == 4 and parts[0] == "nodes" and parts[2:] == ["dcgm", "metrics"]:
            body = self.payload(parts[1], "dcgm")
        elif (
            len(parts) == 5 and parts[0] == "nodes" and parts[2] == "vllm" and parts[4] == "metrics"
        ):
            body = self.payload(parts[1], "vllm", parts[3])
        if body is None:
            return 404, "not found\n"
        return 200, body
