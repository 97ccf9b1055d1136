"""The promtool ``input_series`` notation: series selectors and expanding values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rules.expanding import MAX_VALUES, Marker, NotationError, parse_series, parse_values

M, S = Marker.MISSING, Marker.STALE


def numbers(*values: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(v) for v in values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The examples of the Prometheus unit-testing docs.
        ("-2+4x3", numbers("-2", "2", "6", "10")),
        (" 1-2x4", numbers("1", "-1", "-3", "-5", "-7")),
        (" 1x4", numbers("1", "1", "1", "1", "1")),
        ("1 _x3 stale", (Decimal(1), M, M, M, S)),
        # a+bxn gives n+1 values; axn repeats a n+1 times; _xn gives n blanks.
        ("0+0x3", numbers("0", "0", "0", "0")),
        ("5x0", numbers("5")),
        ("_x0 7", numbers("7")),
        ("_ _x2", (M, M, M)),
        ("stalex1", (S, S)),
        # Plain numbers, negatives, scientific notation, the example.
        ("50 40 _ 30", (Decimal(50), Decimal(40), M, Decimal(30))),
        ("-1.5 +2 .5", numbers("-1.5", "2", "0.5")),
        ("1e3 2.5e-2 1E+2", numbers("1000", "0.025", "100")),
        ("1e3+1e1x2", numbers("1000", "1010", "1020")),
        # No hexadecimal in series values: 0x3 is 0 four times (as in Prometheus).
        ("0x3", numbers("0", "0", "0", "0")),
        ("Inf -inf", (Decimal("Infinity"), Decimal("-Infinity"))),
        ("", ()),
    ],
)
def test_it_expands_values_like_promtool(text: str, expected: tuple[Decimal | Marker]) -> None:
    assert parse_values(text) == expected


def test_it_steps_in_exact_decimals() -> None:
    assert parse_values("0.1+0.1x2") == numbers("0.1", "0.2", "0.3")
    assert parse_values("10.5-0.25x2") == numbers("10.5", "10.25", "10.0")


def test_it_reads_nan() -> None:
    (value,) = parse_values("NaN")
    assert isinstance(value, Decimal) and value.is_nan()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1 soon", "item 2 'soon': expected a number"),
        ("1+x3", "item 1 '1+x3'"),
        ("1x", "item 1 '1x'"),
        ("1++2x3", "item 1"),
        ("_+1x2", "item 1 '_+1x2'"),
        ("stale+1x2", "a stale marker cannot change by a step"),
        ("1,2", "item 1 '1,2'"),
    ],
)
def test_it_names_the_bad_item(text: str, fragment: str) -> None:
    with pytest.raises(NotationError) as info:
        parse_values(text)
    assert fragment in str(info.value)


def test_it_refuses_a_series_that_would_be_huge() -> None:
    with pytest.raises(NotationError, match="more than"):
        parse_values(f"1x{MAX_VALUES}")
    with pytest.raises(NotationError, match="more than"):
        parse_values(f"_x{MAX_VALUES + 1}")


def test_it_parses_a_series_selector() -> None:
    assert parse_series('tcowatch_gpu_power_watts{node="n1", gpu="0",uuid="GPU-1",}') == (
        "tcowatch_gpu_power_watts",
        {"node": "n1", "gpu": "0", "uuid": "GPU-1"},
    )
    assert parse_series("  tcowatch_llm_requests  ") == ("tcowatch_llm_requests", {})
    assert parse_series("{__name__='tcowatch_cloud_cost', provider=`aws`}") == (
        "tcowatch_cloud_cost",
        {"provider": "aws"},
    )


def test_it_unescapes_label_values() -> None:
    _, labels = parse_series(r'x{a="say \"hi\"\n", b="back\\slash"}')
    assert labels == {"a": 'say "hi"\n', "b": "back\\slash"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('x{a=~"b"}', "column 4: expected '=' after label 'a' (only '=' is allowed)"),
        ('x{a!="b"}', "column 4"),
        ('x{a="b"', "column 8: expected ',' or '}'"),
        ("x{a=b}", "column 5: expected a quoted label value"),
        ('x{a="b}', "unterminated label value"),
        ('x{a="1",a="2"}', "label 'a' is given twice"),
        ('x{a="\\q"}', "unknown escape"),
        ("x y", "column 3: unexpected text after the series"),
        ('{a="b"}', "expected a series name"),
        ('x{__name__="y"}', "named both 'x' and 'y'"),
        ('x{1a="b"}', "expected a label name"),
    ],
)
def test_it_names_the_column_of_a_bad_series(text: str, fragment: str) -> None:
    with pytest.raises(NotationError) as info:
        parse_series(text)
    assert fragment in str(info.value)
