"""The Alertmanager v4 webhook payload: building it from alert instances and encoding it as Go does.

Receivers written for Alertmanager (``notify/webhook/webhook.go``) parse this body unchanged: the
top-level and per-alert keys come in Go struct order, label and annotation maps in sorted order,
``&``, ``<`` and ``>`` escaped as ``\\u0026`` etc., firing alerts carry the zero ``endsAt``
``0001-01-01T00:00:00Z`` and the receiver name is ``regexp.QuoteMeta``-escaped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from daemon.store.models import as_utc
from rules.engine import AlertInstance

logger = logging.getLogger(__name__)

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
"""How Go prints ``time.Time{}``; Alertmanager sends it as ``endsAt`` of firing alerts."""

PAYLOAD_KEYS: tuple[str, ...] = (
    "receiver",
    "status",
    "alerts",
    "notification_reason",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "routeLabels",
    "externalURL",
    "version",
    "groupKey",
    "truncatedAlerts",
)
"""Top-level keys in the order Alertmanager's ``webhook.Message`` struct encodes them."""

ALERT_KEYS: tuple[str, ...] = (
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
)
"""Per-alert keys in the order of ``template.Alert``."""

_QUOTE_META = frozenset("\\.+*?()|[]{}^$")
_GO_HTML_ESCAPES = {
    "&": "\\u0026",
    "<": "\\u003c",
    ">": "\\u003e",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def quote_meta(text: str) -> str:
    """Escape ``text`` like Go's ``regexp.QuoteMeta`` (``web.hook`` -> ``web\\.hook``)."""
    return "".join("\\" + char if char in _QUOTE_META else char for char in text)


def format_go_time(moment: datetime) -> str:
    """Format ``moment`` in UTC like Go's ``time.Time`` JSON (RFC 3339, trailing zeros trimmed).

    Naive input is taken as UTC. Whole seconds print as ``2026-08-20T10:00:00Z``; otherwise the
    fraction keeps its significant digits (``...:00.5Z``).
    """
    utc = as_utc(moment)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def alertmanager_generator_url(external_url: str) -> Callable[[AlertInstance], str]:
    """Return the default ``generatorURL`` builder: ``<external_url>/alerts?alertname=<name>``."""
    base = external_url.rstrip("/")

    def build(alert: AlertInstance) -> str:
        return f"{base}/alerts?{urlencode({'alertname': alert.alertname})}"

    return build


def common_pairs(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Return the name/value pairs present with the same value in every map (empty for none)."""
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {name: value for name, value in common.items() if other.get(name) == value}
    return _sorted_map(common)


def build_webhook_payload(
    *,
    receiver: str,
    alerts: Sequence[AlertInstance],
    group_labels: Mapping[str, str],
    group_key: str,
    notification_reason: str,
    external_url: str,
    now: datetime,
    generator_url: Callable[[AlertInstance], str] | None = None,
    route_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the Alertmanager v4 webhook message for one notification of a group.

    ``alerts`` keep the caller's order and must be ``firing`` or ``inactive`` (resolved) ones;
    a ``pending`` alert is never notified, so passing one raises ``ValueError``. ``startsAt`` is
    ``fired_at`` (``active_at`` if unset), ``endsAt`` of a resolved alert is ``resolved_at``
    (``now`` if unset). ``generator_url`` overrides the default link to this daemon's alert page.
    The result is plain JSON data (strings, ints, dicts, lists), safe to store in the outbox.
    """
    link = generator_url or alertmanager_generator_url(external_url)
    encoded = [_alert_entry(alert, link, now) for alert in alerts]
    firing = any(entry["status"] == "firing" for entry in encoded)
    return {
        "receiver": quote_meta(receiver),
        "status": "firing" if firing else "resolved",
        "alerts": encoded,
        "notification_reason": notification_reason,
        "groupLabels": _sorted_map(group_labels),
        "commonLabels": common_pairs([alert.labels for alert in alerts]),
        "commonAnnotations": common_pairs([alert.annotations for alert in alerts]),
        "routeLabels": _sorted_map(route_labels or {}),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def encode_go_json(payload: Mapping[str, Any]) -> bytes:
    """Encode a webhook payload byte for byte as Go's ``json.Encoder`` would.

    Known top-level and per-alert keys come first in struct order (unknown ones after, sorted);
    every other map is sorted by key, so a payload read back from storage in any key order
    encodes the same. Raises ``TypeError`` for values JSON cannot represent.
    """
    text = json.dumps(
        _go_order(payload),
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )
    # Structural JSON never contains these characters, so they only occur inside strings.
    for raw, escaped in _GO_HTML_ESCAPES.items():
        text = text.replace(raw, escaped)
    return (text + "\n").encode("utf-8")


def _alert_entry(
    alert: AlertInstance, link: Callable[[AlertInstance], str], now: datetime
) -> dict[str, Any]:
    if alert.state == "firing":
        status, ends_at = "firing", GO_ZERO_TIME
    elif alert.state == "inactive":
        status, ends_at = "resolved", format_go_time(alert.resolved_at or now)
    else:
        raise ValueError(
            f"alert {alert.alertname} ({alert.fingerprint}) is {alert.state!r}; "
            "only firing or resolved alerts are notified"
        )
    return {
        "status": status,
        "labels": _sorted_map(alert.labels),
        "annotations": _sorted_map(alert.annotations),
        "startsAt": format_go_time(alert.fired_at or alert.active_at),
        "endsAt": ends_at,
        "generatorURL": link(alert),
        "fingerprint": alert.fingerprint,
    }


def _sorted_map(values: Mapping[str, str]) -> dict[str, str]:
    return {name: values[name] for name in sorted(values)}


def _struct_keys(value: Mapping[str, Any], order: tuple[str, ...]) -> list[str]:
    known = [key for key in order if key in value]
    return known + sorted(key for key in value if key not in order)


def _sorted_deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted_deep(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_deep(item) for item in value]
    return value


def _alert_order(alert: Any) -> Any:
    if not isinstance(alert, Mapping):
        return _sorted_deep(alert)
    return {key: _sorted_deep(alert[key]) for key in _struct_keys(alert, ALERT_KEYS)}


def _go_order(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level and alert keys in struct order (unknown ones after, sorted); maps sorted."""
    ordered: dict[str, Any] = {}
    for key in _struct_keys(payload, PAYLOAD_KEYS):
        value = payload[key]
        if key == "alerts" and isinstance(value, list | tuple):
            ordered[key] = [_alert_order(alert) for alert in value]
        else:
            ordered[key] = _sorted_deep(value)
    return ordered


__all__ = [
    "ALERT_KEYS",
    "GO_ZERO_TIME",
    "PAYLOAD_KEYS",
    "alertmanager_generator_url",
    "build_webhook_payload",
    "common_pairs",
    "encode_go_json",
    "format_go_time",
    "quote_meta",
]
