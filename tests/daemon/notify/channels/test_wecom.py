"""The WeCom channel: markdown body, 4096-byte cap, errors in HTTP 200."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.notify.channels.base import TransportError
from daemon.notify.channels.wecom import CONTENT_MAX_BYTES, WeComChannel
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake

PATH = "/cgi-bin/webhook/send"
KEY = "693a91f6-7xxx-wecom-k3y"


def channel(provider: ProviderFake, **kwargs: Any) -> WeComChannel:
    return WeComChannel(
        name="ops-wecom",
        url=provider.url(PATH) + f"?key={KEY}",
        clock=lambda: samples.NOW,
        **kwargs,
    )


def failure(provider: ProviderFake) -> TransportError:
    with pytest.raises(TransportError) as caught:
        channel(provider).send(samples.firing_payload())
    assert KEY not in caught.value.message
    return caught.value


def test_it_posts_markdown(provider: ProviderFake) -> None:
    provider.wecom(PATH)

    channel(provider).send(samples.mixed_payload(), idempotency_key="k")

    request = provider.last()
    assert request.query == f"key={KEY}"
    body = request.json
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("### [FIRING:1] GPUIdle (cluster=inference-a)")
    assert '<font color="warning">**Firing (1)**</font>' in content
    assert '<font color="info">**Resolved (1)**</font>' in content
    assert "[Open the alerts board](http://alertmanager.example:9093/alerts)" in content


@pytest.mark.parametrize("text", ["x", "告警"])
def test_it_caps_the_content_at_4096_bytes(provider: ProviderFake, text: str) -> None:
    provider.wecom(PATH)

    channel(provider).send(samples.many_payload(100, text=text))

    content = provider.last().json["markdown"]["content"]
    assert len(content.encode("utf-8")) <= CONTENT_MAX_BYTES
    assert "more firing" in content


def test_it_cuts_bytes_on_a_character_boundary_when_no_alert_fits() -> None:
    payload = samples.firing_payload()
    payload["groupLabels"] = {"alertname": "GpuIdle", **{f"k{i}": "告" * 199 for i in range(20)}}

    content = WeComChannel(name="w", url="https://x.example/").build_body(payload)["markdown"][
        "content"
    ]

    data = content.encode("utf-8")
    assert len(data) <= CONTENT_MAX_BYTES
    assert content.endswith("…")
    data.decode("utf-8")  # a whole number of characters


def test_it_retries_45009_after_a_minute(provider: ProviderFake) -> None:
    provider.wecom(PATH, errcode=45009, errmsg="api freq out of limit")

    error = failure(provider)

    assert not error.permanent
    assert error.retry_after == 60.0
    assert "code 45009" in error.message


def test_it_gives_up_on_an_invalid_webhook_url(provider: ProviderFake) -> None:
    provider.wecom(PATH, errcode=93000, errmsg=f"invalid webhook url, hint: [{KEY}]")

    error = failure(provider)

    assert error.permanent
    assert "robot was removed" in error.message


def test_it_gives_up_on_other_codes(provider: ProviderFake) -> None:
    provider.wecom(PATH, errcode=40008, errmsg="invalid message type")

    assert failure(provider).permanent


def test_it_retries_a_busy_system(provider: ProviderFake) -> None:
    provider.wecom(PATH, errcode=-1, errmsg="system busy")

    assert not failure(provider).permanent


def test_it_retries_server_errors(provider: ProviderFake) -> None:
    provider.answer(PATH, status=500, body="")

    assert not failure(provider).permanent
