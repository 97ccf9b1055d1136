"""The dispatcher: alert rows in, outbox rows out, with Alertmanager's routing and timing.

Each ``Dispatcher.dispatch(session, now)`` call (the dispatcher job, every few seconds):

1. reads the ``alert`` rows that are ``firing`` or resolved (``inactive`` with ``resolved_at``);
2. routes each through the tree (``daemon.notify.routing``). A firing alert whose group does
   not exist yet creates its ``notify_group`` row, first flushed ``group_wait`` later (at once
   when the alert fired more than ``group_wait`` ago). Resolved alerts only join existing
   groups, so an alert resolved after its group was closed never reopens it;
3. flushes every group whose ``next_flush_at`` has come: its firing alerts plus the alerts
   resolved since its previous flush (since it was created, for the first one). The next flush
   is ``group_interval`` later; ``repeat_interval`` is checked at these flushes only;
4. drops inhibited alerts, then everything while the route is outside its
   ``active_time_intervals`` or inside a ``mute_time_intervals`` window, then silenced alerts
   (counted per alert in ``state.count_suppressed`` as ``inhibited``, ``muted``, ``silenced``);
5. for each channel of the route, decides with the dedup table (``daemon.notify.dedup``)
   against that channel's ``notify_log`` row; when it says so, enqueues one outbox row with the
   Alertmanager v4 payload (resolved alerts only for channels with ``send_resolved``) and
   records what was notified;
6. deletes a group once it holds no firing alert after a flush (its resolved alerts were just
   flushed) or holds nothing at all, and groups whose route no longer exists.

Alerts resolved inside ``group_wait`` are never notified: at the first flush the group has no
firing alert and no log entry, so the table says nothing. All state lives in the store, so a
restarted process (a new ``Dispatcher`` over the same database) carries on without notifying
anything twice.

Everything happens in the caller's session; nothing here commits. Error contract: the
constructor raises ``ValueError`` listing the problems of an inconsistent routing config (an
unknown channel or time interval name; config validation reports these first); ``dispatch``
raises only database errors, and the caller's transaction then rolls back as a whole.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session, col, delete, select

from daemon.alert_rows import alert_instance
from daemon.notify.dedup import LogEntry, needs_update
from daemon.notify.inhibit import Inhibitor, build_inhibit_rules
from daemon.notify.outbox import enqueue
from daemon.notify.payload import build_webhook_payload
from daemon.notify.routing import Route, build_route
from daemon.notify.routing_config import (
    InhibitRuleConfig,
    RouteConfig,
    TimeIntervalConfig,
    validate_route,
    validate_time_intervals,
)
from daemon.notify.silences import Silencer, active_silences
from daemon.notify.timeintervals import TimeInterval, in_any, time_interval
from daemon.state import LiveState
from daemon.store.models import Alert, NotifyGroup, NotifyLog, as_utc
from rules.engine import AlertInstance

logger = logging.getLogger(__name__)

ROUTE_ID_MAX = 255
"""Width of ``notify_group.route_id``; longer route ids are stored as a hash."""


class ChannelInfo(Protocol):
    """What the dispatcher needs of a channel."""

    @property
    def name(self) -> str: ...

    @property
    def send_resolved(self) -> bool: ...


@dataclass
class DispatchResult:
    """What one ``dispatch`` did."""

    enqueued: int = 0
    """Outbox rows added."""
    flushed: int = 0
    """Groups flushed."""
    suppressed: dict[str, int] = field(default_factory=dict)
    """Alerts kept from a flush, by reason (``inhibited``, ``muted``, ``silenced``)."""


@dataclass
class _Members:
    firing: dict[str, Alert] = field(default_factory=dict)
    resolved: dict[str, Alert] = field(default_factory=dict)


class Dispatcher:
    """Routes, groups, suppresses and deduplicates alerts into outbox rows."""

    def __init__(
        self,
        route: RouteConfig,
        inhibit_rules: Sequence[InhibitRuleConfig],
        time_intervals: Sequence[TimeIntervalConfig],
        channels: Mapping[str, ChannelInfo],
        *,
        receiver: str,
        external_url: str,
        state: LiveState | None = None,
        generator_url: Callable[[AlertInstance], str] | None = None,
    ) -> None:
        """Build the tree, inhibit rules and time intervals from validated config models.

        ``channels`` maps each configured channel name to an object with ``name`` and
        ``send_resolved``; the root route's unset ``receiver`` means all of them. ``receiver``
        is the payload's ``receiver`` field. Raises ``ValueError`` when a route names an
        unknown channel or time interval, or an interval name is used twice.
        """
        problems = validate_time_intervals(time_intervals)
        problems += validate_route(route, list(channels), [t.name for t in time_intervals])
        if problems:
            raise ValueError("; ".join(problems))
        self.channels = dict(channels)
        self.receiver = receiver
        self.external_url = external_url
        self.state = state
        self.generator_url = generator_url
        self.root = build_route(route, list(channels))
        self.routes = {_route_ref(node): node for node in self.root.walk()}
        self.inhibit_rules = build_inhibit_rules(inhibit_rules)
        self.intervals: dict[str, tuple[TimeInterval, ...]] = {
            config.name: tuple(time_interval(spec.model_dump()) for spec in config.time_intervals)
            for config in time_intervals
        }

    def dispatch(self, session: Session, now: datetime) -> DispatchResult:
        """Run one dispatch round in ``session`` (not committed); see the module docstring."""
        moment = as_utc(now)
        result = DispatchResult()
        rows = session.exec(select(Alert).where(col(Alert.state).in_(("firing", "inactive"))))
        alerts = list(rows.all())
        firing = [a for a in alerts if a.state == "firing"]
        resolved = [a for a in alerts if a.state == "inactive" and a.resolved_at is not None]
        groups = {g.key_hash: g for g in session.exec(select(NotifyGroup)).all()}
        members: dict[str, _Members] = {}

        created = False
        for alert in firing:
            for route in self.root.match(alert.labels):
                key = route.group_key(alert.labels)
                key_hash = group_hash(key)
                if key_hash not in groups:
                    groups[key_hash] = self._new_group(key, key_hash, route, alert, moment)
                    session.add(groups[key_hash])
                    created = True
                members.setdefault(key_hash, _Members()).firing[alert.fingerprint] = alert
        for alert in resolved:
            for route in self.root.match(alert.labels):
                key_hash = group_hash(route.group_key(alert.labels))
                if key_hash in groups:
                    members.setdefault(key_hash, _Members()).resolved[alert.fingerprint] = alert
        if created:
            session.flush()

        inhibitor = Inhibitor(self.inhibit_rules, [a.labels for a in firing])
        silencer = Silencer(active_silences(session, moment))
        for key_hash, group in sorted(groups.items()):
            if as_utc(group.next_flush_at) > moment:
                continue
            owner = self.routes.get(group.route_id)
            if owner is None:
                logger.info("notification group %s: its route is gone, closing it", key_hash)
                session.delete(group)
                continue
            group_members = members.get(key_hash, _Members())
            self._flush(session, group, owner, group_members, inhibitor, silencer, moment, result)
        session.exec(delete(NotifyLog).where(col(NotifyLog.expires_at) < moment))
        return result

    def _new_group(
        self, key: str, key_hash: str, route: Route, alert: Alert, moment: datetime
    ) -> NotifyGroup:
        started = as_utc(alert.fired_at or alert.active_at)
        first_flush = moment if started + route.group_wait < moment else moment + route.group_wait
        return NotifyGroup(
            key_hash=key_hash,
            group_key=key,
            route_id=_route_ref(route),
            group_labels=route.group_labels(alert.labels),
            created_at=moment,
            next_flush_at=first_flush,
        )

    def _flush(
        self,
        session: Session,
        group: NotifyGroup,
        route: Route,
        members: _Members,
        inhibitor: Inhibitor,
        silencer: Silencer,
        moment: datetime,
        result: DispatchResult,
    ) -> None:
        since = max(as_utc(group.created_at), as_utc(group.next_flush_at) - route.group_interval)
        firing = list(members.firing.values())
        resolved = [
            a
            for a in members.resolved.values()
            if a.resolved_at is not None and since < as_utc(a.resolved_at) <= moment
        ]
        if not firing and not resolved:
            session.delete(group)
            return
        result.flushed += 1
        group.next_flush_at = moment + route.group_interval
        session.add(group)
        alerts = sorted(firing + resolved, key=_alert_order)
        visible = self._suppress(alerts, route, inhibitor, silencer, moment, result)
        if visible:
            self._notify(session, group, route, visible, moment, result)
        if not firing:
            session.delete(group)

    def _suppress(
        self,
        alerts: list[Alert],
        route: Route,
        inhibitor: Inhibitor,
        silencer: Silencer,
        moment: datetime,
        result: DispatchResult,
    ) -> list[Alert]:
        kept = [a for a in alerts if not inhibitor.inhibited(a.labels)]
        self._count("inhibited", len(alerts) - len(kept), result)
        if kept and self._time_muted(route, moment):
            self._count("muted", len(kept), result)
            return []
        visible = [a for a in kept if silencer.silenced_by(a.labels) is None]
        self._count("silenced", len(kept) - len(visible), result)
        return visible

    def _time_muted(self, route: Route, moment: datetime) -> bool:
        if route.active_time_intervals and not any(
            in_any(self.intervals[name], moment) for name in route.active_time_intervals
        ):
            return True
        return any(in_any(self.intervals[name], moment) for name in route.mute_time_intervals)

    def _count(self, reason: str, amount: int, result: DispatchResult) -> None:
        if amount <= 0:
            return
        result.suppressed[reason] = result.suppressed.get(reason, 0) + amount
        if self.state is not None:
            for _ in range(amount):
                self.state.count_suppressed(reason)

    def _notify(
        self,
        session: Session,
        group: NotifyGroup,
        route: Route,
        visible: list[Alert],
        moment: datetime,
        result: DispatchResult,
    ) -> None:
        firing = frozenset(a.fingerprint for a in visible if a.state == "firing")
        resolved = frozenset(a.fingerprint for a in visible if a.state != "firing")
        for name in route.receivers:
            channel = self.channels[name]
            log = session.get(NotifyLog, (group.key_hash, name))
            entry = None
            if log is not None and as_utc(log.expires_at) >= moment:
                entry = LogEntry(frozenset(log.firing), frozenset(log.resolved), log.sent_at)
            notify, reason = needs_update(
                entry,
                firing,
                resolved,
                send_resolved=channel.send_resolved,
                repeat_interval=route.repeat_interval,
                now=moment,
            )
            if reason is None:
                continue
            to_send = [a for a in visible if a.state == "firing" or channel.send_resolved]
            if notify and to_send:
                self._enqueue(session, group, name, to_send, reason, moment)
                result.enqueued += 1
            if log is None:
                log = NotifyLog(
                    key_hash=group.key_hash, channel=name, sent_at=moment, expires_at=moment
                )
            log.firing = sorted(firing)
            log.resolved = sorted(resolved)
            log.sent_at = moment
            log.expires_at = moment + _log_retention(route)
            session.add(log)

    def _enqueue(
        self,
        session: Session,
        group: NotifyGroup,
        channel: str,
        alerts: list[Alert],
        reason: str,
        moment: datetime,
    ) -> None:
        payload = build_webhook_payload(
            receiver=self.receiver,
            alerts=[alert_instance(a) for a in alerts],
            group_labels=dict(group.group_labels or {}),
            group_key=group.group_key,
            notification_reason=reason,
            external_url=self.external_url,
            now=moment,
            generator_url=self.generator_url,
        )
        enqueue(
            session,
            channel=channel,
            group_key=group.group_key,
            payload=payload,
            now=moment,
        )
        logger.debug("group %s: %s to %s", group.group_key, reason, channel)


def group_hash(group_key: str) -> str:
    """The ``notify_group``/``notify_log`` key of a group: sha256 hex of its group key."""
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()


def _route_ref(route: Route) -> str:
    if len(route.id) <= ROUTE_ID_MAX:
        return route.id
    return "sha256:" + hashlib.sha256(route.id.encode("utf-8")).hexdigest()


def _log_retention(route: Route) -> timedelta:
    """How long a log entry counts: twice ``repeat_interval`` (as Alertmanager's nflog)."""
    return 2 * route.repeat_interval


def _alert_order(alert: Alert) -> tuple[tuple[int, str], tuple[int, str], int, list[str]]:
    """Alertmanager's ``AlertSlice`` order: by ``job``, ``instance`` (missing last), labels."""
    labels = alert.labels

    def part(name: str) -> tuple[int, str]:
        return (0, labels[name]) if name in labels else (1, "")

    flat = [item for name in sorted(labels) for item in (name, labels[name])]
    return part("job"), part("instance"), len(labels), flat


__all__ = ["ChannelInfo", "DispatchResult", "Dispatcher", "group_hash"]
