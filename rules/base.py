"""The rule seam: what a rule sees (``RuleContext``), what it returns (``Finding``), the table.

Rules are pure judges: ``evaluate(ctx) -> list[Finding]`` does no I/O and reads the time only
from ``ctx.now``, so tests feed literal data and a fixed clock.

Error contract: a rule's constructor raises ``RuleConfigError`` (with the key path of the bad
parameter, relative to ``params``) for bad parameters; ``evaluate`` must not raise for any
well-formed context. A rule that raises anyway is logged and counted by the daemon, and its
alerts keep their previous state for that tick.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class GpuWindow:
    """One GPU over the rule's window, from the per-minute rollups plus the latest sample.

    Every ``None`` means "not reported in the window", never zero.
    """

    uuid: str
    node: str
    index: int
    name: str
    minutes: int
    """Number of per-minute rollup buckets in the window that have samples."""
    avg_utilization_ratio: float | None
    max_utilization_ratio: float | None
    avg_power_watts: float | None
    power_limit_watts: float | None
    avg_memory_used_bytes: float | None
    memory_total_bytes: int | None
    inference_tokens: float | None
    """Tokens processed in the window by the model instances on this GPU (or, when the
    instance-to-GPU mapping is unknown, on its node). ``None`` = no inference source known."""
    down: bool = False


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may look at. Built by the daemon for each evaluation."""

    now: datetime
    window: timedelta
    gpus: tuple[GpuWindow, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    """One series the rule's condition holds for: its labels (without ``alertname``) and value."""

    labels: Mapping[str, str]
    value: float


class RuleConfigError(ValueError):
    """A bad rule parameter; ``path`` is the key path inside ``params`` (e.g. ``"threshold"``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class Rule(Protocol):
    """A built-in rule kind. See the module docstring for the error contract."""

    kind: ClassVar[str]
    window: timedelta
    """How much history the rule needs; the daemon builds the context over this window."""

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """Return the findings for this tick; pure, must not raise on a well-formed context."""
        ...


RULES: Mapping[str, str] = {
    "gpu_idle": "rules.gpu_idle.GpuIdleRule",
}
"""Built-in rule kinds as dotted paths, imported on first use."""


def load_rule_class(kind: str) -> Any:
    """Import the rule class for ``kind``; ``KeyError`` names the known kinds."""
    if kind not in RULES:
        known = ", ".join(sorted(RULES))
        raise KeyError(f"unknown rule kind {kind!r} (known: {known})")
    return pkgutil.resolve_name(RULES[kind])
