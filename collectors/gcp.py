"""Google Cloud costs from the Cloud Billing export to BigQuery (standard usage cost table).

One parameterised query per ``fetch`` sums the export's lines per usage day (UTC), service, SKU,
project, region, currency, cost type and invoice month. The dates travel as query parameters;
only the configured table name is inserted into the SQL text, after it matched
``^[A-Za-z0-9_.:-]+$``, inside backticks.

Mapping to ``CostLine`` (finops.md §5.3):

* ``billed_cost`` = ``effective_cost`` = net cost = ``SUM(cost) + SUM(credits.amount)``
  (credits are negative); the gross ``cost`` and the credits are kept in ``extra`` as
  ``x_Cost`` and ``x_Credits``. ``list_cost`` = ``SUM(cost_at_list)``.
* ``service_name`` = ``service.description``, ``sku_id`` = ``sku.id``, ``region_id`` =
  ``location.region``, ``sub_account_id`` = ``project.id``, ``billing_account_id`` =
  ``billing_account_id``; ``consumed_quantity``/``consumed_unit`` = usage in pricing units.
* ``charge_category`` from ``cost_type``: regular → Usage, tax → Tax, adjustment and
  rounding_error → Adjustment. The billing period is the ``invoice.month``.

Money is exact: the export's FLOAT64 amounts are ``CAST`` to ``NUMERIC`` in the query, which
rounds each exported amount to 9 decimal places (NUMERIC's scale, far below a billing cent)
before the sums, so the client returns ``Decimal`` sums with no binary float error. A float
that still arrives is converted through its shortest ``repr`` (``Decimal(str(value))``).

Error contract: ``fetch`` returns every line of ``[start, end)`` or raises ``CollectorError``
(rejected query, quota exhausted, timeout) or ``CollectorDown`` (SDK missing, no or rejected
credentials, access denied, table missing, BigQuery unreachable). Throttling (429, 403
rateLimitExceeded) and transient 5xx are retried with back-off. Messages are one line and never
contain credentials.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from collectors.base import CollectorDown, CollectorError, CostLine
from collectors.billing import check_window, day_period, month_period, row_key, with_retries

logger = logging.getLogger(__name__)

PROVIDER = "Google Cloud"
TABLE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")
_MISSING_SDK = "google-cloud-bigquery is not installed: pip install 'tcowatch[gcp]'"
_NO_CREDENTIALS = (
    "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
    "(roles BigQuery Data Viewer on the export dataset and BigQuery Job User on the project) "
    "or run with an attached service account"
)
_CHARGE_CATEGORY = {
    "regular": "Usage",
    "tax": "Tax",
    "adjustment": "Adjustment",
    "rounding_error": "Adjustment",
}
_GROUP_COLUMNS = (
    "usage_day",
    "billing_account_id",
    "invoice_month",
    "cost_type",
    "service_id",
    "service_name",
    "sku_id",
    "sku_description",
    "project_id",
    "region",
    "currency",
    "pricing_unit",
)
_SQL = """\
SELECT
  DATE(usage_start_time) AS usage_day,
  billing_account_id,
  invoice.month AS invoice_month,
  cost_type,
  service.id AS service_id,
  service.description AS service_name,
  sku.id AS sku_id,
  sku.description AS sku_description,
  project.id AS project_id,
  location.region AS region,
  currency,
  usage.pricing_unit AS pricing_unit,
  SUM(CAST(cost AS NUMERIC)) AS cost,
  SUM(IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC)) FROM UNNEST(credits) AS c), 0)) AS credits,
  SUM(CAST(cost_at_list AS NUMERIC)) AS list_cost,
  SUM(CAST(usage.amount_in_pricing_units AS NUMERIC)) AS usage_amount
