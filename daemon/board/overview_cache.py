"""Caches of the overview's store figures: whole computations for a short time, and what was
read from hour rollups until the next hour is rolled.

Both are thread-safe and keep their values in memory only (one process, one app). Error
contract: ``compute`` callables' errors propagate and nothing is cached then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

CACHE_TTL = timedelta(seconds=15)
"""How long one computation serves page loads (also recomputed when the minute changes)."""


class HourlyMemo:
    """Results read from hour rollups, kept until the window or the last rolled hour moves.

    The hourly job writes an hour's rows once the hour is over and then moves on, so a result
    over [since, end of the last rolled hour) stays right until one of the two bounds moves (an
    hour rolled again by hand is seen at the next bound change). Callers then read only the
    minutes since the last rolled hour. Thread-safe; one entry per kind of query.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[datetime, datetime], Any]] = {}

    def get(self, kind: str, bounds: tuple[datetime, datetime], compute: Callable[[], T]) -> T:
        """The result of ``compute`` for ``kind`` over ``bounds``, computed once per bounds."""
        with self._lock:
            entry = self._entries.get(kind)
        if entry is not None and entry[0] == bounds:
            return cast(T, entry[1])
        value = compute()
        with self._lock:
            self._entries[kind] = (bounds, value)
        return value


class OverviewCache(Generic[T]):
    """One value per minute of the process clock, at most ``ttl`` old, computed once at a time.

    ``get(now, compute)`` returns the cached value when it was computed for ``now``'s minute
    less than ``ttl`` ago (``monotonic`` seconds); otherwise one caller runs ``compute`` while
    concurrent callers get the previous value (stale by at most one computation) or, when there
    is none yet, wait for it. Thread-safe.
    """

    def __init__(
        self, ttl: timedelta = CACHE_TTL, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl.total_seconds()
        self._monotonic = monotonic
        self._state = threading.Lock()
        self._refresh = threading.Lock()
        self._key: datetime | None = None
        self._at = 0.0
        self._value: T | None = None
        self.computations = 0
        """How many times ``compute`` ran (tests and the benchmark read it)."""

    @staticmethod
    def _minute(now: datetime) -> datetime:
        return now.astimezone(UTC).replace(second=0, microsecond=0)

    def _fresh(self, key: datetime) -> T | None:
        if self._value is None or self._key != key:
            return None
        return self._value if self._monotonic() - self._at < self.ttl else None

    def peek(self, now: datetime) -> T | None:
        """The value without blocking: fresh, or stale while another caller refreshes it."""
        with self._state:
            fresh = self._fresh(self._minute(now))
            if fresh is not None:
                return fresh
            return self._value if self._refresh.locked() else None

    def get(self, now: datetime, compute: Callable[[], T]) -> T:
        """The value for ``now`` (see the class docstring); ``compute`` errors propagate."""
        key = self._minute(now)
        ready = self.peek(now)
        if ready is not None:
            return ready
        if not self._refresh.acquire(blocking=False):
            with self._state:
                stale = self._value
            if stale is not None:
                return stale
            self._refresh.acquire()
        try:
            with self._state:
                fresh = self._fresh(key)
            if fresh is not None:
                return fresh
            value = compute()
            with self._state:
                self._key, self._at, self._value = key, self._monotonic(), value
                self.computations += 1
            return value
        finally:
            self._refresh.release()
