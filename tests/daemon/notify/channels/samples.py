"""Alertmanager v4 payloads for the channel tests: firing, resolved, mixed, digest, huge."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from daemon.notify.payload import GO_ZERO_TIME, common_pairs
from rules.fingerprint import fingerprint
from tests.conftest import SHARED_FIXTURES

NOW = datetime(2026, 8, 20, 10, 30, tzinfo=UTC)
EXTERNAL_URL = "http://tcowatch.example:8080"
BOARD_URL = f"{EXTERNAL_URL}/alerts"


def alert(
    labels: dict[str, str],
    *,
    status: str = "firing",
    summary: str = "GPU idle while holding memory",
    starts_at: str = "2026-08-20T10:00:00Z",
    ends_at: str = "2026-08-20T10:25:00Z",
    runbook_url: str | None = None,
) -> dict[str, Any]:
    annotations = {"summary": summary}
    if runbook_url:
        annotations["runbook_url"] = runbook_url
    return {
        "status": status,
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        "startsAt": starts_at,
        "endsAt": ends_at if status == "resolved" else GO_ZERO_TIME,
        "generatorURL": f"{EXTERNAL_URL}/alerts?alertname={labels.get('alertname', '')}",
        "fingerprint": fingerprint(labels),
    }


def payload(
    alerts: list[dict[str, Any]],
    *,
    reason: str = "first notification",
    group_labels: dict[str, str] | None = None,
    digest_of: int | None = None,
    external_url: str = EXTERNAL_URL,
) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    names = sorted({a["labels"]["alertname"] for a in alerts})
    groups = group_labels if group_labels is not None else {"alertname": names[0]}
    result: dict[str, Any] = {
        "receiver": "tcowatch",
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "notification_reason": reason,
        "groupLabels": groups,
        "commonLabels": common_pairs([a["labels"] for a in alerts]),
        "commonAnnotations": common_pairs([a["annotations"] for a in alerts]),
        "routeLabels": {},
        "externalURL": external_url,
        "version": "4",
        "groupKey": "{}:" + "{" + ", ".join(f'{k}="{v}"' for k, v in groups.items()) + "}",
        "truncatedAlerts": 0,
    }
    if digest_of is not None:
        result["digestOf"] = digest_of
    return result


def gpu_idle(gpu: str, **kwargs: Any) -> dict[str, Any]:
    labels = {"alertname": "GpuIdle", "gpu": gpu, "node": "node-7", "severity": "warning"}
    return alert(labels, **kwargs)


def firing_payload() -> dict[str, Any]:
    return payload(
        [
            gpu_idle("3", runbook_url="https://runbooks.example/gpu-idle"),
            gpu_idle("4", summary="GPU 4 idle: 2% busy & <5% power"),
        ]
    )


def resolved_payload() -> dict[str, Any]:
    return payload(
        [gpu_idle("3", status="resolved"), gpu_idle("4", status="resolved")],
        reason="all alerts resolved",
    )


def mixed_payload() -> dict[str, Any]:
    """The reference's mixed group (one firing, one resolved), as Alertmanager sends it."""
    path = SHARED_FIXTURES / "alertmanager" / "webhook-v4-mixed-group.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def digest_payload() -> dict[str, Any]:
    cache = alert(
        {"alertname": "CacheHitRateLow", "model": "llama-70b", "severity": "warning"},
        summary="prefix-cache hit rate 12% < 30%",
    )
    budget = alert(
        {"alertname": "BudgetForecast", "budget": "gpu-cloud", "severity": "critical"},
        status="resolved",
        summary="forecast 104% of the monthly budget",
    )
    return payload(
        [gpu_idle("3"), cache, budget],
        reason="digest of 3 notifications",
        group_labels={},
        digest_of=3,
    )


def many_payload(count: int, *, summary_chars: int = 300, text: str = "x") -> dict[str, Any]:
    """``count`` firing alerts with long summaries (for size caps)."""
    summary = (text * summary_chars)[:summary_chars]
    return payload([gpu_idle(str(i), summary=f"{i}: {summary}") for i in range(count)])
