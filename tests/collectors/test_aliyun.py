"""AliyunBss against a fake client returning real SDK response models (``from_map``)."""

from __future__ import annotations

import copy
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from alibabacloud_bssopenapi20171214 import models
from alibabacloud_bssopenapi20171214.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException
from Tea.exceptions import UnretryableException

from collectors.aliyun import AliyunBss, parse_tags
from collectors.base import CollectorDown, CollectorError

KEY_ID = "LTAI5tExampleKeyId0001"
SECRET = "s3cr3t-Example-Secret-Value-0123456789"


def item(**overrides: Any) -> dict[str, Any]:
    """One DescribeInstanceBill item as the API returns it (an ECS GPU instance by default)."""
    base: dict[str, Any] = {
        "BillingDate": "2025-03-01",
        "InstanceConfig": "CPU:32;Memory:188GB",
        "InternetIP": "",
        "Item": "PayAsYouGoBill",
        "Tag": "key:team value:inference; key:env value:prod",
        "InstanceID": "i-t4n1x9gpu0001",
        "Currency": "USD",
        "BillAccountName": "finops@example.com",
        "DeductedByCashCoupons": 0,
        "SubscriptionType": "PayAsYouGo",
        "BizType": "trusteeship",
        "InstanceSpec": "ecs.gn7i-c32g1.8xlarge",
        "DeductedByCoupons": 0,
        "BillingItem": "",
        "Region": "Singapore",
        "OutstandingAmount": 0,
        "CostUnit": "Not allocated",
        "ResourceGroup": "Default resource group",
        "PipCode": "ecs",
        "ServicePeriodUnit": "Second",
        "PretaxAmount": 47.62,
        "CommodityCode": "ecs",
        "ProductName": "Elastic Compute Service",
        "AdjustAmount": 0,
        "NickName": "vllm-l20",
        "ProductDetail": "Elastic Compute Service (Pay-As-You-Go)",
        "Usage": "86400",
        "IntranetIP": "10.0.3.17",
        "OwnerID": "5123456789012345",
        "DeductedByPrepaidCard": 0,
        "UsageUnit": "Second",
        "BillAccountID": "5123456789012345",
        "PaymentAmount": 47.62,
        "InvoiceDiscount": 5.29,
        "DeductedByResourcePackage": "0",
        "ProductType": "",
        "ServicePeriod": "86400",
        "Zone": "ap-southeast-1c",
        "ListPrice": "",
        "PretaxGrossAmount": 52.91,
        "CashAmount": 47.62,
        "ProductCode": "ecs",
        "BillingType": "Other",
        "AfterDiscountAmount": 47.62,
    }
    base.update(overrides)
    return base


def body(items: list[dict[str, Any]], next_token: str = "") -> dict[str, Any]:
    return {
        "Code": "Success",
        "Message": "Successful!",
        "RequestId": "79EE7556-0CFD-44EB-9CD6-B3B526E3A85F",
        "Success": True,
        "Data": {
            "NextToken": next_token,
            "BillingCycle": "2025-03",
            "MaxResults": 300,
            "AccountID": "5123456789012345",
            "TotalCount": len(items),
            "AccountName": "finops@example.com",
            "Items": items,
        },
    }


DAY1_PAGE1 = body(
    [
        item(),
        item(
            InstanceID="oss-model-weights",
            ProductName="Object Storage Service",
            ProductCode="oss",
            CommodityCode="oss",
            PipCode="oss",
            PretaxAmount=0.1,
            PretaxGrossAmount=0.1,
            PaymentAmount=0.1,
            Tag="team:inference;cost-center:;archived",
            Usage="512.5",
            UsageUnit="GB",
            Zone="",
        ),
    ],
    next_token="CAESEgoQCg4KCm",
)
DAY1_PAGE2 = body(
    [
        item(
            InstanceID="oss-model-weights-eu",
            ProductName="Object Storage Service",
            ProductCode="oss",
            CommodityCode="oss",
            PretaxAmount=0.2,
            PretaxGrossAmount=0.2,
            PaymentAmount=0.2,
            Tag="",
        )
    ]
)
DAY2 = body(
    [
        item(
            BillingDate="2025-03-02",
            Item="Refund",
            PretaxAmount=-3.05,
            PretaxGrossAmount=-3.05,
            PaymentAmount=-3.05,
        )
    ]
)


