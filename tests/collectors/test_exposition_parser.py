from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from collectors.exposition.parser import (
    Exposition,
    ExpositionError,
    Sample,
    parse_exposition,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "exposition"
FIXTURE_FILES = sorted(FIXTURES.glob("*.prom"))

Key = tuple[str, tuple[tuple[str, str], ...], float]


def keys_of(expo: Exposition) -> set[Key]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value) for s in expo.samples}


def prometheus_client_keys(text: str, our_names: set[str]) -> set[Key]:
    """prometheus_client's samples, undoing the ``_total`` it appends to counters without one."""
    keys: set[Key] = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name = s.name
            if name not in our_names and name.endswith("_total"):
                name = name[: -len("_total")]
            keys.add((name, tuple(sorted(s.labels.items())), float(s.value)))
    return keys


def dcgm_page(gpus: int, fields: tuple[tuple[str, str], ...]) -> str:
    """A dcgm-exporter 4.x page in the shape of the fixtures, 8 GPUs per node."""
    out: list[str] = []
    for f, (name, kind) in enumerate(fields):
        out.append(f"# HELP {name} Field {name}.\n# TYPE {name} {kind}\n")
        for i in range(gpus):
            node, index = divmod(i, 8)
            value = f"{(i * 31 + f) % 700 / 3:f}" if f % 2 else str((i * 7919 + f) % 100_000)
            out.append(
                f'{name}{{gpu="{index}",UUID="GPU-{i:08x}-13cc-013a-d88f-2bcf5ae8bc77",'
                f'pci_bus_id="00000000:{index:02X}:00.0",device="nvidia{index}",'
                f'modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-{node:03d}",'
                f'DCGM_FI_DRIVER_VERSION="535.129.03",container="vllm",namespace="prod",'
                f'pod="llama-{node:03d}-{index}"}} {value}\n'
            )
    return "".join(out)


# --- the recorded payloads -------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_it_parses_every_recorded_payload_like_prometheus_client(path: Path) -> None:
    text = path.read_text(encoding="utf-8")

    expo = parse_exposition(path.read_bytes())

    assert expo.samples
    assert keys_of(expo) == prometheus_client_keys(text, expo.names())


def test_it_reads_dcgm_mig_labels_into_a_dict() -> None:
    expo = parse_exposition((FIXTURES / "dcgm-exporter-h100-mig.prom").read_bytes())

    first, second = expo.named("DCGM_FI_PROF_GR_ENGINE_ACTIVE")
    assert expo.types == {"DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gauge"}
    assert expo.help == {
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "Ratio of time the graphics engine is active."
    }
    assert first.line == 3
    assert first.value == 0.0
    assert first.labels["GPU_I_PROFILE"] == "1g.10gb"
    assert first.labels["GPU_I_ID"] == "7"
    assert first.labels["pod"] == "text-embedding-predictor-00008-deployment-57946f6c67-vdtjl"
    assert second.labels["GPU_I_ID"] == "8"
    assert "pod" not in second.labels


def test_it_keeps_empty_label_values_and_integer_values() -> None:
    expo = parse_exposition((FIXTURES / "dcgm-exporter-legacy-empty-k8s-labels.prom").read_bytes())

    (energy,) = expo.named("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")
    assert energy.labels == {
        "gpu": "0",
        "UUID": "GPU-6bf47ca9-ad3e-15db-beed-1079a7d74116",
        "device": "nvidia0",
        "container": "",
        "namespace": "",
        "pod": "",
    }
    assert energy.value == 4335301032.0
    assert isinstance(energy.value, float)
    assert expo.named("DCGM_FI_DEV_POWER_USAGE")[0].value == 302.206
    assert expo.types == {}


def test_it_reads_vllm_colon_names_and_created_gauges() -> None:
    expo = parse_exposition((FIXTURES / "vllm-0.10-deprecated-prefix-cache.prom").read_text())

    assert expo.names() == {
        "vllm:gpu_prefix_cache_hits_total",
        "vllm:gpu_prefix_cache_hits_created",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries_total",
    }
    assert expo.types["vllm:gpu_prefix_cache_hits_created"] == "gauge"
    assert expo.types["vllm:prefix_cache_queries_total"] == "counter"
    (created,) = expo.named("vllm:gpu_prefix_cache_hits_created")
    assert created.value == 1.7537953269353123e09
    assert created.labels == {"engine": "0", "model_name": "zai-org/GLM-4.5"}
    assert expo.named("vllm:kv_cache_usage_perc")[0].value == 9.75010481363281e-06
    assert expo.named("vllm:prefix_cache_queries_total")[0].value == 32.0


