"""Prometheus text exposition format 0.0.4: a strict, fast parser.

One job: turn a ``/metrics`` body into ``Sample`` records (name, label dict, float value, line
number) plus the declared family types. It knows nothing about dcgm-exporter, vLLM or any other
source; the mapping modules next to it read the result.

Speed: a dcgm-exporter page for a large fleet has tens of thousands of sample lines whose label
sets repeat once per family. For the common line shape ``name{labels} value`` (no escapes, single
spaces) the name, the label string and the value are cut out with ``str.find``; each distinct
label string is validated and split by regular expressions only once per body and then looked
up, and each returned sample gets its own copy of the label dict. Any line that is not of that
shape goes through a character-level parser that either reads it (escapes, blanks, timestamps)
or reports exactly what is wrong.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

__all__ = ["Exposition", "ExpositionError", "Sample", "parse_exposition"]

_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_VALUE = (
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[+-]?(?i:inf(?:inity)?|nan)"
)
_PLAIN_PAIR = rf'{_LABEL_NAME}="[^"\\]*"'

# Pieces of the common line ``name{labels} value`` (no escapes, single spaces).
_METRIC_NAME_FULL = re.compile(_METRIC_NAME).fullmatch
_PLAIN_LABEL_SET_FULL = re.compile(rf"(?:{_PLAIN_PAIR}(?:,{_PLAIN_PAIR})*,?)?").fullmatch
_PLAIN_PAIRS = re.compile(rf'({_LABEL_NAME})="([^"\\]*)"').findall
_METRIC_NAME_AT = re.compile(_METRIC_NAME).match
_LABEL_NAME_AT = re.compile(_LABEL_NAME).match
_VALUE_FULL = re.compile(_VALUE).fullmatch
_TIMESTAMP_FULL = re.compile(r"-?[0-9]+").fullmatch
_TOKEN_AT = re.compile(r"[^ \t]+").match
_BLANKS_AT = re.compile(r"[ \t]*").match
_QUOTE_OR_BACKSLASH = re.compile(r'["\\]').search
_COMMENT = re.compile(r"#[ \t]*([^ \t]*)(?:[ \t]+(.*))?").fullmatch

# The five of format 0.0.4, plus the OpenMetrics names some exporters print in this format.
_TYPES_004 = ("counter", "gauge", "histogram", "summary", "untyped")
_KNOWN_TYPES = frozenset((*_TYPES_004, "unknown", "info", "stateset", "gaugehistogram"))
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_HELP_ESCAPES = {"\\": "\\", "n": "\n"}

_Pairs = tuple[tuple[str, str], ...]
_NO_LABELS: tuple[dict[str, str], int] = ({}, 0)


class ExpositionError(ValueError):
    """A body that is not valid Prometheus text format 0.0.4.

    ``line`` is the 1-based line the problem is on, or 0 when it concerns the whole body
    (invalid UTF-8). ``str(err)`` is ``"line N: message"``, or just ``message`` when line is 0.
    """

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line else message)

    def __reduce__(self) -> tuple[type[ExpositionError], tuple[int, str]]:
        return (type(self), (self.line, self.message))


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line: full sample name, unescaped labels, value as written (NaN/Inf kept)."""

    name: str
    labels: dict[str, str]
    value: float
    line: int


@dataclass(frozen=True, slots=True)
class Exposition:
    """A parsed body: samples in body order, declared ``# TYPE``s and ``# HELP`` texts by family."""

    samples: list[Sample]
    types: dict[str, str]
    help: dict[str, str] = field(default_factory=dict)
    _index: dict[str, list[Sample]] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def _by_name(self) -> dict[str, list[Sample]]:
        index = self._index
        if index is None:
            index = {}
            for sample in self.samples:
                bucket = index.get(sample.name)
                if bucket is None:
                    index[sample.name] = [sample]
                else:
                    bucket.append(sample)
            object.__setattr__(self, "_index", index)
        return index

    def named(self, name: str) -> list[Sample]:
        """All samples with exactly this sample name, in body order (a new list; may be empty)."""
        return list(self._by_name().get(name, ()))

    def names(self) -> set[str]:
        """Every sample name present in the body."""
        return set(self._by_name())