FROM `{table}`
WHERE usage_start_time >= @start AND usage_start_time < @end
GROUP BY {group}
ORDER BY {group}
"""


def build_query(table: str) -> str:
    """Return the export query for ``table``; ``ValueError`` unless it is a plain table name."""
    if not TABLE_PATTERN.fullmatch(table):
        raise ValueError(
            f"invalid BigQuery table {table!r}: expected project.dataset.table "
            "(letters, digits, '_', '.', ':', '-')"
        )
    group = ", ".join(_GROUP_COLUMNS)
    return _SQL.format(table=table, group=group)


class GcpBillingExport:
    """Reads daily costs from a Cloud Billing standard usage cost export table.

    ``table`` is ``project.dataset.gcp_billing_export_v1_<ACCOUNT>``; ``project`` is the project
    the query job runs (and is billed) in, default the credentials' project. ``client`` is a
    ``google.cloud.bigquery.Client`` (made on first use from Application Default Credentials
    when omitted). ``timeout`` bounds the wait for one query's result, in seconds.

    Raises ``ValueError`` at construction for a table name that is not a plain identifier.
    See the module docstring for ``fetch``'s error contract.
    """

    kind: ClassVar[str] = "gcp"

    def __init__(
        self,
        *,
        name: str,
        table: str,
        project: str | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 300.0,
        attempts: int = 5,
    ) -> None:
        self.name = name
        self.table = table
        self._sql = build_query(table)
        self._project = project
        self._client = client
        self._sleep = sleep
        self._timeout = timeout
        self._attempts = attempts

    def fetch(self, start: date, end: date) -> list[CostLine]:
        """Return the net cost lines of usage days ``[start, end)``; see the module docstring."""
        check_window(start, end)
        bigquery = _bigquery()
        client = self._get_client(bigquery)
        start_at, _ = day_period(start)
        end_at, _ = day_period(end)
        job_config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("start", "TIMESTAMP", start_at),
                bigquery.ScalarQueryParameter("end", "TIMESTAMP", end_at),
            ]
        )

        def run() -> list[Any]:
            job = client.query(self._sql, job_config=job_config)
            return list(job.result(timeout=self._timeout))

        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError

        try:
            rows = with_retries(
                run, is_throttle=_is_throttle, attempts=self._attempts, sleep=self._sleep
            )
        except (GoogleAPIError, GoogleAuthError, OSError) as exc:
            raise _map_error(exc, self.table, self._timeout) from exc
        lines = lines_from_rows(rows)
        logger.debug("gcp %s: %d lines for [%s, %s)", self.name, len(lines), start, end)
        return lines

    def _get_client(self, bigquery: Any) -> Any:
        if self._client is None:
            from google.auth.exceptions import DefaultCredentialsError

            try:
                self._client = bigquery.Client(project=self._project)
            except DefaultCredentialsError as exc:
                raise CollectorDown(_NO_CREDENTIALS) from exc
        return self._client


def _bigquery() -> Any:
    try:
        return importlib.import_module("google.cloud.bigquery")
    except ImportError as exc:
        raise CollectorDown(_MISSING_SDK) from exc


def _is_throttle(exc: Exception) -> float | None:
    """0 (back off) for 429, 403 rateLimitExceeded and transient 5xx; ``None`` otherwise."""
    from google.api_core import exceptions as gexc

    if isinstance(
        exc,
        gexc.TooManyRequests
        | gexc.ServiceUnavailable
        | gexc.InternalServerError
        | gexc.BadGateway
        | gexc.GatewayTimeout,
    ):
        return 0.0
    if isinstance(exc, gexc.Forbidden) and "rateLimitExceeded" in _reasons(exc):
        return 0.0
    return None


def _reasons(exc: Any) -> set[str]:
    return {str(e.get("reason", "")) for e in (getattr(exc, "errors", None) or []) if e}


def _map_error(exc: Exception, table: str, timeout: float) -> CollectorError:
    """Turn an SDK/transport exception into a one-line ``CollectorError``/``CollectorDown``."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    detail = _one_line(getattr(exc, "message", None) or str(exc))
    if isinstance(exc, aexc.DefaultCredentialsError):
        return CollectorDown(_NO_CREDENTIALS)
    if isinstance(exc, aexc.RefreshError | gexc.Unauthorized):
        return CollectorDown(f"Google credentials were rejected: {detail}")
    if isinstance(exc, aexc.TransportError | gexc.RetryError):
        return CollectorDown(f"BigQuery unreachable: {detail}")
    if isinstance(exc, gexc.TooManyRequests) or (
        isinstance(exc, gexc.Forbidden) and "rateLimitExceeded" in _reasons(exc)
    ):
        return CollectorError(f"BigQuery kept throttling the query of {table}: {detail}")
    if isinstance(exc, gexc.Forbidden) and "quotaExceeded" in _reasons(exc):
        return CollectorError(f"BigQuery quota exceeded querying {table}: {detail}")
    if isinstance(exc, gexc.Forbidden):
        return CollectorDown(f"access to BigQuery table {table} denied: {detail}")
    if isinstance(exc, gexc.NotFound):
        return CollectorDown(
            f"BigQuery table {table} not found (expected the billing export table "
            f"project.dataset.gcp_billing_export_v1_<ACCOUNT>): {detail}"
        )
    if isinstance(exc, gexc.ServerError):
        return CollectorDown(f"BigQuery unavailable: {detail}")
    if isinstance(exc, gexc.BadRequest):
        return CollectorError(f"BigQuery rejected the query of {table}: {detail}")
    if isinstance(exc, gexc.GoogleAPICallError):
        return CollectorError(f"BigQuery query of {table} failed: {detail}")
    if isinstance(exc, TimeoutError):
        return CollectorError(f"BigQuery query of {table} did not finish within {timeout:g} s")
    if isinstance(exc, OSError):
        return CollectorDown(f"BigQuery unreachable: {type(exc).__name__}: {detail}")
    return CollectorError(f"BigQuery query of {table} failed: {type(exc).__name__}: {detail}")


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _decimal(value: Any, column: str) -> Decimal | None:
    """``Decimal`` from a NUMERIC (``Decimal``), an int, or a float via its shortest repr."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise CollectorError(f"BigQuery column {column}: expected a number, got {value!r}")
    try:
        result = Decimal(str(value)) if isinstance(value, int | float | str) else None
    except InvalidOperation:
        result = None
    if result is None or not result.is_finite():
        raise CollectorError(f"BigQuery column {column}: expected a number, got {value!r}")
    return result


def _text(row: Any, column: str) -> str | None:
    value = _get(row, column)
    return None if value is None or value == "" else str(value)


def _get(row: Any, column: str) -> Any:
    return row.get(column)  # google.cloud.bigquery.table.Row and mappings alike


def _invoice_period(invoice_month: str | None, day: date) -> tuple[datetime, datetime]:
    if invoice_month and len(invoice_month) == 6 and invoice_month.isdigit():
        year, month = int(invoice_month[:4]), int(invoice_month[4:])
        if 1 <= month <= 12:
            return month_period(date(year, month, 1))
    return month_period(day)


def _usage_day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise CollectorError(f"BigQuery column usage_day: expected a date, got {value!r}")


def _line(row: Any) -> CostLine:
    day = _usage_day(_get(row, "usage_day"))
    cost = _decimal(_get(row, "cost"), "cost") or Decimal(0)
    credits = _decimal(_get(row, "credits"), "credits") or Decimal(0)
    net = cost + credits
    currency = _text(row, "currency")
    if currency is None:
        raise CollectorError(f"BigQuery export line of {day} has no currency")
    invoice_month = _text(row, "invoice_month")
    cost_type = _text(row, "cost_type")
    charge_start, charge_end = day_period(day)
    period_start, period_end = _invoice_period(invoice_month, day)
    extra: dict[str, Any] = {"x_Cost": str(cost), "x_Credits": str(credits)}
    for key, column in (
        ("x_SkuDescription", "sku_description"),
        ("x_ServiceId", "service_id"),
        ("x_CostType", "cost_type"),
        ("x_InvoiceMonth", "invoice_month"),
    ):
        text = _text(row, column)
        if text is not None:
            extra[key] = text
    return CostLine(
        row_key=row_key("gcp", *(_key_part(row, column) for column in _GROUP_COLUMNS)),
        provider=PROVIDER,
        billed_cost=net,
        effective_cost=net,
        list_cost=_decimal(_get(row, "list_cost"), "list_cost"),
        billing_currency=currency,
        charge_period_start=charge_start,
        charge_period_end=charge_end,
        billing_period_start=period_start,
        billing_period_end=period_end,
        charge_category=_CHARGE_CATEGORY.get(cost_type or ""),
        service_name=_text(row, "service_name"),
        sku_id=_text(row, "sku_id"),
        region_id=_text(row, "region"),
        billing_account_id=_text(row, "billing_account_id"),
        sub_account_id=_text(row, "project_id"),
        consumed_quantity=_decimal(_get(row, "usage_amount"), "usage_amount"),
        consumed_unit=_text(row, "pricing_unit"),
        extra=extra,
    )


def _key_part(row: Any, column: str) -> str | None:
    if column == "usage_day":
        return _usage_day(_get(row, column)).isoformat()
    return _text(row, column)


def lines_from_rows(rows: Iterable[Any]) -> list[CostLine]:
    """Map already-fetched export query rows (``Row`` or mappings) to ``CostLine`` records.

    Raises ``CollectorError`` for a row without a usage day or currency, or a non-numeric amount.
    """
    return [_line(row) for row in rows]
