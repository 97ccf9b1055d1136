"""Silences: mute notifications for alerts matching every matcher between a start and an end.

States follow Alertmanager: ``pending`` before ``starts_at``, ``active`` from ``starts_at``
until ``ends_at`` (excluded), ``expired`` after. Expiring an active silence sets ``ends_at`` to
now; expiring a pending one sets both ends to now. Silences only stop notifications: matching
alerts keep firing and stay visible. Matchers are stored in Alertmanager's API form
(``{"name", "value", "isRegex", "isEqual"}``).

Every function works in the caller's session and does not commit.

Error contract: ``create_silence`` raises ``SilenceError`` (a ``ValueError``) naming the field
(``matchers: ...``, ``ends_at: ...``, ``created_by: ...``, ``comment: ...``);
``expire_silence`` raises ``SilenceNotFound`` for an unknown id and ``SilenceError`` for one
already expired. ``Silencer`` skips (and logs) a stored silence whose matchers no longer
parse instead of failing the dispatcher.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from daemon.notify.matchers import Matcher, MatcherError, parse_matcher_list
from daemon.store.models import Silence, as_utc

logger = logging.getLogger(__name__)

MAX_AUTHOR = 255
MAX_COMMENT = 2000
SilenceState = Literal["pending", "active", "expired"]


class SilenceError(ValueError):
    """A silence is invalid or cannot be changed; the message starts with the field name."""


class SilenceNotFound(SilenceError):
    """No silence has the given id."""


def silence_state(silence: Silence, now: datetime) -> SilenceState:
    """``pending``, ``active`` or ``expired`` at ``now``."""
    moment = as_utc(now)
    if moment < as_utc(silence.starts_at):
        return "pending"
    if moment < as_utc(silence.ends_at):
        return "active"
    return "expired"


def silence_matchers(silence: Silence) -> list[Matcher]:
    """The stored matchers; raises ``MatcherError`` if one no longer parses."""
    return [Matcher.from_api(item) for item in silence.matchers]


def create_silence(
    session: Session,
    *,
    matchers: Sequence[Matcher | str],
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
) -> Silence:
    """Add a silence to ``session`` (not committed) and return it.

    ``matchers`` are ``Matcher`` objects or matcher strings. ``starts_at`` defaults to ``now``
    and a start in the past is moved to ``now``, as Alertmanager does. Raises ``SilenceError``:
    no matchers, a bad matcher, matchers that all match the empty string (they would silence
    nearly everything), an end not after the start or not in the future, an empty or too long
    author or comment.
    """
    moment = as_utc(now)
    parsed = _parse(matchers)
    start = max(as_utc(starts_at), moment) if starts_at is not None else moment
    end = as_utc(ends_at)
    if end <= moment:
        raise SilenceError(f"ends_at: {end.isoformat()} is not in the future")
    if end <= start:
        raise SilenceError(
            f"ends_at: {end.isoformat()} must be after starts_at {start.isoformat()}"
        )
    if not created_by.strip():
        raise SilenceError("created_by: say who creates the silence")
    if not comment.strip():
        raise SilenceError("comment: say why the alerts are silenced")
    if len(created_by.strip()) > MAX_AUTHOR:
        raise SilenceError(f"created_by: longer than {MAX_AUTHOR} characters")
    if len(comment.strip()) > MAX_COMMENT:
        raise SilenceError(f"comment: longer than {MAX_COMMENT} characters")
    silence = Silence(
        id=str(uuid.uuid4()),
        matchers=[m.to_api() for m in parsed],
        starts_at=start,
        ends_at=end,
        created_by=created_by.strip(),
        comment=comment.strip(),
        created_at=moment,
        updated_at=moment,
    )
    session.add(silence)
    return silence


def _parse(matchers: Sequence[Matcher | str]) -> list[Matcher]:
    parsed: list[Matcher] = []
    for index, item in enumerate(matchers):
        if isinstance(item, Matcher):
            parsed.append(item)
            continue
        try:
            parsed.extend(parse_matcher_list(item))
        except MatcherError as exc:
            raise SilenceError(f"matchers[{index}]: {exc}") from None
    if not parsed:
        raise SilenceError('matchers: give at least one, such as alertname="GpuIdle"')
    if all(m.matches_value("") for m in parsed):
        raise SilenceError(
            "matchers: at least one matcher must not match the empty string "
            "(these would silence almost every alert)"
        )
    return parsed


def expire_silence(session: Session, silence_id: str, now: datetime) -> Silence:
    """End a silence now (not committed). Raises ``SilenceNotFound`` or ``SilenceError``."""
    moment = as_utc(now)
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise SilenceNotFound(f"id: no silence {silence_id!r}")
    state = silence_state(silence, moment)
    if state == "expired":
        raise SilenceError(f"id: silence {silence_id} already expired at {_iso(silence.ends_at)}")
    if state == "pending":
        silence.starts_at = moment
    silence.ends_at = moment
    silence.updated_at = moment
    session.add(silence)
    return silence


def list_silences(
    session: Session, now: datetime, *, include_expired: bool = False
) -> list[Silence]:
    """Silences ordered by end time (pending and active only, unless ``include_expired``)."""
    statement = select(Silence).order_by(col(Silence.ends_at), col(Silence.id))
    if not include_expired:
        statement = statement.where(col(Silence.ends_at) > as_utc(now))
    return list(session.exec(statement).all())


def active_silences(session: Session, now: datetime) -> list[Silence]:
    """Silences active at ``now``."""
    moment = as_utc(now)
    statement = select(Silence).where(
        col(Silence.starts_at) <= moment, col(Silence.ends_at) > moment
    )
    return list(session.exec(statement).all())


@dataclass(frozen=True)
class _Compiled:
    id: str
    matchers: tuple[Matcher, ...]


class Silencer:
    """Answers "which silence mutes these labels?" for a fixed set of active silences."""

    def __init__(self, silences: Iterable[Silence]) -> None:
        self._silences: list[_Compiled] = []
        for silence in silences:
            try:
                matchers = tuple(silence_matchers(silence))
            except MatcherError as exc:
                logger.warning("silence %s is ignored: %s", silence.id, exc)
                continue
            self._silences.append(_Compiled(silence.id, matchers))

    def silenced_by(self, labels: Mapping[str, str]) -> str | None:
        """The id of a silence whose matchers all match ``labels``, or ``None``."""
        for silence in self._silences:
            if all(m.matches(labels) for m in silence.matchers):
                return silence.id
        return None


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


__all__ = [
    "SilenceError",
    "SilenceNotFound",
    "SilenceState",
    "Silencer",
    "active_silences",
    "create_silence",
    "expire_silence",
    "list_silences",
    "silence_matchers",
    "silence_state",
]
