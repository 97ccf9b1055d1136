from __future__ import annotations

from decimal import Decimal

import pytest

from rules.templating import (
    ERROR_PREFIX,
    bytes_,
    duration,
    money,
    percent,
    render,
    template_error,
)

LABELS = {"node": "node-7", "gpu": "3", "model_name": "NVIDIA H200"}


def test_it_renders_labels_and_value():
    text = render(
        "GPU {{ labels.gpu }} on {{ labels['node'] }} at {{ value | percent }}",
        labels=LABELS,
        value=0.0123,
    )
    assert text == "GPU 3 on node-7 at 1.2%"


def test_it_returns_plain_text_unchanged():
    assert render("no templates here", labels={}, value=None) == "no templates here"


def test_it_does_not_escape_html_characters():
    assert render("{{ labels.x }}", labels={"x": "<a & b>"}, value=None) == "<a & b>"


def test_it_renders_a_missing_label_as_empty():
    assert render("[{{ labels.absent }}]", labels=LABELS, value=None) == "[]"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",
        "{{ labels.__class__ }}",
        "{{ ''|attr('__class__') }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ self.__init__ }}",
    ],
)
def test_it_blocks_sandbox_escapes(template):
    text = render(template, labels=LABELS, value=1.0)
    assert text.startswith(ERROR_PREFIX)
    assert "SecurityError" in text
    assert "<class" not in text


def test_it_blocks_mutating_the_passed_labels():
    labels = {"node": "node-7"}
    text = render("{{ labels.update({'node': 'x'}) }}", labels=labels, value=None)
    assert text.startswith(ERROR_PREFIX)
    assert labels == {"node": "node-7"}


@pytest.mark.parametrize(
    "template", ["{{ 'a' * 10000000 }}", "{{ 10 ** 100000 }}", "{{ range(10 ** 9) | list }}"]
)
def test_it_refuses_huge_computations(template):
    assert render(template, labels={}, value=None).startswith(ERROR_PREFIX)


def test_it_still_allows_small_arithmetic():
    assert render("{{ 'ab' * 2 }} {{ 2 ** 10 }} {{ 3 * 4 }}", labels={}, value=None) == (
        "abab 1024 12"
    )


def test_it_returns_an_error_text_on_a_syntax_error():
    text = render("{% if %}", labels=LABELS, value=1.0)
    assert text.startswith("<error expanding template: TemplateSyntaxError")
    assert text.endswith(">")


def test_it_returns_an_error_text_on_an_undefined_attribute_chain():
    text = render("{{ labels.absent.deeper }}", labels=LABELS, value=1.0)
    assert text.startswith("<error expanding template: UndefinedError")


def test_it_returns_an_error_text_when_a_filter_fails():
    assert render("{{ value | percent }}", labels={}, value=None).startswith(ERROR_PREFIX)
    assert render("{{ labels.node | money }}", labels=LABELS, value=None).startswith(ERROR_PREFIX)


def test_it_reports_syntax_errors_for_config_validation():
    assert template_error("{{ labels.node }}") is None
    problem = template_error("{{ labels.node ")
    assert problem is not None
    assert problem.startswith(ERROR_PREFIX)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.123, "12.3%"), (1, "100.0%"), (0, "0.0%"), (0.99999, "100.0%"), ("0.5", "50.0%")],
)
def test_it_formats_percent(value, expected):
    assert percent(value) == expected


def test_it_formats_percent_with_digits_in_a_template():
    assert render("{{ value | percent(0) }}", labels={}, value=0.456) == "46%"


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (Decimal("2350000"), "CNY", "2,350,000.00 CNY"),
        (1234.5, None, "1,234.50"),
        (Decimal("0.005"), None, "0.01"),
        (Decimal("0.015"), "USD", "0.02 USD"),
        (2.675, None, "2.68"),
        (Decimal("-1234.567"), "EUR", "-1,234.57 EUR"),
        (Decimal("-0.001"), None, "0.00"),
        ("99.999", None, "100.00"),
        (0, None, "0.00"),
    ],
)
def test_it_formats_money_half_up_with_separators(value, currency, expected):
    assert money(value, currency) == expected


def test_it_formats_money_in_a_template_with_a_currency():
    text = render("{{ value | money('USD') }}", labels={}, value=1234567.891)
    assert text == "1,234,567.89 USD"


@pytest.mark.parametrize("bad", ["abc", float("nan"), float("inf"), True, None])
def test_it_rejects_non_numbers_as_money(bad):
    with pytest.raises((ValueError, TypeError)):
        money(bad)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (3900, "1h 5m"),
        (3905, "1h 5m 5s"),
        (45, "45s"),
        (0, "0s"),
        (0.25, "0.25s"),
        (86_400 * 2 + 3600 * 3, "2d 3h"),
        (60, "1m"),
        (-90, "-1m 30s"),
        (59.9, "59s"),
    ],
)
def test_it_formats_durations(seconds, expected):
    assert duration(seconds) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (64 * 1024**3, "64.0 GiB"),
        (512, "512 B"),
        (0, "0 B"),
        (1536, "1.5 KiB"),
        (141 * 1024**3, "141.0 GiB"),
        (1024**4, "1.0 TiB"),
        (3 * 1024**7, "3072.0 EiB"),
    ],
)
def test_it_formats_bytes_in_iec_units(size, expected):
    assert bytes_(size) == expected


def test_it_exposes_bytes_and_duration_filters_in_templates():
    text = render("{{ 68719476736 | bytes }} for {{ 3900 | duration }}", labels={}, value=None)
    assert text == "64.0 GiB for 1h 5m"
