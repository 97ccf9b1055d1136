"""Inhibition: a firing alert can mute others (Alertmanager's ``inhibit/inhibit.go``).

An alert is inhibited when, for some rule, it matches ``target_matchers`` and a *firing* alert
matching ``source_matchers`` has the same values for every ``equal`` label (a missing label is
the empty string, so a label missing on both sides counts as equal). When the target matches
both sides of a rule, source alerts that also match both sides are ignored, so such alerts
never inhibit one another (nor themselves). Inhibition only stops notifications; the alert
stays firing and visible.

Error contract: ``build_inhibit_rules`` raises ``MatcherError`` for an unparsable matcher
(config validation catches these first); ``Inhibitor`` never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from daemon.notify.matchers import Matcher, matches_all, parse_matcher_list
from daemon.notify.routing_config import InhibitRuleConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InhibitRule:
    """A parsed inhibit rule."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def equal_values(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The values of the ``equal`` labels (missing = ``""``)."""
        return tuple(labels.get(name, "") for name in self.equal)


def build_inhibit_rules(configs: Sequence[InhibitRuleConfig]) -> tuple[InhibitRule, ...]:
    """Parse the configured rules; raises ``MatcherError`` for a bad matcher."""
    return tuple(
        InhibitRule(
            source=tuple(parse_matcher_list(config.source_matchers)),
            target=tuple(parse_matcher_list(config.target_matchers)),
            equal=tuple(config.equal),
        )
        for config in configs
    )


class Inhibitor:
    """Answers "is this alert inhibited?" against a fixed set of firing alerts."""

    def __init__(self, rules: Sequence[InhibitRule], firing: Iterable[Mapping[str, str]]) -> None:
        """``firing``: the label sets of every firing alert (the possible sources)."""
        self._rules = tuple(rules)
        firing_sets = [dict(labels) for labels in firing]
        # Per rule: equal-label values of its sources -> whether any of them is "one-sided"
        # (matches the source side only); two-sided sources are kept apart.
        self._one_sided: list[set[tuple[str, ...]]] = []
        self._any_source: list[set[tuple[str, ...]]] = []
        for rule in self._rules:
            one_sided: set[tuple[str, ...]] = set()
            any_source: set[tuple[str, ...]] = set()
            for labels in firing_sets:
                if not matches_all(rule.source, labels):
                    continue
                values = rule.equal_values(labels)
                any_source.add(values)
                if not matches_all(rule.target, labels):
                    one_sided.add(values)
            self._one_sided.append(one_sided)
            self._any_source.append(any_source)

    def inhibited(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` is muted by some rule."""
        for rule, one_sided, any_source in zip(
            self._rules, self._one_sided, self._any_source, strict=True
        ):
            if not matches_all(rule.target, labels):
                continue
            values = rule.equal_values(labels)
            two_sided_target = matches_all(rule.source, labels)
            if values in (one_sided if two_sided_target else any_source):
                return True
        return False


__all__ = ["InhibitRule", "Inhibitor", "build_inhibit_rules"]
