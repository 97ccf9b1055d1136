from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from rules.base import Finding
from rules.engine import (
    RESOLVED_RETENTION,
    AlertInstance,
    AlertRuleSpec,
    DuplicateAlertError,
    Transition,
    step,
)
from rules.fingerprint import fingerprint

T0 = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
GPU3 = {"node": "node-7", "gpu": "3"}
GPU3_FP = fingerprint({**GPU3, "alertname": "GPUIdle", "severity": "warning"})


def _spec(**overrides: object) -> AlertRuleSpec:
    fields: dict[str, object] = {
        "name": "GPUIdle",
        "kind": "gpu_idle",
        "for_": 5 * MIN,
        "keep_firing_for": timedelta(0),
        "labels": {"severity": "warning"},
        "annotations": {"summary": "GPU {{ labels.gpu }} on {{ labels.node }} idle"},
    }
    fields.update(overrides)
    return AlertRuleSpec(**fields)  # type: ignore[arg-type]


def _found(value: float = 0.01, labels: Mapping[str, str] = GPU3) -> list[Finding]:
    return [Finding(labels=dict(labels), value=value)]


def _kinds(transitions: Sequence[Transition]) -> list[str]:
    return [t.kind for t in transitions]


def _run(
    spec: AlertRuleSpec, ticks: Sequence[tuple[datetime, list[Finding]]]
) -> tuple[dict[str, AlertInstance], list[list[str]]]:
    state: dict[str, AlertInstance] = {}
    seen = []
    for now, findings in ticks:
        state, transitions = step(spec, state, findings, now)
        seen.append(_kinds(transitions))
    return state, seen


def test_it_creates_a_pending_alert_for_a_new_finding():
    alerts, transitions = step(_spec(), {}, _found(), T0)
    assert list(alerts) == [GPU3_FP]
    alert = alerts[GPU3_FP]
    assert alert.state == "pending"
    assert alert.active_at == T0
    assert alert.fired_at is None
    assert alert.alertname == "GPUIdle"
    assert alert.labels == {**GPU3, "alertname": "GPUIdle", "severity": "warning"}
    assert alert.annotations == {"summary": "GPU 3 on node-7 idle"}
    assert alert.value == 0.01
    assert _kinds(transitions) == ["pending"]
    assert transitions[0].alert is alert


def test_it_fires_on_the_first_evaluation_when_for_is_zero():
    alerts, transitions = step(_spec(for_=timedelta(0)), {}, _found(), T0)
    assert alerts[GPU3_FP].state == "firing"
    assert alerts[GPU3_FP].fired_at == T0
    assert alerts[GPU3_FP].active_at == T0
    assert _kinds(transitions) == ["firing"]


def test_it_needs_two_evaluations_and_the_full_for_to_fire():
    spec = _spec()
    state, seen = _run(spec, [(T0 + i * MIN, _found()) for i in range(7)])
    assert seen == [["pending"], [], [], [], [], ["firing"], []]
    assert state[GPU3_FP].state == "firing"
    assert state[GPU3_FP].active_at == T0
    assert state[GPU3_FP].fired_at == T0 + 5 * MIN


def test_it_fires_at_the_first_tick_past_for_when_ticks_are_sparse():
    spec = _spec()
    _, seen = _run(spec, [(T0, _found()), (T0 + 4 * MIN, _found()), (T0 + 8 * MIN, _found())])
    assert seen == [["pending"], [], ["firing"]]


def test_it_refreshes_value_and_annotations_while_firing():
    spec = _spec(for_=timedelta(0), annotations={"summary": "{{ value | percent }}"})
    state, _ = step(spec, {}, _found(0.01), T0)
    state, transitions = step(spec, state, _found(0.02), T0 + MIN)
    alert = state[GPU3_FP]
    assert transitions == []
    assert alert.state == "firing"
    assert alert.value == 0.02
    assert alert.annotations == {"summary": "2.0%"}
    assert alert.fired_at == T0
    assert alert.active_at == T0


