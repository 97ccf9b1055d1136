"""Reading a stored ``alert`` row back as the rule engine's ``AlertInstance`` (one place, used
by the evaluation job and the notification dispatcher alike)."""

from __future__ import annotations

from daemon.store.models import Alert, as_utc
from rules.engine import AlertInstance


def alert_instance(row: Alert) -> AlertInstance:
    """The engine's view of ``row``: own copies of its dicts, every time aware UTC."""
    return AlertInstance(
        fingerprint=row.fingerprint,
        alertname=row.alertname,
        labels=dict(row.labels),
        annotations=dict(row.annotations or {}),
        state=row.state,
        active_at=as_utc(row.active_at),
        value=row.value,
        fired_at=as_utc(row.fired_at) if row.fired_at else None,
        resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
        keep_firing_since=as_utc(row.keep_firing_since) if row.keep_firing_since else None,
        last_sent_at=as_utc(row.last_sent_at) if row.last_sent_at else None,
    )
