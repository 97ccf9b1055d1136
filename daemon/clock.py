"""Clocks: every job takes its time from one, so tests and the demo can steer time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime:
        """The current time (aware, UTC)."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        """The current wall-clock time."""
        return datetime.now(UTC)


class ScaledClock:
    """Time that runs ``speed`` times faster than the wall clock (the demo's ``--speed``)."""

    def __init__(
        self,
        speed: float,
        *,
        start: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = start or datetime.now(UTC)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        """Start time plus elapsed wall time multiplied by ``speed``."""
        return self._start + timedelta(seconds=(self._monotonic() - self._origin) * self.speed)


class ManualClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time last set."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        with self._lock:
            self._now += delta
            return self._now