def parse_exposition(
    body: str | bytes,
    *,
    max_label_value_length: int = 4096,
    max_samples: int = 2_000_000,
) -> Exposition:
    """Parse a Prometheus text-format (0.0.4) body.

    ``# HELP`` and ``# TYPE`` lines are read, other comments and blank lines ignored; a timestamp
    after the value is accepted and dropped; ``NaN``/``+Inf``/``-Inf`` values parse as floats.

    Raises ``ExpositionError`` (with the 1-based line) for: invalid UTF-8 (line 0), a non-empty
    body not ending in a newline (truncated), bad metric or label names, a reserved ``__name__``
    label, bad escapes, unterminated quotes or braces, duplicate label names in one sample, the
    same series twice (same name and label set, in any label order), unparsable values or
    timestamps, an unknown or conflicting ``# TYPE``, a label value longer than
    ``max_label_value_length`` characters, and more than ``max_samples`` samples. It raises
    nothing else.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ExpositionError(0, "body is not valid UTF-8") from None
    else:
        text = body
    if not text:
        return Exposition(samples=[], types={})
    lines = text.split("\n")
    if lines[-1]:
        raise ExpositionError(len(lines), "body does not end in a newline (truncated?)")
    lines.pop()

    samples: list[Sample] = []
    append = samples.append
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    label_cache: dict[str, tuple[dict[str, str], int]] = {}
    label_set_ids: dict[_Pairs, int] = {(): 0}
    seen: dict[tuple[str, int], int] = {}
    new_sample = Sample

    good_names: set[str] = set()
    for lineno, line in enumerate(lines, 1):
        # Fast path: each label string is validated and split once per body, then looked up;
        # the value is one space after "}" (or the name) and a plain ASCII float literal.
        cached: tuple[dict[str, str], int] | None = None
        open_at = line.find("{")
        if open_at > 0:
            close_at = line.rfind("}")
            if close_at > open_at:
                name = line[:open_at]
                value_text = line[close_at + 1 :]
                if (  # _plain_value(value_text), inlined on the hot path
                    value_text[:1] == " "
                    and value_text[1:2] > " "
                    and value_text[-1:] > " "
                    and value_text.isascii()
                    and "_" not in value_text
                    and (name in good_names or _good_name(name, good_names))
                ):
                    label_text = line[open_at + 1 : close_at]
                    cached = label_cache.get(label_text)
                    if cached is None:
                        cached = _plain_label_set(
                            label_text, lineno, max_label_value_length, label_set_ids
                        )
                        if cached is not None:
                            label_cache[label_text] = cached
        else:
            space_at = line.find(" ")
            if space_at > 0:
                name = line[:space_at]
                value_text = line[space_at:]
                if (name in good_names or _good_name(name, good_names)) and _plain_value(
                    value_text
                ):
                    cached = _NO_LABELS
        if cached is not None:
            try:
                value = float(value_text)
            except ValueError:  # e.g. a timestamp after the value
                cached = None
        if cached is not None:
            template, set_id = cached
            labels = template.copy()
        else:
            stripped = line.lstrip(" \t")
            if not stripped:
                continue
            if stripped[0] == "#":
                _read_comment(stripped, lineno, types, helps)
                continue
            name, pair_list, value = _parse_sample_slow(line, lineno, max_label_value_length)
            labels = dict(pair_list)
            canonical = tuple(sorted(pair_list))
            set_id = label_set_ids.setdefault(canonical, len(label_set_ids))
        first = seen.setdefault((name, set_id), lineno)
        if first != lineno:
            raise ExpositionError(
                lineno, f"duplicate series {_render_series(name, labels)} (first on line {first})"
            )
        if len(samples) >= max_samples:
            raise ExpositionError(lineno, f"more than {max_samples} samples")
        append(new_sample(name, labels, value, lineno))
    return Exposition(samples=samples, types=types, help=helps)


def _good_name(name: str, good_names: set[str]) -> bool:
    if _METRIC_NAME_FULL(name) is None:
        return False
    good_names.add(name)
    return True


def _plain_value(text: str) -> bool:
    """One space, then a plain ASCII token that ``float`` reads exactly as the grammar does.

    ``float`` also takes underscores, non-ASCII digits and surrounding whitespace, so those are
    excluded here; an inner blank (a timestamp) makes ``float`` fail and the line goes slow.
    """
    return (
        text[:1] == " "
        and text[1:2] > " "
        and text[-1:] > " "
        and text.isascii()
        and "_" not in text
    )


def _plain_label_set(
    label_text: str, lineno: int, max_length: int, label_set_ids: dict[_Pairs, int]
) -> tuple[dict[str, str], int] | None:
    """Validate and split an escape-free label string; ``None`` when it needs the slow path."""
    if _PLAIN_LABEL_SET_FULL(label_text) is None:
        return None
    pairs: _Pairs = tuple(_PLAIN_PAIRS(label_text))
    names: set[str] = set()
    for label, _ in pairs:
        if label in names:
            raise ExpositionError(lineno, f"duplicate label name {label!r}")
        names.add(label)
    if "__name__" in names:
        raise ExpositionError(lineno, "label name '__name__' is reserved")
    if len(label_text) > max_length:
        for label, value in pairs:
            if len(value) > max_length:
                raise _too_long(lineno, label, max_length)
    canonical = tuple(sorted(pairs))
    return dict(pairs), label_set_ids.setdefault(canonical, len(label_set_ids))


def _too_long(lineno: int, label: str, max_length: int) -> ExpositionError:
    return ExpositionError(
        lineno, f"value of label {label!r} is longer than {max_length} characters"
    )


def _render_series(name: str, labels: dict[str, str], limit: int = 200) -> str:
    inner = ",".join(f"{label}={value!r}" for label, value in labels.items())
    text = f"{name}{{{inner}}}" if labels else name
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_comment(line: str, lineno: int, types: dict[str, str], helps: dict[str, str]) -> None:
    """Read ``# HELP`` / ``# TYPE``; any other comment (or one without a name) is ignored."""
    match = _COMMENT(line)
    if match is None:
        return
    keyword, rest = match.groups()
    if keyword not in ("HELP", "TYPE") or not rest:
        return
    name_match = _METRIC_NAME_AT(rest)
    end = name_match.end() if name_match is not None else 0
    if end == 0 or (end < len(rest) and rest[end] not in " \t"):
        raise ExpositionError(lineno, f"invalid metric name in # {keyword} line")
    family = rest[:end]
    text = rest[end:].lstrip(" \t")
    if keyword == "HELP":
        if family not in helps:
            helps[family] = _unescape_help(text, lineno)
        return
    if not text:
        return
    written = text.rstrip(" \t")
    kind = written.lower()
    if kind not in _KNOWN_TYPES:
        raise ExpositionError(lineno, f"unknown metric type {written!r} for {family}")
    previous = types.setdefault(family, kind)
    if previous != kind:
        raise ExpositionError(lineno, f"conflicting # TYPE for {family}: {previous} then {kind}")


