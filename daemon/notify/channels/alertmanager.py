"""Push alerts into existing Alertmanagers: ``POST <url>/api/v2/alerts`` to every replica.

For teams that keep their Alertmanager routing: each notification becomes a JSON array of
postable alerts (``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``),
sent to **every** configured replica (Alertmanager HA does not share alerts between replicas;
never put a load balancer in front). Success only when every replica answered 2xx.

Alertmanager is stateless across restarts and resolves an alert by itself at its ``endsAt``,
so: a firing alert is sent with ``endsAt = now + resend_window``, and the notifier must
re-send it before that — the dispatcher's ``repeat_interval`` re-sends firing groups through
the outbox, so set ``repeat_interval`` for routes to this channel well under
``resend_window`` (Prometheus uses 4x its resend delay). A resolved alert is sent with its own
``endsAt`` (the time it resolved), which resolves it in Alertmanager at once.

Errors: a replica that cannot be reached, times out, answers 429 or 5xx makes the whole send
retryable (re-sending to replicas that already took it is harmless: Alertmanager merges by
label set); when every failing replica failed permanently (4xx: bad URL path, rejected alert),
the error is permanent. Messages name replicas by position (``replica 2/3``), never by URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from daemon.notify.channels.base import RateLimit, TransportError
from daemon.notify.channels.http import HttpChannel, encode_json
from daemon.notify.payload import GO_ZERO_TIME, format_go_time

logger = logging.getLogger(__name__)

API_PATH = "/api/v2/alerts"
DEFAULT_RESEND_WINDOW = timedelta(hours=5)


def postable_alerts(
    payload: Mapping[str, Any], *, now: datetime, resend_window: timedelta
) -> list[dict[str, Any]]:
    """The ``postableAlerts`` body for the alerts of an Alertmanager v4 payload (or digest).

    Firing alerts end at ``now + resend_window``; resolved ones at their ``endsAt`` (``now``
    when it is missing). Alerts without labels are skipped (Alertmanager rejects them).
    """
    alerts: list[dict[str, Any]] = []
    firing_end = format_go_time(now + resend_window)
    for alert in payload.get("alerts") or []:
        if not isinstance(alert, Mapping):
            continue
        labels = alert.get("labels")
        if not isinstance(labels, Mapping) or not labels:
            continue
        entry: dict[str, Any] = {
            "labels": {str(k): str(v) for k, v in sorted(labels.items())},
            "annotations": {
                str(k): str(v) for k, v in sorted((alert.get("annotations") or {}).items())
            },
        }
        starts_at = alert.get("startsAt")
        if starts_at and starts_at != GO_ZERO_TIME:
            entry["startsAt"] = starts_at
        if alert.get("status") == "resolved":
            ends_at = alert.get("endsAt")
            entry["endsAt"] = (
                ends_at if ends_at and ends_at != GO_ZERO_TIME else format_go_time(now)
            )
        else:
            entry["endsAt"] = firing_end
        if alert.get("generatorURL"):
            entry["generatorURL"] = alert["generatorURL"]
        alerts.append(entry)
    return alerts


class AlertmanagerChannel(HttpChannel):
    """Post alerts to every Alertmanager replica; see the module docstring."""

    kind: ClassVar[str] = "alertmanager"

    def __init__(
        self,
        *,
        name: str,
        urls: Sequence[str],
        resend_window: timedelta = DEFAULT_RESEND_WINDOW,
        timeout_seconds: float = 10.0,
        send_resolved: bool = True,
        rate_limit: RateLimit | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not urls:
            raise ValueError("alertmanager channel needs at least one replica URL")
        super().__init__(
            name=name,
            urls=urls,
            timeout_seconds=timeout_seconds,
            send_resolved=send_resolved,
            rate_limit=rate_limit,
            client=client,
            clock=clock,
        )
        self._endpoints = [url.rstrip("/") + API_PATH for url in urls]
        self._resend_window = resend_window

    def build_body(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The postable alerts for ``payload`` at the channel's clock."""
        return postable_alerts(payload, now=self.now(), resend_window=self._resend_window)

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Post ``payload``'s alerts to every replica; see ``Channel.send`` for the contract.

        Every replica is tried even after one fails. Raises one ``TransportError`` naming the
        replicas that failed: permanent only when all of those failed permanently.
        """
        alerts = self.build_body(payload)
        if not alerts:
            logger.debug("%s: nothing to post", self.label)
            return
        body = encode_json(alerts)
        headers = self.headers(idempotency_key)
        total = len(self._endpoints)
        failures: list[TransportError] = []
        for index, endpoint in enumerate(self._endpoints, start=1):
            what = f"replica {index}/{total}" if total > 1 else ""
            try:
                response = self.post(endpoint, content=body, headers=headers, what=what)
            except TransportError as exc:
                failures.append(exc)
                continue
            error = self.status_error(response, what=what)
            if error is not None:
                failures.append(error)
        if not failures:
            return
        if len(failures) == 1:
            raise failures[0]
        prefix = f"{self.label}: "
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        raise TransportError(
            f"{prefix}{len(failures)} of {total} replicas failed: "
            + "; ".join(f.message.removeprefix(prefix) for f in failures),
            permanent=all(f.permanent for f in failures),
            retry_after=max(waits) if waits else None,
        )
