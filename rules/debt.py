"""``debt_overdue``: technical-debt items past their due date.

An item is reported when it is not ``done``, has a due date strictly before now, and its
severity is at least ``min_severity`` on the scale ``low`` < ``medium`` < ``high`` <
``critical`` (compared case-insensitively). Items without a due date, and items whose severity
is none of the four levels, are never reported. Times without a time zone are taken as UTC.

The rule reads the items' state as of now; it needs no history (its window is zero).

Params: ``min_severity`` (``low`` (default), ``medium``, ``high`` or ``critical``).

Finding labels: ``debt_id``, ``title``, ``owner``, ``severity`` (lower case); value: days
overdue (a float, 1.5 = a day and a half); details: ``status``, ``monthly_cost`` (Decimal
text), ``currency``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from rules.base import Finding, RuleContext
from rules.params import choice, merge_params

logger = logging.getLogger(__name__)

SEVERITIES = ("low", "medium", "high", "critical")
"""Severity levels, lowest first."""

_DEFAULTS: Mapping[str, Any] = {"min_severity": "low"}
_DAY_SECONDS = 86400.0


def _utc(moment: datetime) -> datetime:
    """``moment`` with a time zone (naive times are UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class DebtOverdueRule:
    """Overdue debt items at or above a severity. Constructor raises ``RuleConfigError`` naming
    the bad key; ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "debt_overdue"
    needs: frozenset[str] = frozenset({"debts"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        self.min_severity = choice("min_severity", merged["min_severity"], SEVERITIES)
        self.window: timedelta = timedelta(0)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per overdue item, in ``ctx.debts`` order."""
        now = _utc(ctx.now)
        minimum = SEVERITIES.index(self.min_severity)
        findings = []
        for item in ctx.debts:
            severity = item.severity.lower()
            if item.status == "done" or item.due_date is None or severity not in SEVERITIES:
                continue
            if SEVERITIES.index(severity) < minimum:
                continue
            overdue = now - _utc(item.due_date)
            if not overdue > timedelta(0):
                continue
            labels = {
                "debt_id": str(item.id),
                "title": item.title,
                "owner": item.owner,
                "severity": severity,
            }
            details = {
                "status": item.status,
                "monthly_cost": str(item.monthly_cost),
                "currency": item.currency,
            }
            value = overdue.total_seconds() / _DAY_SECONDS
            findings.append(Finding(labels=labels, value=value, details=details))
        return findings
