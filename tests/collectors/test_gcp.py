"""GcpBillingExport against a fake BigQuery client that returns real ``bigquery.Row`` objects."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.exceptions import DefaultCredentialsError, RefreshError
from google.cloud import bigquery
from google.cloud.bigquery.table import Row

from collectors.base import CollectorDown, CollectorError
from collectors.gcp import GcpBillingExport, build_query

TABLE = "acme-billing.billing_export.gcp_billing_export_v1_012345_6789AB_CDEF01"

# The columns of the collector's query, in its SELECT order (BigQuery returns NUMERIC as Decimal
# and DATE as datetime.date).
FIELDS = (
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
    "cost",
    "credits",
    "list_cost",
    "usage_amount",
)
FIELD_TO_INDEX = {name: i for i, name in enumerate(FIELDS)}

# Recorded in the shape the export holds for a GPU VM day: Compute Engine GPU and core SKUs with
# a sustained-use-discount credit, a project-less tax line, a global (region-less) service.
RECORDED = [
    (
        date(2025, 3, 1),
        "012345-6789AB-CDEF01",
        "202503",
        "regular",
        "6F81-5844-456A",
        "Compute Engine",
        "8B54-B2C3-2E3E",
        "Nvidia Tesla L4 GPU running in Americas",
        "inference-prod",
        "us-central1",
        "USD",
        "hour",
        Decimal("13.440000000"),
        Decimal("-2.688000000"),
        Decimal("13.440000000"),
        Decimal("24.000000000"),
    ),
    (
        date(2025, 3, 1),
        "012345-6789AB-CDEF01",
        "202503",
        "regular",
        "6F81-5844-456A",
        "Compute Engine",
        "0C5C-D8E4-38C1",
        "G2 Instance Core running in Americas",
        "inference-prod",
        "us-central1",
        "USD",
        "hour",
        Decimal("4.103456789"),
        Decimal("0"),
        Decimal("4.103456789"),
        Decimal("192.000000000"),
    ),
    (
        date(2025, 3, 1),
        "012345-6789AB-CDEF01",
        "202503",
        "regular",
        "95FF-2EF5-5EA1",
        "Cloud Storage",
        "E5F0-6A5D-7BAD",
        "Standard Storage US Multi-region",
        "inference-prod",
        None,
        "USD",
        "gibibyte month",
        Decimal("0.012345678"),
        Decimal("0"),
        Decimal("0.012345678"),
        Decimal("0.617283900"),
    ),
    (
        date(2025, 3, 1),
        "012345-6789AB-CDEF01",
        "202503",
        "tax",
        None,
        None,
        None,
        None,
        None,
        None,
        "USD",
        None,
        Decimal("1.250000000"),
        Decimal("0"),
        None,
        None,
    ),
]


def make_rows(records: list[tuple[Any, ...]] = RECORDED) -> list[Row]:
    return [Row(values, FIELD_TO_INDEX) for values in records]


class FakeJob:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.timeouts: list[float | None] = []

    def result(self, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return iter(self.rows)


class FakeClient:
    """``query`` pops the next outcome: rows for a job, or an exception raised at submission."""

    def __init__(self, *outcomes: list[Row] | Exception) -> None:
        self.outcomes = list(outcomes)
        self.queries: list[tuple[str, bigquery.QueryJobConfig]] = []

    def query(self, sql: str, job_config: bigquery.QueryJobConfig) -> FakeJob:
        self.queries.append((sql, job_config))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return FakeJob(outcome)


def collector(client: Any, waits: list[float] | None = None) -> GcpBillingExport:
    sink = waits if waits is not None else []
    return GcpBillingExport(name="gcp-main", table=TABLE, client=client, sleep=sink.append)


def test_it_runs_one_parameterised_query_with_the_dates_as_parameters() -> None:
    client = FakeClient(make_rows())

    collector(client).fetch(date(2025, 3, 1), date(2025, 3, 3))

    assert len(client.queries) == 1
    sql, config = client.queries[0]
    assert f"FROM `{TABLE}`" in sql
    assert "2025" not in sql
    assert "@start" in sql and "@end" in sql
    params = {p.name: (p.type_, p.value) for p in config.query_parameters}
    assert params == {
        "start": ("TIMESTAMP", datetime(2025, 3, 1, tzinfo=UTC)),
        "end": ("TIMESTAMP", datetime(2025, 3, 3, tzinfo=UTC)),
    }


def test_it_maps_net_cost_with_credits_to_exact_decimals() -> None:
    lines = collector(FakeClient(make_rows())).fetch(date(2025, 3, 1), date(2025, 3, 2))

    gpu = lines[0]
    assert gpu.provider == "Google Cloud"
    assert gpu.billed_cost == Decimal("10.752000000")
    assert gpu.effective_cost == Decimal("10.752000000")
    assert gpu.list_cost == Decimal("13.440000000")
    assert gpu.billing_currency == "USD"
    assert gpu.service_name == "Compute Engine"
    assert gpu.sku_id == "8B54-B2C3-2E3E"
    assert gpu.region_id == "us-central1"
    assert gpu.sub_account_id == "inference-prod"
    assert gpu.billing_account_id == "012345-6789AB-CDEF01"
    assert gpu.consumed_quantity == Decimal("24.000000000")
    assert gpu.consumed_unit == "hour"
    assert gpu.charge_category == "Usage"
    assert gpu.charge_period_start == datetime(2025, 3, 1, tzinfo=UTC)
    assert gpu.charge_period_end == datetime(2025, 3, 2, tzinfo=UTC)
    assert gpu.billing_period_start == datetime(2025, 3, 1, tzinfo=UTC)
    assert gpu.billing_period_end == datetime(2025, 4, 1, tzinfo=UTC)
    assert gpu.extra["x_Credits"] == "-2.688000000"
    assert gpu.extra["x_Cost"] == "13.440000000"
    assert gpu.extra["x_SkuDescription"] == "Nvidia Tesla L4 GPU running in Americas"
    assert sum((line.billed_cost for line in lines), Decimal(0)) == Decimal("16.117802467")


def test_it_keeps_global_services_and_tax_lines_without_inventing_fields() -> None:
    lines = collector(FakeClient(make_rows())).fetch(date(2025, 3, 1), date(2025, 3, 2))

    storage, tax = lines[2], lines[3]
    assert storage.region_id is None
    assert storage.consumed_unit == "gibibyte month"
    assert tax.charge_category == "Tax"
    assert tax.billed_cost == Decimal("1.250000000")
    assert tax.service_name is None and tax.sub_account_id is None and tax.list_cost is None
    assert "x_SkuDescription" not in tax.extra


def test_it_converts_float_columns_through_their_shortest_repr() -> None:
    record = list(RECORDED[0])
    record[12:16] = [0.3, -0.1, 0.3, 24.0]  # a FLOAT64 schema: 0.3 - 0.1 is not 0.2 in binary
    lines = collector(FakeClient(make_rows([tuple(record)]))).fetch(
        date(2025, 3, 1), date(2025, 3, 2)
    )

    assert lines[0].billed_cost == Decimal("0.2")
    assert lines[0].extra["x_Credits"] == "-0.1"


def test_it_gives_stable_distinct_row_keys() -> None:
    first = collector(FakeClient(make_rows())).fetch(date(2025, 3, 1), date(2025, 3, 2))
    again = collector(FakeClient(make_rows())).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert [line.row_key for line in first] == [line.row_key for line in again]
    assert len({line.row_key for line in first}) == len(first)
    other_project = list(RECORDED[0])
    other_project[8] = "inference-staging"
    moved = collector(FakeClient(make_rows([tuple(other_project)]))).fetch(
        date(2025, 3, 1), date(2025, 3, 2)
    )
    assert moved[0].row_key != first[0].row_key


def test_it_retries_throttling_with_back_off_then_succeeds() -> None:
    waits: list[float] = []
    rate_limited = gexc.Forbidden(
        "Exceeded rate limits: too many concurrent queries",
        errors=[{"reason": "rateLimitExceeded", "message": "Exceeded rate limits"}],
    )
    client = FakeClient(gexc.TooManyRequests("quota"), rate_limited, make_rows())

    lines = collector(client, waits).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert len(lines) == len(RECORDED)
    assert len(client.queries) == 3
    assert len(waits) == 2
    assert all(0 < wait <= 60 for wait in waits)


def test_it_gives_up_after_the_retry_budget_with_a_collector_error() -> None:
    waits: list[float] = []
    client = FakeClient(*[gexc.TooManyRequests("slow down") for _ in range(5)])

    with pytest.raises(CollectorError) as caught:
        collector(client, waits).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert not isinstance(caught.value, CollectorDown)
    assert "throttling" in caught.value.reason
    assert len(client.queries) == 5
    assert len(waits) == 4


@pytest.mark.parametrize(
    ("error", "expected", "fragment"),
    [
        (
            gexc.Forbidden(
                "Access Denied: Table acme-billing:billing_export.x: User does not have permission",
                errors=[{"reason": "accessDenied"}],
            ),
            CollectorDown,
            f"access to BigQuery table {TABLE} denied",
        ),
        (
            gexc.Unauthorized("Request had invalid authentication credentials"),
            CollectorDown,
            "rejected",
        ),
        (
            gexc.NotFound("Not found: Table acme-billing:billing_export.gcp_billing_export_v1_x"),
            CollectorDown,
            f"BigQuery table {TABLE} not found",
        ),
        (RefreshError("invalid_grant: Invalid JWT Signature."), CollectorDown, "rejected"),
        (
            gexc.BadRequest("Unrecognized name: cost_at_list at [15:19]"),
            CollectorError,
            "rejected the query",
        ),
        (
            gexc.Forbidden("Quota exceeded", errors=[{"reason": "quotaExceeded"}]),
            CollectorError,
            "quota exceeded",
        ),
        (ConnectionError("Connection refused"), CollectorDown, "unreachable"),
    ],
)
def test_it_maps_sdk_errors_to_one_line_collector_errors(
    error: Exception, expected: type[CollectorError], fragment: str
) -> None:
    with pytest.raises(CollectorError) as caught:
        collector(FakeClient(error)).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert type(caught.value) is expected
    assert fragment in caught.value.reason
    assert "\n" not in caught.value.reason


def test_it_reports_bigquery_down_after_retrying_unavailability() -> None:
    waits: list[float] = []
    client = FakeClient(*[gexc.ServiceUnavailable("backend error") for _ in range(5)])

    with pytest.raises(CollectorDown, match="BigQuery unavailable"):
        collector(client, waits).fetch(date(2025, 3, 1), date(2025, 3, 2))
    assert len(waits) == 4


def test_it_reports_missing_default_credentials_as_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_credentials(**_: Any) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(bigquery, "Client", no_credentials)
    source = GcpBillingExport(name="gcp-main", table=TABLE, sleep=lambda _: None)

    with pytest.raises(
        CollectorDown, match="no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS"
    ):
        source.fetch(date(2025, 3, 1), date(2025, 3, 2))


def test_it_reports_a_missing_sdk_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)

    with pytest.raises(CollectorDown, match=r"pip install 'tcowatch\[gcp\]'"):
        collector(FakeClient(make_rows())).fetch(date(2025, 3, 1), date(2025, 3, 2))


@pytest.mark.parametrize(
    "table", ["p.d.t` WHERE 1=1 --", "p.d.t; DROP TABLE x", "p.d.t\n", "", "p d t"]
)
def test_it_rejects_table_names_that_could_change_the_query(table: str) -> None:
    with pytest.raises(ValueError, match="invalid BigQuery table"):
        GcpBillingExport(name="gcp-main", table=table)
    with pytest.raises(ValueError, match="invalid BigQuery table"):
        build_query(table)


def test_it_accepts_a_legacy_project_colon_table_name() -> None:
    assert "FROM `acme:billing.gcp_billing_export_v1_X`" in build_query(
        "acme:billing.gcp_billing_export_v1_X"
    )


def test_it_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError):
        collector(FakeClient()).fetch(date(2025, 3, 2), date(2025, 3, 2))
