"""The ``input_series`` notation of ``promtool test rules``: series selectors and the
expanding notation of their values. Pure parsing, no I/O.

Series: ``name{label="value", ...}`` (``=`` only; values in double, single or back quotes
with Go-style escapes ``\\"``, ``\\\\``, ``\\n``, ``\\t``; ``{__name__="x"}`` names the series
too).

Values, separated by whitespace, as ``promtool`` reads them (Prometheus'
``promql/parser`` series grammar):

==============  =================================================================
``a``           one value: a number (``12``, ``-3.5``, ``1e3``, ``Inf``, ``NaN``; no
                hexadecimal: ``0x3`` is ``0`` four times) or ``stale`` (a staleness marker)
``a+bxn``       ``n+1`` values ``a, a+b, ..., a+n*b``
``a-bxn``       ``n+1`` values ``a, a-b, ..., a-n*b``
``axn``         ``a`` repeated ``n+1`` times (shorthand for ``a+0xn``)
``_``           one missing sample
``_xn``         ``n`` missing samples (not ``n+1``: nothing to start from)
==============  =================================================================

Values are ``Decimal`` (``0.1+0.1x2`` gives exactly ``0.1 0.2 0.3``, which matters for
money). Error contract: ``parse_values`` and ``parse_series`` raise ``NotationError`` (a
``ValueError``) naming the bad item and what was expected; nothing else for bad input.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal, InvalidOperation

MAX_VALUES = 1_000_000
"""The most values one series may expand to (a typo like ``0x99999999`` stays an error)."""


class NotationError(ValueError):
    """A series or values string that the notation does not allow."""


class Marker(enum.Enum):
    """A sample that is not a number."""

    MISSING = "_"
    """No sample at this step (a failed scrape)."""
    STALE = "stale"
    """A staleness marker: the series ended here."""


Value = Decimal | Marker

_NUMBER = r"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])"
_ITEM = re.compile(
    rf"""
    (?P<blank>_)(?:x(?P<blank_times>[0-9]+))?
    |
    (?P<base>[+-]?{_NUMBER}|stale)
    (?:(?P<step>[+-]{_NUMBER})?x(?P<times>[0-9]+))?
    """,
    re.VERBOSE,
)
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "`": "`"}


def _number(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid numbers
        raise NotationError(f"{text!r} is not a number") from None
    if "e" in text.lower() and number.is_finite():
        number = Decimal(format(number, "f"))  # 1e3 -> 1000, not 1E+3
    return number


def parse_values(text: str) -> tuple[Value, ...]:
    """Expand a values string into one entry per step: a ``Decimal`` or a ``Marker``.

    Raises ``NotationError`` naming the first bad item (1-based) and the accepted forms.
    """
    values: list[Value] = []
    for position, item in enumerate(text.split(), start=1):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise NotationError(
                f"item {position} {item!r}: expected a number, 'stale', '_', "
                "'_xN', 'axN', 'a+bxN' or 'a-bxN'"
            )
        if match["blank"]:
            count = int(match["blank_times"]) if match["blank_times"] is not None else 1
            _check_size(len(values) + count, position, item)
            values.extend([Marker.MISSING] * count)
            continue
        base_text, step_text, times = match["base"], match["step"], match["times"]
        if base_text == "stale":
            if step_text is not None:
                raise NotationError(
                    f"item {position} {item!r}: a stale marker cannot change by a step"
                )
            count = int(times) + 1 if times is not None else 1
            _check_size(len(values) + count, position, item)
            values.extend([Marker.STALE] * count)
            continue
        base = _number(base_text)
        if times is None:
            values.append(base)
            _check_size(len(values), position, item)
            continue
        step = _number(step_text) if step_text is not None else Decimal(0)
        count = int(times) + 1
        _check_size(len(values) + count, position, item)
        values.extend(base + step * k if step else base for k in range(count))
    return tuple(values)


def _check_size(total: int, position: int, item: str) -> None:
    if total > MAX_VALUES:
        raise NotationError(
            f"item {position} {item!r}: the series would have more than {MAX_VALUES:,} values"
        )


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """Read ``name{label="value", ...}`` into the name and the labels.

    Raises ``NotationError`` naming the position (1-based column) of the problem.
    """
    scanner = _Scanner(text)
    scanner.skip_space()
    name = scanner.take(_NAME) or ""
    labels: dict[str, str] = {}
    scanner.skip_space()
    if scanner.peek() == "{":
        scanner.pos += 1
        while True:
            scanner.skip_space()
            if scanner.peek() == "}":
                scanner.pos += 1
                break
            label = scanner.take(_LABEL)
            if label is None:
                raise scanner.error("expected a label name or '}'")
            scanner.skip_space()
            if scanner.peek() != "=" or scanner.text.startswith("=~", scanner.pos):
                raise scanner.error(f"expected '=' after label {label!r} (only '=' is allowed)")
            scanner.pos += 1
            scanner.skip_space()
            value = scanner.string()
            if label in labels:
                raise scanner.error(f"label {label!r} is given twice")
            labels[label] = value
            scanner.skip_space()
            if scanner.peek() == ",":
                scanner.pos += 1
            elif scanner.peek() != "}":
                raise scanner.error("expected ',' or '}'")
    scanner.skip_space()
    if scanner.pos != len(text):
        raise scanner.error("unexpected text after the series")
    if "__name__" in labels:
        named = labels.pop("__name__")
        if name and named != name:
            raise NotationError(f"the series is named both {name!r} and {named!r}")
        name = named
    if not name:
        raise NotationError("expected a series name like tcowatch_gpu_utilization_ratio{...}")
    return name, labels


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def take(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def error(self, message: str) -> NotationError:
        return NotationError(f"column {self.pos + 1}: {message}")

    def string(self) -> str:
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            raise self.error("expected a quoted label value")
        self.pos += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if char == "":
                raise self.error("unterminated label value")
            self.pos += 1
            if char == quote:
                return "".join(chars)
            if char == "\\" and quote != "`":
                escaped = self.peek()
                if escaped not in _ESCAPES:
                    raise self.error(f"unknown escape '\\{escaped}' in a label value")
                self.pos += 1
                chars.append(_ESCAPES[escaped])
                continue
            chars.append(char)
