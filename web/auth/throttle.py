"""Failed-login limiting per (username, address), in memory, on an injected clock.

Per process: behind several replicas each keeps its own count, which still bounds guessing.
The number of remembered keys is capped, oldest dropped first, so a flood cannot exhaust memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta

ThrottleKey = tuple[str, str]


class LoginThrottle:
    """At most ``attempts`` failed logins per key within ``window``; thread-safe."""

    def __init__(
        self,
        *,
        attempts: int,
        window: timedelta,
        now: Callable[[], datetime],
        max_keys: int = 10_000,
    ) -> None:
        if attempts < 1 or window <= timedelta(0) or max_keys < 1:
            raise ValueError("attempts, window and max_keys must be positive")
        self.attempts = attempts
        self.window = window
        self._now = now
        self._max_keys = max_keys
        self._failures: OrderedDict[ThrottleKey, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(username: str, address: str) -> ThrottleKey:
        """The key of a login attempt: the username as typed (normalised) and the address."""
        return (username.strip().lower()[:128], address)

    def _recent(self, key: ThrottleKey, now: datetime) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, key: ThrottleKey) -> bool:
        """Whether ``key`` has used up its failed attempts in the current window."""
        with self._lock:
            return len(self._recent(key, self._now())) >= self.attempts

    def failed(self, key: ThrottleKey) -> None:
        """Count one failed attempt for ``key``."""
        now = self._now()
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: ThrottleKey) -> None:
        """Forget the failures of ``key`` after a successful login."""
        with self._lock:
            self._failures.pop(key, None)
