"""The Discord channel against a local server that answers like a Discord webhook."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.notify.channels.base import TransportError
from daemon.notify.channels.discord import (
    COLOR_FIRING,
    COLOR_RESOLVED,
    CONTENT_MAX,
    EMBED_DESCRIPTION_MAX,
    EMBEDS_MAX,
    EMBEDS_TOTAL_MAX,
    DiscordChannel,
    embed_chars,
)
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake

PATH = "/api/webhooks/123456/T0KEN-d1scord-webhook-s3cret"


def channel(provider: ProviderFake, **kwargs: Any) -> DiscordChannel:
    return DiscordChannel(
        name="ops-discord", url=provider.url(PATH), clock=lambda: samples.NOW, **kwargs
    )


def failure(provider: ProviderFake) -> TransportError:
    with pytest.raises(TransportError) as caught:
        channel(provider).send(samples.firing_payload())
    assert "d1scord-webhook-s3cret" not in caught.value.message
    return caught.value


def test_it_posts_content_and_colored_embeds_and_accepts_204(provider: ProviderFake) -> None:
    provider.discord_ok(PATH)

    channel(provider, username="tcowatch", avatar_url="https://img.example/a.png").send(
        samples.mixed_payload()
    )

    body = provider.last().json
    assert body["content"].startswith("**\\[FIRING:1\\] GPUIdle")
    assert body["allowed_mentions"] == {"parse": []}
    assert body["username"] == "tcowatch"
    assert body["avatar_url"] == "https://img.example/a.png"
    firing, resolved = body["embeds"]
    assert (firing["title"], firing["color"]) == ("Firing (1)", COLOR_FIRING)
    assert (resolved["title"], resolved["color"]) == ("Resolved (1)", COLOR_RESOLVED)
    assert COLOR_FIRING == 0x992D22 and COLOR_RESOLVED == 0x2ECC71
    assert "some alerts resolved" in resolved["footer"]["text"]


def test_it_accepts_200_with_wait(provider: ProviderFake) -> None:
    provider.answer(PATH, status=200, body={"id": "1"})

    channel(provider).send(samples.firing_payload())


def test_it_keeps_to_discords_limits(provider: ProviderFake) -> None:
    provider.discord_ok(PATH)

    channel(provider).send(samples.many_payload(300))

    body = provider.last().json
    assert len(body["content"]) <= CONTENT_MAX
    assert len(body["embeds"]) <= EMBEDS_MAX
    assert all(len(e["title"]) <= 256 for e in body["embeds"])
    assert all(len(e["description"]) <= EMBED_DESCRIPTION_MAX for e in body["embeds"])
    assert embed_chars(body["embeds"]) <= EMBEDS_TOTAL_MAX
    assert "more firing, see the board" in body["embeds"][0]["description"]


def test_it_honours_the_json_retry_after_on_429(provider: ProviderFake) -> None:
    provider.discord_rate_limited(PATH, retry_after=1.625, header="2")

    error = failure(provider)

    assert not error.permanent
    assert error.retry_after == 1.625
    assert "HTTP 429" in error.message


def test_it_falls_back_to_the_retry_after_header(provider: ProviderFake) -> None:
    provider.answer(PATH, status=429, body="slow down", headers={"Retry-After": "3"})

    error = failure(provider)

    assert error.retry_after == 3.0


def test_it_gives_up_on_a_deleted_webhook(provider: ProviderFake) -> None:
    provider.answer(PATH, status=404, body={"message": "Unknown Webhook", "code": 10015})

    error = failure(provider)

    assert error.permanent
    assert "webhook was deleted" in error.message


def test_it_retries_server_errors(provider: ProviderFake) -> None:
    provider.answer(PATH, status=502, body="bad gateway")

    error = failure(provider)

    assert not error.permanent
