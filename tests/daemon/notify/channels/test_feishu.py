"""The Feishu/Lark channel: signing vectors, card shape, size cap, errors in HTTP 200."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from daemon.notify.channels.base import TransportError
from daemon.notify.channels.feishu import BODY_MAX_BYTES, FeishuChannel, sign
from tests.conftest import SHARED_FIXTURES
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake

VECTORS = json.loads(
    (SHARED_FIXTURES / "alertmanager" / "signing-vectors.json").read_text(encoding="utf-8")
)["feishu"]
PATH = "/open-apis/bot/v2/hook/0f6b1c2d-feishu-hook-s3cret"
SECRET = VECTORS["secret"]
VECTOR_TIME = datetime.fromtimestamp(int(VECTORS["timestamp_s"]), tz=UTC)


def channel(provider: ProviderFake, **kwargs: Any) -> FeishuChannel:
    options: dict[str, Any] = {"secret": SECRET, "clock": lambda: VECTOR_TIME}
    options.update(kwargs)
    return FeishuChannel(name="ops-feishu", url=provider.url(PATH), **options)


def failure(provider: ProviderFake) -> TransportError:
    with pytest.raises(TransportError) as caught:
        channel(provider).send(samples.firing_payload())
    assert "feishu-hook-s3cret" not in caught.value.message
    return caught.value


def test_it_signs_exactly_like_the_vector() -> None:
    assert sign(SECRET, int(VECTORS["timestamp_s"])) == VECTORS["sign_base64"]


def test_it_puts_timestamp_and_sign_in_the_body(provider: ProviderFake) -> None:
    provider.feishu(PATH)

    channel(provider).send(samples.firing_payload(), idempotency_key="k")

    body = provider.last().json
    assert body["timestamp"] == VECTORS["timestamp_s"]
    assert body["sign"] == VECTORS["sign_base64"]
    assert provider.last().query == ""


def test_it_does_not_sign_without_a_secret(provider: ProviderFake) -> None:
    provider.feishu(PATH)

    channel(provider, secret=None).send(samples.firing_payload())

    assert "sign" not in provider.last().json
    assert "timestamp" not in provider.last().json


def test_it_posts_an_interactive_card_red_then_green(provider: ProviderFake) -> None:
    provider.feishu(PATH)
    feishu = channel(provider)

    feishu.send(samples.mixed_payload())
    feishu.send(samples.resolved_payload())

    firing, resolved = (r.json for r in provider.requests)
    assert firing["msg_type"] == "interactive"
    card = firing["card"]
    assert isinstance(card, dict)
    assert card["header"]["template"] == "red"
    assert card["header"]["title"] == {
        "tag": "plain_text",
        "content": "[FIRING:1] GPUIdle (cluster=inference-a)",
    }
    tags = [element["tag"] for element in card["elements"]]
    assert tags == ["div", "hr", "div", "note", "action"]
    assert card["elements"][0]["text"]["tag"] == "lark_md"
    button = card["elements"][-1]["actions"][0]
    assert button["url"] == "http://alertmanager.example:9093/alerts"
    assert resolved["card"]["header"]["template"] == "green"


def test_it_accepts_the_legacy_status_code(provider: ProviderFake) -> None:
    provider.feishu_legacy_ok(PATH)

    channel(provider).send(samples.firing_payload())


def test_it_keeps_the_body_under_20_kb(provider: ProviderFake) -> None:
    provider.feishu(PATH)

    channel(provider).send(samples.many_payload(200))

    assert len(provider.last().body) <= BODY_MAX_BYTES
    assert "more firing" in provider.last().text


@pytest.mark.parametrize(
    ("code", "hint"),
    [(19021, "secret"), (19022, "allow-list"), (19024, "keyword"), (9499, "bad request")],
)
def test_it_gives_up_on_security_and_request_errors(
    provider: ProviderFake, code: int, hint: str
) -> None:
    provider.feishu(PATH, code=code, msg="sign match fail or timestamp is not within one hour")

    error = failure(provider)

    assert error.permanent
    assert f"code {code}" in error.message
    assert hint in error.message


def test_it_retries_11232(provider: ProviderFake) -> None:
    provider.feishu(PATH, code=11232, msg="frequency limited psm[...]")

    error = failure(provider)

    assert not error.permanent


def test_it_reads_a_code_from_a_4xx_body(provider: ProviderFake) -> None:
    provider.answer(PATH, status=400, body={"code": 9499, "msg": "Bad Request", "data": {}})

    error = failure(provider)

    assert error.permanent
    assert "code 9499" in error.message


def test_it_retries_429_with_retry_after(provider: ProviderFake) -> None:
    provider.answer(
        PATH, status=429, body={"code": 11232, "msg": "limited"}, headers={"Retry-After": "4"}
    )

    error = failure(provider)

    assert not error.permanent
    assert error.retry_after == 4.0
