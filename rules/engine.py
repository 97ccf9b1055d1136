"""Alert state machine with Prometheus semantics (pending -> firing -> resolved, ``for``,
``keep_firing_for``, 15-minute resolved retention). Pure: no I/O, time comes in as ``now``.

One call of ``step`` is one evaluation tick of one rule (``rules/alerting.go`` ``Eval``):

=====================================  ==========  ===========================================
Event at ``now``                       Before      After (transition)
=====================================  ==========  ===========================================
finding returned, new                  (none)      ``pending``, ``active_at=now`` ("pending");
                                                   with ``for: 0`` ``firing`` at once ("firing")
returned, ``now-active_at >= for``     pending     ``firing``, ``fired_at=now`` ("firing")
returned again                         firing      firing, value + annotations refreshed (none)
not returned                           pending     removed ("dropped")
not returned, ``keep_firing_for > 0``  firing      firing until ``now-keep_firing_since >=
                                                   keep_firing_for`` (none)
not returned (after keep firing)       firing      ``inactive``, ``resolved_at=now`` ("resolved")
``now-resolved_at > 15m``              inactive    removed ("dropped")
returned again                         inactive    new ``pending``, fresh ``active_at``
=====================================  ==========  ===========================================

Identity: the finding's labels, overlaid with the rule's rendered ``labels``, plus ``alertname``;
a label whose value is empty is dropped (as Prometheus does). The key is the Alertmanager
fingerprint of that label set (``rules.fingerprint``). Labels are rendered with the finding's
labels; annotations are rendered afterwards with the final labels (``alertname`` included).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from rules.base import Finding
from rules.fingerprint import fingerprint
from rules.templating import render

logger = logging.getLogger(__name__)

RESOLVED_RETENTION = timedelta(minutes=15)

STATE_PENDING = "pending"
STATE_FIRING = "firing"
STATE_INACTIVE = "inactive"


@dataclass
class AlertInstance:
    """One alert instance: a label set (including ``alertname``) and its state.

    ``state`` is ``pending``, ``firing`` or ``inactive`` (resolved, kept 15 minutes).
    """

    fingerprint: str
    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    active_at: datetime
    value: float | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_since: datetime | None = None
    last_sent_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRuleSpec:
    """A configured alerting rule as the engine needs it.

    ``labels`` and ``annotations`` are Jinja2 templates (see ``rules.templating``); ``for_`` and
    ``keep_firing_for`` are non-negative durations.
    """

    name: str
    kind: str
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


TransitionKind = Literal["pending", "firing", "resolved", "dropped"]


@dataclass(frozen=True)
class Transition:
    """A state change made by one ``step``; ``alert`` is the alert after the change (for
    ``dropped``: as it was before removal, state ``pending`` or ``inactive``)."""

    kind: TransitionKind
    alert: AlertInstance


class DuplicateAlertError(ValueError):
    """Two findings of one evaluation produced the same label set (Prometheus'
    ``ErrDuplicateAlertLabelSet``); ``labels`` is that label set."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        rendered = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        super().__init__(
            "findings contain the same label set after applying rule labels: {" + rendered + "}"
        )
        self.labels = dict(labels)


def _identity(spec: AlertRuleSpec, finding: Finding) -> tuple[dict[str, str], dict[str, str], str]:
    base = {str(k): str(v) for k, v in finding.labels.items()}
    final = dict(base)
    for name, template in spec.labels.items():
        final[name] = render(template, labels=base, value=finding.value)
    final["alertname"] = spec.name
    final = {k: v for k, v in final.items() if v != ""}
    annotations = {
        name: render(template, labels=final, value=finding.value)
        for name, template in spec.annotations.items()
    }
    return final, annotations, fingerprint(final)


def _copy(alert: AlertInstance, **changes: Any) -> AlertInstance:
    """A fresh instance (own dicts) so callers may mutate results without touching ``previous``."""
    copied = replace(
        alert,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        extra=dict(alert.extra),
    )
    return replace(copied, **changes) if changes else copied


def _expire(
    spec: AlertRuleSpec, alert: AlertInstance, now: datetime
) -> tuple[AlertInstance | None, TransitionKind | None]:
    """Handle an alert whose series was not returned this tick."""
    if alert.state == STATE_PENDING:
        return None, "dropped"
    if alert.state == STATE_FIRING:
        if spec.keep_firing_for > timedelta(0):
            since = alert.keep_firing_since or now
            if now - since < spec.keep_firing_for:
                return _copy(alert, keep_firing_since=since), None
        return _copy(alert, state=STATE_INACTIVE, resolved_at=now), "resolved"
    if alert.state == STATE_INACTIVE:
        if alert.resolved_at is None or now - alert.resolved_at > RESOLVED_RETENTION:
            return None, "dropped"
        return _copy(alert), None
    logger.warning(
        "dropping alert %s of rule %s with unknown state %r",
        alert.fingerprint,
        spec.name,
        alert.state,
    )
    return None, "dropped"


def step(
    spec: AlertRuleSpec,
    previous: Mapping[str, AlertInstance],
    findings: Sequence[Finding],
    now: datetime,
) -> tuple[dict[str, AlertInstance], list[Transition]]:
    """Advance one rule's alerts by one evaluation at ``now``.

    ``previous`` holds this rule's alerts keyed by fingerprint (as returned by the last call or
    restored from the store, so ``active_at`` survives a restart); it is not modified. Returns
    the new alerts of this rule keyed by fingerprint (pending, firing and retained inactive ones)
    and the transitions, at most one per alert, ordered by fingerprint.

    Pure and deterministic. Raises ``DuplicateAlertError`` (a ``ValueError``) when two findings
    map to one label set; nothing is changed then and the caller keeps ``previous``. Template
    errors never raise: the label or annotation gets ``<error expanding template: ...>``.
    """
    current: dict[str, tuple[dict[str, str], dict[str, str], float]] = {}
    for finding in findings:
        labels, annotations, fp = _identity(spec, finding)
        if fp in current:
            raise DuplicateAlertError(labels)
        current[fp] = (labels, annotations, finding.value)

    alerts: dict[str, AlertInstance] = {}
    transitions: list[Transition] = []
    for fp in sorted(current.keys() | previous.keys()):
        before = previous.get(fp)
        kind: TransitionKind | None
        if fp in current:
            labels, annotations, value = current[fp]
            if before is not None and before.state in (STATE_PENDING, STATE_FIRING):
                after = _copy(before, value=value, annotations=annotations, keep_firing_since=None)
                kind = None
            else:
                after = AlertInstance(
                    fingerprint=fp,
                    alertname=spec.name,
                    labels=labels,
                    annotations=annotations,
                    state=STATE_PENDING,
                    active_at=now,
                    value=value,
                )
                kind = "pending"
            if after.state == STATE_PENDING and now - after.active_at >= spec.for_:
                after = replace(after, state=STATE_FIRING, fired_at=now)
                kind = "firing"
            alerts[fp] = after
            if kind is not None:
                transitions.append(Transition(kind, after))
            continue
        if before is None:  # pragma: no cover - fp comes from current or previous
            continue
        kept, kind = _expire(spec, before, now)
        if kept is not None:
            alerts[fp] = kept
        if kind is not None:
            transitions.append(Transition(kind, kept if kept is not None else _copy(before)))
    return alerts, transitions
