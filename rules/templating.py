"""Sandboxed Jinja2 rendering of alert label and annotation templates.

Templates see ``labels`` (a mapping of label name to value) and ``value`` (the finding's value,
or ``None``), and these filters:

- ``percent``: a ratio as a percentage, ``0.123 -> "12.3%"``;
- ``money``: two decimals with thousands separators, ``1234.5 -> "1,234.50"``, and with a
  currency code ``money("USD") -> "1,234.50 USD"`` (half-up rounding, computed in ``Decimal``);
- ``duration``: seconds as ``"1h 5m"`` (days, hours, minutes, seconds; zero parts omitted);
- ``bytes``: IEC binary units, ``68719476736 -> "64.0 GiB"``.

Templates run in Jinja2's ``ImmutableSandboxedEnvironment`` (no access to dunder attributes,
no mutation of the passed-in data), with autoescape off (the output is chat text, not HTML), and
with multiplication/power guarded against huge results. Error contract: ``render`` never raises
on a bad template or bad data; like Prometheus it returns ``<error expanding template: ...>``.
Compiled templates are cached by source string.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Mapping, Sized
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

logger = logging.getLogger(__name__)

ERROR_PREFIX = "<error expanding template: "
_MAX_SEQUENCE_PRODUCT = 100_000
_MAX_EXPONENT = 1_000
_TEMPLATE_CACHE_SIZE = 1024


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    return float(value)


def percent(value: Any, digits: int = 1) -> str:
    """Format a ratio (0..1) as a percentage: ``0.123 -> "12.3%"``. Raises on non-numbers."""
    return f"{_to_float(value) * 100:.{int(digits)}f}%"


def money(value: Any, currency: str | None = None) -> str:
    """Format an amount with 2 decimals and thousands separators, optionally followed by a
    currency code: ``money(Decimal("2350000"), "CNY") -> "2,350,000.00 CNY"``.

    Rounds half-up in ``Decimal`` (a float is converted through its shortest repr). Raises
    ``ValueError``/``TypeError`` on non-numbers.
    """
    amount = _to_decimal(value)
    if not amount.is_finite():
        raise ValueError(f"expected a finite amount, got {value!r}")
    text = f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"
    if text == "-0.00":
        text = "0.00"
    return f"{text} {currency}" if currency else text


def duration(value: Any) -> str:
    """Format seconds as ``"1h 5m"``, ``"2d 3h"``, ``"45s"``, ``"0s"``; under a second as
    ``"0.25s"``. Negative durations get a leading ``-``. Raises on non-numbers."""
    seconds = _to_float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite number of seconds, got {value!r}")
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return "0s" if seconds == 0 else f"{sign}{seconds:.3g}s"
    total = int(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + " ".join(parts)


_BYTE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def bytes_(value: Any) -> str:
    """Format a byte count in IEC units: ``512 -> "512 B"``, ``68719476736 -> "64.0 GiB"``.
    Raises on non-numbers."""
    size = _to_float(value)
    if not math.isfinite(size):
        raise ValueError(f"expected a finite byte count, got {value!r}")
    sign = "-" if size < 0 else ""
    size = abs(size)
    if size < 1024:
        return f"{sign}{size:.0f} B"
    for unit in _BYTE_UNITS[:-1]:
        size /= 1024
        if size < 1024:
            return f"{sign}{size:.1f} {unit}"
    return f"{sign}{size / 1024:.1f} {_BYTE_UNITS[-1]}"


class _GuardedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus limits on ``*`` and ``**``, so a template cannot allocate a
    gigabyte string or compute a million-digit integer."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is too large")
            return operator.pow(left, right)
        if operator_ == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, Sized)
                    and isinstance(count, int)
                    and len(seq) * count > _MAX_SEQUENCE_PRODUCT
                ):
                    raise SecurityError("sequence repetition result is too large")
            return operator.mul(left, right)
        return super().call_binop(context, operator_, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail loudly on an unsafe attribute instead of rendering it as empty."""
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = _GuardedSandbox(autoescape=False, keep_trailing_newline=True)
    env.filters["percent"] = percent
    env.filters["money"] = money
    env.filters["duration"] = duration
    env.filters["bytes"] = bytes_
    return env


_ENV = _make_environment()


@lru_cache(maxsize=_TEMPLATE_CACHE_SIZE)
def _compile(source: str) -> Template:
    return _ENV.from_string(source)


def _error_text(exc: BaseException) -> str:
    return f"{ERROR_PREFIX}{type(exc).__name__}: {exc}>"


def template_error(template: str) -> str | None:
    """Return the syntax error of ``template`` as one line, or ``None`` when it compiles.

    Meant for configuration loading, so a broken template is reported at load time rather than
    at the first alert. Never raises.
    """
    try:
        _compile(template)
    except TemplateError as exc:
        return _error_text(exc)
    return None


def render(template: str, *, labels: Mapping[str, str], value: float | None) -> str:
    """Render ``template`` with ``labels`` and ``value``.

    Never raises for a bad template or data: syntax errors, undefined attributes, sandbox
    violations and filter errors come back as ``<error expanding template: ...>``, as in
    Prometheus. A template without ``{`` is returned as is.
    """
    if "{" not in template:
        return template
    try:
        return _compile(template).render(labels=dict(labels), value=value)
    except (TemplateError, ArithmeticError, ValueError, TypeError, LookupError) as exc:
        logger.debug("template %r failed: %s", template, exc)
        return _error_text(exc)
