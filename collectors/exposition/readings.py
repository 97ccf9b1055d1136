"""Shared by the GPU mappings: turn a dict of readings keyed by ``GpuSample`` field names
(floats, as parsed) into typed ``GpuSample`` keyword arguments.

Whole-number fields are rounded to ``int``, flag fields become ``bool`` (non-zero = true),
the rest stay ``float``; a missing reading stays absent (the field keeps its ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FLOAT_FIELDS = frozenset(
    {
        "utilization_ratio",
        "memory_utilization_ratio",
        "power_watts",
        "power_limit_watts",
        "energy_joules",
        "temperature_celsius",
        "sm_clock_hz",
        "memory_clock_hz",
        "engine_active_ratio",
    }
)
INT_FIELDS = frozenset(
    {"memory_used_bytes", "memory_total_bytes", "memory_reserved_bytes", "pstate"}
)
BOOL_FIELDS = frozenset({"clock_event_idle", "mig_enabled"})


def reading_fields(values: Mapping[str, float]) -> dict[str, Any]:
    """``GpuSample`` keyword arguments for the readings present in ``values``."""
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if name in FLOAT_FIELDS:
            fields[name] = value
        elif name in INT_FIELDS:
            fields[name] = round(value)
        elif name in BOOL_FIELDS:
            fields[name] = value != 0.0
    return fields
