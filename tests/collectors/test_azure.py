"""Azure Cost Management collector against a real local HTTP server serving real-shaped answers."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from collectors.azure import AzureCostManagement, retry_after_seconds
from collectors.base import CollectorDown, CollectorError

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0c5b6a2d-1111-4e6f-9d3b-123456789abc"
SECRET = "Zq8~sEcReT.valUe_With-Special~chars42"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
SCOPE = f"subscriptions/{SUBSCRIPTION}"
QUERY_PATH = f"/{SCOPE}/providers/Microsoft.CostManagement/query"
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"
API = {"api-version": "2025-03-01"}

DAILY = """{
  "id": "subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.CostManagement/query/6dc7b06a-d90a-4df5-b655-ce6cf1c0814d",
  "name": "6dc7b06a-d90a-4df5-b655-ce6cf1c0814d",
  "type": "Microsoft.CostManagement/query",
  "properties": {
    "nextLink": null,
    "columns": [
      {"name": "PreTaxCost", "type": "Number"},
      {"name": "UsageDate", "type": "Number"},
      {"name": "ServiceName", "type": "String"},
      {"name": "ResourceLocation", "type": "String"},
      {"name": "Currency", "type": "String"}
    ],
    "rows": [
      [19.545363672276512, 20250101, "Virtual Machines", "US East", "USD"],
      [1234567.123456789012, 20250101, "Azure OpenAI", "Sweden Central", "USD"],
      [0.0021, 20250102, "Storage", "US East", "USD"],
      [173.41979241290323, 20250102, "Virtual Machines", "US East", "USD"],
      [0, 20250102, "Bandwidth", "", "USD"]
    ]
  }
}"""

# azure-rest-api-specs examples/2025-03-01/BillingAccountQueryGrouping.json (granularity None).
LEGACY_GROUPING = """{
  "name": "ad67fd91-c131-4bda-9ba9-7187ecb1cebd",
  "type": "microsoft.costmanagement/Query",
  "id": "providers/Microsoft.Billing/billingAccounts/70664866/providers/Microsoft.CostManagement/Query/ad67fd91-c131-4bda-9ba9-7187ecb1cebd",
  "properties": {
    "columns": [
      {"name": "PreTaxCost", "type": "Number"},
      {"name": "ResourceGroup", "type": "String"},
      {"name": "Currency", "type": "String"}
    ],
    "rows": [
      [19.545363672276512, "JapanUnifia-Trial", "USD"],
      [173.41979241290323, "RVIIOT-TRIAL", "USD"],
      [20.35941656262545, "VSTSHOL-1595322048000", "USD"]
    ]
  }
}"""

REORDERED = """{
  "properties": {
    "columns": [
      {"name": "Currency", "type": "String"},
      {"name": "ResourceLocation", "type": "String"},
      {"name": "UsageDate", "type": "Datetime"},
      {"name": "ServiceName", "type": "String"},
      {"name": "Cost", "type": "Number"}
    ],
    "rows": [
      ["EUR", "EU West", "2025-03-31T00:00:00", "Azure Kubernetes Service", 88.10000000000001],
      ["EUR", "EU West", "2025-04-01T00:00:00", "Azure Kubernetes Service", 1.5]
    ]
  }
}"""


def _page(rows: list[str], next_link: str | None) -> str:
    link = json.dumps(next_link)
    return (
        '{"properties": {"nextLink": ' + link + ', "columns": ['
        '{"name": "PreTaxCost", "type": "Number"}, {"name": "UsageDate", "type": "Number"},'
        '{"name": "ServiceName", "type": "String"}, {"name": "ResourceLocation", "type": "String"},'
        '{"name": "Currency", "type": "String"}], "rows": [' + ", ".join(rows) + "]}}"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _collector(
    httpserver: HTTPServer,
    http_client: httpx.Client,
    sleep: RecordingSleep,
    clock: Clock,
    *,
    scope: str = SCOPE,
) -> AzureCostManagement:
    base = httpserver.url_for("/").rstrip("/")
    return AzureCostManagement(
        name="azure-main",
        scope=scope,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        management_url=base,
        login_url=base,
        client=http_client,
        sleep=sleep,
        clock=clock,
    )


def _serve_token(httpserver: HTTPServer, token: str = "tok-1", expires_in: int = 3599) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_json(
        {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        }
    )


def _serve_json(httpserver: HTTPServer, text: str, *, query: dict[str, str] | None = None) -> None:
    httpserver.expect_request(
        QUERY_PATH, method="POST", query_string=query or API
    ).respond_with_data(text, content_type="application/json; charset=utf-8")


def _requests(httpserver: HTTPServer, path: str) -> list[Any]:
    return [request for request, _ in httpserver.log if request.path == path]


def _assert_no_secret(text: str) -> None:
    assert SECRET not in text


# --- mapping ----------------------------------------------------------------------------------


def test_it_maps_a_daily_grouped_response_into_exact_cost_lines(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver)
    _serve_json(httpserver, DAILY)

    lines = _collector(httpserver, http_client, sleep, clock).fetch(
        date(2025, 1, 1), date(2025, 1, 3)
    )

    by_key = {(line.charge_period_start.date(), line.service_name): line for line in lines}
    assert len(lines) == 5
    vm = by_key[(date(2025, 1, 1), "Virtual Machines")]
    assert vm.billed_cost == Decimal("19.545363672276512")
    assert by_key[(date(2025, 1, 1), "Azure OpenAI")].billed_cost == Decimal("1234567.123456789012")
    assert by_key[(date(2025, 1, 2), "Storage")].billed_cost == Decimal("0.0021")
    assert by_key[(date(2025, 1, 2), "Bandwidth")].billed_cost == Decimal(0)
    assert by_key[(date(2025, 1, 2), "Bandwidth")].region_id is None
    assert vm.provider == "Microsoft"
    assert vm.billing_currency == "USD"
    assert vm.region_id == "US East"
    assert vm.charge_category == "Usage"
    assert vm.charge_period_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert vm.charge_period_end == datetime(2025, 1, 2, tzinfo=UTC)
    assert vm.billing_period_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert vm.billing_period_end == datetime(2025, 2, 1, tzinfo=UTC)
    assert vm.sub_account_id == SUBSCRIPTION
    assert vm.billing_account_id is None
    assert vm.extra == {"x_CostType": "ActualCost"}
    assert sum(line.billed_cost for line in lines) == Decimal("1234760.090712874191742")
    assert len({line.row_key for line in lines}) == 5


def test_it_posts_the_daily_grouped_query_with_the_bearer_token(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver, token="tok-abc")
    _serve_json(httpserver, DAILY)

    _collector(httpserver, http_client, sleep, clock).fetch(date(2025, 1, 1), date(2025, 2, 1))

    (query,) = _requests(httpserver, QUERY_PATH)
    assert query.headers["Authorization"] == "Bearer tok-abc"
    assert query.get_json() == {
        "type": "ActualCost",
        "timeframe": "Custom",
        "timePeriod": {"from": "2025-01-01T00:00:00Z", "to": "2025-01-31T23:59:59Z"},
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "PreTaxCost", "function": "Sum"}},
            "grouping": [
                {"type": "Dimension", "name": "ServiceName"},
                {"type": "Dimension", "name": "ResourceLocation"},
            ],
        },
    }


def test_it_requests_a_client_credentials_token_and_reuses_it_until_near_expiry(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver, expires_in=3599)
    _serve_json(httpserver, DAILY)
    collector = _collector(httpserver, http_client, sleep, clock)

    collector.fetch(date(2025, 1, 1), date(2025, 1, 3))
    clock.now += 3599 - 61
    collector.fetch(date(2025, 1, 1), date(2025, 1, 3))
    assert len(_requests(httpserver, TOKEN_PATH)) == 1
    clock.now += 2
    collector.fetch(date(2025, 1, 1), date(2025, 1, 3))

    tokens = _requests(httpserver, TOKEN_PATH)
    assert len(tokens) == 2
    assert len(_requests(httpserver, QUERY_PATH)) == 3
    assert tokens[0].form.to_dict() == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "scope": "https://management.azure.com/.default",
    }


def test_it_follows_next_link_posting_the_same_body(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    next_link = httpserver.url_for(QUERY_PATH) + "?api-version=2025-03-01&$skiptoken=AQAAAA%3D%3D"
    _serve_token(httpserver)
    _serve_json(
        httpserver,
        _page(['[412.3301, 20250101, "Virtual Machines", "US East", "USD"]'], next_link),
    )
    _serve_json(
        httpserver,
        _page(
            [
                '[7.25, 20250101, "Storage", "US East", "USD"]',
                '[0.75, 20250101, "Virtual Machines", "US East", "USD"]',
            ],
            None,
        ),
        query={"api-version": "2025-03-01", "$skiptoken": "AQAAAA=="},
    )

    lines = _collector(httpserver, http_client, sleep, clock).fetch(
        date(2025, 1, 1), date(2025, 1, 2)
    )

    assert {line.service_name: line.billed_cost for line in lines} == {
        "Virtual Machines": Decimal("413.0801"),
        "Storage": Decimal("7.25"),
    }
    first, second = _requests(httpserver, QUERY_PATH)
    assert second.args["$skiptoken"] == "AQAAAA=="
    assert first.get_json() == second.get_json()
    assert second.headers["Authorization"] == "Bearer tok-1"


def test_it_maps_columns_by_name_in_any_order(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver)
    httpserver.expect_request(
        "/providers/Microsoft.Billing/billingAccounts/70664866/providers/Microsoft.CostManagement/query",
        method="POST",
        query_string=API,
    ).respond_with_data(REORDERED, content_type="application/json")

    lines = _collector(
        httpserver,
        http_client,
        sleep,
        clock,
        scope="/providers/Microsoft.Billing/billingAccounts/70664866/",
    ).fetch(date(2025, 3, 1), date(2025, 4, 1))

    (line,) = lines  # the 2025-04-01 row is outside [start, end)
    assert line.billed_cost == Decimal("88.10000000000001")
    assert line.billing_currency == "EUR"
    assert line.service_name == "Azure Kubernetes Service"
    assert line.region_id == "EU West"
    assert line.charge_period_start == datetime(2025, 3, 31, tzinfo=UTC)
    assert line.billing_account_id == "70664866"
    assert line.sub_account_id is None


def test_it_returns_no_lines_for_a_204(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver)
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_data("", status=204)

    lines = _collector(httpserver, http_client, sleep, clock).fetch(
        date(2025, 1, 1), date(2025, 1, 2)
    )

    assert lines == []


def test_it_rejects_a_response_without_a_usage_date_column(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver)
    _serve_json(httpserver, LEGACY_GROUPING)

    with pytest.raises(CollectorError, match=r"no UsageDate column \(columns: PreTaxCost, "):
        _collector(httpserver, http_client, sleep, clock).fetch(date(2025, 1, 1), date(2025, 1, 2))


# --- throttling and errors --------------------------------------------------------------------


def test_it_honours_retry_after_on_429_then_succeeds(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver)
    httpserver.expect_oneshot_request(QUERY_PATH, method="POST").respond_with_json(
        {"error": {"code": "429", "message": "Too many requests. Please retry."}},
        status=429,
        headers={"Retry-After": "7"},
    )
    httpserver.expect_oneshot_request(QUERY_PATH, method="POST").respond_with_data(
        "",
        status=429,
        headers={
            "Retry-After": "3",
            "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "12",
        },
    )
    _serve_json(httpserver, DAILY)

    lines = _collector(httpserver, http_client, sleep, clock).fetch(
        date(2025, 1, 1), date(2025, 1, 3)
    )

    assert len(lines) == 5
    assert sleep.waits == [7.0, 12.0]
    assert len(_requests(httpserver, TOKEN_PATH)) == 1


def test_it_reports_throttling_that_outlasts_the_retries_as_a_transient_error(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver)
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_data(
        "", status=429, headers={"x-ms-ratelimit-microsoft.costmanagement-entity-retry-after": "2"}
    )

    with pytest.raises(CollectorError, match=r"kept throttling .* \(HTTP 429\)") as caught:
        _collector(httpserver, http_client, sleep, clock).fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert not isinstance(caught.value, CollectorDown)
    assert sleep.waits == [2.0, 2.0, 2.0, 2.0]


def test_it_marks_a_401_down_without_the_secret(
    httpserver: HTTPServer,
    http_client: httpx.Client,
    sleep: RecordingSleep,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _serve_token(httpserver)
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(
        {"error": {"code": "AuthenticationFailed", "message": "Authentication failed."}},
        status=401,
    )

    with pytest.raises(CollectorDown) as caught:
        _collector(httpserver, http_client, sleep, clock).fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert caught.value.reason.startswith(
        f"Azure rejected the credentials for tenant {TENANT}: check client_id/client_secret "
        "and the Cost Management Reader role"
    )
    assert sleep.waits == []
    _assert_no_secret(caught.value.reason)
    _assert_no_secret(caplog.text)
    for record in caplog.records:
        _assert_no_secret(record.getMessage())


def test_it_marks_a_rejected_token_request_down_without_the_secret(
    httpserver: HTTPServer,
    http_client: httpx.Client,
    sleep: RecordingSleep,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_json(
        {
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the "
            f"secret being sent in the request is the client secret value ({SECRET}).",
            "error_codes": [7000215],
        },
        status=401,
    )

    with pytest.raises(CollectorDown, match=f"tenant {TENANT}.*invalid_client") as caught:
        _collector(httpserver, http_client, sleep, clock).fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert _requests(httpserver, QUERY_PATH) == []
    _assert_no_secret(caught.value.reason)
    _assert_no_secret(str(caught.value))
    _assert_no_secret(caplog.text)


def test_it_reports_other_http_errors_with_status_and_error_code(
    httpserver: HTTPServer, http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    _serve_token(httpserver)
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(
        {
            "error": {
                "code": "BadRequest",
                "message": "Invalid query definition: the time period exceeds 1 year.\nDetails",
            }
        },
        status=400,
    )

    with pytest.raises(CollectorError) as caught:
        _collector(httpserver, http_client, sleep, clock).fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert not isinstance(caught.value, CollectorDown)
    assert caught.value.reason == (
        "Azure Cost Management query failed: HTTP 400 BadRequest: "
        "Invalid query definition: the time period exceeds 1 year."
    )


def test_it_reports_an_unreachable_endpoint_as_a_transient_error(
    http_client: httpx.Client, sleep: RecordingSleep, clock: Clock
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    collector = AzureCostManagement(
        name="azure",
        scope=SCOPE,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        management_url=base,
        login_url=base,
        client=http_client,
        sleep=sleep,
        clock=clock,
    )

    with pytest.raises(CollectorError, match=f"cannot reach 127.0.0.1:{port}") as caught:
        collector.fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert not isinstance(caught.value, CollectorDown)
    _assert_no_secret(caught.value.reason)
    assert SECRET not in repr(collector)


def test_it_reads_the_largest_numeric_retry_after_header() -> None:
    assert retry_after_seconds({"Retry-After": "5"}) == 5.0
    assert (
        retry_after_seconds(
            {
                "retry-after": "5",
                "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after": "90",
                "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining": "500",
            }
        )
        == 90.0
    )
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2025 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) == 0.0
