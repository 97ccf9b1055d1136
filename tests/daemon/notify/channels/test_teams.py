"""The Teams channel against a local server that answers like a Workflows URL."""

from __future__ import annotations

import pytest

from daemon.notify.channels.base import TransportError
from daemon.notify.channels.http import encode_json
from daemon.notify.channels.teams import CARD_MAX_BYTES, TeamsChannel
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake

PATH = "/workflows/abc/triggers/manual/paths/invoke"
QUERY = "?api-version=1&sig=S1GNATURE-S3CRET"


def channel(provider: ProviderFake) -> TeamsChannel:
    return TeamsChannel(name="ops-teams", url=provider.url(PATH) + QUERY, clock=lambda: samples.NOW)


def failure(provider: ProviderFake) -> TransportError:
    with pytest.raises(TransportError) as caught:
        channel(provider).send(samples.firing_payload())
    assert "S1GNATURE-S3CRET" not in caught.value.message
    return caught.value


def test_it_posts_an_adaptive_card_and_accepts_202(provider: ProviderFake) -> None:
    provider.teams_accepted(PATH)

    channel(provider).send(samples.mixed_payload(), idempotency_key="k-1")

    request = provider.last()
    assert request.query == QUERY[1:]
    assert request.headers["Idempotency-Key"] == "k-1"
    body = request.json
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["body"][0]["color"] == "Attention"
    assert card["body"][0]["text"] == "[FIRING:1] GPUIdle (cluster=inference-a)"
    assert card["actions"][0]["url"] == "http://alertmanager.example:9093/alerts"
    assert card["msteams"] == {"width": "full"}


def test_it_colors_a_resolved_card_good(provider: ProviderFake) -> None:
    provider.answer(PATH, status=200, body="")

    channel(provider).send(samples.resolved_payload())

    card = provider.last().json["attachments"][0]["content"]
    assert card["body"][0]["color"] == "Good"


def test_it_caps_the_card_under_28_kb_and_says_how_many_were_cut(
    provider: ProviderFake,
) -> None:
    provider.teams_accepted(PATH)

    channel(provider).send(samples.many_payload(200, summary_chars=400))

    card = provider.last().json["attachments"][0]["content"]
    assert len(encode_json(card)) <= CARD_MAX_BYTES
    firing = card["body"][1]["text"]
    shown = firing.count("\n- ")
    assert 0 < shown < 200
    assert f"{200 - shown} more firing alerts were cut to fit the card" in firing


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_it_gives_up_on_client_errors(provider: ProviderFake, status: int) -> None:
    provider.answer(PATH, status=status, body='{"error":{"code":"DirectApiAuthorizationRequired"}}')

    error = failure(provider)

    assert error.permanent
    assert f"HTTP {status}" in error.message


def test_it_retries_429_and_5xx(provider: ProviderFake) -> None:
    provider.answer(PATH, status=429, body="", headers={"Retry-After": "12"})

    error = failure(provider)

    assert not error.permanent
    assert error.retry_after == 12.0
