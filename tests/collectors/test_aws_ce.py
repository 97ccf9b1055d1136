"""AWS Cost Explorer collector against moto 5 and botocore's Stubber; and the shared retry helper."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws
from moto.moto_api._internal.models import moto_api_backend

from collectors.aws_ce import AwsCostExplorer
from collectors.base import CollectorDown, CollectorError
from collectors.billing import with_retries

ACCOUNT = "123456789012"
FAKE_KEY_ID = "AKIAFAKEKEYID0000042"
FAKE_SECRET = "fAk3SeCrEt/0123456789abcdefghijKLMNOPQRS"  # 40 characters, like a real one
EC2 = "Amazon Elastic Compute Cloud - Compute"
S3 = "Amazon Simple Storage Service"
BEDROCK = "Amazon Bedrock"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials only; no config files, no instance metadata: nothing real is reached."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_CE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _group(key: str, amount: str, unit: str = "USD") -> dict[str, Any]:
    return {"Keys": [key], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": unit}}}


def _day(day: str, end: str, groups: list[dict[str, Any]], *, estimated: bool) -> dict[str, Any]:
    return {
        "TimePeriod": {"Start": day, "End": end},
        "Total": {},
        "Groups": groups,
        "Estimated": estimated,
    }


PAGE_1: dict[str, Any] = {
    "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    "ResultsByTime": [
        _day(
            "2025-01-01",
            "2025-01-02",
            [_group(EC2, "412.3301"), _group(S3, "0.0000001234")],
            estimated=False,
        ),
        _day("2025-01-02", "2025-01-03", [_group(EC2, "398.12")], estimated=True),
    ],
    "DimensionValueAttributes": [],
    "NextPageToken": "page-2-token",
}
PAGE_2: dict[str, Any] = {
    "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    "ResultsByTime": [
        _day("2025-01-02", "2025-01-03", [_group(BEDROCK, "17.5")], estimated=True),
    ],
    "DimensionValueAttributes": [],
}


@pytest.fixture
def mocked_ce() -> Iterator[None]:
    with mock_aws():
        moto_api_backend.set_ce_cost_usage(PAGE_1, ACCOUNT)
        moto_api_backend.set_ce_cost_usage(PAGE_2, ACCOUNT)
        yield


def _stubbed_client() -> Any:
    return boto3.client(
        "ce", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1})
    )


def _request(token: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TimePeriod": {"Start": "2025-01-01", "End": "2025-01-03"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    if token is not None:
        request["NextPageToken"] = token
    return request


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _assert_no_secret(text: str) -> None:
    assert FAKE_KEY_ID not in text
    assert FAKE_SECRET not in text


# --- mapping (moto) ---------------------------------------------------------------------------


def test_it_maps_two_pages_of_grouped_days_into_exact_cost_lines(mocked_ce: None) -> None:
    collector = AwsCostExplorer(name="aws-main")

    lines = collector.fetch(date(2025, 1, 1), date(2025, 1, 3))

    by_day_service = {(line.charge_period_start.date(), line.service_name): line for line in lines}
    assert set(by_day_service) == {
        (date(2025, 1, 1), EC2),
        (date(2025, 1, 1), S3),
        (date(2025, 1, 2), EC2),
        (date(2025, 1, 2), BEDROCK),
    }
    ec2 = by_day_service[(date(2025, 1, 1), EC2)]
    assert ec2.billed_cost == Decimal("412.3301")
    assert str(ec2.billed_cost) == "412.3301"
    assert by_day_service[(date(2025, 1, 1), S3)].billed_cost == Decimal("0.0000001234")
    assert by_day_service[(date(2025, 1, 2), BEDROCK)].billed_cost == Decimal("17.5")
    assert ec2.provider == "AWS"
    assert ec2.billing_currency == "USD"
    assert ec2.charge_category == "Usage"
    assert ec2.charge_period_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert ec2.charge_period_end == datetime(2025, 1, 2, tzinfo=UTC)
    assert ec2.billing_period_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert ec2.billing_period_end == datetime(2025, 2, 1, tzinfo=UTC)
    assert ec2.extra == {"x_Estimated": False}
    assert by_day_service[(date(2025, 1, 2), BEDROCK)].extra == {"x_Estimated": True}
    assert sum(line.billed_cost for line in lines) == Decimal("827.9501001234")


def test_it_gives_row_keys_that_are_stable_across_reads_and_distinct_per_line(
    mocked_ce: None,
) -> None:
    first = AwsCostExplorer(name="aws-main").fetch(date(2025, 1, 1), date(2025, 1, 3))
    second = AwsCostExplorer(name="aws-main").fetch(date(2025, 1, 1), date(2025, 1, 3))

    assert [line.row_key for line in first] == [line.row_key for line in second]
    assert len({line.row_key for line in first}) == 4


def test_it_sends_daily_grouped_requests_and_follows_the_next_page_token() -> None:
    client = _stubbed_client()
    with Stubber(client) as stubber:
        stubber.add_response("get_cost_and_usage", PAGE_1, _request())
        stubber.add_response("get_cost_and_usage", PAGE_2, _request("page-2-token"))
        lines = AwsCostExplorer(name="aws", client=client).fetch(date(2025, 1, 1), date(2025, 1, 3))
        stubber.assert_no_pending_responses()

    assert len(lines) == 4


def test_it_keeps_a_non_service_dimension_in_extra() -> None:
    client = _stubbed_client()
    page = {
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
        "ResultsByTime": [
            _day("2025-03-31", "2025-04-01", [_group("210987654321", "3.01")], estimated=False)
        ],
    }
    request = _request() | {
        "TimePeriod": {"Start": "2025-03-31", "End": "2025-04-01"},
        "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
    }
    with Stubber(client) as stubber:
        stubber.add_response("get_cost_and_usage", page, request)
        (line,) = AwsCostExplorer(name="aws", group_by="LINKED_ACCOUNT", client=client).fetch(
            date(2025, 3, 31), date(2025, 4, 1)
        )

    assert line.service_name is None
    assert line.sub_account_id == "210987654321"
    assert line.extra == {
        "x_Estimated": False,
        "x_AwsGroupBy": "LINKED_ACCOUNT",
        "x_AwsGroupValue": "210987654321",
    }
    assert line.billing_period_end == datetime(2025, 4, 1, tzinfo=UTC)


def test_it_returns_no_lines_for_days_without_groups() -> None:
    client = _stubbed_client()
    page = {"ResultsByTime": [_day("2025-01-01", "2025-01-02", [], estimated=True)]}
    with Stubber(client) as stubber:
        stubber.add_response("get_cost_and_usage", page)
        lines = AwsCostExplorer(name="aws", client=client).fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert lines == []


def test_it_rejects_an_unreadable_amount_as_a_collector_error() -> None:
    client = _stubbed_client()
    page = {
        "ResultsByTime": [_day("2025-01-01", "2025-01-02", [_group(EC2, "12,5")], estimated=False)]
    }
    with Stubber(client) as stubber:
        stubber.add_response("get_cost_and_usage", page)
        with pytest.raises(CollectorError, match="unreadable UnblendedCost amount '12,5'"):
            AwsCostExplorer(name="aws", client=client).fetch(date(2025, 1, 1), date(2025, 1, 2))


def test_it_refuses_a_quantity_metric_and_an_empty_window() -> None:
    with pytest.raises(ValueError, match="not a cost metric"):
        AwsCostExplorer(name="aws", metric="UsageQuantity")
    with pytest.raises(ValueError, match="end must be after start"):
        AwsCostExplorer(name="aws", client=object()).fetch(date(2025, 1, 2), date(2025, 1, 2))


# --- errors -----------------------------------------------------------------------------------


def test_it_retries_throttling_with_backoff_then_succeeds() -> None:
    client = _stubbed_client()
    sleep = RecordingSleep()
    with Stubber(client) as stubber:
        stubber.add_client_error("get_cost_and_usage", "ThrottlingException", "Rate exceeded", 400)
        stubber.add_client_error("get_cost_and_usage", "ThrottlingException", "Rate exceeded", 400)
        stubber.add_response("get_cost_and_usage", PAGE_2)
        lines = AwsCostExplorer(name="aws", client=client, sleep=sleep).fetch(
            date(2025, 1, 2), date(2025, 1, 3)
        )

    assert [line.billed_cost for line in lines] == [Decimal("17.5")]
    assert len(sleep.waits) == 2
    assert 0.5 <= sleep.waits[0] <= 1.0
    assert 1.0 <= sleep.waits[1] <= 2.0


def test_it_reports_throttling_that_outlasts_the_retries_as_a_transient_error() -> None:
    client = _stubbed_client()
    sleep = RecordingSleep()
    with Stubber(client) as stubber:
        for _ in range(5):
            stubber.add_client_error(
                "get_cost_and_usage", "LimitExceededException", "Too many requests", 400
            )
        with pytest.raises(CollectorError, match="kept throttling") as caught:
            AwsCostExplorer(name="aws", client=client, sleep=sleep).fetch(
                date(2025, 1, 1), date(2025, 1, 2)
            )

    assert not isinstance(caught.value, CollectorDown)
    assert len(sleep.waits) == 4


def test_it_marks_access_denied_down_without_naming_the_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = _stubbed_client()
    sleep = RecordingSleep()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "get_cost_and_usage",
            "AccessDeniedException",
            f"User: arn:aws:iam::{ACCOUNT}:user/finops is not authorized to perform: "
            "ce:GetCostAndUsage",
            400,
        )
        with pytest.raises(CollectorDown) as caught:
            AwsCostExplorer(name="aws", client=client, sleep=sleep).fetch(
                date(2025, 1, 1), date(2025, 1, 2)
            )

    reason = caught.value.reason
    assert "AccessDeniedException" in reason
    assert "ce:GetCostAndUsage" in reason
    assert "\n" not in reason
    assert sleep.waits == []
    _assert_no_secret(reason)
    _assert_no_secret(caplog.text)


def test_it_scrubs_key_shaped_text_from_an_aws_error_message() -> None:
    client = _stubbed_client()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "get_cost_and_usage",
            "UnrecognizedClientException",
            f"The security token {FAKE_KEY_ID} included in the request is invalid.\n"
            f"Secret was {FAKE_SECRET}",
            400,
        )
        with pytest.raises(CollectorDown, match="UnrecognizedClientException") as caught:
            AwsCostExplorer(name="aws", client=client).fetch(date(2025, 1, 1), date(2025, 1, 2))

    _assert_no_secret(caught.value.reason)
    assert "<redacted>" in caught.value.reason


def test_it_reports_other_api_errors_as_collector_errors() -> None:
    client = _stubbed_client()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "get_cost_and_usage", "DataUnavailableException", "Data is not available.", 400
        )
        with pytest.raises(
            CollectorError, match=r"DataUnavailableException: Data is not"
        ) as caught:
            AwsCostExplorer(name="aws", client=client).fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert not isinstance(caught.value, CollectorDown)


def test_it_reports_missing_credentials_as_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(CollectorDown, match="no AWS credentials found: set a profile or the AWS_"):
        AwsCostExplorer(name="aws").fetch(date(2025, 1, 1), date(2025, 1, 2))


def test_it_reports_a_missing_profile_as_down() -> None:
    with pytest.raises(CollectorDown, match="AWS profile 'finops' not found"):
        AwsCostExplorer(name="aws", profile="finops").fetch(date(2025, 1, 1), date(2025, 1, 2))


def test_it_reports_an_unreachable_endpoint_as_a_collector_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "ce",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )

    with pytest.raises(CollectorError, match="cannot reach AWS Cost Explorer") as caught:
        AwsCostExplorer(name="aws", client=client).fetch(date(2025, 1, 1), date(2025, 1, 2))

    assert not isinstance(caught.value, CollectorDown)
    _assert_no_secret(caught.value.reason)


# --- with_retries (collectors/billing.py) ------------------------------------------------------


class Throttled(Exception):
    def __init__(self, retry_after: float = 0.0) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


def _throttle(exc: Exception) -> float | None:
    return exc.retry_after if isinstance(exc, Throttled) else None


def _failing(failures: list[Exception], result: str = "ok") -> Any:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_it_reraises_a_non_throttle_error_at_once_without_sleeping() -> None:
    sleep = RecordingSleep()
    call = _failing([KeyError("boom")])

    with pytest.raises(KeyError):
        with_retries(call, is_throttle=_throttle, sleep=sleep)

    assert len(call.calls) == 1
    assert sleep.waits == []


def test_it_waits_exactly_the_retry_after_the_server_asks_for() -> None:
    sleep = RecordingSleep()
    call = _failing([Throttled(7.0), Throttled(3.5)])

    assert with_retries(call, is_throttle=_throttle, sleep=sleep) == "ok"
    assert sleep.waits == [7.0, 3.5]


def test_it_gives_up_when_the_server_asks_for_more_than_the_cap() -> None:
    sleep = RecordingSleep()
    call = _failing([Throttled(3600.0)])

    with pytest.raises(Throttled):
        with_retries(call, is_throttle=_throttle, sleep=sleep, cap=60.0)

    assert sleep.waits == []
    assert len(call.calls) == 1


def test_it_backs_off_exponentially_with_seeded_jitter_and_a_bounded_total() -> None:
    sleep = RecordingSleep()
    call = _failing([Throttled() for _ in range(9)])

    with pytest.raises(Throttled):
        with_retries(
            call,
            is_throttle=_throttle,
            attempts=9,
            sleep=sleep,
            base=1.0,
            cap=10.0,
            rng=random.Random(7),
        )

    assert len(call.calls) == 9
    ceilings = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert len(sleep.waits) == len(ceilings)
    for wait, ceiling in zip(sleep.waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert sum(sleep.waits) <= 8 * 10.0
    again = RecordingSleep()
    with pytest.raises(Throttled):
        with_retries(
            _failing([Throttled() for _ in range(9)]),
            is_throttle=_throttle,
            attempts=9,
            sleep=again,
            cap=10.0,
            rng=random.Random(7),
        )
    assert again.waits == sleep.waits


def test_it_refuses_fewer_than_one_attempt() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        with_retries(lambda: 1, is_throttle=_throttle, attempts=0)
