"""The Alertmanager v4 webhook payload, byte for byte as Alertmanager's Go encoder writes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from daemon.notify.payload import (
    build_webhook_payload,
    encode_go_json,
    format_go_time,
    quote_meta,
)
from rules.engine import AlertInstance

FIXTURES = Path(__file__).parents[2].parent / "shared" / "fixtures"
MIXED_GROUP = FIXTURES / "alertmanager" / "webhook-v4-mixed-group.json"
START = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
ANNOTATIONS = {
    "summary": "GPU idle >30m while allocated",
    "runbook_url": "https://runbooks.example/gpu-idle",
}
PROMETHEUS_LINK = "http://prometheus.example:9090/graph?g0.expr=finops_gpu_idle%3D%3D1&g0.tab=1"


def gpu_idle(gpu: str, fingerprint: str, *, resolved_at: datetime | None = None) -> AlertInstance:
    labels = {
        "team": "ml-infra",
        "severity": "warning",
        "instance": "node-7:9400",
        "gpu": gpu,
        "cluster": "inference-a",
        "alertname": "GPUIdle",
    }
    return AlertInstance(
        fingerprint=fingerprint,
        alertname="GPUIdle",
        labels=labels,
        annotations=dict(ANNOTATIONS),
        state="firing" if resolved_at is None else "inactive",
        active_at=START - timedelta(minutes=30),
        fired_at=START,
        resolved_at=resolved_at,
    )


def mixed_group_payload() -> dict[str, Any]:
    return build_webhook_payload(
        receiver="gpu-finops",
        alerts=[
            gpu_idle("3", "25c44c8b1df3cdaa"),
            gpu_idle("5", "cfb912e31c2fa43c", resolved_at=START + timedelta(minutes=25)),
        ],
        group_labels={"cluster": "inference-a", "alertname": "GPUIdle"},
        group_key='{}/{team="ml-infra"}:{alertname="GPUIdle", cluster="inference-a"}',
        notification_reason="some alerts resolved",
        external_url="http://alertmanager.example:9093",
        now=START + timedelta(minutes=30),
        generator_url=lambda alert: PROMETHEUS_LINK,
    )


@pytest.mark.skipif(not MIXED_GROUP.exists(), reason="shared fixtures not present")
def test_it_encodes_the_mixed_group_fixture_byte_for_byte() -> None:
    fixture = MIXED_GROUP.read_bytes().rstrip()
    # The hand-written fixture leaves ">" raw in "GPU idle >30m" although it escapes "&"; Go's
    # json.Encoder (HTML escaping on, as Alertmanager uses it) writes ">" as \u003e too.
    expected = fixture.replace(b">", b"\\u003e") + b"\n"

    encoded = encode_go_json(mixed_group_payload())

    assert encoded == expected
    assert json.loads(encoded) == json.loads(fixture)


def test_it_encodes_the_same_bytes_after_a_storage_round_trip_in_any_key_order() -> None:
    payload = mixed_group_payload()
    shuffled = json.loads(json.dumps(payload, sort_keys=True))
    shuffled["alerts"] = [dict(reversed(list(alert.items()))) for alert in shuffled["alerts"]]

    assert list(shuffled) != list(payload)
    assert encode_go_json(shuffled) == encode_go_json(payload)


def test_it_marks_the_group_firing_while_any_alert_fires() -> None:
    payload = mixed_group_payload()

    assert payload["status"] == "firing"
    alerts = payload["alerts"]
    assert isinstance(alerts, list)
    assert [alert["status"] for alert in alerts] == ["firing", "resolved"]
    assert [alert["endsAt"] for alert in alerts] == ["0001-01-01T00:00:00Z", "2026-08-20T10:25:00Z"]


def test_it_marks_the_group_resolved_when_every_alert_is_resolved() -> None:
    now = START + timedelta(hours=1)
    resolved = gpu_idle("3", "25c44c8b1df3cdaa", resolved_at=START + timedelta(minutes=40))
    unstamped = gpu_idle("5", "cfb912e31c2fa43c", resolved_at=START)
    unstamped.resolved_at = None
    unstamped.state = "inactive"

    payload = build_webhook_payload(
        receiver="r",
        alerts=[resolved, unstamped],
        group_labels={},
        group_key="{}:{}",
        notification_reason="all alerts resolved",
        external_url="http://tcowatch.example",
        now=now,
    )

    assert payload["status"] == "resolved"
    assert [a["endsAt"] for a in payload["alerts"]] == [
        "2026-08-20T10:40:00Z",
        "2026-08-20T11:00:00Z",
    ]


def test_it_keeps_only_label_pairs_shared_by_every_alert_as_common() -> None:
    payload = mixed_group_payload()

    assert "gpu" not in payload["commonLabels"]
    assert payload["commonLabels"] == {
        "alertname": "GPUIdle",
        "cluster": "inference-a",
        "instance": "node-7:9400",
        "severity": "warning",
        "team": "ml-infra",
    }
    assert payload["commonAnnotations"] == {
        "runbook_url": "https://runbooks.example/gpu-idle",
        "summary": "GPU idle >30m while allocated",
    }


def test_it_links_each_alert_to_the_daemon_alert_page_by_default() -> None:
    alert = gpu_idle("3", "25c44c8b1df3cdaa")
    alert.alertname = "GPU Idle&Co"

    payload = build_webhook_payload(
        receiver="r",
        alerts=[alert],
        group_labels={},
        group_key="{}:{}",
        notification_reason="first notification",
        external_url="http://tcowatch.example:9400/",
        now=START,
    )

    assert payload["alerts"][0]["generatorURL"] == (
        "http://tcowatch.example:9400/alerts?alertname=GPU+Idle%26Co"
    )
    assert payload["externalURL"] == "http://tcowatch.example:9400/"
    assert payload["version"] == "4"
    assert payload["truncatedAlerts"] == 0


def test_it_escapes_the_receiver_like_go_quote_meta() -> None:
    assert quote_meta("web.hook") == "web\\.hook"
    assert quote_meta(r"a\.+*?()|[]{}^$z") == r"a\\\.\+\*\?\(\)\|\[\]\{\}\^\$z"
    assert quote_meta("plain-name_1") == "plain-name_1"
    encoded = encode_go_json({"receiver": quote_meta("web.hook")})
    assert encoded == b'{"receiver":"web\\\\.hook"}\n'


def test_it_refuses_to_notify_a_pending_alert() -> None:
    alert = gpu_idle("3", "25c44c8b1df3cdaa")
    alert.state = "pending"

    with pytest.raises(ValueError, match="pending"):
        build_webhook_payload(
            receiver="r",
            alerts=[alert],
            group_labels={},
            group_key="{}:{}",
            notification_reason="first notification",
            external_url="http://x",
            now=START,
        )


def test_it_formats_times_like_go_rfc3339nano() -> None:
    assert format_go_time(START) == "2026-08-20T10:00:00Z"
    assert format_go_time(START.replace(microsecond=500000)) == "2026-08-20T10:00:00.5Z"
    assert format_go_time(START.replace(microsecond=123)) == "2026-08-20T10:00:00.000123Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_go_time(datetime(2026, 8, 20, 12, 0, tzinfo=plus_two)) == "2026-08-20T10:00:00Z"
    assert format_go_time(datetime(2026, 8, 20, 10, 0)) == "2026-08-20T10:00:00Z"


def test_it_escapes_html_characters_and_line_separators_like_go() -> None:
    payload = {"receiver": "r", "commonAnnotations": {"z": "a<b>&c\u2028\u2029", "a": "café\n"}}

    encoded = encode_go_json(payload)

    assert (
        encoded
        == (
            '{"receiver":"r","commonAnnotations":{"a":"café\\n",'
            '"z":"a\\u003cb\\u003e\\u0026c\\u2028\\u2029"}}\n'
        ).encode()
    )


def test_it_builds_plain_json_data() -> None:
    payload = mixed_group_payload()

    assert json.loads(json.dumps(payload)) == payload