def test_it_refreshes_value_while_pending_without_resetting_active_at():
    state, _ = step(_spec(), {}, _found(0.01), T0)
    state, transitions = step(_spec(), state, _found(0.03), T0 + MIN)
    assert transitions == []
    assert state[GPU3_FP].value == 0.03
    assert state[GPU3_FP].active_at == T0


def test_it_drops_a_pending_alert_that_is_not_returned():
    state, _ = step(_spec(), {}, _found(), T0)
    pending = state[GPU3_FP]
    state, transitions = step(_spec(), state, [], T0 + MIN)
    assert state == {}
    assert _kinds(transitions) == ["dropped"]
    assert transitions[0].alert.state == "pending"
    assert transitions[0].alert.fingerprint == pending.fingerprint


def test_it_restarts_for_after_a_pending_alert_was_dropped():
    spec = _spec()
    ticks = [(T0, _found()), (T0 + MIN, []), (T0 + 2 * MIN, _found())]
    state, seen = _run(spec, ticks)
    assert seen == [["pending"], ["dropped"], ["pending"]]
    assert state[GPU3_FP].active_at == T0 + 2 * MIN


def test_it_resolves_a_firing_alert_that_is_not_returned():
    spec = _spec(for_=timedelta(0))
    state, _ = step(spec, {}, _found(), T0)
    state, transitions = step(spec, state, [], T0 + MIN)
    alert = state[GPU3_FP]
    assert alert.state == "inactive"
    assert alert.resolved_at == T0 + MIN
    assert alert.fired_at == T0
    assert _kinds(transitions) == ["resolved"]
    assert transitions[0].alert is alert


def test_it_keeps_firing_for_keep_firing_for_then_resolves():
    spec = _spec(for_=timedelta(0), keep_firing_for=3 * MIN)
    state, _ = step(spec, {}, _found(), T0)
    # Missing from T0+1m: keep firing while now - keep_firing_since < 3m.
    for i in (1, 2, 3):
        state, transitions = step(spec, state, [], T0 + i * MIN)
        assert transitions == []
        assert state[GPU3_FP].state == "firing"
        assert state[GPU3_FP].keep_firing_since == T0 + MIN
    state, transitions = step(spec, state, [], T0 + 4 * MIN)
    assert _kinds(transitions) == ["resolved"]
    assert state[GPU3_FP].state == "inactive"
    assert state[GPU3_FP].resolved_at == T0 + 4 * MIN


def test_it_resets_keep_firing_since_when_the_finding_returns():
    spec = _spec(for_=timedelta(0), keep_firing_for=3 * MIN)
    ticks = [
        (T0, _found()),
        (T0 + 1 * MIN, []),
        (T0 + 2 * MIN, []),
        (T0 + 3 * MIN, _found()),
        (T0 + 4 * MIN, []),
        (T0 + 6 * MIN, []),
        (T0 + 7 * MIN, []),
    ]
    state, seen = _run(spec, ticks)
    assert seen == [["firing"], [], [], [], [], [], ["resolved"]]
    assert state[GPU3_FP].fired_at == T0
    assert state[GPU3_FP].resolved_at == T0 + 7 * MIN


def test_it_drops_a_pending_alert_at_once_even_with_keep_firing_for():
    spec = _spec(keep_firing_for=10 * MIN)
    _, seen = _run(spec, [(T0, _found()), (T0 + MIN, [])])
    assert seen == [["pending"], ["dropped"]]


def test_it_keeps_a_resolved_alert_for_the_retention_then_drops_it():
    spec = _spec(for_=timedelta(0))
    state, _ = step(spec, {}, _found(), T0)
    state, _ = step(spec, state, [], T0 + MIN)
    resolved_at = T0 + MIN
    state, transitions = step(spec, state, [], resolved_at + RESOLVED_RETENTION)
    assert transitions == []
    assert state[GPU3_FP].state == "inactive"
    assert state[GPU3_FP].resolved_at == resolved_at
    state, transitions = step(
        spec, state, [], resolved_at + RESOLVED_RETENTION + timedelta(seconds=1)
    )
    assert state == {}
    assert _kinds(transitions) == ["dropped"]
    assert transitions[0].alert.state == "inactive"


