"""Parse and print durations the way Prometheus users write them (``15s``, ``1h30m``, ``2d``)."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Return the duration ``text`` names; raise ``ValueError`` with the expected form otherwise.

    Accepts ``timedelta``, a number of seconds, or a string of one or more ``<number><unit>``
    parts with units ms, s, m, h, d, w (``"90s"``, ``"1h30m"``).
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError(f'expected a duration like "15s", got {text!r}')
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f'expected a duration like "15s", got {text!r}')
        return timedelta(seconds=text)
    cleaned = str(text).strip()
    pos, total = 0, 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise ValueError(f'expected a duration like "15s", got "{cleaned}"')
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Print ``value`` compactly (``1h30m``, ``15s``); the inverse of ``parse_duration``."""
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if seconds:
        parts.append(f"{seconds:g}s")
    return "".join(parts)