def _unescape_help(text: str, lineno: int) -> str:
    parts: list[str] = []
    i = 0
    while (j := text.find("\\", i)) >= 0:
        escaped = _HELP_ESCAPES.get(text[j + 1 : j + 2])
        if escaped is None:
            raise ExpositionError(lineno, f"invalid escape {text[j : j + 2]!r} in # HELP text")
        parts += (text[i:j], escaped)
        i = j + 2
    parts.append(text[i:])
    return "".join(parts)


def _skip_blanks(line: str, i: int) -> int:
    match = _BLANKS_AT(line, i)
    return match.end() if match is not None else i


def _parse_sample_slow(
    line: str, lineno: int, max_length: int
) -> tuple[str, list[tuple[str, str]], float]:
    """Character-level reading of one sample line (any spacing, escapes); precise errors."""
    n = len(line)
    i = _skip_blanks(line, 0)
    name_match = _METRIC_NAME_AT(line, i)
    if name_match is None:
        raise ExpositionError(lineno, f"invalid metric name at {line[i : i + 20]!r}")
    name = name_match.group()
    i = name_match.end()
    if i < n and line[i] not in " \t{":
        raise ExpositionError(lineno, f"unexpected character {line[i]!r} after metric name")
    i = _skip_blanks(line, i)
    pairs: list[tuple[str, str]] = []
    if i < n and line[i] == "{":
        i = _skip_blanks(line, _parse_label_set(line, i + 1, lineno, max_length, pairs))
    token = _TOKEN_AT(line, i)
    if token is None:
        raise ExpositionError(lineno, f"missing value for {name}")
    if _VALUE_FULL(token.group()) is None:
        raise ExpositionError(lineno, f"invalid value {token.group()[:40]!r}")
    value = float(token.group())
    i = _skip_blanks(line, token.end())
    if i < n:
        stamp = _TOKEN_AT(line, i)
        if stamp is None or _TIMESTAMP_FULL(stamp.group()) is None:
            raise ExpositionError(lineno, f"invalid timestamp {line[i : i + 40]!r}")
        i = _skip_blanks(line, stamp.end())
        if i < n:
            raise ExpositionError(lineno, f"unexpected text after timestamp: {line[i : i + 20]!r}")
    return name, pairs, value


