"""The ``/metrics`` exporter: one custom ``prometheus_client`` collector over the live state.

``TcowatchCollector.collect()`` reads ``LiveState.view()`` (an in-memory copy, no I/O) and yields
fresh metric families on every scrape, so no stale series survive a GPU or alert going away.
A reading that is ``None`` ("not reported") produces no sample at all: never NaN, never 0.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from collectors.base import GpuSample
from daemon.exporter_costs import add_cost_families
from daemon.exporter_details import add_gpu_details, add_scrape_families
from daemon.state import LiveState, LiveView

logger = logging.getLogger(__name__)

PREFIX = "tcowatch_"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# (field of GpuSample, metric suffix, type, help)
_GPU_READINGS: tuple[tuple[str, str, str, str], ...] = (
    (
        "utilization_ratio",
        "gpu_utilization_ratio",
        "gauge",
        "GPU compute utilization over the last sample period (0..1).",
    ),
    ("memory_used_bytes", "gpu_memory_used_bytes", "gauge", "GPU framebuffer memory in use."),
    ("memory_total_bytes", "gpu_memory_total_bytes", "gauge", "GPU framebuffer memory in total."),
    ("power_watts", "gpu_power_watts", "gauge", "GPU power draw."),
    ("power_limit_watts", "gpu_power_limit_watts", "gauge", "GPU enforced power limit."),
    (
        "energy_joules",
        "gpu_energy_joules",
        "counter",
        "GPU energy consumed since the driver was loaded.",
    ),
    ("temperature_celsius", "gpu_temperature_celsius", "gauge", "GPU core temperature."),
    (
        "memory_utilization_ratio",
        "gpu_memory_utilization_ratio",
        "gauge",
        "Share of the sample period GPU memory was read or written (0..1).",
    ),
    (
        "memory_reserved_bytes",
        "gpu_memory_reserved_bytes",
        "gauge",
        "GPU memory reserved by the driver (not usable by processes).",
    ),
    ("sm_clock_hz", "gpu_sm_clock_hertz", "gauge", "GPU streaming-multiprocessor clock."),
    ("memory_clock_hz", "gpu_memory_clock_hertz", "gauge", "GPU memory clock."),
    ("pstate", "gpu_pstate", "gauge", "GPU performance state (0 = maximum, 15 = minimum)."),
    (
        "engine_active_ratio",
        "gpu_engine_active_ratio",
        "gauge",
        "Share of time the graphics/compute engine was active (DCGM profiling, 0..1).",
    ),
)

# (attribute of ModelSample, metric suffix, extra labels, help)
_MODEL_COUNTERS: tuple[tuple[str, str, dict[str, str], str], ...] = (
    (
        "prompt_tokens_total",
        "llm_tokens",
        {"kind": "prompt"},
        "Tokens processed by a model instance, by kind (prompt or generation).",
    ),
    ("generation_tokens_total", "llm_tokens", {"kind": "generation"}, ""),
    (
        "cache_queries_total",
        "llm_prefix_cache_queries",
        {},
        "Prefix-cache lookups (in tokens) made by a model instance.",
    ),
    (
        "cache_hits_total",
        "llm_prefix_cache_hits",
        {},
        "Prefix-cache hits (in tokens) of a model instance.",
    ),
    ("requests_total", "llm_requests", {}, "Requests completed by a model instance."),
)


class _Families:
    """Metric families keyed by name, created on first use, yielded in creation order."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def add(self, name: str, typ: str, doc: str, labels: Mapping[str, str], value: float) -> None:
        family = self._families.get(name)
        if family is None:
            family = Metric(PREFIX + name, doc, typ)
            self._families[name] = family
        sample_name = family.name + "_total" if typ == "counter" else family.name
        family.add_sample(sample_name, dict(labels), float(value))

    def declare(self, name: str, typ: str, doc: str) -> None:
        """Make sure ``name`` is emitted (HELP/TYPE) even with no samples."""
        if name not in self._families:
            self._families[name] = Metric(PREFIX + name, doc, typ)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


def _unix(moment: datetime) -> float:
    return moment.timestamp()


def _gpu_labels(gpu: GpuSample) -> dict[str, str]:
    return {"node": gpu.node, "gpu": str(gpu.index), "uuid": gpu.uuid, "model_name": gpu.name}


