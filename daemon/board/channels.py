"""Notification channels as the board shows them: health, backlog, test send, re-enable.

Health comes from ``ChannelState`` (written by the outbox: last success, last error, disabled
after a permanent error), the backlog from the ``outbox`` rows still ``pending``. Nothing here
shows a channel's URL or secrets: rows carry only the name, type and the error text, which
channels already redact (and which is redacted again with the channel's own redactor when it
has one).

A test send goes straight to the channel (``daemon.notify.channels.probe``), not through the
outbox, and its outcome is recorded in ``ChannelState``: a success as ``last_success_at``, a
failure as ``last_error`` prefixed ``test send:``. It never disables or re-enables a channel.

Error contract: ``ChannelNotFound`` (a ``KeyError``) for a name that is not configured;
``send_test_notification`` never raises for a failed delivery (the outcome says so); database
errors propagate. Functions taking a ``Session`` do not commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from daemon.notify.channels.base import Channel, TransportError
from daemon.notify.channels.probe import send_test, test_payload
from daemon.notify.outbox import enable_channel
from daemon.store.models import ChannelState, Outbox, as_utc

logger = logging.getLogger(__name__)

TEST_PREFIX = "test send: "
_ERROR_MAX = 2000


class ChannelNotFound(KeyError):
    """No channel of that name is configured."""

    def __init__(self, name: str, known: list[str]) -> None:
        shown = ", ".join(known) if known else "none configured"
        super().__init__(f"name: no channel {name!r} (configured: {shown})")
        self.name = name
        self.message = f"name: no channel {name!r} (configured: {shown})"


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One configured channel's status. Ages are seconds; times are UTC."""

    name: str
    type: str
    enabled: bool
    send_resolved: bool
    rate_limit_per_minute: float | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    pending: int
    """Notifications still to send (held, while the channel is disabled)."""
    oldest_pending_age_seconds: float
    """Age of the oldest pending notification (0 when none is pending)."""


@dataclass(frozen=True, slots=True)
class ChannelPage:
    """Configured channels, by name."""

    items: list[ChannelRow]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What a test send did; ``error`` is the channel's own (redacted) message."""

    channel: str
    type: str
    ok: bool
    at: datetime
    error: str | None = None
    permanent: bool = False
    retry_after_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class EnableOutcome:
    """A re-enable: ``was_disabled`` false means nothing changed; ``held`` notifications
    now go out on the next flushes."""

    channel: str
    was_disabled: bool
    held: int


def channel_type(channel: Channel) -> str:
    """The channel's config ``type`` (its class's ``kind``)."""
    kind = getattr(channel, "kind", None)
    return kind if isinstance(kind, str) else type(channel).__name__


def _redacted(channel: Channel, text: str | None) -> str | None:
    if text is None:
        return None
    redact = getattr(channel, "redact", None)
    return str(redact(text)) if callable(redact) else text


def _backlog(session: Session) -> dict[str, tuple[int, datetime]]:
    statement = (
        select(Outbox.channel, func.count(), func.min(Outbox.created_at))
        .where(col(Outbox.status) == "pending")
        .group_by(col(Outbox.channel))
    )
    return {name: (int(count), oldest) for name, count, oldest in session.exec(statement).all()}


def channel_rows(
    session: Session, channels: Mapping[str, Channel], *, now: datetime
) -> list[ChannelRow]:
    """Every configured channel with its health and backlog, sorted by name."""
    moment = as_utc(now)
    states = {s.name: s for s in session.exec(select(ChannelState)).all()}
    backlog = _backlog(session)
    rows: list[ChannelRow] = []
    for name in sorted(channels):
        channel = channels[name]
        health = states.get(name)
        pending, oldest = backlog.get(name, (0, None))
        limit = channel.rate_limit
        rows.append(
            ChannelRow(
                name=name,
                type=channel_type(channel),
                enabled=not (health is not None and health.disabled),
                send_resolved=channel.send_resolved,
                rate_limit_per_minute=limit.per_minute if limit is not None else None,
                last_success_at=_utc(health.last_success_at) if health else None,
                last_error_at=_utc(health.last_error_at) if health else None,
                last_error=_redacted(channel, health.last_error) if health else None,
                pending=pending,
                oldest_pending_age_seconds=(
                    max(0.0, (moment - as_utc(oldest)).total_seconds()) if oldest else 0.0
                ),
            )
        )
    return rows


def _utc(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None


def find_channel(channels: Mapping[str, Channel], name: str) -> Channel:
    """The configured channel ``name``; raises ``ChannelNotFound``."""
    channel = channels.get(name)
    if channel is None:
        raise ChannelNotFound(name, sorted(channels))
    return channel


def send_test_notification(
    channel: Channel, *, receiver: str, external_url: str, now: datetime
) -> ProbeOutcome:
    """Send the test notification to ``channel`` now (blocking: network I/O) and say how it went.

    Never raises for a failed delivery; an unexpected exception from the channel is logged and
    reported as a failure.
    """
    moment = as_utc(now)
    payload = test_payload(
        channel=channel.name, receiver=receiver, external_url=external_url, now=moment
    )
    kind = channel_type(channel)
    try:
        send_test(channel, payload)
    except TransportError as exc:
        logger.info("test send to channel %s failed: %s", channel.name, exc.message)
        return ProbeOutcome(
            channel=channel.name,
            type=kind,
            ok=False,
            at=moment,
            error=_redacted(channel, exc.message),
            permanent=exc.permanent,
            retry_after_seconds=exc.retry_after,
        )
    except Exception as exc:
        logger.exception("channel %s raised an unexpected error on a test send", channel.name)
        error = f"{kind} {channel.name}: unexpected {type(exc).__name__}"
        return ProbeOutcome(channel=channel.name, type=kind, ok=False, at=moment, error=error)
    return ProbeOutcome(channel=channel.name, type=kind, ok=True, at=moment)


def record_test_outcome(session: Session, outcome: ProbeOutcome) -> ChannelState:
    """Keep a test send's outcome in the channel's ``ChannelState`` (not committed)."""
    health = session.get(ChannelState, outcome.channel) or ChannelState(name=outcome.channel)
    if outcome.ok:
        health.last_success_at = outcome.at
    else:
        health.last_error = (TEST_PREFIX + (outcome.error or "failed"))[:_ERROR_MAX]
        health.last_error_at = outcome.at
    session.add(health)
    return health


def enable_configured_channel(
    session: Session, channels: Mapping[str, Channel], name: str
) -> EnableOutcome:
    """Re-enable the configured channel ``name`` (not committed).

    Raises ``ChannelNotFound`` for a name not configured.
    """
    find_channel(channels, name)
    health = session.get(ChannelState, name)
    was_disabled = health is not None and health.disabled
    held = enable_channel(session, name)
    return EnableOutcome(channel=name, was_disabled=was_disabled, held=held)


__all__ = [
    "ChannelNotFound",
    "ChannelPage",
    "ChannelRow",
    "EnableOutcome",
    "ProbeOutcome",
    "channel_rows",
    "channel_type",
    "enable_configured_channel",
    "find_channel",
    "record_test_outcome",
    "send_test_notification",
]
