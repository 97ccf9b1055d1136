"""Alertmanager's dedup decision: does a group need a notification on a channel, and why.

A copy of ``notify/dedup_stage.go`` ``needsUpdate``, evaluated at every flush of a group for
each of its channels against what that channel was last notified (its ``notify_log`` entry).
The first matching row decides:

=================================================  ====================  ========================
Condition                                          Result                ``notification_reason``
=================================================  ====================  ========================
no entry, at least one firing                      notify                ``first notification``
no entry, only resolved                            nothing               —
firing set not a subset of the last firing set     notify                ``new alerts added``
                                                                         (``first notification``
                                                                         when the last was all
                                                                         resolved)
no firing now, last had firing                     notify if             ``all alerts resolved``
                                                   ``send_resolved``,
                                                   else only log it
no firing now, none last time either               nothing               —
``send_resolved`` and resolved set not a subset    notify                ``some alerts resolved``
of the last resolved set
last notification older than ``repeat_interval``   notify                ``repeat interval
                                                                         elapsed``
otherwise                                          nothing               —
=================================================  ====================  ========================

Alerts are identified by fingerprint, so a firing alert whose labels are unchanged never
re-notifies before ``repeat_interval``. Pure: no I/O, time comes in as ``now``; never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.store.models import as_utc

logger = logging.getLogger(__name__)

FIRST_NOTIFICATION = "first notification"
NEW_ALERTS = "new alerts added"
ALL_RESOLVED = "all alerts resolved"
SOME_RESOLVED = "some alerts resolved"
REPEAT_INTERVAL = "repeat interval elapsed"


@dataclass(frozen=True)
class LogEntry:
    """What a channel was last notified about a group (Alertmanager's nflog entry)."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: datetime


def needs_update(
    entry: LogEntry | None,
    firing: Set[str],
    resolved: Set[str],
    *,
    send_resolved: bool,
    repeat_interval: timedelta,
    now: datetime,
) -> tuple[bool, str | None]:
    """Decide per the table above; returns ``(notify, reason)``.

    ``notify`` says whether to send a message; ``reason`` is not ``None`` whenever the
    notification log must be updated. They differ in one row: every alert resolved on a
    channel without ``send_resolved`` gives ``(False, "all alerts resolved")``, which records
    the resolution without sending anything.
    """
    if entry is None:
        return (True, FIRST_NOTIFICATION) if firing else (False, None)
    if not firing <= entry.firing:
        return True, (NEW_ALERTS if entry.firing else FIRST_NOTIFICATION)
    if not firing:
        if entry.firing:
            return send_resolved, ALL_RESOLVED
        return False, None
    if send_resolved and not resolved <= entry.resolved:
        return True, SOME_RESOLVED
    if as_utc(entry.sent_at) < as_utc(now) - repeat_interval:
        return True, REPEAT_INTERVAL
    return False, None


__all__ = [
    "ALL_RESOLVED",
    "FIRST_NOTIFICATION",
    "NEW_ALERTS",
    "REPEAT_INTERVAL",
    "SOME_RESOLVED",
    "LogEntry",
    "needs_update",
]