def test_it_reads_sglang_exponent_values() -> None:
    expo = parse_exposition((FIXTURES / "sglang.prom").read_text())

    assert expo.named("sglang:prompt_tokens_total")[0].value == 8128902.0
    assert expo.named("sglang:cache_hit_rate")[0].value == 0.007507552643049313


def test_it_parses_dcgm_blank_sentinels_as_plain_floats() -> None:
    body = (
        'DCGM_FI_DEV_FB_USED{gpu="0"} 9223372036854775794\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="0"} 140737488355328.000000\n'
    )

    used, power = parse_exposition(body).samples

    assert used.value == float(9223372036854775794)
    assert used.value >= 0x7FFFFFFFFFFFFFF0
    assert power.value == 140737488355328.0


def test_it_agrees_with_prometheus_client_on_a_1024_gpu_page() -> None:
    fields = (
        ("DCGM_FI_DEV_POWER_USAGE", "gauge"),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter"),
    )
    text = dcgm_page(1024, fields)

    expo = parse_exposition(text)

    assert len(expo.samples) == 2 * 1024
    assert keys_of(expo) == prometheus_client_keys(text, expo.names())
    assert len(expo.named("DCGM_FI_DEV_POWER_USAGE")) == 1024


# --- what the format allows ------------------------------------------------------------------


def test_it_reads_special_values_timestamps_and_trailing_commas() -> None:
    body = 'a NaN\nb +Inf\nc -Inf 1712345678000\nd Inf\ne{x="1",} 52.636000\nf{} -3e-2 -5\ng 7\n'

    a, b, c, d, e, f, g = parse_exposition(body).samples

    assert math.isnan(a.value)
    assert (b.value, c.value, d.value) == (math.inf, -math.inf, math.inf)
    assert e.labels == {"x": "1"}
    assert e.value == 52.636
    assert (f.labels, f.value) == ({}, -0.03)
    assert g == Sample(name="g", labels={}, value=7.0, line=7)


def test_it_accepts_blanks_anywhere_the_format_allows_them() -> None:
    spaced = ' \tm { a = "1" ,\tb="2" , }\t 3.5   1000  \n'

    (sample,) = parse_exposition(spaced).samples

    assert sample == Sample(name="m", labels={"a": "1", "b": "2"}, value=3.5, line=1)


def test_it_unescapes_label_values_and_help_text() -> None:
    body = (
        "# HELP m A \\\\ backslash\\nand a second line.\n"
        'm{path="C:\\\\dir",quote="say \\"hi\\"",nl="one\\ntwo",brace="}{,="} 1\n'
    )

    expo = parse_exposition(body)

    assert expo.help == {"m": "A \\ backslash\nand a second line."}
    assert expo.samples[0].labels == {
        "path": "C:\\dir",
        "quote": 'say "hi"',
        "nl": "one\ntwo",
        "brace": "}{,=",
    }


def test_it_ignores_comments_blank_lines_and_help_or_type_without_a_name() -> None:
    body = "# just a comment\n\n   \n#\n# HELP\n# TYPE m\n#TYPE m counter\nm 1\n"

    expo = parse_exposition(body)

    assert [s.name for s in expo.samples] == ["m"]
    assert expo.samples[0].line == 8
    assert expo.types == {"m": "counter"}


def test_it_parses_an_empty_body_to_nothing() -> None:
    assert parse_exposition(b"").samples == []
    assert parse_exposition("\n\n").samples == []


def test_it_gives_every_sample_its_own_label_dict() -> None:
    body = 'a{gpu="0"} 1\nb{gpu="0"} 2\n'
    expo = parse_exposition(body)

    expo.samples[0].labels["gpu"] = "changed"

    assert expo.samples[1].labels == {"gpu": "0"}
    assert parse_exposition(body).samples[0].labels == {"gpu": "0"}