def _parse_label_set(
    line: str, i: int, lineno: int, max_length: int, pairs: list[tuple[str, str]]
) -> int:
    """Read labels from just after ``{`` to just after ``}``; returns the index after ``}``."""
    n = len(line)
    names: set[str] = set()
    while True:
        i = _skip_blanks(line, i)
        if i >= n:
            raise ExpositionError(lineno, "unterminated label set (missing '}')")
        if line[i] == "}":
            return i + 1
        label_match = _LABEL_NAME_AT(line, i)
        if label_match is None:
            raise ExpositionError(lineno, f"invalid label name at {line[i : i + 20]!r}")
        label = label_match.group()
        if label == "__name__":
            raise ExpositionError(lineno, "label name '__name__' is reserved")
        if label in names:
            raise ExpositionError(lineno, f"duplicate label name {label!r}")
        names.add(label)
        i = _skip_blanks(line, label_match.end())
        if i >= n or line[i] != "=":
            raise ExpositionError(lineno, f"expected '=' after label name {label!r}")
        i = _skip_blanks(line, i + 1)
        if i >= n or line[i] != '"':
            raise ExpositionError(lineno, f"value of label {label!r} is not quoted")
        value, i = _read_label_value(line, i + 1, lineno, label)
        if len(value) > max_length:
            raise _too_long(lineno, label, max_length)
        pairs.append((label, value))
        i = _skip_blanks(line, i)
        if i < n and line[i] == ",":
            i += 1
        elif i >= n or line[i] != "}":
            raise ExpositionError(lineno, f"expected ',' or '}}' after label {label!r}")


def _read_label_value(line: str, i: int, lineno: int, label: str) -> tuple[str, int]:
    """Read an escaped label value from just after its opening quote; returns (value, index)."""
    parts: list[str] = []
    while True:
        special = _QUOTE_OR_BACKSLASH(line, i)
        if special is None:
            raise ExpositionError(lineno, f"unterminated value of label {label!r}")
        parts.append(line[i : special.start()])
        i = special.start()
        if line[i] == '"':
            return "".join(parts), i + 1
        escaped = _LABEL_ESCAPES.get(line[i + 1 : i + 2])
        if escaped is None:
            raise ExpositionError(
                lineno, f"invalid escape {line[i : i + 2]!r} in value of label {label!r}"
            )
        parts.append(escaped)
        i += 2
