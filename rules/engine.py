"""Alert state machine with Prometheus semantics (pending -> firing -> resolved, ``for``,
``keep_firing_for``, 15-minute resolved retention). Pure: no I/O, time comes in as ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

RESOLVED_RETENTION = timedelta(minutes=15)


@dataclass
class AlertInstance:
    """One alert instance: a label set (including ``alertname``) and its state.

    ``state`` is ``pending``, ``firing`` or ``inactive`` (resolved, kept 15 minutes).
    """

    fingerprint: str
    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    active_at: datetime
    value: float | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_since: datetime | None = None
    last_sent_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
