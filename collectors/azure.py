"""Azure Cost Management ``Query`` as a billing collector (daily, by service and location).

One ``POST {management_url}/{scope}/providers/Microsoft.CostManagement/query`` per page, with a
client-credentials token from Microsoft Entra ID (cached until 60 s before it expires). The
response is columnar; columns are found BY NAME, never by position:

- ``PreTaxCost`` (or ``Cost``) -> ``billed_cost``, parsed with ``parse_float=Decimal`` so the
  JSON number's digits are kept exactly;
- ``UsageDate`` (``yyyyMMdd`` integer or an ISO date string) -> the charge day ``[d, d+1)``, the
  billing period being its calendar month (UTC);
- ``ServiceName`` -> ``service_name``, ``ResourceLocation`` -> ``region_id``, ``Currency`` (or
  ``BillingCurrency``) -> ``billing_currency``.

``provider`` is ``"Microsoft"`` (what Azure's own FOCUS export says), ``charge_category``
``"Usage"``, ``extra["x_CostType"]`` the query type. A subscription scope fills
``sub_account_id``, a billing-account scope ``billing_account_id``. ``row_key`` hashes (date,
service, location, currency); rows repeating that key are summed into one line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from collectors.base import CollectorDown, CollectorError, CostLine
from collectors.billing import check_window, day_period, month_period, row_key, with_retries

logger = logging.getLogger(__name__)

API_VERSION = "2025-03-01"
TOKEN_MARGIN_SECONDS = 60.0
MAX_PAGES = 1000
COST_COLUMNS = ("PreTaxCost", "Cost")
CURRENCY_COLUMNS = ("Currency", "BillingCurrency")
_RATE_LIMIT_HEADER = re.compile(r"^x-ms-ratelimit-microsoft\.costmanagement-.+-retry-after$")
_MAX_MESSAGE = 200


class _Throttled(Exception):
    def __init__(self, status: int, retry_after: float) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def _is_throttle(exc: Exception) -> float | None:
    return exc.retry_after if isinstance(exc, _Throttled) else None


def retry_after_seconds(headers: Mapping[str, str]) -> float:
    """Seconds to wait from ``Retry-After`` and the Cost Management rate-limit headers.

    The largest numeric value wins; ``0`` (use back-off) when none is numeric.
    """
    waits: list[float] = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "retry-after" or _RATE_LIMIT_HEADER.match(lowered):
            try:
                waits.append(max(0.0, float(value)))
            except ValueError:
                continue
    return max(waits, default=0.0)


class AzureCostManagement:
    """Daily costs of one Azure scope from the Cost Management Query API.

    ``scope`` is e.g. ``subscriptions/<id>`` or
    ``providers/Microsoft.Billing/billingAccounts/<id>``. The service principal needs the Cost
    Management Reader role on it. ``client_secret`` is only ever sent to the token endpoint; it
    is never logged nor put into an error. ``clock`` (monotonic seconds) times the token cache.
    Sovereign clouds set ``management_url``, ``login_url`` and ``token_scope`` together.
    """

    kind: ClassVar[str] = "azure"

    def __init__(
        self,
        *,
        name: str,
        scope: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        cost_type: str = "ActualCost",
        management_url: str = "https://management.azure.com",
        login_url: str = "https://login.microsoftonline.com",
        token_scope: str = "https://management.azure.com/.default",
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raise ``ValueError`` when ``scope`` or ``tenant_id`` is empty."""
        if not scope.strip("/"):
            raise ValueError("scope must name an Azure scope, e.g. subscriptions/<id>")
        if not tenant_id:
            raise ValueError("tenant_id must not be empty")
        self.name = name
        self.scope = scope.strip("/")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self.cost_type = cost_type
        self.management_url = management_url.rstrip("/")
        self.login_url = login_url.rstrip("/")
        self.token_scope = token_scope
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=60.0)
        self._sleep = sleep
        self._clock = clock
        self._token: str | None = None
        self._token_valid_until = 0.0

    def __repr__(self) -> str:
        return f"AzureCostManagement(name={self.name!r}, scope={self.scope!r})"

    def close(self) -> None:
        """Close the HTTP client if this collector made it. Never raises."""
        if self._owns_client:
            self._client.close()

    @property
    def query_url(self) -> str:
        return (
            f"{self.management_url}/{self.scope}/providers/Microsoft.CostManagement/query"
            f"?api-version={API_VERSION}"
        )

    def fetch(self, start: date, end: date) -> list[CostLine]:
        """Return the daily cost lines of ``[start, end)``, following ``nextLink``.

        429 (and 503) are retried, honouring ``Retry-After`` and the Cost Management rate-limit
        headers. Raises ``CollectorDown`` when Entra ID or Azure rejects the credentials
        (401/403, or a 4xx from the token endpoint), ``CollectorError`` for an unreachable
        endpoint, throttling that outlasts the retries, any other HTTP error (with its status
        and error code) or an unreadable response; ``ValueError`` when ``end <= start``.
        """
        check_window(start, end)
        body = self._query_body(start, end)
        totals: dict[str, CostLine] = {}
        url: str | None = self.query_url
        seen: set[str] = set()
        pages = 0
        while url is not None:
            if url in seen or pages >= MAX_PAGES:
                raise CollectorError(
                    f"Azure Cost Management paging did not end after {pages} pages"
                )
            seen.add(url)
            pages += 1
            payload = self._query_page(url, body)
            if payload is None:
                break
            properties = payload.get("properties") or {}
            for line in self._map_rows(properties, start, end):
                previous = totals.get(line.row_key)
                if previous is not None:
                    line = _add(previous, line)
                totals[line.row_key] = line
            next_link = properties.get("nextLink")
            url = str(next_link) if next_link else None
        logger.debug("%s: %d cost lines from %d page(s)", self.name, len(totals), pages)
        return list(totals.values())

    # --- HTTP ----------------------------------------------------------------------------------

    def _query_body(self, start: date, end: date) -> dict[str, Any]:
        last_day = end - timedelta(days=1)
        return {
            "type": self.cost_type,
            "timeframe": "Custom",
            "timePeriod": {
                "from": f"{start.isoformat()}T00:00:00Z",
                "to": f"{last_day.isoformat()}T23:59:59Z",
            },
            "dataset": {
                "granularity": "Daily",
                "aggregation": {"totalCost": {"name": "PreTaxCost", "function": "Sum"}},
                "grouping": [
                    {"type": "Dimension", "name": "ServiceName"},
                    {"type": "Dimension", "name": "ResourceLocation"},
                ],
            },
        }

    def _query_page(self, url: str, body: dict[str, Any]) -> dict[str, Any] | None:
        token = self._access_token()
        response = self._post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 204:
            return None
        if response.status_code in (401, 403):
            self._token = None
            raise self._rejected(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise CollectorError(self._http_failure("query", response))
        return self._json(response, "query")

    def _access_token(self) -> str:
        now = self._clock()
        if self._token is not None and now < self._token_valid_until:
            return self._token
        response = self._post(
            f"{self.login_url}/{self.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret,
                "scope": self.token_scope,
            },
        )
        if 400 <= response.status_code < 500:
            payload = _safe_json(response)
            code = str(payload.get("error", "")) if payload else ""
            raise self._rejected(f"HTTP {response.status_code} {code}".strip())
        if response.status_code != 200:
            raise CollectorError(self._http_failure("token", response))
        payload = self._json(response, "token")
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise CollectorError("Azure token endpoint answered without an access_token")
        try:
            lifetime = float(payload.get("expires_in", 0))
        except (TypeError, ValueError):
            lifetime = 0.0
        self._token = token
        self._token_valid_until = now + lifetime - TOKEN_MARGIN_SECONDS
        return token

    def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        host = urlsplit(url).netloc

        def once() -> httpx.Response:
            try:
                response = self._client.post(url, **kwargs)
            except httpx.HTTPError as exc:
                raise CollectorError(
                    f"cannot reach {host}: {self._redact(type(exc).__name__ + ': ' + str(exc))}"
                ) from exc
            if response.status_code in (429, 503):
                raise _Throttled(response.status_code, retry_after_seconds(response.headers))
            return response

        try:
            return with_retries(once, is_throttle=_is_throttle, sleep=self._sleep)
        except _Throttled as exc:
            raise CollectorError(
                f"Azure kept throttling {host} (HTTP {exc.status}) after retries; retried later"
            ) from exc

    def _rejected(self, detail: str) -> CollectorDown:
        return CollectorDown(
            f"Azure rejected the credentials for tenant {self.tenant_id}: check client_id/"
            f"client_secret and the Cost Management Reader role ({detail})"
        )

    def _http_failure(self, what: str, response: httpx.Response) -> str:
        payload = _safe_json(response)
        error = payload.get("error") if payload else None
        detail = ""
        if isinstance(error, dict):
            code = str(error.get("code", ""))
            message = str(error.get("message", "")).strip().splitlines()
            detail = f" {code}" + (f": {message[0]}" if message else "")
        elif isinstance(error, str):
            detail = f" {error}"
        text = f"Azure Cost Management {what} failed: HTTP {response.status_code}{detail}"
        return self._redact(text)[: _MAX_MESSAGE + 60]

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            payload = json.loads(response.text, parse_float=Decimal)
        except ValueError as exc:
            raise CollectorError(f"Azure {what} answered with invalid JSON") from exc
        if not isinstance(payload, dict):
            raise CollectorError(f"Azure {what} answered with a JSON {type(payload).__name__}")
        return payload

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "<redacted>") if self._secret else text

    # --- mapping -------------------------------------------------------------------------------

    def _map_rows(self, properties: Mapping[str, Any], start: date, end: date) -> list[CostLine]:
        rows = properties.get("rows") or []
        if not rows:
            return []
        index = {
            str(column.get("name")): i for i, column in enumerate(properties.get("columns") or [])
        }
        cost_at = _first_column(index, COST_COLUMNS, "cost")
        date_at = _first_column(index, ("UsageDate",), "UsageDate")
        currency_at = _first_column(index, CURRENCY_COLUMNS, "Currency")
        service_at = index.get("ServiceName")
        location_at = index.get("ResourceLocation")
        billing_account, subscription = _scope_accounts(self.scope)
        lines: list[CostLine] = []
        width = max(index.values()) + 1
        for row in rows:
            if not isinstance(row, list) or len(row) < width:
                raise CollectorError(
                    f"Azure query returned a row that does not fit its columns: {row!r:.200}"
                )
            day = _usage_date(row[date_at])
            if not start <= day < end:
                continue
            amount = _amount(row[cost_at])
            currency = _text(row[currency_at])
            if currency is None:
                raise CollectorError(f"Azure query returned a row without a currency: {row!r:.200}")
            service = _text(row[service_at]) if service_at is not None else None
            location = _text(row[location_at]) if location_at is not None else None
            charge_start, charge_end = day_period(day)
            billing_start, billing_end = month_period(day)
            lines.append(
                CostLine(
                    row_key=row_key(day.isoformat(), service, location, currency),
                    provider="Microsoft",
                    billed_cost=amount,
                    billing_currency=currency,
                    charge_period_start=charge_start,
                    charge_period_end=charge_end,
                    billing_period_start=billing_start,
                    billing_period_end=billing_end,
                    charge_category="Usage",
                    service_name=service,
                    region_id=location,
                    billing_account_id=billing_account,
                    sub_account_id=subscription,
                    extra={"x_CostType": self.cost_type},
                )
            )
        return lines


