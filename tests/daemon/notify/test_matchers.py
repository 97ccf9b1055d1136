"""Alertmanager matcher syntax: operators, quoting, anchored regexes, list form, errors."""

from __future__ import annotations

import pytest

from daemon.notify.matchers import (
    Matcher,
    MatcherError,
    format_matchers,
    parse_matcher,
    parse_matcher_list,
    parse_matchers,
    sort_matchers,
)


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('severity="critical"', "severity", "=", "critical"),
        ("severity=critical", "severity", "=", "critical"),
        ('  team != "ml-infra"  ', "team", "!=", "ml-infra"),
        ('node=~"gpu-(1|2)"', "node", "=~", "gpu-(1|2)"),
        ('node!~"gpu-.*"', "node", "!~", "gpu-.*"),
        ('team=""', "team", "=", ""),
        ("team=", "team", "=", ""),
        (r'summary="say \"hi\""', "summary", "=", 'say "hi"'),
        (r'path="C:\\temp"', "path", "=", "C:\\temp"),
        (r'text="two\nlines"', "text", "=", "two\nlines"),
        (r'text="keep \d literal"', "text", "=", "keep \\d literal"),
        ('list="a,b"', "list", "=", "a,b"),
        ("level:name=x", "level:name", "=", "x"),
    ],
)
def test_it_parses_each_operator_and_the_quoting_rules(
    text: str, name: str, op: str, value: str
) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


def test_it_anchors_regular_expressions_at_both_ends() -> None:
    matcher = parse_matcher('node=~"gpu-1"')
    assert matcher.matches({"node": "gpu-1"})
    assert not matcher.matches({"node": "gpu-10"})
    assert not matcher.matches({"node": "my-gpu-1"})
    alternatives = parse_matcher('severity=~"warning|critical"')
    assert alternatives.matches({"severity": "critical"})
    assert not alternatives.matches({"severity": "critical-ish"})


def test_it_negates_regexes_and_inequality() -> None:
    assert parse_matcher('node!~"gpu-.*"').matches({"node": "cpu-1"})
    assert not parse_matcher('node!~"gpu-.*"').matches({"node": "gpu-1"})
    assert parse_matcher('team!="ml"').matches({"team": "web"})
    assert not parse_matcher('team!="ml"').matches({"team": "ml"})


def test_it_treats_a_missing_label_as_the_empty_string() -> None:
    assert parse_matcher('team=""').matches({"alertname": "X"})
    assert parse_matcher('team!="ml"').matches({"alertname": "X"})
    assert not parse_matcher('team="ml"').matches({"alertname": "X"})
    assert parse_matcher('team=~"ml|"').matches({})


def test_it_accepts_a_leading_case_insensitive_flag() -> None:
    matcher = parse_matcher('severity=~"(?i)CRITICAL"')
    assert matcher.matches({"severity": "critical"})


def test_it_parses_the_list_form_with_braces_commas_and_a_trailing_comma() -> None:
    parsed = parse_matchers('{severity=~"warning|critical", team="ml,infra", }')
    assert [(m.name, m.op, m.value) for m in parsed] == [
        ("severity", "=~", "warning|critical"),
        ("team", "=", "ml,infra"),
    ]
    assert parse_matchers("a=b,c!=d") == [
        Matcher.create("a", "=", "b"),
        Matcher.create("c", "!=", "d"),
    ]
    assert parse_matchers("{}") == []
    assert parse_matchers("") == []


def test_it_reads_config_lists_whose_entries_may_hold_several_matchers() -> None:
    parsed = parse_matcher_list(['alertname="GpuIdle"', '{a="b",c=~"d"}'])
    assert [m.name for m in parsed] == ["alertname", "a", "c"]
    assert [m.name for m in parse_matcher_list('x="1", y="2"')] == ["x", "y"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("severity", "expected an operator"),
        ('="x"', "missing label name"),
        ('9team="x"', "'9team' is not a valid label name"),
        ('team="ml', "never closed"),
        ('team="ml"x', "after the closing double quote"),
        ('team=m"l', "unescaped double quote"),
        ('node=~"gpu-("', "invalid regular expression"),
        ("", "empty matcher"),
    ],
)
def test_it_names_the_text_and_the_problem_of_a_bad_matcher(text: str, problem: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(text)
    assert problem in str(caught.value)
    if text:
        assert text.strip() in str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{a="b"', "opening '{' needs a closing '}'"),
        ('a="b"}', "closing '}' without an opening"),
        ('a="b,c=d', "unterminated double quote"),
        ("a=b,,c=d", "empty matcher between commas"),
    ],
)
def test_it_rejects_malformed_lists(text: str, problem: str) -> None:
    with pytest.raises(MatcherError, match=problem):
        parse_matchers(text)


def test_it_prefixes_list_errors_with_the_entry_index() -> None:
    with pytest.raises(MatcherError, match=r"^\[1\]: 'sev'"):
        parse_matcher_list(['a="b"', "sev"])


def test_it_prints_matchers_as_alertmanager_does() -> None:
    matchers = sort_matchers(parse_matchers('{team="ml-infra", alertname=~"GPU.*", q="a\\"b"}'))
    assert format_matchers(matchers) == '{alertname=~"GPU.*",q="a\\"b",team="ml-infra"}'
    assert str(parse_matcher('x="line\\nbreak\\\\"')) == 'x="line\\nbreak\\\\"'


def test_it_sorts_by_name_then_value_then_operator() -> None:
    unsorted = [
        Matcher.create("b", "=", "1"),
        Matcher.create("a", "!=", "2"),
        Matcher.create("a", "!=", "1"),
        Matcher.create("a", "=", "1"),
    ]
    assert [str(m) for m in sort_matchers(unsorted)] == ['a="1"', 'a!="1"', 'a!="2"', 'b="1"']


@pytest.mark.parametrize("text", ['a="b"', 'a!="b"', 'a=~"b.*"', 'a!~"b.*"'])
def test_it_round_trips_the_api_form(text: str) -> None:
    matcher = parse_matcher(text)
    assert Matcher.from_api(matcher.to_api()) == matcher


def test_it_reads_the_api_form_like_alertmanager() -> None:
    data = {"name": "cluster", "value": "inference-a", "isRegex": False, "isEqual": True}
    assert str(Matcher.from_api(data)) == 'cluster="inference-a"'
    assert Matcher.from_api({"name": "a", "value": "x", "isRegex": True}).op == "=~"
    with pytest.raises(MatcherError, match="needs string 'name' and 'value'"):
        Matcher.from_api({"name": "a"})
    with pytest.raises(MatcherError, match="invalid regular expression"):
        Matcher.from_api({"name": "a", "value": "(", "isRegex": True, "isEqual": True})
