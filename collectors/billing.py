"""The billing-collector seam and what the cloud billing collectors share.

A billing collector reads one cloud bill (AWS Cost Explorer, Azure Cost Management, GCP's
BigQuery export, Alibaba BSS) for a window of charge days and maps it into ``CostLine`` records.
It never touches the store: the daemon replaces the window in the ledger with what it returns.

Error contract of the seam: ``fetch(start, end)`` returns every line of ``[start, end)`` or raises
``CollectorError`` (one actionable line, never a credential). ``CollectorDown`` (a subclass) means
the source cannot be used until someone acts: credentials missing or rejected, profile or SDK
missing. Transient failures (endpoint unreachable, throttling that outlasts the retries, a server
error) are plain ``CollectorError``. Either way nothing of the window is returned and the daemon
retries later on a back-off. Throttling is retried inside ``fetch`` via ``with_retries``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar, Protocol, TypeVar

from collectors.base import CostLine

logger = logging.getLogger(__name__)

T = TypeVar("T")

BILLING_COLLECTORS: Mapping[str, str] = {
    "aws_ce": "collectors.aws_ce.AwsCostExplorer",
    "azure": "collectors.azure.AzureCostManagement",
    "gcp": "collectors.gcp.GcpBillingExport",
    "aliyun": "collectors.aliyun.AliyunBss",
}
"""Built-in billing collectors by config ``kind``, as dotted paths imported on first use."""


class BillingCollector(Protocol):
    """A reader of one cloud bill. See the module docstring for the error contract."""

    name: str
    """The configured source name (the ledger's ``source``)."""
    kind: ClassVar[str]
    """``"aws_ce"``, ``"azure"``, ``"gcp"`` or ``"aliyun"``."""

    def fetch(self, start: date, end: date) -> list[CostLine]:
        """Return the lines charged on days ``[start, end)``.

        Raises ``CollectorError`` (one line, never a secret) or ``CollectorDown`` (credentials,
        unreachable endpoint).
        """
        ...


def with_retries(
    call: Callable[[], T],
    *,
    is_throttle: Callable[[Exception], float | None],
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    base: float = 1.0,
    cap: float = 60.0,
    rng: random.Random | None = None,
) -> T:
    """Call ``call()``, retrying while it fails with a throttling error.

    ``is_throttle(exc)`` returns ``None`` when ``exc`` is not retryable (it is re-raised at
    once), a positive number of seconds the server asked us to wait (``Retry-After``), or ``0``
    to use exponential back-off with jitter: a wait drawn from
    ``[d / 2, d]`` with ``d = min(cap, base * 2**retry)``, the draw coming from ``rng``.

    At most ``attempts`` calls are made and every wait is at most ``cap`` seconds, so the total
    wait is bounded by ``(attempts - 1) * cap``. When the server asks for more than ``cap``
    seconds, no further call is made. In both give-up cases the last exception is re-raised
    unchanged, so the caller maps it into its own error. Only exceptions are retried; anything
    ``call`` returns is returned as is.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    draw = rng if rng is not None else random.Random()
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            asked = is_throttle(exc)
            if asked is None or attempt == attempts - 1:
                raise
            if asked > cap:
                logger.warning(
                    "throttled (%s): server asks for %.0f s, more than the %.0f s cap; giving up",
                    type(exc).__name__,
                    asked,
                    cap,
                )
                raise
            if asked > 0:
                wait = asked
            else:
                ceiling = min(cap, base * 2.0**attempt)
                wait = draw.uniform(ceiling / 2.0, ceiling)
            logger.info(
                "throttled (%s), retry %d/%d in %.1f s",
                type(exc).__name__,
                attempt + 1,
                attempts - 1,
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def day_period(day: date) -> tuple[datetime, datetime]:
    """Return the aware-UTC charge period ``[day 00:00, next day 00:00)``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def month_period(day: date) -> tuple[datetime, datetime]:
    """Return the aware-UTC calendar-month billing period containing ``day``."""
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    if day.month == 12:
        return start, datetime(day.year + 1, 1, 1, tzinfo=UTC)
    return start, datetime(day.year, day.month + 1, 1, tzinfo=UTC)


def row_key(*parts: object) -> str:
    """Return a stable key for a billing line from its identifying parts.

    The parts are rendered with ``str`` (``None`` as an empty string) and joined with a unit
    separator before hashing, so ``("a", "bc")`` and ``("ab", "c")`` differ.
    """
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def check_window(start: date, end: date) -> None:
    """Raise ``ValueError`` unless ``start < end`` (a ``[start, end)`` window of whole days)."""
    if not start < end:
        raise ValueError(f"empty billing window [{start}, {end}): end must be after start")