def response(recorded: dict[str, Any]) -> models.DescribeInstanceBillResponse:
    return models.DescribeInstanceBillResponse().from_map(
        {
            "headers": {"x-acs-request-id": recorded.get("RequestId", "")},
            "statusCode": 200,
            "body": recorded,
        }
    )


class FakeBss:
    """``describe_instance_bill`` pops the next outcome: a recorded body, or an exception."""

    def __init__(self, *outcomes: dict[str, Any] | Exception) -> None:
        self.outcomes = [copy.deepcopy(o) if isinstance(o, dict) else o for o in outcomes]
        self.requests: list[dict[str, Any]] = []

    def describe_instance_bill(
        self, request: models.DescribeInstanceBillRequest
    ) -> models.DescribeInstanceBillResponse:
        self.requests.append(request.to_map())
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return response(outcome)


def collector(client: Any, waits: list[float] | None = None) -> AliyunBss:
    sink = waits if waits is not None else []
    return AliyunBss(
        name="aliyun-intl",
        access_key_id=KEY_ID,
        access_key_secret=SECRET,
        client=client,
        sleep=sink.append,
    )


def test_it_pages_each_day_by_next_token() -> None:
    client = FakeBss(DAY1_PAGE1, DAY1_PAGE2, DAY2)

    lines = collector(client).fetch(date(2025, 3, 1), date(2025, 3, 3))

    assert client.requests == [
        {
            "BillingCycle": "2025-03",
            "BillingDate": "2025-03-01",
            "Granularity": "DAILY",
            "MaxResults": 300,
        },
        {
            "BillingCycle": "2025-03",
            "BillingDate": "2025-03-01",
            "Granularity": "DAILY",
            "MaxResults": 300,
            "NextToken": "CAESEgoQCg4KCm",
        },
        {
            "BillingCycle": "2025-03",
            "BillingDate": "2025-03-02",
            "Granularity": "DAILY",
            "MaxResults": 300,
        },
    ]
    assert [line.resource_id for line in lines] == [
        "i-t4n1x9gpu0001",
        "oss-model-weights",
        "oss-model-weights-eu",
        "i-t4n1x9gpu0001",
    ]
    assert [line.charge_period_start for line in lines] == [
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 3, 2, tzinfo=UTC),
    ]


def test_it_maps_an_instance_bill_line_with_exact_decimals() -> None:
    lines = collector(FakeBss(DAY1_PAGE1, DAY1_PAGE2)).fetch(date(2025, 3, 1), date(2025, 3, 2))

    gpu = lines[0]
    assert gpu.provider == "Alibaba Cloud"
    assert gpu.billed_cost == Decimal("47.62")
    assert gpu.effective_cost == Decimal("47.62")
    assert gpu.list_cost == Decimal("52.91")
    assert gpu.billing_currency == "USD"
    assert gpu.service_name == "Elastic Compute Service"
    assert gpu.region_id == "Singapore"
    assert gpu.charge_category == "Usage"
    assert gpu.charge_period_end == datetime(2025, 3, 2, tzinfo=UTC)
    assert gpu.billing_period_start == datetime(2025, 3, 1, tzinfo=UTC)
    assert gpu.billing_period_end == datetime(2025, 4, 1, tzinfo=UTC)
    assert gpu.sub_account_id == "5123456789012345"
    assert gpu.billing_account_id == "5123456789012345"
    assert gpu.consumed_quantity == Decimal("86400")
    assert gpu.consumed_unit == "Second"
    assert gpu.tags == {"team": "inference", "env": "prod"}
    assert gpu.extra["x_PaymentAmount"] == "47.62"
    assert gpu.extra["x_SubscriptionType"] == "PayAsYouGo"
    assert gpu.extra["x_Item"] == "PayAsYouGoBill"
    assert gpu.extra["x_Zone"] == "ap-southeast-1c"
    # 0.1 + 0.2 in float is 0.30000000000000004; the Decimal sum is exact.
    assert lines[1].billed_cost + lines[2].billed_cost == Decimal("0.3")
    assert lines[1].consumed_quantity == Decimal("512.5")


