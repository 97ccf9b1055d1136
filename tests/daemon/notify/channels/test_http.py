"""The shared HTTP code path: idempotency key, redaction, error classification, timeouts."""

from __future__ import annotations

import httpx
import pytest

from daemon.notify.channels import CHANNELS, load_channel_class
from daemon.notify.channels.base import RateLimit, TransportError
from daemon.notify.channels.http import HttpChannel, Redactor, url_secrets
from daemon.notify.channels.webhook import WebhookChannel
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake


def test_it_registers_every_channel_type() -> None:
    assert list(CHANNELS) == [
        "webhook",
        "slack",
        "teams",
        "discord",
        "dingtalk",
        "feishu",
        "wecom",
        "alertmanager",
    ]
    for kind in CHANNELS:
        channel_class = load_channel_class(kind)
        assert issubclass(channel_class, HttpChannel)
        assert channel_class.kind == kind


def test_the_webhook_sends_the_idempotency_key_header(provider: ProviderFake) -> None:
    provider.answer("/hook", body="")
    hook = WebhookChannel(name="h", url=provider.url("/hook"))

    hook.send(samples.firing_payload(), idempotency_key="0123456789abcdef0123456789abcdef")
    hook.send(samples.firing_payload())

    with_key, without_key = provider.requests
    assert with_key.headers["Idempotency-Key"] == "0123456789abcdef0123456789abcdef"
    assert "Idempotency-Key" not in without_key.headers
    hook.close()


def test_the_webhook_takes_an_optional_rate_limit() -> None:
    assert WebhookChannel(name="h", url="https://x.example/").rate_limit is None
    limit = RateLimit(per_minute=6, burst=2)
    assert WebhookChannel(name="h", url="https://x.example/", rate_limit=limit).rate_limit == limit


def test_it_finds_the_secret_parts_of_a_url() -> None:
    secrets = url_secrets(
        "https://user:pa55word@hooks.example/services/T0/B0/XXXXSECRET?key=k3y-value-1&x=1"
    )

    assert "XXXXSECRET" in secrets
    assert "k3y-value-1" in secrets
    assert "pa55word" in secrets
    assert "1" not in secrets  # short query values are not secrets


def test_it_redacts_urls_secrets_and_urls_built_at_send_time() -> None:
    redact = Redactor(["https://oapi.example/robot/send?access_token=T0KEN-abcdef"], ["SECsecret"])
    signed = (
        "https://oapi.example/robot/send?access_token=T0KEN-abcdef&timestamp=1&sign=abc%2Bdef%3D%3D"
    )

    text = redact(f"bad {signed} with SECsecret and T0KEN-abcdef", signed)

    assert "T0KEN" not in text
    assert "SECsecret" not in text
    assert "abc%2Bdef" not in text
    assert text.startswith("bad <url>")


def test_it_turns_any_network_error_into_a_retryable_transport_error() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"peer closed {request.url}", request=request)

    client = httpx.Client(transport=httpx.MockTransport(explode))
    hook = WebhookChannel(name="h", url="https://hooks.example/T0KEN-XYZ-123", client=client)

    with pytest.raises(TransportError) as caught:
        hook.send(samples.firing_payload())

    assert not caught.value.permanent
    assert caught.value.message.startswith("webhook h: RemoteProtocolError: peer closed <url>")
    hook.close()  # a shared client is not closed by the channel
    assert not client.is_closed
    client.close()


def test_it_keeps_long_error_bodies_short(provider: ProviderFake) -> None:
    provider.answer("/hook", status=400, body="e" * 5000)

    with pytest.raises(TransportError) as caught:
        WebhookChannel(name="h", url=provider.url("/hook")).send(samples.firing_payload())

    assert len(caught.value.message) < 300
