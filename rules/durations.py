"""Parse and print durations the way Prometheus writes them (``15s``, ``1h30m``, ``2d``).

Shared by the rules (their ``params``) and the daemon's configuration. The grammar is
Prometheus' ``model.ParseDuration``: whole numbers with the units y, w, d, h, m, s, ms, each at
most once and in that order. A plain number (as YAML gives for ``interval: 30``) is seconds.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = (
    ("y", 365 * 86400.0),
    ("w", 604800.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_GRAMMAR = re.compile("".join(rf"(?:(\d+){unit})?" for unit, _ in _UNITS))


def parse_duration(text: str | int | float | timedelta, *, example: str = "15s") -> timedelta:
    """Return the duration ``text`` names.

    Raises ``ValueError('expected a duration like "15s", got "fast"')`` (with ``example`` in
    place of ``15s``) for anything else, including negative numbers and booleans.
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool) and text >= 0:
        return timedelta(seconds=text)
    cleaned = str(text).strip() if isinstance(text, str) else repr(text)
    if cleaned == "0":
        return timedelta(0)
    match = _GRAMMAR.fullmatch(cleaned) if isinstance(text, str) else None
    if match is None or not cleaned or (not any(match.groups()) and cleaned != "0"):
        raise ValueError(f'expected a duration like "{example}", got "{cleaned}"')
    seconds = sum(int(v) * size for v, (_, size) in zip(match.groups(), _UNITS, strict=True) if v)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Print ``value`` compactly (``1h30m``, ``15s``); ``parse_duration`` reads it back."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
