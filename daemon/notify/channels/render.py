"""Chat messages from the Alertmanager v4 payload, through per-channel Jinja2 templates.

Each chat channel has a template ``daemon/notify/templates/<kind>.j2`` that sets these
top-level variables (``{% set title %}...{% endset %}``), which the channel assembles into its
provider's JSON: ``title`` (one line), ``firing`` and ``resolved`` (the two sections, empty when
there is nothing in them), ``footer`` (reason and the link to the board) and ``text`` (the
whole message, for providers that take one markdown text).

Templates see: ``status`` (``firing``/``resolved``), ``reason`` (``notification_reason``),
``alertname`` (shared by all alerts, else empty), ``group_labels`` (without ``alertname``),
``common_labels`` (labels every alert shares, without ``alertname``), ``firing_alerts`` and
``resolved_alerts`` (lists of alerts with ``name``, ``labels``, ``extra_labels`` (labels not
shared by all), ``annotations``, ``summary``, ``severity``, ``starts_at``, ``ends_at``,
``generator_url``, ``runbook_url``, ``fingerprint``), ``firing_total``/``resolved_total`` (counts
before any were cut to fit), ``omitted_firing``/``omitted_resolved`` (cut to fit the provider's
size limit), ``truncated_alerts`` (cut upstream), ``digest_of`` (number of notifications a
rate-limit digest folded, else ``None``) and ``board_url`` (``externalURL`` + ``/alerts``, or
empty). Filters: ``labels`` (``k=v, k=v``), ``time`` (``2026-08-20 10:00 UTC``), ``slack``
(escape ``& < >``), ``md`` (backslash-escape Markdown), ``html`` (escape ``& < >`` as entities).

Templates run in Jinja2's immutable sandbox with autoescape off (chat text, not HTML; each
template escapes its provider's markup with the filters above). Error contract:
``render_message`` never raises for odd payload data (missing keys read as empty); if a
template itself fails, it logs the error and returns a plain fallback message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import PackageLoader, StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

logger = logging.getLogger(__name__)

SUMMARY_MAX = 500
"""Characters of one alert's summary shown; longer ones are cut with an ellipsis."""
LABEL_VALUE_MAX = 200
ELLIPSIS = "\u2026"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert as templates see it."""

    status: str
    name: str
    labels: dict[str, str]
    extra_labels: dict[str, str]
    annotations: dict[str, str]
    summary: str
    severity: str
    starts_at: str
    ends_at: str
    generator_url: str
    runbook_url: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A webhook payload read for rendering (tolerant of missing or odd keys)."""

    status: str
    reason: str
    alertname: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    firing: tuple[AlertView, ...]
    resolved: tuple[AlertView, ...]
    board_url: str
    truncated_alerts: int
    digest_of: int | None

    @property
    def alert_count(self) -> int:
        """Firing plus resolved alerts."""
        return len(self.firing) + len(self.resolved)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Notification:
        """Read an Alertmanager v4 payload (or a digest of several, with ``digestOf``)."""
        raw_alerts = payload.get("alerts")
        alerts = [a for a in raw_alerts if isinstance(a, Mapping)] if raw_alerts else []
        label_sets = [_str_map(a.get("labels")) for a in alerts]
        common = _common(label_sets)
        views = [
            _alert_view(a, labels, common) for a, labels in zip(alerts, label_sets, strict=True)
        ]
        firing = tuple(v for v in views if v.status != "resolved")
        resolved = tuple(v for v in views if v.status == "resolved")
        names = {v.name for v in views}
        external = str(payload.get("externalURL") or "").rstrip("/")
        digest = payload.get("digestOf")
        group = _str_map(payload.get("groupLabels"))
        return cls(
            status="firing" if firing else "resolved",
            reason=str(payload.get("notification_reason") or ""),
            alertname=names.pop() if len(names) == 1 else "",
            group_labels={k: v for k, v in group.items() if k != "alertname"},
            common_labels={k: v for k, v in common.items() if k != "alertname"},
            firing=firing,
            resolved=resolved,
            board_url=f"{external}/alerts" if external else "",
            truncated_alerts=_int(payload.get("truncatedAlerts")),
            digest_of=(_int(digest) or None) if digest is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered message: what the template set, and how many alerts it shows and cut."""

    title: str
    text: str
    firing: str
    resolved: str
    footer: str
    shown: int
    omitted: int


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): _cap(str(v), LABEL_VALUE_MAX) for k, v in sorted(value.items())}


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _alert_view(
    alert: Mapping[str, Any], labels: dict[str, str], common: Mapping[str, str]
) -> AlertView:
    annotations = _str_map(alert.get("annotations"))
    name = labels.get("alertname", "")
    summary = annotations.get("summary") or annotations.get("description") or name
    ends_at = str(alert.get("endsAt") or "")
    return AlertView(
        status="resolved" if alert.get("status") == "resolved" else "firing",
        name=name or "alert",
        labels=labels,
        extra_labels={k: v for k, v in labels.items() if k != "alertname" and common.get(k) != v},
        annotations=annotations,
        summary=_cap(" ".join(summary.split()), SUMMARY_MAX),
        severity=labels.get("severity", ""),
        starts_at=str(alert.get("startsAt") or ""),
        ends_at="" if ends_at == GO_ZERO_TIME else ends_at,
        generator_url=str(alert.get("generatorURL") or ""),
        runbook_url=annotations.get("runbook_url", ""),
        fingerprint=str(alert.get("fingerprint") or ""),
    )


# ---------------------------------------------------------------------------------------
# filters


def format_labels(labels: Any) -> str:
    """``{"gpu": "3", "node": "n1"}`` -> ``gpu=3, node=n1``."""
    if not isinstance(labels, Mapping):
        return ""
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def format_time(value: Any) -> str:
    """An RFC 3339 time as ``2026-08-20 10:00 UTC`` (seconds shown when not zero)."""
    text = str(value or "")
    if not text or text == GO_ZERO_TIME:
        return ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    pattern = "%Y-%m-%d %H:%M:%S UTC" if moment.second else "%Y-%m-%d %H:%M UTC"
    return moment.strftime(pattern)


def escape_slack(value: Any) -> str:
    """Slack mrkdwn control characters: ``&``, ``<``, ``>`` as ``&amp;`` etc."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MARKDOWN_SPECIAL = "\\*_~`|[]"


def escape_markdown(value: Any) -> str:
    """Backslash-escape Markdown syntax (Discord): ``\\ * _ ~ ` | [ ]``."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in str(value))


def escape_html(value: Any) -> str:
    """``&``, ``<``, ``>`` as HTML entities (Feishu ``lark_md``)."""
    return escape_slack(value)


# ---------------------------------------------------------------------------------------
# templates


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=PackageLoader("daemon.notify", "templates"),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["labels"] = format_labels
    env.filters["time"] = format_time
    env.filters["slack"] = escape_slack
    env.filters["md"] = escape_markdown
    env.filters["html"] = escape_html
    return env


@cache
def _template(kind: str) -> Template:
    return _environment().get_template(f"{kind}.j2")


@cache
def _kinds() -> tuple[str, ...]:
    loader = _environment().loader
    assert loader is not None
    return tuple(
        sorted(
            name.removesuffix(".j2")
            for name in loader.list_templates()
            if name.endswith(".j2") and not name.startswith("_")
        )
    )


def template_names() -> list[str]:
    """The channel kinds that have a message template."""
    return list(_kinds())


def _context(notification: Notification, limit: int | None) -> dict[str, Any]:
    firing, resolved = list(notification.firing), list(notification.resolved)
    if limit is not None:
        keep = max(0, limit)
        firing_kept = firing[:keep]
        resolved_kept = resolved[: max(0, keep - len(firing_kept))]
    else:
        firing_kept, resolved_kept = firing, resolved
    return {
        "status": notification.status,
        "reason": notification.reason,
        "alertname": notification.alertname,
        "group_labels": notification.group_labels,
        "common_labels": notification.common_labels,
        "firing_alerts": firing_kept,
        "resolved_alerts": resolved_kept,
        "firing_total": len(firing),
        "resolved_total": len(resolved),
        "omitted_firing": len(firing) - len(firing_kept),
        "omitted_resolved": len(resolved) - len(resolved_kept),
        "truncated_alerts": notification.truncated_alerts,
        "digest_of": notification.digest_of,
        "board_url": notification.board_url,
    }


def render_message(kind: str, notification: Notification, *, limit: int | None = None) -> Message:
    """Render ``kind``'s template, showing at most ``limit`` alerts (firing ones first).

    Never raises for payload data; a failing template is logged and replaced by a plain
    fallback message. ``KeyError`` only for a ``kind`` without a template.
    """
    if kind not in _kinds():
        raise KeyError(f"no message template for channel kind {kind!r}")
    context = _context(notification, limit)
    shown = len(context["firing_alerts"]) + len(context["resolved_alerts"])
    omitted = notification.alert_count - shown
    try:
        module = _template(kind).make_module(context)
        parts = {
            key: str(getattr(module, key, "")).strip()
            for key in ("title", "text", "firing", "resolved", "footer")
        }
    except (TemplateError, ArithmeticError, ValueError, TypeError, LookupError):
        logger.exception("message template %s.j2 failed; sending a plain message", kind)
        parts = _fallback(context)
    return Message(
        title=" ".join(parts["title"].split()),
        text=parts["text"],
        firing=parts["firing"],
        resolved=parts["resolved"],
        footer=parts["footer"],
        shown=shown,
        omitted=omitted,
    )


def _fallback(context: Mapping[str, Any]) -> dict[str, str]:
    firing = "\n".join(f"- {a.name}: {a.summary}" for a in context["firing_alerts"])
    resolved = "\n".join(f"- {a.name}: {a.summary}" for a in context["resolved_alerts"])
    title = f"[{str(context['status']).upper()}] {context['alertname'] or 'alerts'}"
    footer = str(context["board_url"])
    text = "\n\n".join(part for part in (title, firing, resolved, footer) if part)
    return {"title": title, "text": text, "firing": firing, "resolved": resolved, "footer": footer}


def fit_message(kind: str, notification: Notification, fits: Callable[[Message], bool]) -> Message:
    """The message with as many alerts as ``fits`` accepts (firing ones first, then resolved).

    Alerts are cut from the end and the template says how many were cut. When even no alert
    fits, the zero-alert message is returned and the caller truncates its text.
    """
    full = render_message(kind, notification)
    if fits(full):
        return full
    low, high = 0, notification.alert_count - 1
    best = render_message(kind, notification, limit=0)
    if not fits(best):
        return best
    while low < high:
        middle = (low + high + 1) // 2
        candidate = render_message(kind, notification, limit=middle)
        if fits(candidate):
            low, best = middle, candidate
        else:
            high = middle - 1
    return best


def truncate_chars(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with an ellipsis when cut."""
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary, with an ellipsis
    (3 bytes) when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode("utf-8"))
    if room <= 0:
        return ""
    return data[:room].decode("utf-8", "ignore") + ELLIPSIS


__all__ = [
    "AlertView",
    "Message",
    "Notification",
    "escape_html",
    "escape_markdown",
    "escape_slack",
    "fit_message",
    "format_labels",
    "format_time",
    "render_message",
    "template_names",
    "truncate_chars",
    "truncate_utf8",
]