def test_it_indexes_samples_by_name() -> None:
    expo = parse_exposition('a{g="0"} 1\nb 2\na{g="1"} 3\n')

    assert [s.value for s in expo.named("a")] == [1.0, 3.0]
    assert expo.named("missing") == []
    assert expo.names() == {"a", "b"}
    expo.named("a").clear()
    assert len(expo.named("a")) == 2


def test_it_indexes_an_exposition_built_by_hand() -> None:
    sample = Sample(name="x", labels={}, value=1.0, line=1)

    expo = Exposition(samples=[sample], types={})

    assert expo.named("x") == [sample]
    assert expo == Exposition(samples=[sample], types={})


def test_it_reads_the_same_line_the_same_way_on_the_fast_and_the_slow_path() -> None:
    fast = 'm{a="1",b="x y",c=""} 2.5\n'
    slow = 'm{ a="1", b="x y", c="" } 2.5 99\n'

    assert parse_exposition(fast).samples == parse_exposition(slow).samples


# --- what it rejects -------------------------------------------------------------------------

ERRORS = [
    ('ok 1\nm{a="\\x"} 1\n', 2, "invalid escape"),
    ('m{a="unterminated} 1\n', 1, "unterminated value"),
    ('m{a="1" 1\n', 1, "expected ',' or '}'"),
    ('m{a="1",\n', 1, "unterminated label set"),
    ("1m 1\n", 1, "invalid metric name"),
    ("m-x 1\n", 1, "unexpected character '-'"),
    ('m{1a="1"} 1\n', 1, "invalid label name"),
    ('m{,a="1"} 1\n', 1, "invalid label name"),
    ('m{a="1",,} 1\n', 1, "invalid label name"),
    ("m{a=1} 1\n", 1, "not quoted"),
    ('m{a "1"} 1\n', 1, "expected '='"),
    ('m{a="1",a="2"} 1\n', 1, "duplicate label name 'a'"),
    ('m{a="\\n",a="2"} 1\n', 1, "duplicate label name 'a'"),
    ('m{__name__="x"} 1\n', 1, "reserved"),
    ('m{a="1",b="2"} 1\nm{b="2",a="1"} 2\n', 2, "duplicate series"),
    ("m 1\n\nm{} 2\n", 3, "first on line 1"),
    ('m{a="\\\\"} 1\nm{a="\\\\"} 2\n', 2, "duplicate series"),
    ('m{a="1"}\n', 1, "missing value"),
    ("m 1x\n", 1, "invalid value"),
    ("m 1_000\n", 1, "invalid value"),
    ("m \u0661\n", 1, "invalid value"),
    ("m 1\r\n", 1, "invalid value"),
    ('m{a="1"} 1_000\n', 1, "invalid value"),
    ('m{a="1"} \u0661\n', 1, "invalid value"),
    ('m{a="1"} 1\r\n', 1, "invalid value"),
    ('m{a="1"} \x0c1\n', 1, "invalid value"),
    ("m 1 12.5\n", 1, "invalid timestamp"),
    ("m 1 12 13\n", 1, "unexpected text after timestamp"),
    ("# TYPE m gauge\nm 1", 2, "does not end in a newline"),
    ("# TYPE m meter\n", 1, "unknown metric type 'meter'"),
    ("# TYPE m gauge\n# TYPE m counter\n", 2, "conflicting # TYPE"),
    ("# HELP m bad \\t escape\n", 1, "invalid escape"),
    ("# HELP m-x help\n", 1, "invalid metric name"),
]


@pytest.mark.parametrize(("body", "line", "fragment"), ERRORS)
def test_it_rejects_malformed_bodies_naming_the_line(body: str, line: int, fragment: str) -> None:
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(body)

    assert caught.value.line == line
    assert fragment in caught.value.message
    assert str(caught.value) == f"line {line}: {caught.value.message}"


def test_it_rejects_invalid_utf8_without_a_line() -> None:
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(b'm{a="\xff"} 1\n')

    assert caught.value.line == 0
    assert str(caught.value) == "body is not valid UTF-8"