def _unknown_gpu_labels(key: str) -> dict[str, str]:
    """Labels for a down GPU never seen before: ``key`` is a UUID or ``node/index``."""
    node, sep, index = key.rpartition("/")
    if sep and index.isdigit():
        return {"node": node, "gpu": index, "uuid": "", "model_name": ""}
    return {"node": "", "gpu": "", "uuid": key, "model_name": ""}


def _alert_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """User labels that are valid Prometheus label names; the others are dropped and logged."""
    kept: dict[str, str] = {}
    for name, value in labels.items():
        if _LABEL_NAME.match(name) and not name.startswith("__"):
            kept[name] = value
        else:
            logger.debug("dropping alert label with invalid name %r from /metrics", name)
    return kept


class TcowatchCollector:
    """A ``prometheus_client`` collector exposing ``LiveState`` as ``tcowatch_*`` families.

    ``collect()`` never does I/O and never raises for missing data: absent readings, unknown
    GPUs and invalid alert label names are skipped (the latter logged at debug level).
    """

    def __init__(self, state: LiveState) -> None:
        self._state = state

    def describe(self) -> Iterable[Metric]:
        """Return no families, so registering the collector does not run ``collect()``."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Yield every family from one consistent copy of the live state."""
        view = self._state.view()
        families = _Families()
        self._gpus(view, families)
        self._models(view, families)
        self._collectors(view, families)
        add_scrape_families(view, families)
        add_cost_families(
            view,
            {
                uuid: _gpu_labels(gpu)
                for uuid, gpu in view.gpus.items()
                if uuid not in view.down_gpus
            },
            families,
        )
        self._alerts(view, families)
        self._process(view, families)
        yield from families

    @staticmethod
    def _gpus(view: LiveView, out: _Families) -> None:
        up_doc = "1 when the GPU answered the last collection cycle, 0 when it failed."
        idle_doc = "1 when the GPU is classified idle by the idle rule, else 0."
        for uuid in sorted(view.gpus, key=lambda u: (view.gpus[u].node, view.gpus[u].index)):
            gpu = view.gpus[uuid]
            labels = _gpu_labels(gpu)
            if uuid in view.down_gpus:
                out.add("gpu_up", "gauge", up_doc, labels, 0)
                continue
            out.add("gpu_up", "gauge", up_doc, labels, 1)
            out.add("gpu_idle", "gauge", idle_doc, labels, 1 if uuid in view.idle_gpus else 0)
            for attr, name, typ, doc in _GPU_READINGS:
                value = getattr(gpu, attr)
                if value is not None:
                    out.add(name, typ, doc, labels, value)
            add_gpu_details(gpu, labels, out)
        for key in sorted(view.down_gpus - view.gpus.keys()):
            out.add("gpu_up", "gauge", up_doc, _unknown_gpu_labels(key), 0)

    @staticmethod
    def _models(view: LiveView, out: _Families) -> None:
        docs: dict[str, str] = {}
        for key in sorted(view.models):
            model = view.models[key]
            base = {"node": model.node, "model": model.model, "instance": model.instance}
            if model.engine:
                base["engine"] = model.engine
            for attr, name, extra, doc in _MODEL_COUNTERS:
                docs.setdefault(name, doc)
                value = getattr(model, attr)
                if value is not None:
                    out.add(name, "counter", docs[name], {**base, **extra}, value)
            if model.cache_hit_ratio is not None:
                out.add(
                    "llm_engine_cache_hit_ratio",
                    "gauge",
                    "Cache hit rate as reported by engines without hit/query counters "
                    "(SGLang, vLLM V0); the engine's own figure.",
                    base,
                    model.cache_hit_ratio,
                )
            if model.requests_running is not None:
                out.add(
                    "llm_requests_running",
                    "gauge",
                    "Requests a model instance is processing now.",
                    base,
                    model.requests_running,
                )

    @staticmethod
    def _collectors(view: LiveView, out: _Families) -> None:
        for name in sorted(view.collectors):
            status = view.collectors[name]
            labels = {"collector": name}
            out.add(
                "collector_up",
                "gauge",
                "1 when the collector's last cycle succeeded, 0 when it failed.",
                labels,
                1 if status.up else 0,
            )
            if status.last_success is not None:
                out.add(
                    "collector_last_success_timestamp_seconds",
                    "gauge",
                    "Unix time of the collector's last successful cycle.",
                    labels,
                    _unix(status.last_success),
                )
            out.add(
                "collector_duration_seconds",
                "gauge",
                "Duration of the collector's last cycle.",
                labels,
                status.duration_seconds,
            )

    @staticmethod
    def _alerts(view: LiveView, out: _Families) -> None:
        alerts_doc = "1 per active (pending or firing) alert instance, like Prometheus ALERTS."
        for_doc = "Unix time an active alert became active, like Prometheus ALERTS_FOR_STATE."
        out.declare("alerts", "gauge", alerts_doc)
        out.declare("alerts_for_state", "gauge", for_doc)
        for alert in view.alerts:
            if alert.state not in ("pending", "firing"):
                continue
            labels = {**_alert_labels(alert.labels), "alertname": alert.alertname}
            out.add("alerts", "gauge", alerts_doc, {**labels, "alertstate": alert.state}, 1)
            out.add("alerts_for_state", "gauge", for_doc, labels, _unix(alert.active_at))

    @staticmethod
    def _process(view: LiveView, out: _Families) -> None:
        jobs_doc = "Scheduled job runs that raised."
        out.declare("job_failures", "counter", jobs_doc)
        for job in sorted(view.job_failures):
            out.add("job_failures", "counter", jobs_doc, {"job": job}, view.job_failures[job])
        notes_doc = (
            "Outbox rows handled, by channel and outcome: success (delivered), retry "
            "(retryable error, rescheduled), failed (permanent error, out of attempts or "
            "channel gone), folded (merged into a rate-limit digest)."
        )
        out.declare("notifications", "counter", notes_doc)
        for channel, outcome in sorted(view.notifications):
            out.add(
                "notifications",
                "counter",
                notes_doc,
                {"channel": channel, "outcome": outcome},
                view.notifications[(channel, outcome)],
            )
        out.add(
            "outbox_pending",
            "gauge",
            "Notifications waiting in the outbox to be sent.",
            {},
            view.outbox_pending,
        )
        out.add(
            "outbox_oldest_age_seconds",
            "gauge",
            "Age of the oldest notification waiting in the outbox (0 when it is empty).",
            {},
            view.outbox_oldest_age_seconds,
        )
        suppressed_doc = (
            "Alert notifications not sent, by reason (silenced, inhibited, muted, ...)."
        )
        out.declare("notifications_suppressed", "counter", suppressed_doc)
        for reason in sorted(view.suppressed):
            out.add(
                "notifications_suppressed",
                "counter",
                suppressed_doc,
                {"reason": reason},
                view.suppressed[reason],
            )
        enabled_doc = (
            "1 when a configured channel is enabled, 0 when disabled by a permanent error."
        )
        out.declare("channel_enabled", "gauge", enabled_doc)
        for channel in sorted(view.channels_enabled):
            out.add(
                "channel_enabled",
                "gauge",
                enabled_doc,
                {"channel": channel},
                1 if view.channels_enabled[channel] else 0,
            )


class ExpositionCache:
    """The text exposition of ``registry``, rendered again only when ``state`` changed.

    Collectors change the state once per cycle, so a scrape between cycles costs a lock and a
    bytes copy instead of a render. Thread-safe; ``render`` never raises for any state.
    """

    def __init__(self, state: LiveState, registry: CollectorRegistry) -> None:
        self._state = state
        self._registry = registry
        self._lock = threading.Lock()
        self._version = -1
        self._body = b""

    def render(self) -> bytes:
        """The current exposition in the Prometheus text format 0.0.4."""
        with self._lock:
            version = self._state.version
            if version != self._version:
                self._body = generate_latest(self._registry)
                self._version = version
            return self._body


def build_registry(state: LiveState) -> CollectorRegistry:
    """Return a new app-owned registry holding only a ``TcowatchCollector`` over ``state``.

    Never raises for any state; the global ``prometheus_client.REGISTRY`` is left untouched.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TcowatchCollector(state))
    return registry
