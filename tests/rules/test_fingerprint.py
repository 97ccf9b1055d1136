from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules.fingerprint import fingerprint

FIXTURES = Path(__file__).parents[2].parent / "shared" / "fixtures"
VECTORS = FIXTURES / "alertmanager" / "signing-vectors.json"


def _parse_label_set(text: str) -> dict[str, str]:
    """Parse '{job="foo",severity="warning"}' (the vector keys) into a dict."""
    inner = text.strip()[1:-1]
    if not inner:
        return {}
    labels = {}
    for pair in inner.split(","):
        name, _, quoted = pair.partition("=")
        labels[name.strip()] = json.loads(quoted)
    return labels


@pytest.mark.skipif(not VECTORS.exists(), reason="shared fixtures not present")
def test_it_matches_the_alertmanager_vectors_from_the_fixture_file():
    vectors = json.loads(VECTORS.read_text())["alertmanager_fingerprint_fnv1a64"]
    assert len(vectors) == 3
    for label_set, expected in vectors.items():
        assert fingerprint(_parse_label_set(label_set)) == expected, label_set


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"job": "foo", "severity": "warning"}, "9266ef3da838ad95"),
        ({"job": "foo", "severity": "critical"}, "3b15fd163d36582e"),
        ({}, "cbf29ce484222325"),
    ],
)
def test_it_matches_the_alertmanager_template_test_vectors(labels, expected):
    assert fingerprint(labels) == expected


def test_it_does_not_depend_on_insertion_order():
    a = {"alertname": "GPUIdle", "gpu": "3", "node": "node-7"}
    b = {"node": "node-7", "gpu": "3", "alertname": "GPUIdle"}
    assert fingerprint(a) == fingerprint(b)


def test_it_separates_name_and_value_boundaries():
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})


def test_it_is_sixteen_lower_case_hex_digits_even_with_unicode():
    fp = fingerprint({"model": "深度求索", "node": "n1"})
    assert len(fp) == 16
    assert fp == fp.lower()
    int(fp, 16)