def test_it_starts_a_fresh_pending_alert_when_a_resolved_one_returns():
    spec = _spec(for_=2 * MIN)
    ticks = [
        (T0, _found()),
        (T0 + 2 * MIN, _found()),
        (T0 + 3 * MIN, []),
        (T0 + 4 * MIN, _found()),
    ]
    state, seen = _run(spec, ticks)
    assert seen == [["pending"], ["firing"], ["resolved"], ["pending"]]
    alert = state[GPU3_FP]
    assert alert.state == "pending"
    assert alert.active_at == T0 + 4 * MIN
    assert alert.fired_at is None
    assert alert.resolved_at is None


def test_it_fires_a_returning_resolved_alert_at_once_when_for_is_zero():
    spec = _spec(for_=timedelta(0))
    state, seen = _run(spec, [(T0, _found()), (T0 + MIN, []), (T0 + 2 * MIN, _found())])
    assert seen == [["firing"], ["resolved"], ["firing"]]
    assert state[GPU3_FP].fired_at == T0 + 2 * MIN
    assert state[GPU3_FP].resolved_at is None


def test_it_keeps_for_progress_from_a_restored_alert():
    spec = _spec()
    restored = AlertInstance(
        fingerprint=GPU3_FP,
        alertname="GPUIdle",
        labels={**GPU3, "alertname": "GPUIdle", "severity": "warning"},
        annotations={},
        state="pending",
        active_at=T0,
        last_sent_at=None,
        extra={"note": "kept"},
    )
    state, transitions = step(spec, {GPU3_FP: restored}, _found(), T0 + 5 * MIN)
    assert _kinds(transitions) == ["firing"]
    assert state[GPU3_FP].active_at == T0
    assert state[GPU3_FP].extra == {"note": "kept"}


def test_it_preserves_last_sent_at_across_ticks():
    spec = _spec(for_=timedelta(0))
    state, _ = step(spec, {}, _found(), T0)
    state[GPU3_FP].last_sent_at = T0
    state, _ = step(spec, state, _found(), T0 + MIN)
    assert state[GPU3_FP].last_sent_at == T0
    state, _ = step(spec, state, [], T0 + 2 * MIN)
    assert state[GPU3_FP].last_sent_at == T0


def test_it_does_not_modify_previous():
    spec = _spec(for_=timedelta(0))
    first, _ = step(spec, {}, _found(0.01), T0)
    snapshot = {fp: (a.state, a.value, dict(a.annotations)) for fp, a in first.items()}
    second, _ = step(spec, first, _found(0.02), T0 + MIN)
    second[GPU3_FP].labels["mutated"] = "yes"
    third, _ = step(spec, second, [], T0 + 2 * MIN)
    assert {fp: (a.state, a.value, dict(a.annotations)) for fp, a in first.items()} == snapshot
    assert "mutated" not in first[GPU3_FP].labels
    assert second[GPU3_FP].state == "firing"
    assert third[GPU3_FP].state == "inactive"


def test_it_is_deterministic_and_orders_transitions_by_fingerprint():
    findings = [Finding(labels={"node": f"node-{i}", "gpu": "0"}, value=0.0) for i in range(5)]
    a_state, a_transitions = step(_spec(), {}, findings, T0)
    b_state, b_transitions = step(_spec(), {}, list(reversed(findings)), T0)
    assert a_state == b_state
    assert a_transitions == b_transitions
    fps = [t.alert.fingerprint for t in a_transitions]
    assert fps == sorted(fps)
    assert len(fps) == 5


def test_it_tracks_several_alerts_independently():
    spec = _spec(for_=timedelta(0))
    gpu4 = {"node": "node-7", "gpu": "4"}
    state, _ = step(spec, {}, _found(labels=GPU3) + _found(labels=gpu4), T0)
    state, transitions = step(spec, state, _found(labels=gpu4), T0 + MIN)
    by_gpu = {a.labels["gpu"]: a.state for a in state.values()}
    assert by_gpu == {"3": "inactive", "4": "firing"}
    assert [(t.kind, t.alert.labels["gpu"]) for t in transitions] == [("resolved", "3")]


