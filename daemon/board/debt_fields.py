"""Checking a tech-debt item's fields, from a form (text) or the JSON API (typed values).

``clean_fields`` turns raw values into column values and reports **every** bad field at once
(so a form can show each error beside its input). The rules:

- ``title``: 1-500 characters after trimming; ``description``: at most 20,000; ``owner``: 255.
- ``status``: ``backlog``, ``planned``, ``in_progress`` or ``done``; ``severity``: ``low``,
  ``medium``, ``high`` or ``critical`` (the ``debt_overdue`` rule's scale).
- ``monthly_cost`` (the debt's "interest" per month): a decimal >= 0 with at most 8 decimal
  places and below 10^12 (never a float: text or ``Decimal``); empty text means 0.
- ``currency``: an ISO 4217 code, three letters (upper-cased).
- ``effort_days``: person-days >= 0 and at most 10,000, or empty/``None`` for "not estimated".
- ``due_date``: a date (``YYYY-MM-DD``) or empty/``None``. It is stored as the last second of
  that day in UTC, so the item (and the ``debt_overdue`` alert) is overdue once the day is over.
- ``links``: up to 20 absolute ``http``/``https`` URLs (text: one per line); anything else,
  ``javascript:`` and ``data:`` included, is refused, naming the link by its position from 1.

Text holding a NUL character is refused (no database column can store it).

Error contract: ``clean_fields`` raises ``FieldErrors`` mapping each bad (or unknown) field to
the reason; it never raises anything else for any input.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from daemon.board.comments import FieldErrors, has_nul
from rules.debt import SEVERITIES

logger = logging.getLogger(__name__)

STATUSES = ("backlog", "planned", "in_progress", "done")
"""The board's columns, left to right."""
MAX_TITLE, MAX_DESCRIPTION, MAX_OWNER = 500, 20_000, 255
MAX_LINKS, MAX_LINK = 20, 2000
MAX_MONEY = Decimal(10) ** 12
MAX_EFFORT_DAYS = 10_000.0
CURRENCY = re.compile(r"^[A-Z]{3}$")
DUE_TIME = time(23, 59, 59)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if has_nul(value):
        raise ValueError("must not contain NUL characters")
    return value.strip()


def _shown(value: Any) -> str:
    """A bad value for an error message: quoted, cut at 60 characters."""
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _title(value: Any) -> str:
    text = _text(value)
    if not text:
        raise ValueError("a title is needed (1-500 characters)")
    if len(text) > MAX_TITLE:
        raise ValueError(f"at most {MAX_TITLE} characters, got {len(text)}")
    return text


def _limited(limit: int) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        text = _text(value)
        if len(text) > limit:
            raise ValueError(f"at most {limit} characters, got {len(text)}")
        return text

    return clean


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        text = _text(value).lower()
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {_shown(value)}")
        return text

    return clean


def _money(value: Any) -> Decimal:
    if isinstance(value, float | bool):
        raise ValueError("expected a decimal amount as text or a JSON number, not a float")
    if isinstance(value, str) and not value.strip():
        return Decimal(0)
    try:
        amount = Decimal(value.strip().replace(",", "") if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"expected a decimal amount like 1200.50, got {_shown(value)}") from None
    if not amount.is_finite():
        raise ValueError(f"expected a finite amount, got {_shown(value)}")
    if amount < 0:
        raise ValueError("must be 0 or more")
    if amount >= MAX_MONEY:
        raise ValueError("must be below 1,000,000,000,000")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        raise ValueError("at most 8 decimal places")
    return amount


def _currency(value: Any) -> str:
    text = _text(value).upper()
    if not CURRENCY.match(text):
        raise ValueError(f"expected an ISO 4217 code like USD, got {_shown(value)}")
    return text


def _effort(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number of person-days")
    try:
        days = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of person-days, got {_shown(value)}") from None
    if not math.isfinite(days) or days < 0:
        raise ValueError("must be a finite number of person-days, 0 or more")
    if days > MAX_EFFORT_DAYS:
        raise ValueError(f"at most {MAX_EFFORT_DAYS:,.0f} person-days")
    return days


def due_datetime(day: date) -> datetime:
    """How a due date is stored: the day's last second, UTC."""
    return datetime.combine(day, DUE_TIME, UTC)


def _due(value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return due_datetime(value.date())
    if isinstance(value, date):
        return due_datetime(value)
    try:
        return due_datetime(date.fromisoformat(_text(value)))
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {_shown(value)}") from None


def check_link(link: str) -> str:
    """``link`` when it is an absolute http(s) URL, else ``ValueError`` with the reason."""
    if len(link) > MAX_LINK:
        raise ValueError(f"at most {MAX_LINK} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in link):
        raise ValueError(f"must not contain spaces or control characters: {_shown(link)}")
    try:
        parts = urlsplit(link)
    except ValueError:
        raise ValueError(f"not a URL: {_shown(link)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"only absolute http(s) URLs are allowed, got {_shown(link)}")
    return link


def _links(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.splitlines()
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("expected a list of URLs")
    links: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"link {index + 1}: expected a URL as text")
        if not item.strip():
            continue
        try:
            links.append(check_link(item.strip()))
        except ValueError as exc:
            raise ValueError(f"link {index + 1}: {exc}") from None
    if len(links) > MAX_LINKS:
        raise ValueError(f"at most {MAX_LINKS} links, got {len(links)}")
    return links


CLEANERS: dict[str, Callable[[Any], Any]] = {
    "title": _title,
    "description": _limited(MAX_DESCRIPTION),
    "owner": _limited(MAX_OWNER),
    "status": _choice(STATUSES),
    "severity": _choice(SEVERITIES),
    "monthly_cost": _money,
    "currency": _currency,
    "effort_days": _effort,
    "due_date": _due,
    "links": _links,
}
"""Field name -> cleaner; the names are the ``debt_item`` columns a person may set."""


def clean_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Column values for the fields in ``raw``; ``FieldErrors`` naming every bad field."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in raw.items():
        cleaner = CLEANERS.get(name)
        if cleaner is None:
            errors[name] = "not a field of a debt item"
            continue
        try:
            cleaned[name] = cleaner(value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise FieldErrors(errors)
    return cleaned
