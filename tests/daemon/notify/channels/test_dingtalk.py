"""The DingTalk channel: signing vectors, body shape, mentions, size cap, errors in HTTP 200."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from daemon.notify.channels.base import TransportError
from daemon.notify.channels.dingtalk import (
    BODY_MAX_BYTES,
    DingTalkChannel,
    sign,
    signed_url,
    timestamp_ms,
)
from daemon.notify.channels.http import encode_json
from tests.conftest import SHARED_FIXTURES
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake

VECTORS = json.loads(
    (SHARED_FIXTURES / "alertmanager" / "signing-vectors.json").read_text(encoding="utf-8")
)["dingtalk"]
PATH = "/robot/send"
TOKEN = "acc3ss-t0ken-s3cret"
SECRET = VECTORS["secret"]
VECTOR_TIME = datetime.fromtimestamp(int(VECTORS["timestamp_ms"]) / 1000, tz=UTC)


def channel(provider: ProviderFake, **kwargs: Any) -> DingTalkChannel:
    options: dict[str, Any] = {"secret": SECRET, "clock": lambda: VECTOR_TIME}
    options.update(kwargs)
    return DingTalkChannel(
        name="ops-ding", url=provider.url(PATH) + f"?access_token={TOKEN}", **options
    )


def failure(provider: ProviderFake) -> TransportError:
    with pytest.raises(TransportError) as caught:
        channel(provider).send(samples.firing_payload())
    message = caught.value.message
    assert TOKEN not in message and SECRET not in message
    assert VECTORS["sign_base64"] not in message
    return caught.value


def test_it_signs_exactly_like_the_vector() -> None:
    assert timestamp_ms(VECTOR_TIME) == int(VECTORS["timestamp_ms"])
    assert sign(SECRET, int(VECTORS["timestamp_ms"])) == VECTORS["sign_base64"]
    url = signed_url(
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}", SECRET, 1700000000000
    )
    assert (
        url
        == f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}" + VECTORS["query_suffix"]
    )


def test_it_sends_the_signature_encoded_once(provider: ProviderFake) -> None:
    provider.dingtalk(PATH)

    channel(provider).send(samples.firing_payload(), idempotency_key="k")

    request = provider.last()
    assert request.query == f"access_token={TOKEN}" + VECTORS["query_suffix"]
    assert "%25" not in request.query  # not double-encoded


def test_it_sends_unsigned_without_a_secret(provider: ProviderFake) -> None:
    provider.dingtalk(PATH)

    channel(provider, secret=None).send(samples.firing_payload())

    assert provider.last().query == f"access_token={TOKEN}"


def test_it_posts_markdown_with_mentions_in_the_text(provider: ProviderFake) -> None:
    provider.dingtalk(PATH)

    channel(provider, at_mobiles=["13800000000"], at_user_ids=["manager42"], at_all=False).send(
        samples.mixed_payload()
    )

    body = provider.last().json
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "[FIRING:1] GPUIdle (cluster=inference-a)"
    text = body["markdown"]["text"]
    assert text.startswith("#### [FIRING:1] GPUIdle")
    assert "Firing (1)" in text and "Resolved (1)" in text
    assert text.endswith("@13800000000 @manager42")
    assert body["at"] == {
        "atMobiles": ["13800000000"],
        "atUserIds": ["manager42"],
        "isAtAll": False,
    }


def test_it_keeps_the_body_under_20000_bytes(provider: ProviderFake) -> None:
    provider.dingtalk(PATH)

    channel(provider).send(samples.many_payload(300, text="告"))

    request = provider.last()
    assert len(request.body) <= BODY_MAX_BYTES
    assert "more firing" in request.json["markdown"]["text"]


def test_it_cuts_the_text_when_even_no_alert_fits() -> None:
    payload = samples.firing_payload()
    payload["alerts"][0]["labels"] = {f"k{i}": "v" * 199 for i in range(150)}
    payload["alerts"][1]["labels"] = {f"k{i}": "w" * 199 for i in range(150)}

    body = DingTalkChannel(name="d", url="https://x.example/robot/send").build_body(payload)

    assert len(encode_json(body)) <= BODY_MAX_BYTES


@pytest.mark.parametrize(
    ("errmsg", "hint"),
    [
        (
            "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
            "check the channel's secret",
        ),
        ("invalid timestamp", "clock"),
        ("keywords not in content", "keyword"),
        ("ip 1.2.3.4 not in whitelist", "allow-list"),
    ],
)
def test_it_gives_up_on_310000_and_says_why(provider: ProviderFake, errmsg: str, hint: str) -> None:
    provider.dingtalk(PATH, errcode=310000, errmsg=errmsg)

    error = failure(provider)

    assert error.permanent
    assert "code 310000" in error.message
    assert hint in error.message


def test_it_retries_130101_after_a_minute(provider: ProviderFake) -> None:
    provider.dingtalk(PATH, errcode=130101, errmsg="send too fast, exceed 20 times per minute")

    error = failure(provider)

    assert not error.permanent
    assert error.retry_after == 60.0


@pytest.mark.parametrize("errcode", [300001, 460101, 400013])
def test_it_gives_up_on_other_codes(provider: ProviderFake, errcode: int) -> None:
    provider.dingtalk(PATH, errcode=errcode, errmsg="nope")

    assert failure(provider).permanent


def test_it_retries_a_2xx_without_errcode(provider: ProviderFake) -> None:
    provider.answer(PATH, body="<html>gateway</html>")

    error = failure(provider)

    assert not error.permanent
    assert "without a result code" in error.message


def test_it_retries_server_errors_and_timeouts(provider: ProviderFake) -> None:
    provider.answer(PATH, status=503, body="")
    assert not failure(provider).permanent


def test_it_times_out(provider: ProviderFake) -> None:
    provider.hang(PATH)
    with pytest.raises(TransportError) as caught:
        channel(provider, timeout_seconds=0.2).send(samples.firing_payload())
    assert not caught.value.permanent
    assert TOKEN not in caught.value.message
