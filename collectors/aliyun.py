"""Alibaba Cloud costs from the BSS OpenAPI (2017-12-14) ``DescribeInstanceBill``, daily.

For each day of the window one ``DescribeInstanceBill`` query (``Granularity=DAILY``,
``BillingCycle=YYYY-MM``, ``BillingDate=YYYY-MM-DD``) is paged with ``NextToken`` /
``MaxResults`` through the official SDK ``alibabacloud_bssopenapi20171214``.

Mapping to ``CostLine`` (finops.md §5.4): ``billed_cost`` = ``effective_cost`` =
``PretaxAmount`` (not amortised), ``list_cost`` = ``PretaxGrossAmount``, ``service_name`` =
``ProductName``, ``resource_id`` = ``InstanceID``, ``region_id`` = ``Region`` as BSS returns it
(often a display name such as "China (Hangzhou)"), ``sku_id`` = ``BillingItemCode``,
``sub_account_id`` = ``OwnerID``, ``billing_account_id`` = ``BillAccountID``, usage from
``Usage``/``UsageUnit``, ``charge_category`` from ``Item`` (SubscriptionOrder → Purchase,
PayAsYouGoBill → Usage, Refund → Credit, Adjustment → Adjustment), tags from ``Tag`` (see
``parse_tags``). The charge period is the billing date as a UTC day: BSS days follow the
account's billing time zone (UTC+8), which is kept as the same calendar date.

Money: the SDK parses the JSON amounts into ``float``; each is converted through its shortest
``repr`` (``Decimal(str(value))``), which gives back the decimal digits BSS sent (amounts have at
most a few decimal places, well within a float's 15 significant digits).

Error contract: ``fetch`` returns every line of ``[start, end)`` or raises ``CollectorError``
(an API error, a malformed line) or ``CollectorDown`` (SDK missing, no or rejected access key,
access denied, endpoint unreachable). ``Throttling*`` codes and 5xx are retried with back-off.
Messages are one line and never contain the access key secret.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from collectors.base import CollectorDown, CollectorError, CostLine
from collectors.billing import check_window, day_period, month_period, row_key, with_retries

logger = logging.getLogger(__name__)

PROVIDER = "Alibaba Cloud"
DEFAULT_ENDPOINT = "business.ap-southeast-1.aliyuncs.com"
MAX_RESULTS = 300
MAX_PAGES = 10_000
_MISSING_SDK = "alibabacloud-bssopenapi20171214 is not installed: pip install 'tcowatch[aliyun]'"
_OK_CODES = frozenset({"", "Success", "200"})
_CREDENTIAL_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSecurityToken",
    "MissingSecurityToken",
)
_DENIED_CODES = ("Forbidden", "NoPermission", "NotAuthorized", "NotApplicable")
_TRANSIENT_CODES = frozenset({"ServiceUnavailable", "InternalError", "SystemError"})
_CHARGE_CATEGORY = {
    "SubscriptionOrder": "Purchase",
    "PayAsYouGoBill": "Usage",
    "Refund": "Credit",
    "Adjustment": "Adjustment",
}
_KEY_VALUE_TAG = re.compile(r"^key:(?P<key>.*?)\s+value:(?P<value>.*)$", re.DOTALL)


class BssApiError(Exception):
    """A BSS response whose body says it failed (``Success`` false or an error ``Code``)."""

    def __init__(self, code: str, message: str, status_code: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status_code = status_code


def parse_tags(text: str | None) -> dict[str, str]:
    """Parse a BSS ``Tag`` string into a dict.

    Entries are separated by ``;`` and stripped. An entry ``key:K value:V`` (what the API
    returns today) gives ``K → V``; otherwise ``K:V`` (the documented older form) is split at
    the first ``:``, so values may contain ``:`` but keys may not. A value may be empty; an entry
    without ``:`` is a key with the value ``""``. Empty entries are skipped; for a repeated key
    the last value wins.
    """
    tags: dict[str, str] = {}
    for raw in (text or "").split(";"):
        entry = raw.strip()
        if not entry:
            continue
        match = _KEY_VALUE_TAG.match(entry)
        if match:
            key, value = match["key"], match["value"]
        elif ":" in entry:
            key, value = entry.split(":", 1)
        else:
            key, value = entry, ""
        key = key.strip()
        if key:
            tags[key] = value.strip()
    return tags


class AliyunBss:
    """Reads daily instance bills from Alibaba Cloud BSS OpenAPI with an AccessKey pair.

    The key needs ``AliyunBSSReadOnlyAccess``. ``endpoint`` defaults to the international site
    (Singapore); China-site accounts use ``business.aliyuncs.com``. ``client`` is an SDK
    ``Client`` (built from the key pair on first use when omitted); ``sleep`` is used for
    throttling back-off. The secret is never logged nor put in an error.

    See the module docstring for ``fetch``'s error contract.
    """

    kind: ClassVar[str] = "aliyun"

    def __init__(
        self,
        *,
        name: str,
        access_key_id: str,
        access_key_secret: str,
        endpoint: str = DEFAULT_ENDPOINT,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        max_results: int = MAX_RESULTS,
        attempts: int = 5,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._client = client
        self._sleep = sleep
        self._max_results = max_results
        self._attempts = attempts

    def __repr__(self) -> str:
        return f"AliyunBss(name={self.name!r}, endpoint={self.endpoint!r})"

    def fetch(self, start: date, end: date) -> list[CostLine]:
        """Return the instance bill lines of billing days ``[start, end)``."""
        check_window(start, end)
        models = _import(_MISSING_SDK, "alibabacloud_bssopenapi20171214.models")
        client = self._get_client()
        lines: list[CostLine] = []
        day = start
        while day < end:
            lines.extend(self._fetch_day(client, models, day))
            day += timedelta(days=1)
        logger.debug("aliyun %s: %d lines for [%s, %s)", self.name, len(lines), start, end)
        return lines

    def _get_client(self) -> Any:
        if self._client is None:
            if not self._access_key_id or not self._access_key_secret:
                raise CollectorDown(
                    "no Alibaba Cloud credentials: set the access key id and secret "
                    "(a RAM user with AliyunBSSReadOnlyAccess)"
                )
            sdk = _import(_MISSING_SDK, "alibabacloud_bssopenapi20171214.client")
            openapi = _import(_MISSING_SDK, "alibabacloud_tea_openapi.models")
            config = openapi.Config(
                access_key_id=self._access_key_id,
                access_key_secret=self._access_key_secret,
                endpoint=self.endpoint,
                connect_timeout=10_000,
                read_timeout=60_000,
            )
            self._client = sdk.Client(config)
        return self._client

    def _fetch_day(self, client: Any, models: Any, day: date) -> list[CostLine]:
        lines: list[CostLine] = []
        seen_tokens: set[str] = set()
        occurrences: dict[tuple[str | None, ...], int] = {}
        token: str | None = None
        for _page in range(MAX_PAGES):
            request = models.DescribeInstanceBillRequest(
                billing_cycle=day.strftime("%Y-%m"),
                granularity="DAILY",
                billing_date=day.isoformat(),
                max_results=self._max_results,
                next_token=token,
            )
            data = self._call(client, request)
            account_id = _text(getattr(data, "account_id", None))
            for item in getattr(data, "items", None) or []:
                identity = _identity(item)
                occurrence = occurrences.get(identity, 0)
                occurrences[identity] = occurrence + 1
                lines.append(_line(item, day, identity, occurrence, account_id))
            token = _text(getattr(data, "next_token", None))
            if token is None:
                return lines
            if token in seen_tokens:
                raise CollectorError(
                    f"Alibaba Cloud BSS repeated a NextToken for {day}; stopping to avoid a loop"
                )
            seen_tokens.add(token)
        raise CollectorError(f"Alibaba Cloud BSS returned more than {MAX_PAGES} pages for {day}")

    def _call(self, client: Any, request: Any) -> Any:
        def once() -> Any:
            response = client.describe_instance_bill(request)
            body = getattr(response, "body", None)
            if body is None:
                raise BssApiError("EmptyResponse", "the response has no body")
            code = _text(body.code) or ""
            if body.success is False or code not in _OK_CODES:
                raise BssApiError(
                    code or "Unknown",
                    _text(body.message) or "",
                    getattr(response, "status_code", None),
                )
            return body.data

        tea = _import(_MISSING_SDK, "Tea.exceptions")
        try:
            return with_retries(
                once, is_throttle=_is_throttle, attempts=self._attempts, sleep=self._sleep
            )
        except (BssApiError, tea.TeaException, OSError) as exc:
            raise self._map_error(exc) from exc

    def _map_error(self, exc: Exception) -> CollectorError:
        """One-line ``CollectorError``/``CollectorDown`` for an API or SDK error, secret-free."""
        code = _text(getattr(exc, "code", None)) or ""
        if code in {"None", "Unknown"}:
            code = ""
        inner = getattr(exc, "inner_exception", None)
        if not code and (inner is not None or isinstance(exc, OSError)):
            cause = type(inner if inner is not None else exc).__name__
            return CollectorDown(f"Alibaba Cloud BSS endpoint {self.endpoint} unreachable: {cause}")
        if code.startswith(_CREDENTIAL_CODES):
            return CollectorDown(
                f"Alibaba Cloud rejected the access key ({code}): check the access key id "
                "and secret"
            )
        if code.startswith(_DENIED_CODES):
            hint = (
                f"is {self.endpoint} the endpoint of the account's site?"
                if code.startswith("NotApplicable")
                else "grant the RAM user AliyunBSSReadOnlyAccess"
            )
            return CollectorDown(f"Alibaba Cloud BSS access denied ({code}): {hint}")
        message = self._scrub(_one_line(getattr(exc, "message", None) or str(exc)))
        if code.startswith("Throttling"):
            return CollectorError(f"Alibaba Cloud BSS kept throttling ({code}): {message}")
        if code in _TRANSIENT_CODES or _status(exc) >= 500:
            return CollectorDown(f"Alibaba Cloud BSS unavailable ({code or 'no code'}): {message}")
        return CollectorError(
            f"Alibaba Cloud BSS DescribeInstanceBill failed ({code or 'no code'}): {message}"
        )

    def _scrub(self, text: str) -> str:
        for secret in (self._access_key_secret, self._access_key_id):
            if secret:
                text = text.replace(secret, "***")
        return text


def _is_throttle(exc: Exception) -> float | None:
    """Seconds to wait (``x-acs-retry-after`` is in ms), 0 for back-off, ``None``: no retry."""
    code = _text(getattr(exc, "code", None)) or ""
    name = type(exc).__name__
    if code.startswith("Throttling") or name == "ThrottlingException":
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            return float(retry_after) / 1000.0
        return 0.0
    if code in _TRANSIENT_CODES or _status(exc) >= 500:
        return 0.0
    return None


def _status(exc: Exception) -> int:
    for attr in ("status_code", "statusCode"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return 0


def _import(missing: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CollectorDown(missing) from exc


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _money(value: Any, field: str, instance: str | None) -> Decimal | None:
    """``Decimal`` from the SDK's float (via its shortest repr), an int or a numeric string."""
    if value is None or value == "":
        return None
    result: Decimal | None = None
    if not isinstance(value, bool) and isinstance(value, int | float | str | Decimal):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            result = None
    if result is None or not result.is_finite():
        raise CollectorError(
            f"Alibaba Cloud bill line {instance or '?'}: {field} is not a number: {value!r}"
        )
    return result