def test_it_maps_a_refund_to_a_negative_credit_line() -> None:
    (refund,) = collector(FakeBss(DAY2)).fetch(date(2025, 3, 2), date(2025, 3, 3))

    assert refund.charge_category == "Credit"
    assert refund.billed_cost == Decimal("-3.05")


def test_it_parses_both_tag_forms() -> None:
    assert parse_tags("key:testKey value:testValue; key:testKey1 value:testValues1") == {
        "testKey": "testValue",
        "testKey1": "testValues1",
    }
    assert parse_tags("k1:v1;k2:v2") == {"k1": "v1", "k2": "v2"}
    assert parse_tags("team:inference;cost-center:;archived") == {
        "team": "inference",
        "cost-center": "",
        "archived": "",
    }
    assert parse_tags("key:acs:rm:rgId value:rg-aek2; key:empty value:") == {
        "acs:rm:rgId": "rg-aek2",
        "empty": "",
    }
    assert parse_tags("url:https://example.com/a;;") == {"url": "https://example.com/a"}
    assert parse_tags("") == {} and parse_tags(None) == {}


def test_it_gives_stable_distinct_row_keys_even_for_repeated_lines() -> None:
    twice = body([item(), item()])
    first = collector(FakeBss(twice)).fetch(date(2025, 3, 1), date(2025, 3, 2))
    again = collector(FakeBss(twice)).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert first[0].row_key != first[1].row_key
    assert [line.row_key for line in first] == [line.row_key for line in again]
    other_day = collector(FakeBss(body([item()]))).fetch(date(2025, 3, 2), date(2025, 3, 3))
    assert other_day[0].row_key != first[0].row_key


def test_it_retries_throttling_then_succeeds() -> None:
    waits: list[float] = []
    throttled_body = {
        "Code": "Throttling.User",
        "Message": "Request was denied due to user flow control.",
        "RequestId": "A1",
        "Success": False,
    }
    client = FakeBss(
        ClientException(status_code=400, code="Throttling.User", message="code: 400, flow control"),
        ThrottlingException(status_code=429, code="Throttling", message="slow", retry_after=2000),
        throttled_body,
        DAY2,
    )

    lines = collector(client, waits).fetch(date(2025, 3, 2), date(2025, 3, 3))

    assert len(lines) == 1
    assert len(client.requests) == 4
    assert len(waits) == 3
    assert waits[1] == 2.0  # x-acs-retry-after is in milliseconds
    assert all(0 < wait <= 60 for wait in waits)


def test_it_gives_up_throttling_after_the_retry_budget() -> None:
    waits: list[float] = []
    client = FakeBss(
        *[ClientException(status_code=400, code="Throttling.User", message="m") for _ in range(5)]
    )

    with pytest.raises(CollectorError) as caught:
        collector(client, waits).fetch(date(2025, 3, 2), date(2025, 3, 3))

    assert not isinstance(caught.value, CollectorDown)
    assert "Throttling.User" in caught.value.reason
    assert len(waits) == 4


@pytest.mark.parametrize("code", ["InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch"])
def test_it_reports_a_bad_key_as_down_without_the_secret(code: str) -> None:
    leaky = (
        f"code: 400, Specified signature is not matched with our calculation. server string to "
        f"sign is:GET&%2F&AccessKeyId%3D{KEY_ID}%26Signature%3D{SECRET} request id: B2"
    )
    client = FakeBss(
        ClientException(status_code=400, code=code, message=leaky, data={"Message": leaky})
    )
    source = collector(client)

    with pytest.raises(CollectorDown) as caught:
        source.fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert code in caught.value.reason
    assert SECRET not in caught.value.reason and SECRET not in str(caught.value)
    assert SECRET not in repr(source)
    assert len(client.requests) == 1  # not retried


