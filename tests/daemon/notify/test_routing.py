"""The routing tree: depth-first first match, continue, inheritance, Alertmanager's keys."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from daemon.notify.routing import Route, build_route, format_label_set, go_quote
from daemon.notify.routing_config import (
    InhibitRuleConfig,
    RootRouteConfig,
    RouteConfig,
    TimeIntervalConfig,
    validate_route,
    validate_time_intervals,
)
from tests.conftest import SHARED_FIXTURES

CHANNELS = ["slack", "pager", "webhook"]
GPU_IDLE = {
    "alertname": "GPUIdle",
    "cluster": "inference-a",
    "gpu": "3",
    "instance": "node-7:9400",
    "severity": "warning",
    "team": "ml-infra",
}


def tree(config: dict[str, Any], channels: list[str] = CHANNELS) -> Route:
    return build_route(RootRouteConfig.model_validate(config), channels)


def ids(routes: list[Route]) -> list[str]:
    return [route.id for route in routes]


def test_it_builds_the_fixture_group_key() -> None:
    fixture = json.loads(
        (SHARED_FIXTURES / "alertmanager" / "webhook-v4-mixed-group.json").read_text()
    )
    root = tree(
        {"routes": [{"matchers": ['team="ml-infra"'], "group_by": ["alertname", "cluster"]}]}
    )
    (route,) = root.match(GPU_IDLE)
    assert route.key == '{}/{team="ml-infra"}'
    assert route.group_labels(GPU_IDLE) == fixture["groupLabels"]
    assert route.group_key(GPU_IDLE) == fixture["groupKey"]
    assert (
        route.group_key(GPU_IDLE)
        == '{}/{team="ml-infra"}:{alertname="GPUIdle", cluster="inference-a"}'
    )


def test_it_takes_the_first_matching_child_depth_first() -> None:
    root = tree(
        {
            "routes": [
                {
                    "matchers": ['team="ml-infra"'],
                    "routes": [
                        {"matchers": ['severity="critical"']},
                        {"matchers": ['severity=~"warning|info"']},
                    ],
                },
                {"matchers": ['alertname="GPUIdle"']},
            ]
        }
    )
    assert ids(root.match(GPU_IDLE)) == ['{}/{team="ml-infra"}/{severity=~"warning|info"}/1']
    critical = {**GPU_IDLE, "severity": "critical"}
    assert ids(root.match(critical)) == ['{}/{team="ml-infra"}/{severity="critical"}/0']


def test_it_lets_the_parent_take_an_alert_no_child_matches() -> None:
    root = tree(
        {
            "routes": [
                {
                    "matchers": ['team="ml-infra"'],
                    "routes": [{"matchers": ['severity="critical"']}],
                }
            ]
        }
    )
    assert ids(root.match(GPU_IDLE)) == ['{}/{team="ml-infra"}/0']
    assert ids(root.match({"alertname": "Other"})) == ["{}"]


def test_it_keeps_matching_siblings_after_a_continue_route() -> None:
    root = tree(
        {
            "routes": [
                {"matchers": ['severity="warning"'], "continue": True, "receiver": "slack"},
                {"matchers": ['team="ml-infra"'], "receiver": "pager"},
                {"matchers": ['alertname="GPUIdle"'], "receiver": "webhook"},
            ]
        }
    )
    routes = root.match(GPU_IDLE)
    assert [r.receivers for r in routes] == [("slack",), ("pager",)]
    without_continue = tree(
        {
            "routes": [
                {"matchers": ['severity="warning"'], "receiver": "slack"},
                {"matchers": ['team="ml-infra"'], "receiver": "pager"},
            ]
        }
    )
    assert [r.receivers for r in without_continue.match(GPU_IDLE)] == [("slack",)]


def test_it_returns_nothing_when_a_route_does_not_match() -> None:
    root = tree({"routes": [{"matchers": ['team="web"']}]})
    assert root.routes[0].match(GPU_IDLE) == []


def test_it_inherits_receiver_group_by_and_timings_but_not_time_intervals() -> None:
    root = tree(
        {
            "receiver": "slack",
            "group_by": ["alertname", "cluster"],
            "group_wait": "10s",
            "group_interval": "2m",
            "repeat_interval": "1h",
            "mute_time_intervals": ["nights"],
            "routes": [
                {
                    "matchers": ['team="ml-infra"'],
                    "repeat_interval": "30m",
                    "routes": [
                        {"matchers": ['severity="warning"'], "receiver": ["pager", "webhook"]}
                    ],
                }
            ],
        }
    )
    (leaf,) = root.match(GPU_IDLE)
    assert leaf.receivers == ("pager", "webhook")
    assert leaf.group_by == frozenset({"alertname", "cluster"})
    assert (leaf.group_wait, leaf.group_interval, leaf.repeat_interval) == (
        timedelta(seconds=10),
        timedelta(minutes=2),
        timedelta(minutes=30),
    )
    assert root.mute_time_intervals == ("nights",)
    assert leaf.mute_time_intervals == ()
    assert root.routes[0].receivers == ("slack",)


def test_it_uses_alertmanager_defaults_and_every_channel_at_the_root() -> None:
    root = build_route(RouteConfig(), CHANNELS)
    assert root.receivers == tuple(CHANNELS)
    assert root.group_by == frozenset({"alertname"})
    assert (root.group_wait, root.group_interval, root.repeat_interval) == (
        timedelta(seconds=30),
        timedelta(minutes=5),
        timedelta(hours=4),
    )
    assert root.key == root.id == "{}"
    assert root.group_key(GPU_IDLE) == '{}:{alertname="GPUIdle"}'


def test_it_groups_by_all_labels_with_dots_and_skips_missing_group_labels() -> None:
    everything = tree({"group_by": ["..."]})
    assert everything.group_labels(GPU_IDLE) == GPU_IDLE
    partial = tree({"group_by": ["alertname", "region"]})
    assert partial.group_key(GPU_IDLE) == '{}:{alertname="GPUIdle"}'
    nothing = tree({"group_by": []})
    assert nothing.group_key(GPU_IDLE) == "{}:{}"


def test_it_sorts_route_matchers_in_the_key() -> None:
    root = tree({"routes": [{"matchers": ['{team="ml-infra", cluster=~"inference-.*"}']}]})
    assert root.routes[0].key == '{}/{cluster=~"inference-.*",team="ml-infra"}'


def test_it_quotes_label_values_like_go() -> None:
    assert go_quote('say "hi"\n\t\\') == '"say \\"hi\\"\\n\\t\\\\"'
    assert go_quote("naïve ✓") == '"naïve ✓"'
    assert go_quote("\x00\x7f") == '"\\x00\\x7f"'
    assert format_label_set({"b": "2", "a": "1"}) == '{a="1", b="2"}'


@pytest.mark.parametrize(
    ("config", "location", "problem"),
    [
        ({"matchers": ["severity"]}, ("matchers", 0), "expected an operator"),
        ({"routes": [{"matchers": ['a="b"', "x=~'("]}]}, ("routes", 0, "matchers", 1), "regular"),
        ({"group_by": ["...", "alertname"]}, ("group_by",), "cannot be combined"),
        ({"routes": [{"group_by": ["team-name"]}]}, ("routes", 0, "group_by", 0), "label name"),
        ({"group_interval": "0s"}, ("group_interval",), "greater than zero"),
        ({"routes": [{"repeat_interval": "0s"}]}, ("routes", 0, "repeat_interval"), "greater"),
        ({"group_wait": "soon"}, ("group_wait",), "expected a duration"),
        ({"receiver": []}, ("receiver",), "at least one channel"),
        ({"routes": [{"contine": True}]}, ("routes", 0, "contine"), "Extra inputs"),
    ],
)
def test_it_rejects_bad_route_config_with_its_location(
    config: dict[str, Any], location: tuple[Any, ...], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        RootRouteConfig.model_validate(config)
    errors = caught.value.errors()
    assert errors[0]["loc"] == location
    assert problem in errors[0]["msg"]


def test_it_reports_unknown_channels_and_intervals_by_key_path() -> None:
    config = RootRouteConfig.model_validate(
        {
            "matchers": ['a="b"'],
            "continue": True,
            "routes": [
                {"receiver": ["slack", "email"]},
                {"routes": [{"mute_time_intervals": ["weekend", "nights"]}]},
                {"active_time_intervals": ["office"]},
            ],
        }
    )
    assert validate_route(config, ["slack"], ["weekend"]) == [
        "notify.route.matchers: the root route matches every alert; put matchers on child routes",
        "notify.route.continue: not allowed on the root route",
        "notify.route.routes.0.receiver: unknown channel 'email' (channels: slack)",
        "notify.route.routes.1.routes.0.mute_time_intervals.1: unknown time interval 'nights' "
        "(define it under notify.time_intervals)",
        "notify.route.routes.2.active_time_intervals.0: unknown time interval 'office' "
        "(define it under notify.time_intervals)",
    ]
    assert validate_route(RootRouteConfig(receiver="slack"), ["slack"], []) == []


def test_it_reports_time_interval_names_used_twice() -> None:
    intervals = [
        TimeIntervalConfig(name="x"),
        TimeIntervalConfig(name="y"),
        TimeIntervalConfig(name="x"),
    ]
    assert validate_time_intervals(intervals) == [
        "notify.time_intervals.2.name: name 'x' is used twice"
    ]


def test_it_validates_inhibit_rule_matchers_and_equal_labels() -> None:
    rule = InhibitRuleConfig.model_validate(
        {
            "source_matchers": 'severity="critical"',
            "target_matchers": ['severity="warning"'],
            "equal": ["cluster"],
        }
    )
    assert rule.source_matchers == ['severity="critical"']
    with pytest.raises(ValidationError) as caught:
        InhibitRuleConfig.model_validate({"target_matchers": ["bad"], "equal": ["not-a-label"]})
    assert [e["loc"] for e in caught.value.errors()] == [("target_matchers", 0), ("equal", 0)]


def test_it_dumps_the_continue_key_by_its_alias() -> None:
    config = RootRouteConfig.model_validate({"routes": [{"continue": True}]})
    dumped = config.model_dump(mode="json", by_alias=True)
    assert dumped["routes"][0]["continue"] is True
    assert dumped["group_wait"] == "30s"
