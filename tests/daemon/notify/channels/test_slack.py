"""The Slack channel against a local server that answers like a Slack incoming webhook."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.notify.channels.base import TransportError
from daemon.notify.channels.slack import FALLBACK_MAX, HEADER_MAX, SECTION_MAX, SlackChannel
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake

PATH = "/services/T000/B000/XXXXSECRETXXXX"


def channel(provider: ProviderFake, **kwargs: Any) -> SlackChannel:
    return SlackChannel(
        name="ops-slack", url=provider.url(PATH), clock=lambda: samples.NOW, **kwargs
    )


def failure(provider: ProviderFake, **kwargs: Any) -> TransportError:
    with pytest.raises(TransportError) as caught:
        channel(provider, **kwargs).send(samples.firing_payload())
    assert "XXXXSECRETXXXX" not in caught.value.message
    assert caught.value.message.startswith("slack ops-slack: ")
    return caught.value


def test_it_posts_text_and_blocks_and_accepts_ok(provider: ProviderFake) -> None:
    provider.slack_ok(PATH)

    channel(provider).send(samples.mixed_payload(), idempotency_key="k-123")

    request = provider.last()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "k-123"
    body = request.json
    assert body["text"] == "[FIRING:1] GPUIdle (cluster=inference-a)"
    assert [block["type"] for block in body["blocks"]] == [
        "header",
        "section",
        "section",
        "context",
    ]
    assert body["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "[FIRING:1] GPUIdle (cluster=inference-a)",
        "emoji": True,
    }
    assert "Firing (1)" in body["blocks"][1]["text"]["text"]
    assert "Resolved (1)" in body["blocks"][2]["text"]["text"]
    assert "<http://alertmanager.example:9093/alerts|" in body["blocks"][3]["elements"][0]["text"]


def test_it_treats_a_2xx_without_ok_as_a_retryable_failure(provider: ProviderFake) -> None:
    provider.answer(PATH, body="<html>proxy login</html>")

    error = failure(provider)

    assert not error.permanent
    assert "not 'ok'" in error.message


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [
        (400, "invalid_token", "revoked"),
        (400, "no_service", "removed"),
        (400, "invalid_payload", "format"),
        (403, "action_prohibited", "admin"),
        (404, "channel_not_found", "deleted"),
        (410, "channel_is_archived", "archived"),
    ],
)
def test_it_gives_up_on_dead_hooks_with_the_reason(
    provider: ProviderFake, status: int, code: str, hint: str
) -> None:
    provider.slack_error(PATH, status, code)

    error = failure(provider)

    assert error.permanent
    assert f"HTTP {status}: {code}" in error.message
    assert hint in error.message


def test_it_honours_retry_after_on_429(provider: ProviderFake) -> None:
    provider.answer(PATH, status=429, body="rate_limited", headers={"Retry-After": "7"})

    error = failure(provider)

    assert not error.permanent
    assert error.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_retries_server_errors(provider: ProviderFake, status: int) -> None:
    provider.slack_error(PATH, status, "rollup_error")

    error = failure(provider)

    assert not error.permanent
    assert f"HTTP {status}" in error.message


def test_it_retries_a_timeout(provider: ProviderFake) -> None:
    provider.hang(PATH)

    error = failure(provider, timeout_seconds=0.2)

    assert not error.permanent
    assert "timed out after 0.2s" in error.message


def test_it_caps_the_title_and_the_sections(provider: ProviderFake) -> None:
    provider.slack_ok(PATH)
    payload = samples.many_payload(60)
    payload["groupLabels"] = {"alertname": "GpuIdle", "cluster": "c" * 3000}

    channel(provider).send(payload)

    body = provider.last().json
    assert len(body["text"]) <= FALLBACK_MAX
    assert len(body["blocks"][0]["text"]["text"]) <= HEADER_MAX
    section = body["blocks"][1]["text"]["text"]
    assert len(section) <= SECTION_MAX
    assert "more firing, see the board" in section
