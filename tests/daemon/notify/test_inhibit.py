"""Inhibition: firing sources mute matching targets with equal labels."""

from __future__ import annotations

from daemon.notify.inhibit import Inhibitor, build_inhibit_rules
from daemon.notify.routing_config import InhibitRuleConfig

CRITICAL_A = {"alertname": "NodeDown", "severity": "critical", "cluster": "a"}
WARNING_A = {"alertname": "GPUIdle", "severity": "warning", "cluster": "a"}
WARNING_B = {"alertname": "GPUIdle", "severity": "warning", "cluster": "b"}


def rules(**config: object) -> list[InhibitRuleConfig]:
    base: dict[str, object] = {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["cluster"],
    }
    return [InhibitRuleConfig.model_validate({**base, **config})]


def test_it_mutes_targets_with_the_same_equal_labels_as_a_firing_source() -> None:
    inhibitor = Inhibitor(build_inhibit_rules(rules()), [CRITICAL_A, WARNING_A, WARNING_B])
    assert inhibitor.inhibited(WARNING_A)
    assert not inhibitor.inhibited(WARNING_B)
    assert not inhibitor.inhibited(CRITICAL_A)


def test_it_needs_a_firing_source() -> None:
    inhibitor = Inhibitor(build_inhibit_rules(rules()), [WARNING_A])
    assert not inhibitor.inhibited(WARNING_A)


def test_it_treats_a_label_missing_on_both_sides_as_equal() -> None:
    source = {"alertname": "NodeDown", "severity": "critical"}
    target = {"alertname": "GPUIdle", "severity": "warning"}
    inhibitor = Inhibitor(build_inhibit_rules(rules()), [source])
    assert inhibitor.inhibited(target)
    assert not inhibitor.inhibited({**target, "cluster": "a"})


def test_it_compares_every_equal_label() -> None:
    config = rules(equal=["cluster", "node"])
    source = {**CRITICAL_A, "node": "n1"}
    inhibitor = Inhibitor(build_inhibit_rules(config), [source])
    assert inhibitor.inhibited({**WARNING_A, "node": "n1"})
    assert not inhibitor.inhibited({**WARNING_A, "node": "n2"})


def test_it_inhibits_across_the_cluster_without_equal_labels() -> None:
    inhibitor = Inhibitor(build_inhibit_rules(rules(equal=[])), [CRITICAL_A])
    assert inhibitor.inhibited(WARNING_B)


def test_it_never_lets_alerts_matching_both_sides_inhibit_each_other() -> None:
    both_sides = rules(
        source_matchers=['alertname="GPUIdle"'], target_matchers=['alertname="GPUIdle"'], equal=[]
    )
    inhibitor = Inhibitor(build_inhibit_rules(both_sides), [WARNING_A, WARNING_B])
    assert not inhibitor.inhibited(WARNING_A)
    assert not inhibitor.inhibited(WARNING_B)


def test_it_lets_a_one_sided_source_inhibit_a_two_sided_target() -> None:
    config = rules(
        source_matchers=['cluster="a"'], target_matchers=['alertname="GPUIdle"'], equal=[]
    )
    two_sided = WARNING_A  # cluster a and GPUIdle: matches both sides
    one_sided_source = CRITICAL_A  # cluster a, not GPUIdle
    assert not Inhibitor(build_inhibit_rules(config), [two_sided]).inhibited(two_sided)
    assert Inhibitor(build_inhibit_rules(config), [two_sided, one_sided_source]).inhibited(
        two_sided
    )


def test_it_applies_any_of_several_rules() -> None:
    maintenance = InhibitRuleConfig.model_validate(
        {"source_matchers": ['alertname="Maintenance"'], "target_matchers": ['cluster="b"']}
    )
    configs = [*rules(), maintenance]
    inhibitor = Inhibitor(build_inhibit_rules(configs), [{"alertname": "Maintenance"}])
    assert inhibitor.inhibited(WARNING_B)
    assert not inhibitor.inhibited(WARNING_A)