def test_it_reports_a_failed_body_as_a_collector_error() -> None:
    failed = {
        "Code": "InvalidParameter",
        "Message": "The BillingDate must be in the BillingCycle.",
        "RequestId": "C3",
        "Success": False,
    }

    with pytest.raises(CollectorError) as caught:
        collector(FakeBss(failed)).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert not isinstance(caught.value, CollectorDown)
    assert caught.value.reason == (
        "Alibaba Cloud BSS DescribeInstanceBill failed (InvalidParameter): "
        "The BillingDate must be in the BillingCycle."
    )


def test_it_scrubs_the_key_pair_from_other_error_messages() -> None:
    echoed = f"code: 400, parameter AccessKeySecret={SECRET} AccessKeyId={KEY_ID} is invalid"
    client = FakeBss(ClientException(status_code=400, code="InvalidParameter", message=echoed))

    with pytest.raises(CollectorError) as caught:
        collector(client).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert SECRET not in caught.value.reason and KEY_ID not in caught.value.reason
    assert "AccessKeySecret=*** AccessKeyId=***" in caught.value.reason


def test_it_reports_access_denied_as_down() -> None:
    client = FakeBss(ClientException(status_code=403, code="Forbidden.RAM", message="no"))

    with pytest.raises(CollectorDown, match="AliyunBSSReadOnlyAccess"):
        collector(client).fetch(date(2025, 3, 1), date(2025, 3, 2))


def test_it_reports_an_unreachable_endpoint_without_the_signed_url() -> None:
    url = f"https://business.ap-southeast-1.aliyuncs.com/?AccessKeyId={KEY_ID}&Signature=abc"
    error = UnretryableException(None, ConnectionError(f"Max retries exceeded with url: {url}"))

    with pytest.raises(CollectorDown) as caught:
        collector(FakeBss(error)).fetch(date(2025, 3, 1), date(2025, 3, 2))

    assert caught.value.reason == (
        "Alibaba Cloud BSS endpoint business.ap-southeast-1.aliyuncs.com unreachable: ConnectionError"
    )


def test_it_stops_on_a_repeated_next_token() -> None:
    looping = body([item()], next_token="SAME")
    client = FakeBss(looping, looping)

    with pytest.raises(CollectorError, match="repeated a NextToken"):
        collector(client).fetch(date(2025, 3, 1), date(2025, 3, 2))


def test_it_rejects_a_line_without_currency() -> None:
    with pytest.raises(CollectorError, match="i-t4n1x9gpu0001 of 2025-03-01 has no Currency"):
        collector(FakeBss(body([item(Currency="")]))).fetch(date(2025, 3, 1), date(2025, 3, 2))


def test_it_builds_the_official_client_from_the_key_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Client] = []

    def fake_call(self: Client, request: models.DescribeInstanceBillRequest) -> Any:
        seen.append(self)
        return response(copy.deepcopy(DAY2))

    monkeypatch.setattr(Client, "describe_instance_bill", fake_call)
    source = AliyunBss(
        name="aliyun-intl", access_key_id=KEY_ID, access_key_secret=SECRET, sleep=lambda _: None
    )

    lines = source.fetch(date(2025, 3, 2), date(2025, 3, 3))

    assert len(lines) == 1
    assert isinstance(seen[0], Client)
    assert seen[0]._endpoint == "business.ap-southeast-1.aliyuncs.com"


def test_it_reports_missing_credentials_as_down() -> None:
    source = AliyunBss(
        name="aliyun-intl", access_key_id="", access_key_secret="", sleep=lambda _: None
    )

    with pytest.raises(CollectorDown, match="no Alibaba Cloud credentials"):
        source.fetch(date(2025, 3, 1), date(2025, 3, 2))


def test_it_reports_a_missing_sdk_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "alibabacloud_bssopenapi20171214.models", None)

    with pytest.raises(CollectorDown, match=r"pip install 'tcowatch\[aliyun\]'"):
        collector(FakeBss(DAY2)).fetch(date(2025, 3, 2), date(2025, 3, 3))
