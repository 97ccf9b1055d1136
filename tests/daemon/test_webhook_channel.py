"""The generic webhook channel against a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import socket
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from daemon.notify.channels import CHANNELS, load_channel_class
from daemon.notify.channels.base import TransportError
from daemon.notify.channels.webhook import WebhookChannel, parse_retry_after
from daemon.notify.payload import encode_go_json

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
HOOK_PATH = "/hooks/T0KEN-s3cr3t"
PAYLOAD: dict[str, Any] = {
    "receiver": "ops",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "GPUIdle", "gpu": "3"},
            "annotations": {"summary": "GPU idle >30m & allocated"},
            "startsAt": "2026-08-20T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://tcowatch.example/alerts?alertname=GPUIdle",
            "fingerprint": "25c44c8b1df3cdaa",
        }
    ],
    "notification_reason": "first notification",
    "groupLabels": {"alertname": "GPUIdle"},
    "commonLabels": {"alertname": "GPUIdle", "gpu": "3"},
    "commonAnnotations": {"summary": "GPU idle >30m & allocated"},
    "routeLabels": {},
    "externalURL": "http://tcowatch.example",
    "version": "4",
    "groupKey": '{}:{alertname="GPUIdle"}',
    "truncatedAlerts": 0,
}


def channel_for(httpserver: HTTPServer, **kwargs: Any) -> WebhookChannel:
    return WebhookChannel(
        name="ops-hook", url=httpserver.url_for(HOOK_PATH), clock=lambda: NOW, **kwargs
    )


def send_expecting_error(channel: WebhookChannel) -> TransportError:
    with pytest.raises(TransportError) as caught:
        channel.send(PAYLOAD)
    return caught.value


def test_it_posts_the_go_encoded_payload(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request(HOOK_PATH, method="POST").respond_with_data("", status=200)
    channel = channel_for(httpserver)

    channel.send(PAYLOAD)

    request, _ = httpserver.log[0]
    assert request.get_data() == encode_go_json(PAYLOAD)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("tcowatch/")
    assert "X-Tcowatch-Signature" not in request.headers
    assert "X-Tcowatch-Timestamp" not in request.headers
    channel.close()


def test_it_signs_the_body_with_a_verifiable_hmac(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request(HOOK_PATH, method="POST").respond_with_data("", status=204)
    channel = channel_for(httpserver, secret="shh-it-is-a-secret")

    channel.send(PAYLOAD)

    request, _ = httpserver.log[0]
    timestamp = request.headers["X-Tcowatch-Timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    body = request.get_data()
    expected = hmac.new(
        b"shh-it-is-a-secret", f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Tcowatch-Signature"] == f"sha256={expected}"
    channel.close()


def test_it_changes_the_signature_when_the_body_changes(httpserver: HTTPServer) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=200)
    channel = channel_for(httpserver, secret="k")

    channel.send(PAYLOAD)
    channel.send({**PAYLOAD, "status": "resolved"})

    first, second = (entry[0].headers["X-Tcowatch-Signature"] for entry in httpserver.log)
    assert first != second
    channel.close()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_retries_server_errors(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request(HOOK_PATH).respond_with_data("upstream down", status=status)

    error = send_expecting_error(channel_for(httpserver))

    assert not error.permanent
    assert error.retry_after is None
    assert f"HTTP {status}" in error.message
    assert "ops-hook" in error.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_it_gives_up_on_client_errors_and_redirects(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request(HOOK_PATH).respond_with_data("nope", status=status)

    error = send_expecting_error(channel_for(httpserver))

    assert error.permanent
    assert f"HTTP {status}" in error.message


def test_it_honours_retry_after_seconds_on_429(httpserver: HTTPServer) -> None:
    httpserver.expect_request(HOOK_PATH).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "30"}
    )

    error = send_expecting_error(channel_for(httpserver))

    assert not error.permanent
    assert error.retry_after == 30.0


def test_it_honours_retry_after_as_an_http_date_on_429(httpserver: HTTPServer) -> None:
    httpserver.expect_request(HOOK_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "Thu, 20 Aug 2026 10:02:00 GMT"}
    )

    error = send_expecting_error(channel_for(httpserver))

    assert not error.permanent
    assert error.retry_after == 120.0


def test_it_retries_429_without_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_request(HOOK_PATH).respond_with_data("", status=429)

    error = send_expecting_error(channel_for(httpserver))

    assert not error.permanent
    assert error.retry_after is None


def test_it_reads_retry_after_values_defensively() -> None:
    assert parse_retry_after("2.5", NOW) == 2.5
    assert parse_retry_after("-4", NOW) == 0.0
    assert parse_retry_after("Thu, 20 Aug 2026 09:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_it_never_puts_the_url_in_error_messages(httpserver: HTTPServer) -> None:
    def echo_url(request: Request) -> Response:
        return Response(f"no hook at {request.url} ({request.full_path})", status=404)

    httpserver.expect_request(HOOK_PATH).respond_with_handler(echo_url)
    channel = WebhookChannel(
        name="ops-hook", url=httpserver.url_for(HOOK_PATH) + "?key=qu3ry-t0ken", clock=lambda: NOW
    )

    error = send_expecting_error(channel)

    assert error.permanent
    assert "ops-hook" in error.message
    assert "T0KEN-s3cr3t" not in error.message
    assert "qu3ry-t0ken" not in error.message
    assert "T0KEN-s3cr3t" not in str(error)


def test_it_retries_a_refused_connection_without_naming_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = WebhookChannel(name="ops-hook", url=f"http://127.0.0.1:{port}/hooks/T0KEN-s3cr3t")

    error = send_expecting_error(channel)

    assert not error.permanent
    assert "ops-hook" in error.message
    assert "T0KEN" not in error.message
    channel.close()


def test_it_retries_a_timeout() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = httpx.Client(transport=httpx.MockTransport(time_out))
    channel = WebhookChannel(
        name="ops-hook", url="https://hooks.example/T0KEN", timeout_seconds=2, client=client
    )

    error = send_expecting_error(channel)

    assert not error.permanent
    assert "timed out after 2s" in error.message
    assert "T0KEN" not in error.message
    client.close()


def test_it_gives_up_on_a_url_without_http_scheme() -> None:
    channel = WebhookChannel(name="ops-hook", url="ftp://hooks.example/T0KEN")

    error = send_expecting_error(channel)

    assert error.permanent
    assert "T0KEN" not in error.message
    channel.close()


def test_it_registers_the_webhook_channel_kind() -> None:
    assert load_channel_class("webhook") is WebhookChannel
    assert "webhook" in CHANNELS
    with pytest.raises(KeyError, match="known: webhook"):
        load_channel_class("carrier-pigeon")


def test_it_keeps_the_url_out_of_its_repr() -> None:
    channel = WebhookChannel(name="ops-hook", url="https://hooks.example/T0KEN")

    assert "T0KEN" not in repr(channel)
    assert channel.send_resolved is True
