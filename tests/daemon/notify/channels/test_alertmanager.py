"""The alertmanager channel: POST /api/v2/alerts to every replica, endsAt rules, failures."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest

from daemon.notify.channels.alertmanager import AlertmanagerChannel, postable_alerts
from daemon.notify.channels.base import TransportError
from tests.conftest import SHARED_FIXTURES
from tests.daemon.notify.channels import samples
from tests.daemon.notify.providers import ProviderFake


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/am-s3cret"


def channel(provider: ProviderFake, *bases: str, **kwargs: Any) -> AlertmanagerChannel:
    urls = [b if b.startswith("http") else provider.url(b) for b in bases]
    return AlertmanagerChannel(name="am", urls=urls, clock=lambda: samples.NOW, **kwargs)


def test_it_posts_the_same_alerts_to_every_replica(provider: ProviderFake) -> None:
    provider.alertmanager_ok("/am1")
    provider.alertmanager_ok("/am2/")

    channel(provider, "/am1", "/am2/", resend_window=timedelta(minutes=20)).send(
        samples.mixed_payload(), idempotency_key="k"
    )

    first, second = provider.requests
    assert (first.path, second.path) == ("/am1/api/v2/alerts", "/am2/api/v2/alerts")
    assert first.body == second.body
    firing, resolved = first.json
    assert firing["labels"]["gpu"] == "3"
    assert firing["startsAt"] == "2026-08-20T10:00:00Z"
    assert firing["endsAt"] == "2026-08-20T10:50:00Z"  # now 10:30 + 20m
    assert resolved["labels"]["gpu"] == "5"
    assert resolved["endsAt"] == "2026-08-20T10:25:00Z"
    assert set(firing) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def test_it_matches_the_reference_postable_alert_shape() -> None:
    expected = json.loads(
        (SHARED_FIXTURES / "alertmanager" / "api-v2-postable-alerts.json").read_text()
    )
    source = dict(expected[0])
    payload = {
        "alerts": [
            {
                "status": "resolved",
                "labels": source["labels"],
                "annotations": source["annotations"],
                "startsAt": source["startsAt"],
                "endsAt": source["endsAt"],
                "generatorURL": source["generatorURL"],
                "fingerprint": "x",
            }
        ]
    }

    assert postable_alerts(payload, now=samples.NOW, resend_window=timedelta(hours=1)) == expected


def test_it_skips_alerts_without_labels() -> None:
    payload = {"alerts": [{"status": "firing", "labels": {}}, "junk"]}

    assert postable_alerts(payload, now=samples.NOW, resend_window=timedelta(hours=1)) == []


def test_it_succeeds_only_when_every_replica_took_it(provider: ProviderFake) -> None:
    provider.alertmanager_ok("/am1")
    provider.answer("/am2/api/v2/alerts", status=503, body="unavailable")

    with pytest.raises(TransportError) as caught:
        channel(provider, "/am1", "/am2").send(samples.firing_payload())

    assert not caught.value.permanent
    assert caught.value.message == "alertmanager am: replica 2/2: HTTP 503: unavailable"
    assert len(provider.requests) == 2


def test_it_is_retryable_when_any_failure_is(provider: ProviderFake) -> None:
    provider.answer("/am1/api/v2/alerts", status=400, body="bad alert")

    with pytest.raises(TransportError) as caught:
        channel(provider, "/am1", refused_url()).send(samples.firing_payload())

    error = caught.value
    assert not error.permanent
    assert error.message.startswith(
        "alertmanager am: 2 of 2 replicas failed: replica 1/2: HTTP 400"
    )
    assert "replica 2/2: ConnectError" in error.message
    assert "am-s3cret" not in error.message


def test_it_is_permanent_when_every_failure_is(provider: ProviderFake) -> None:
    provider.answer("/am1/api/v2/alerts", status=404, body="not found")
    provider.answer("/am2/api/v2/alerts", status=400, body="bad alert")

    with pytest.raises(TransportError) as caught:
        channel(provider, "/am1", "/am2").send(samples.firing_payload())

    assert caught.value.permanent


def test_it_names_a_single_replica_without_a_position(provider: ProviderFake) -> None:
    provider.answer("/am1/api/v2/alerts", status=429, body="", headers={"Retry-After": "5"})

    with pytest.raises(TransportError) as caught:
        channel(provider, "/am1").send(samples.firing_payload())

    assert caught.value.message == "alertmanager am: HTTP 429"
    assert caught.value.retry_after == 5.0


def test_it_times_out_per_replica(provider: ProviderFake) -> None:
    provider.hang("/am1/api/v2/alerts")

    with pytest.raises(TransportError) as caught:
        channel(provider, "/am1", timeout_seconds=0.2).send(samples.firing_payload())

    assert not caught.value.permanent
    assert "timed out after 0.2s" in caught.value.message


def test_it_has_no_rate_limit_by_default() -> None:
    assert AlertmanagerChannel(name="am", urls=["http://am:9093"]).rate_limit is None
    with pytest.raises(ValueError, match="at least one"):
        AlertmanagerChannel(name="am", urls=[])