def test_it_raises_on_duplicate_label_sets_naming_them():
    findings = _found(0.01) + _found(0.02)
    with pytest.raises(DuplicateAlertError) as info:
        step(_spec(), {}, findings, T0)
    assert isinstance(info.value, ValueError)
    assert 'gpu="3"' in str(info.value)
    assert 'alertname="GPUIdle"' in str(info.value)
    assert info.value.labels["node"] == "node-7"


def test_it_raises_on_duplicates_created_by_rule_labels():
    spec = _spec(labels={"gpu": "any"})
    findings = [
        Finding(labels={"node": "n1", "gpu": "0"}, value=0.0),
        Finding(labels={"node": "n1", "gpu": "1"}, value=0.0),
    ]
    with pytest.raises(DuplicateAlertError):
        step(spec, {}, findings, T0)


def test_it_lets_rule_labels_override_finding_labels_and_alertname_override_both():
    spec = _spec(labels={"node": "fixed", "alertname": "Other"})
    alerts, _ = step(spec, {}, [Finding({"node": "n1", "alertname": "x"}, 0.0)], T0)
    (alert,) = alerts.values()
    assert alert.labels == {"node": "fixed", "alertname": "GPUIdle"}
    assert alert.fingerprint == fingerprint({"node": "fixed", "alertname": "GPUIdle"})


def test_it_drops_labels_whose_rendered_value_is_empty():
    spec = _spec(labels={"team": "{{ labels.absent }}", "severity": "warning"})
    alerts, _ = step(spec, {}, _found(), T0)
    (alert,) = alerts.values()
    assert "team" not in alert.labels
    assert alert.fingerprint == GPU3_FP


def test_it_creates_a_new_identity_when_a_templated_label_changes():
    spec = _spec(
        for_=timedelta(0),
        labels={"severity": "{{ 'critical' if value < 0.01 else 'warning' }}"},
    )
    state, first = step(spec, {}, _found(0.02), T0)
    (warning,) = state.values()
    assert warning.labels["severity"] == "warning"
    state, second = step(spec, state, _found(0.001), T0 + MIN)
    assert sorted((t.kind, t.alert.labels["severity"]) for t in second) == [
        ("firing", "critical"),
        ("resolved", "warning"),
    ]
    assert len(state) == 2
    assert {a.labels["severity"]: a.state for a in state.values()} == {
        "critical": "firing",
        "warning": "inactive",
    }
    assert _kinds(first) == ["firing"]


def test_it_renders_annotations_with_the_final_labels():
    spec = _spec(
        labels={"severity": "{{ 'page' if labels.gpu == '3' else 'ticket' }}"},
        annotations={"summary": "{{ labels.alertname }}/{{ labels.severity }}/{{ labels.gpu }}"},
    )
    alerts, _ = step(spec, {}, _found(), T0)
    (alert,) = alerts.values()
    assert alert.annotations == {"summary": "GPUIdle/page/3"}


def test_it_puts_the_error_text_in_place_of_a_broken_template():
    spec = _spec(
        labels={"team": "{% if %}"},
        annotations={"summary": "{{ ''.__class__.__mro__ }}", "ok": "{{ labels.gpu }}"},
    )
    alerts, transitions = step(spec, {}, _found(), T0)
    (alert,) = alerts.values()
    assert alert.labels["team"].startswith("<error expanding template: ")
    assert alert.annotations["summary"].startswith("<error expanding template: ")
    assert alert.annotations["ok"] == "3"
    assert _kinds(transitions) == ["pending"]


def test_it_drops_a_stored_alert_with_an_unknown_state():
    bogus = AlertInstance(
        fingerprint="f",
        alertname="GPUIdle",
        labels={},
        annotations={},
        state="weird",
        active_at=T0,
    )
    state, transitions = step(_spec(), {"f": bogus}, [], T0)
    assert state == {}
    assert _kinds(transitions) == ["dropped"]
