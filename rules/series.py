"""The stored series rules can read by name: the ``threshold`` rule's ``series`` parameter and
the ``input_series`` of ``tcowatch rules test`` files use these names.

Each name says what one point is: per-minute rollups (``resolution`` 60 s) hold averages for
gauges and increases for counters; cloud costs are per UTC day. Names follow the ``/metrics``
families where one exists, without the ``_total`` suffix (a point is an increase, not a
running total).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """One stored series: its labels, unit, resolution in seconds and where it comes from."""

    name: str
    labels: tuple[str, ...]
    unit: str
    resolution_seconds: int
    description: str


_GPU = ("node", "gpu", "uuid")
_MODEL = ("node", "model", "instance")

SERIES: Mapping[str, SeriesSpec] = {
    spec.name: spec
    for spec in (
        SeriesSpec(
            "tcowatch_gpu_utilization_ratio", _GPU, "ratio", 60, "Average GPU utilization, 0-1."
        ),
        SeriesSpec("tcowatch_gpu_power_watts", _GPU, "watts", 60, "Average power draw."),
        SeriesSpec(
            "tcowatch_gpu_power_limit_watts", _GPU, "watts", 60, "Enforced power limit (inventory)."
        ),
        SeriesSpec(
            "tcowatch_gpu_memory_used_bytes", _GPU, "bytes", 60, "Average framebuffer memory used."
        ),
        SeriesSpec(
            "tcowatch_gpu_memory_total_bytes", _GPU, "bytes", 60, "Framebuffer size (inventory)."
        ),
        SeriesSpec("tcowatch_gpu_energy_joules", _GPU, "joules", 60, "Energy used in the minute."),
        SeriesSpec(
            "tcowatch_gpu_idle_seconds", _GPU, "seconds", 60, "Seconds of the minute spent idle."
        ),
        SeriesSpec(
            "tcowatch_llm_prompt_tokens", _MODEL, "tokens", 60, "Prompt tokens in the minute."
        ),
        SeriesSpec(
            "tcowatch_llm_generation_tokens",
            _MODEL,
            "tokens",
            60,
            "Tokens generated.",
        ),
        SeriesSpec("tcowatch_llm_requests", _MODEL, "requests", 60, "Requests completed."),
        SeriesSpec(
            "tcowatch_llm_cache_queries", _MODEL, "tokens", 60, "Prefix-cache queried tokens."
        ),
        SeriesSpec("tcowatch_llm_cache_hits", _MODEL, "tokens", 60, "Prefix-cache hit tokens."),
        SeriesSpec(
            "tcowatch_llm_cache_hit_ratio",
            _MODEL,
            "ratio",
            60,
            "The engine's own hit-rate gauge (SGLang, vLLM V0).",
        ),
        SeriesSpec(
            "tcowatch_response_cache_hits", ("cache",), "requests", 60, "Response-cache hits."
        ),
        SeriesSpec(
            "tcowatch_response_cache_lookups", ("cache",), "requests", 60, "Response-cache lookups."
        ),
        SeriesSpec(
            "tcowatch_cloud_cost",
            ("provider", "service", "account", "currency"),
            "currency",
            86400,
            "Billed cost per UTC day from the imported bills.",
        ),
    )
}
"""Every series a rule can read, by name."""
