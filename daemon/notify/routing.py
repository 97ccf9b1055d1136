"""The routing tree: which routes an alert takes and which group it lands in.

Semantics of Alertmanager's ``dispatch/route.go``: the root matches every alert; children are
tried depth first, in order, and the first child that matches wins unless it has
``continue: true``, in which case later siblings are tried too; when no child matches, the node
itself takes the alert. Children inherit ``receiver``, ``group_by`` and the three timings from
their parent; mute and active time intervals are per route.

Keys are Alertmanager's, byte for byte: a route's key is ``{}`` for the root and the parent's
key plus ``/`` and the route's sorted matchers for a child (``{}/{team="ml-infra"}``); a group
key is ``<route key>:<group labels>`` with the group labels printed like Prometheus' label set
(``{}/{team="ml-infra"}:{alertname="GPUIdle", cluster="inference-a"}``).

Error contract: ``build_route`` raises ``MatcherError`` for a matcher string that does not
parse (config validation catches these first); matching never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from daemon.notify.matchers import Matcher, format_matchers, parse_matcher_list, sort_matchers
from daemon.notify.routing_config import (
    DEFAULT_GROUP_BY,
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    GROUP_BY_ALL,
    RouteConfig,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Route:
    """A built route with its effective (inherited) options."""

    matchers: tuple[Matcher, ...]
    receivers: tuple[str, ...]
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    continue_: bool = False
    key: str = "{}"
    id: str = "{}"
    routes: tuple[Route, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether this route's own matchers match ``labels``."""
        return all(m.matches(labels) for m in self.matchers)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes that take an alert with ``labels`` (empty when this node does not match)."""
        if not self.matches(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            taken = child.match(labels)
            found.extend(taken)
            if taken and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The alert's labels that form its group on this route (``group_by`` present ones)."""
        if self.group_by_all:
            return {name: labels[name] for name in sorted(labels)}
        return {name: labels[name] for name in sorted(labels) if name in self.group_by}

    def group_key(self, labels: Mapping[str, str]) -> str:
        """Alertmanager's group key: ``<route key>:<group labels>``."""
        return f"{self.key}:{format_label_set(self.group_labels(labels))}"

    def walk(self) -> Iterator[Route]:
        """This route and every descendant, depth first."""
        yield self
        for child in self.routes:
            yield from child.walk()


def build_route(config: RouteConfig, channel_names: Sequence[str]) -> Route:
    """Build the tree from ``config``; the root's unset options take Alertmanager's defaults
    (``group_by: [alertname]``, 30s / 5m / 4h) and its unset receiver is every channel in
    ``channel_names``. Raises ``MatcherError`` for an unparsable matcher."""
    root_group_by = config.group_by if config.group_by is not None else list(DEFAULT_GROUP_BY)
    root = _build(
        config,
        parent_key=None,
        position=0,
        receivers=config.receivers or tuple(channel_names),
        group_by=root_group_by,
        group_wait=config.group_wait if config.group_wait is not None else DEFAULT_GROUP_WAIT,
        group_interval=config.group_interval or DEFAULT_GROUP_INTERVAL,
        repeat_interval=config.repeat_interval or DEFAULT_REPEAT_INTERVAL,
    )
    return root


def _build(
    config: RouteConfig,
    *,
    parent_key: str | None,
    position: int,
    receivers: tuple[str, ...],
    group_by: Sequence[str],
    group_wait: timedelta,
    group_interval: timedelta,
    repeat_interval: timedelta,
) -> Route:
    matchers = tuple(sort_matchers(parse_matcher_list(config.matchers)))
    own = format_matchers(matchers)
    key = own if parent_key is None else f"{parent_key}/{own}"
    children = tuple(
        _build(
            child,
            parent_key=key,
            position=index,
            receivers=child.receivers or receivers,
            group_by=child.group_by if child.group_by is not None else group_by,
            group_wait=child.group_wait if child.group_wait is not None else group_wait,
            group_interval=child.group_interval or group_interval,
            repeat_interval=child.repeat_interval or repeat_interval,
        )
        for index, child in enumerate(config.routes)
    )
    return Route(
        matchers=matchers,
        receivers=receivers,
        group_by=frozenset(name for name in group_by if name != GROUP_BY_ALL),
        group_by_all=GROUP_BY_ALL in group_by,
        group_wait=group_wait,
        group_interval=group_interval,
        repeat_interval=repeat_interval,
        mute_time_intervals=tuple(config.mute_time_intervals),
        active_time_intervals=tuple(config.active_time_intervals),
        continue_=config.continue_,
        key=key,
        id=key if parent_key is None else f"{key}/{position}",
        routes=children,
    )


def go_quote(value: str) -> str:
    """Quote ``value`` like Go's ``%q`` (``strconv.Quote``): printable text kept as is."""
    out = ['"']
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def format_label_set(labels: Mapping[str, str]) -> str:
    """Prometheus' ``LabelSet.String()``: ``{a="1", b="2"}``, sorted, values Go-quoted."""
    pairs = sorted(f"{name}={go_quote(value)}" for name, value in labels.items())
    return "{" + ", ".join(pairs) + "}"


__all__ = ["Route", "build_route", "format_label_set", "go_quote"]
