"""Reading rule ``params``: one helper per value shape, each raising ``RuleConfigError`` with
the parameter's key so ``tcowatch rules check`` and the config loader can name it.

Every rule kind validates its params in its constructor with these, so the messages read the
same across kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from rules.base import RuleConfigError
from rules.durations import parse_duration


def merge_params(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` overlaid with ``params``; an unknown key raises, naming the known ones."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults))
        raise RuleConfigError(unknown[0], f"unknown parameter (known: {known})")
    return {**defaults, **params}


def ratio(key: str, value: Any) -> float:
    """A number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleConfigError(key, f"expected a ratio between 0 and 1, got {value!r}")
    if not (0 < value <= 1):
        raise RuleConfigError(key, f"expected a ratio between 0 and 1, got {value!r}")
    return float(value)


def number(key: str, value: Any, *, minimum: float | None = None) -> float:
    """Any finite number, at least ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RuleConfigError(key, f"expected a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise RuleConfigError(key, f"expected at least {minimum:g}, got {value!r}")
    return float(value)


def whole_number(key: str, value: Any, *, minimum: int) -> int:
    """An integer (``3.0`` accepted) of at least ``minimum``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleConfigError(key, f"expected a whole number, got {value!r}")
    if value < minimum:
        raise RuleConfigError(key, f"expected at least {minimum}, got {value!r}")
    return int(value)


def money(key: str, value: Any) -> Decimal:
    """A non-negative amount as ``Decimal``, read through its text (0.1 stays 0.1)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RuleConfigError(key, f"expected an amount like 100 or 12.50, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise RuleConfigError(key, f"expected an amount like 100 or 12.50, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise RuleConfigError(key, f"expected a non-negative amount, got {value!r}")
    return amount


def duration(key: str, value: Any, *, example: str = "10m") -> timedelta:
    """A positive Prometheus-style duration (``"10m"``, ``"1h30m"``)."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, str):
        try:
            result = parse_duration(value, example=example)
        except ValueError as exc:
            raise RuleConfigError(key, str(exc)) from None
    else:
        raise RuleConfigError(key, f'expected a duration like "{example}", got "{value}"')
    if result <= timedelta(0):
        raise RuleConfigError(key, f'expected a positive duration like "{example}", got "{value}"')
    return result


def choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise RuleConfigError(key, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def string_list(key: str, value: Any) -> tuple[str, ...]:
    """A list of strings (a single string is taken as a one-item list)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise RuleConfigError(key, f"expected a list of strings, got {value!r}")
    return tuple(value)
