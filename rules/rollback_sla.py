"""``rollback_sla``: a rollback has stayed open past its time-to-restore target.

A rollback is open while it has no ``restored_at``. Its target is, in order: the rule's
per-service override (``services``), else the rollback's own ``sla_target`` when it is above
zero, else ``default_target`` (4 hours). An open rollback is reported when it has been open
strictly longer than its target (``now - started_at > target``). Restored rollbacks are never
reported. Times without a time zone are taken as UTC.

The rule reads the rollbacks' state as of now; it needs no history (its window is zero).

Params: ``default_target`` (duration, default ``4h``), ``services`` (mapping of service name to
a duration, default ``{}``; e.g. ``{checkout: 1h}``).

Finding labels: ``service``, ``rollback_id``, ``from_version``, ``to_version``; value: seconds
the rollback has been open; details: ``target_seconds``, ``owner``, ``reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from rules.base import Finding, RollbackView, RuleConfigError, RuleContext
from rules.params import duration, merge_params

logger = logging.getLogger(__name__)

_DEFAULTS: Mapping[str, Any] = {
    "default_target": "4h",
    "services": {},
}


def _utc(moment: datetime) -> datetime:
    """``moment`` with a time zone (naive times are UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _service_targets(value: Any) -> dict[str, timedelta]:
    """``services`` as service -> target; raises ``RuleConfigError`` at ``services.<name>``."""
    if not isinstance(value, Mapping):
        raise RuleConfigError(
            "services", f'expected a mapping like {{checkout: "1h"}}, got {value!r}'
        )
    targets = {}
    for service, target in value.items():
        if not isinstance(service, str) or not service:
            raise RuleConfigError("services", f"expected service names, got {service!r}")
        targets[service] = duration(f"services.{service}", target, example="4h")
    return targets


class RollbackSlaRule:
    """Open rollbacks past their target. Constructor raises ``RuleConfigError`` naming the bad
    key; ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "rollback_sla"
    needs: frozenset[str] = frozenset({"rollbacks"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        self.default_target = duration("default_target", merged["default_target"], example="4h")
        self.services = _service_targets(merged["services"])
        self.window: timedelta = timedelta(0)

    def target(self, rollback: RollbackView) -> timedelta:
        """The time-to-restore target that applies to ``rollback`` (see the module docstring)."""
        if rollback.service in self.services:
            return self.services[rollback.service]
        if rollback.sla_target > timedelta(0):
            return rollback.sla_target
        return self.default_target

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per open rollback past its target, in ``ctx.rollbacks`` order."""
        now = _utc(ctx.now)
        findings = []
        for rollback in ctx.rollbacks:
            if rollback.restored_at is not None:
                continue
            target = self.target(rollback)
            open_for = now - _utc(rollback.started_at)
            if not open_for > target:
                continue
            labels = {
                "service": rollback.service,
                "rollback_id": str(rollback.id),
                "from_version": rollback.from_version,
                "to_version": rollback.to_version,
            }
            details = {
                "target_seconds": target.total_seconds(),
                "owner": rollback.owner,
                "reason": rollback.reason,
            }
            findings.append(Finding(labels=labels, value=open_for.total_seconds(), details=details))
        return findings
