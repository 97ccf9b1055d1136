"""AWS Cost Explorer ``GetCostAndUsage`` as a billing collector (daily, grouped by a dimension).

Mapping of one ``ResultsByTime`` entry x ``Group`` into a ``CostLine``:

- ``provider`` ``"AWS"``, ``charge_category`` ``"Usage"``, the charge period is that day
  ``[Start, End)`` and the billing period its calendar month (UTC).
- ``billed_cost`` = ``Decimal(Metrics[metric].Amount)`` (the API sends a string; never a float),
  ``billing_currency`` = its ``Unit``.
- grouped by ``SERVICE``: ``service_name`` is the group key. Any other dimension leaves
  ``service_name`` empty and keeps the key in ``extra`` (``x_AwsGroupBy``/``x_AwsGroupValue``);
  ``LINKED_ACCOUNT`` also fills ``sub_account_id`` and ``REGION`` fills ``region_id``.
- ``extra["x_Estimated"]`` is Cost Explorer's ``Estimated`` flag. Estimated days are kept:
  AWS restates them, and the daemon re-reads the last days.
- ``row_key`` hashes (day, dimension, group keys, metric), so a re-read replaces the same line.

Each page is one billed request ($0.01). botocore's own retries are switched off on the default
client so that throttling goes through ``with_retries`` (and tests can inject ``sleep``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError as BotoHTTPClientError

from collectors.base import CollectorDown, CollectorError, CostLine
from collectors.billing import check_window, day_period, month_period, row_key, with_retries

logger = logging.getLogger(__name__)

COST_METRICS = frozenset(
    {"AmortizedCost", "BlendedCost", "NetAmortizedCost", "NetUnblendedCost", "UnblendedCost"}
)
"""``Metrics`` values that are money (the others are quantities)."""

THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "AuthFailure",
        "OptInRequired",
    }
)
_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)
_SECRET_LIKE = re.compile(
    r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b|(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
)
_MAX_MESSAGE = 200


def _scrub(message: str) -> str:
    """First line of ``message``, shortened, with anything shaped like an AWS key removed."""
    lines = message.strip().splitlines()
    first = lines[0] if lines else ""
    return _SECRET_LIKE.sub("<redacted>", first)[:_MAX_MESSAGE]


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")) if isinstance(error, dict) else ""


def _error_message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return _scrub(str(error.get("Message", ""))) if isinstance(error, dict) else ""


def _is_throttle(exc: Exception) -> float | None:
    if isinstance(exc, ClientError) and _error_code(exc) in THROTTLE_CODES:
        return 0.0
    return None


class AwsCostExplorer:
    """Daily costs from AWS Cost Explorer, grouped by one ``DIMENSION`` (``SERVICE`` by default).

    ``client`` is a boto3 ``ce`` client (tests inject one); without it, one is made on the first
    ``fetch`` from ``boto3.Session(profile_name=profile)`` with botocore retries off. Credentials
    come from boto3's usual chain (profile, ``AWS_*`` variables, instance role) and are never
    logged or put in an error.
    """

    kind: ClassVar[str] = "aws_ce"

    def __init__(
        self,
        *,
        name: str,
        region: str = "us-east-1",
        metric: str = "UnblendedCost",
        group_by: str = "SERVICE",
        profile: str | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Raise ``ValueError`` when ``metric`` is not a cost metric or ``group_by`` is empty."""
        if metric not in COST_METRICS:
            known = ", ".join(sorted(COST_METRICS))
            raise ValueError(f"metric {metric!r} is not a cost metric (use one of: {known})")
        if not group_by:
            raise ValueError("group_by must name a Cost Explorer dimension, e.g. SERVICE")
        self.name = name
        self.region = region
        self.metric = metric
        self.group_by = group_by
        self.profile = profile
        self._client = client
        self._sleep = sleep

    def fetch(self, start: date, end: date) -> list[CostLine]:
        """Return the daily cost lines of ``[start, end)``, following ``NextPageToken``.

        Throttling is retried with back-off. Raises ``CollectorDown`` for missing or rejected
        credentials (or a missing profile), ``CollectorError`` for an unreachable endpoint,
        throttling that outlasts the retries, any other API error or an unreadable amount;
        ``ValueError`` when ``end <= start``.
        """
        check_window(start, end)
        client = self._get_client()
        request: dict[str, Any] = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "DAILY",
            "Metrics": [self.metric],
            "GroupBy": [{"Type": "DIMENSION", "Key": self.group_by}],
        }
        lines: list[CostLine] = []
        token: str | None = None
        pages = 0
        while True:
            page_request = dict(request)
            if token:
                page_request["NextPageToken"] = token
            page = self._call(client, page_request)
            pages += 1
            for result in page.get("ResultsByTime", []):
                lines.extend(self._map_result(result))
            token = page.get("NextPageToken") or None
            if token is None:
                break
        logger.debug("%s: %d cost lines from %d page(s)", self.name, len(lines), pages)
        return lines

    def _get_client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config

                session = boto3.Session(profile_name=self.profile)
                self._client = session.client(
                    "ce",
                    region_name=self.region,
                    config=Config(
                        retries={"total_max_attempts": 1, "mode": "standard"},
                        connect_timeout=10,
                        read_timeout=60,
                    ),
                )
            except ProfileNotFound as exc:
                raise CollectorDown(
                    f"AWS profile {self.profile!r} not found in the AWS config files"
                ) from exc
            except BotoCoreError as exc:
                raise CollectorDown(f"cannot create the AWS Cost Explorer client: {exc}") from exc
        return self._client

    def _call(self, client: Any, request: dict[str, Any]) -> dict[str, Any]:
        try:
            page: dict[str, Any] = with_retries(
                lambda: client.get_cost_and_usage(**request),
                is_throttle=_is_throttle,
                sleep=self._sleep,
            )
        except ClientError as exc:
            raise self._client_error(exc) from exc
        except _CREDENTIAL_ERRORS as exc:
            raise CollectorDown(
                "no AWS credentials found: set a profile or the AWS_* variables "
                f"(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) ({type(exc).__name__})"
            ) from exc
        except (BotoConnectionError, BotoHTTPClientError) as exc:
            raise CollectorError(
                f"cannot reach AWS Cost Explorer in {self.region}: {_scrub(str(exc))}"
            ) from exc
        except BotoCoreError as exc:
            raise CollectorError(f"AWS Cost Explorer request failed: {_scrub(str(exc))}") from exc
        return page

    def _client_error(self, exc: ClientError) -> CollectorError:
        code = _error_code(exc) or "unknown error"
        message = _error_message(exc)
        detail = f"{code}: {message}" if message else code
        if code in THROTTLE_CODES:
            return CollectorError(f"AWS Cost Explorer kept throttling ({detail}); retried later")
        if code in CREDENTIAL_CODES:
            return CollectorDown(
                f"AWS rejected the credentials for Cost Explorer ({detail}): check the profile or "
                "AWS_* variables and the ce:GetCostAndUsage permission"
            )
        return CollectorError(f"AWS Cost Explorer request failed ({detail})")

    def _map_result(self, result: dict[str, Any]) -> list[CostLine]:
        period = result.get("TimePeriod", {})
        try:
            day = date.fromisoformat(str(period.get("Start")))
        except ValueError as exc:
            raise CollectorError(
                f"AWS Cost Explorer returned an unreadable TimePeriod.Start {period.get('Start')!r}"
            ) from exc
        charge_start, charge_end = day_period(day)
        billing_start, billing_end = month_period(day)
        estimated = bool(result.get("Estimated", False))
        lines: list[CostLine] = []
        for group in result.get("Groups", []):
            keys = [str(key) for key in group.get("Keys", [])]
            value = self._metric_value(group.get("Metrics", {}), day, keys)
            if value is None:
                continue
            amount, unit = value
            group_value = keys[0] if keys else ""
            extra: dict[str, Any] = {"x_Estimated": estimated}
            if self.group_by != "SERVICE":
                extra["x_AwsGroupBy"] = self.group_by
                extra["x_AwsGroupValue"] = group_value
            lines.append(
                CostLine(
                    row_key=row_key(day.isoformat(), self.group_by, *keys, self.metric),
                    provider="AWS",
                    billed_cost=amount,
                    billing_currency=unit,
                    charge_period_start=charge_start,
                    charge_period_end=charge_end,
                    billing_period_start=billing_start,
                    billing_period_end=billing_end,
                    charge_category="Usage",
                    service_name=group_value if self.group_by == "SERVICE" else None,
                    sub_account_id=group_value if self.group_by == "LINKED_ACCOUNT" else None,
                    region_id=group_value if self.group_by == "REGION" else None,
                    extra=extra,
                )
            )
        return lines

    def _metric_value(
        self, metrics: dict[str, Any], day: date, keys: list[str]
    ) -> tuple[Decimal, str] | None:
        entry = metrics.get(self.metric)
        if entry is None:
            logger.warning("%s: no %s for %s %s; line skipped", self.name, self.metric, day, keys)
            return None
        raw = entry.get("Amount")
        try:
            amount = Decimal(str(raw))
        except InvalidOperation as exc:
            raise CollectorError(
                f"AWS Cost Explorer returned an unreadable {self.metric} amount {raw!r} "
                f"for {day} {keys}"
            ) from exc
        if not amount.is_finite():
            raise CollectorError(
                f"AWS Cost Explorer returned a non-finite {self.metric} amount {raw!r} for {day}"
            )
        return amount, str(entry.get("Unit") or "USD")