@pytest.mark.parametrize("value", ["x" * 11, "x" * 10 + "\\n"])
def test_it_rejects_label_values_over_the_limit(value: str) -> None:
    body = f'ok{{a="{"x" * 10}"}} 1\nm{{a="1",b="{value}"}} 1\n'

    with pytest.raises(ExpositionError) as caught:
        parse_exposition(body, max_label_value_length=10)

    assert caught.value.line == 2
    assert "'b' is longer than 10" in caught.value.message


def test_it_rejects_more_samples_than_allowed() -> None:
    with pytest.raises(ExpositionError) as caught:
        parse_exposition("a 1\nb 2\nc 3\n", max_samples=2)

    assert caught.value.line == 3
    assert "more than 2 samples" in caught.value.message


# --- properties ------------------------------------------------------------------------------

LETTERS = "abcxyzABCXYZ_"
DIGITS = "0189"
metric_names = st.builds(
    str.__add__, st.sampled_from(LETTERS + ":"), st.text(LETTERS + DIGITS + ":", max_size=8)
)
label_names = st.builds(
    str.__add__, st.sampled_from(LETTERS), st.text(LETTERS + DIGITS, max_size=6)
).filter(lambda name: name != "__name__")
any_character = st.characters(exclude_categories=("Cs",))  # surrogates cannot be sent as UTF-8
label_values = st.text(any_character | st.sampled_from('"\\\n{}=, \t'), max_size=10)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: (v, repr(v))),
    st.integers(-(2**64), 2**64).map(lambda i: (float(i), str(i))),
    st.sampled_from([(math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf")]),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(
        lambda v: (float(f"{v:f}"), f"{v:f}")
    ),
)
series = st.tuples(
    metric_names, st.dictionaries(label_names, label_values, max_size=3), numbers, st.booleans()
)
expositions = st.lists(series, max_size=8, unique_by=lambda s: (s[0], frozenset(s[1].items())))
help_texts = st.text(any_character | st.sampled_from("\\\n"), max_size=12)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_line(name: str, labels: dict[str, str], text: str, spaced: bool) -> str:
    pairs = [f'{k}="{escape_label(v)}"' for k, v in labels.items()]
    if spaced:  # blanks, a trailing comma and a timestamp: the character-level path
        inner = " , ".join(pairs) + " ," if pairs else ""
        return f" {name} {{ {inner} }}\t{text}  1712345678000 \n"
    return f"{name}{{{','.join(pairs)}}} {text}\n" if pairs else f"{name} {text}\n"


def comparable(value: float) -> object:
    return "nan" if math.isnan(value) else value


@settings(max_examples=80, deadline=None)
@given(expositions, st.dictionaries(metric_names, help_texts, max_size=3))
def test_it_reads_back_any_valid_exposition(
    samples: list[tuple[str, dict[str, str], tuple[float, str], bool]], helps: dict[str, str]
) -> None:
    lines = [
        f"# HELP {name} {text.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}\n"
        for name, text in helps.items()
    ]
    lines += [
        render_line(name, labels, text, spaced) for name, labels, (_, text), spaced in samples
    ]

    expo = parse_exposition("".join(lines).encode("utf-8"))

    assert [(s.name, s.labels, comparable(s.value)) for s in expo.samples] == [
        (name, labels, comparable(value)) for name, labels, (value, _), _ in samples
    ]
    assert [s.line for s in expo.samples] == list(range(len(helps) + 1, len(lines) + 1))
    assert expo.help == {name: text.lstrip(" \t") for name, text in helps.items()}


exposition_like = st.text(st.sampled_from('ab_:{}="\\\n,# \t1.e+-xnNaIf\r\u0661'), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.one_of(exposition_like, st.text(max_size=40)))
def test_it_raises_only_exposition_errors_on_arbitrary_text(text: str) -> None:
    try:
        expo = parse_exposition(text)
    except ExpositionError as err:
        assert 1 <= err.line <= text.count("\n") + 1
    else:
        assert all(s.line >= 1 for s in expo.samples)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=40))
def test_it_raises_only_exposition_errors_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_exposition(body)
    except ExpositionError as err:
        assert err.line >= 0
