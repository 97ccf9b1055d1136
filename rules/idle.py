"""The one definition of an idle GPU, shared by rollups, rules and the board.

A GPU is **idle** over a period when all three signals agree:

1. **Utilization** (the share of time a kernel was running, 0..1) is below
   ``utilization_below`` (default 5%).
2. **No inference activity**: no tokens were processed by the model instances on the GPU
   (or on its node, when the instance-to-GPU mapping is unknown). Unknown activity (no
   inference source is configured) is no evidence either way and does not prevent idle.
3. **Power corroborates**: when both the power draw and the power limit are known, the draw is
   below ``power_below_ratio`` x limit (default 30%). A GPU drawing a lot of power is not idle,
   even if a utilization sample says 0. When either is unknown this check is skipped.

When utilization is unknown the answer is unknown (``None``): a GPU is never called idle on
power or token counts alone. Utilization and power are compared strictly: exactly 5% is not idle.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IdlePolicy:
    """Thresholds of the idle definition (see the module docstring).

    Raises ``ValueError`` when a threshold is outside ``(0, 1]``.
    """

    utilization_below: float = 0.05
    power_below_ratio: float = 0.3

    def __post_init__(self) -> None:
        for name in ("utilization_below", "power_below_ratio"):
            threshold = getattr(self, name)
            if isinstance(threshold, bool) or not isinstance(threshold, int | float):
                raise ValueError(f"{name} must be a number, got {threshold!r}")
            if not (0 < threshold <= 1):
                raise ValueError(f"{name} must be a ratio in (0, 1], got {threshold!r}")

    def is_idle(
        self,
        *,
        utilization_ratio: float | None,
        power_watts: float | None,
        power_limit_watts: float | None,
        inference_tokens: float | None,
    ) -> bool | None:
        """Return ``True`` when idle, ``False`` when busy, ``None`` when utilization is unknown.

        ``None`` (or NaN) inputs mean "not reported". Never raises.
        """
        if utilization_ratio is None or math.isnan(utilization_ratio):
            return None
        if utilization_ratio >= self.utilization_below:
            return False
        if inference_tokens is not None and inference_tokens > 0:
            return False
        if power_watts is None or power_limit_watts is None or math.isnan(power_watts):
            return True
        if not power_limit_watts > 0:  # unknown or NaN limit: no corroboration possible
            return True
        return power_watts < self.power_below_ratio * power_limit_watts


DEFAULT_IDLE_POLICY = IdlePolicy()
"""The policy used where no rule overrides the thresholds (rollups' idle seconds, the board)."""