def _identity(item: Any) -> tuple[str | None, ...]:
    return (
        _text(item.instance_id),
        _text(item.product_code),
        _text(item.billing_item_code) or _text(item.billing_item),
        _text(item.subscription_type),
        _text(item.item),
        _text(item.commodity_code),
        _text(item.owner_id),
    )


def _line(
    item: Any,
    day: date,
    identity: tuple[str | None, ...],
    occurrence: int,
    account_id: str | None,
) -> CostLine:
    instance = _text(item.instance_id)
    currency = _text(item.currency)
    if currency is None:
        raise CollectorError(f"Alibaba Cloud bill line {instance or '?'} of {day} has no Currency")
    billed = _money(item.pretax_amount, "PretaxAmount", instance)
    if billed is None:
        raise CollectorError(
            f"Alibaba Cloud bill line {instance or '?'} of {day} has no PretaxAmount"
        )
    charge_start, charge_end = day_period(day)
    period_start, period_end = month_period(day)
    extra: dict[str, Any] = {}
    for key, value in (
        ("x_PaymentAmount", _money(item.payment_amount, "PaymentAmount", instance)),
        ("x_SubscriptionType", _text(item.subscription_type)),
        ("x_Item", _text(item.item)),
        ("x_ProductCode", _text(item.product_code)),
        ("x_CommodityCode", _text(item.commodity_code)),
        ("x_BillingItem", _text(item.billing_item)),
        ("x_Zone", _text(item.zone)),
        ("x_InstanceSpec", _text(item.instance_spec)),
        ("x_ResourceGroup", _text(item.resource_group)),
    ):
        if value is not None:
            extra[key] = str(value)
    usage = _text(item.usage)
    try:
        quantity = Decimal(usage) if usage is not None else None
    except InvalidOperation:
        quantity = None
    return CostLine(
        row_key=row_key("aliyun", day.isoformat(), *identity, occurrence),
        provider=PROVIDER,
        billed_cost=billed,
        effective_cost=billed,
        list_cost=_money(item.pretax_gross_amount, "PretaxGrossAmount", instance),
        billing_currency=currency,
        charge_period_start=charge_start,
        charge_period_end=charge_end,
        billing_period_start=period_start,
        billing_period_end=period_end,
        charge_category=_CHARGE_CATEGORY.get(_text(item.item) or ""),
        service_name=_text(item.product_name),
        resource_id=instance,
        region_id=_text(item.region),
        sku_id=_text(item.billing_item_code),
        billing_account_id=_text(item.bill_account_id) or account_id,
        sub_account_id=_text(item.owner_id),
        consumed_quantity=quantity if quantity is None or quantity.is_finite() else None,
        consumed_unit=_text(item.usage_unit),
        tags=parse_tags(_text(item.tag)),
        extra=extra,
    )