def _first_column(index: Mapping[str, int], names: tuple[str, ...], what: str) -> int:
    for name in names:
        if name in index:
            return index[name]
    found = ", ".join(index) or "none"
    raise CollectorError(f"Azure query response has no {what} column (columns: {found})")


def _usage_date(value: Any) -> date:
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{8}", text):
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise CollectorError(f"Azure query returned an unreadable UsageDate {value!r}") from exc


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise CollectorError(f"Azure query returned a non-numeric cost {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise CollectorError(f"Azure query returned a non-numeric cost {value!r}") from exc
    if not amount.is_finite():
        raise CollectorError(f"Azure query returned a non-finite cost {value!r}")
    return amount


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _scope_accounts(scope: str) -> tuple[str | None, str | None]:
    """(billing_account_id, sub_account_id) named by a scope, when it names them."""
    parts = scope.split("/")
    lowered = [part.lower() for part in parts]
    billing = subscription = None
    if "billingaccounts" in lowered:
        at = lowered.index("billingaccounts")
        billing = parts[at + 1] if at + 1 < len(parts) else None
    if "subscriptions" in lowered:
        at = lowered.index("subscriptions")
        subscription = parts[at + 1] if at + 1 < len(parts) else None
    return billing, subscription


def _add(first: CostLine, second: CostLine) -> CostLine:
    return replace(first, billed_cost=first.billed_cost + second.billed_cost)


def _safe_json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        payload = json.loads(response.text, parse_float=Decimal)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
