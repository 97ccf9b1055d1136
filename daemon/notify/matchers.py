"""Alertmanager label matchers: ``name="value"``, ``!=``, ``=~`` and ``!~``.

The syntax is Alertmanager's classic one (``pkg/labels/parse.go``): a label name, an operator,
and a value that may be wrapped in double quotes. Inside the value ``\\"`` is a quote, ``\\n`` a
line feed and ``\\\\`` a backslash; any other backslash is literal. An unescaped ``"`` inside the
value is an error. A list form holds several matchers separated by commas outside quotes,
optionally in braces: ``{severity=~"warning|critical", team="ml-infra"}``.

Regular expressions are anchored at both ends, as in Alertmanager (``=~"gpu.*"`` must match the
whole value). They are compiled with Python's ``re``, which accepts the RE2 syntax used in
practice; RE2-only classes such as ``\\pL`` are rejected with a clear error. A label that is
missing from an alert matches as the empty string (so ``team!="x"`` matches an alert with no
``team`` label, and ``team=""`` selects alerts without one).

Error contract: ``parse_matcher``, ``parse_matchers`` and ``Matcher.from_api`` raise
``MatcherError`` (a ``ValueError``) whose message quotes the offending text and says what is
wrong; nothing else escapes for bad input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

Operator = Literal["=", "!=", "=~", "!~"]
OPERATORS: tuple[Operator, ...] = ("=", "!=", "=~", "!~")
_OPERATOR_ORDER = {op: index for index, op in enumerate(OPERATORS)}

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""A Prometheus label name."""

_MATCHER = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*", re.DOTALL)
_LEADING_FLAGS = re.compile(r"\(\?[ims]+\)")
"""RE2 flags such as ``(?i)`` at the start of a regex (Python wants them before the group)."""
_NAME_ONLY = re.compile(r"\s*([^=!~\s]*)\s*(.*)", re.DOTALL)


class MatcherError(ValueError):
    """A matcher could not be parsed or compiled; the message names the text and the problem."""


@dataclass(frozen=True)
class Matcher:
    """One label matcher. Build it with ``parse_matcher`` or ``Matcher.create``."""

    name: str
    op: Operator
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def create(cls, name: str, op: str, value: str) -> Matcher:
        """A matcher from its parts; raises ``MatcherError`` for a bad operator or regex."""
        if op not in OPERATORS:
            raise MatcherError(f"{name}{op}{value!r}: unknown operator {op!r} (use =, !=, =~, !~)")
        if not name:
            raise MatcherError("a matcher needs a label name")
        regex: re.Pattern[str] | None = None
        if op in ("=~", "!~"):
            flags = _LEADING_FLAGS.match(value)
            pattern = f"{flags.group(0)}(?:{value[flags.end() :]})" if flags else f"(?:{value})"
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise MatcherError(
                    f'{name}{op}"{value}": invalid regular expression: {exc.msg}'
                ) from None
        return cls(name=name, op=op, value=value, _regex=regex)

    @property
    def is_regex(self) -> bool:
        """Whether the value is a regular expression (``=~`` or ``!~``)."""
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        """Whether the matcher selects matching values (``=`` or ``=~``), not the others."""
        return self.op in ("=", "=~")

    def matches_value(self, value: str) -> bool:
        """Whether a label value (``""`` for a missing label) satisfies this matcher."""
        if self._regex is not None:
            found = self._regex.fullmatch(value) is not None
            return found if self.op == "=~" else not found
        return (value == self.value) if self.op == "=" else (value != self.value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label is the empty string)."""
        return self.matches_value(labels.get(self.name, ""))

    def __str__(self) -> str:
        """Alertmanager's text form: ``name="value"`` with OpenMetrics escaping."""
        return f'{self.name}{self.op}"{escape_value(self.value)}"'

    def to_api(self) -> dict[str, Any]:
        """The Alertmanager API form ``{"name", "value", "isRegex", "isEqual"}``."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        """Read the API form back; raises ``MatcherError`` when a key is missing or wrong."""
        name, value = data.get("name"), data.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise MatcherError(f"matcher {dict(data)!r}: needs string 'name' and 'value'")
        is_regex = bool(data.get("isRegex", False))
        is_equal = bool(data.get("isEqual", True))
        op: Operator = ("=~" if is_equal else "!~") if is_regex else ("=" if is_equal else "!=")
        return cls.create(name, op, value)


def escape_value(value: str) -> str:
    """OpenMetrics escaping of a matcher value: backslash, line feed and double quote."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``severity=~"warning|critical"``.

    Raises ``MatcherError`` naming the text: a missing or invalid label name, a missing
    operator, an unterminated or stray double quote, or an invalid regular expression.
    """
    if not isinstance(text, str):
        raise MatcherError(f"expected a matcher string like 'severity=\"critical\"', got {text!r}")
    found = _MATCHER.fullmatch(text)
    if found is None:
        raise MatcherError(_diagnose(text))
    name, op, raw = found.group(1), found.group(2), found.group(3)
    return Matcher.create(name, op, _unescape(raw, text))


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a comma-separated list, optionally in braces: ``{a="b", c=~"d"}``.

    Commas inside double quotes do not separate; a trailing comma is allowed. ``"{}"`` and
    ``""`` give an empty list. Raises ``MatcherError`` for the first bad matcher.
    """
    if not isinstance(text, str):
        raise MatcherError(f"expected matchers like '{{team=\"ml\"}}', got {text!r}")
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise MatcherError(f"{text!r}: an opening '{{' needs a closing '}}'")
        body = body[1:-1]
    elif body.endswith("}"):
        raise MatcherError(f"{text!r}: a closing '}}' without an opening '{{'")
    return [parse_matcher(token) for token in _split(body, text)]


def parse_matcher_list(items: Iterable[str] | str) -> list[Matcher]:
    """Parse config-style matchers: a list whose entries each hold one or more matchers.

    A single string is read as one entry. ``MatcherError`` messages are prefixed with the
    entry's index (``[1]: ...``) when there are several entries.
    """
    entries = [items] if isinstance(items, str) else list(items)
    parsed: list[Matcher] = []
    for index, entry in enumerate(entries):
        try:
            parsed.extend(parse_matchers(entry))
        except MatcherError as exc:
            if len(entries) == 1:
                raise
            raise MatcherError(f"[{index}]: {exc}") from None
    return parsed


def sort_matchers(matchers: Iterable[Matcher]) -> list[Matcher]:
    """Matchers in Alertmanager's order: by name, then value, then operator."""
    return sorted(matchers, key=lambda m: (m.name, m.value, _OPERATOR_ORDER[m.op]))


def format_matchers(matchers: Sequence[Matcher]) -> str:
    """Alertmanager's ``Matchers.String()``: ``{a="b",c=~"d"}`` in the given order."""
    return "{" + ",".join(str(m) for m in matchers) + "}"


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher matches ``labels`` (true for no matchers)."""
    return all(m.matches(labels) for m in matchers)


def _split(body: str, original: str) -> list[str]:
    """Split on commas outside double quotes (a ``\\"`` does not toggle quoting)."""
    tokens: list[str] = []
    current: list[str] = []
    inside = escaped = False
    for char in body:
        if char == "," and not inside:
            tokens.append("".join(current))
            current = []
            continue
        if char == '"':
            if escaped:
                escaped = False
            else:
                inside = not inside
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        current.append(char)
    last = "".join(current).strip()
    if last:
        tokens.append(last)
    if inside:
        raise MatcherError(f"{original!r}: unterminated double quote")
    for token in tokens:
        if not token.strip():
            raise MatcherError(f"{original!r}: empty matcher between commas")
    return tokens


def _unescape(raw: str, text: str) -> str:
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = closed = False
    for index, char in enumerate(raw):
        if closed:
            raise MatcherError(f"{text.strip()!r}: unexpected text after the closing double quote")
        if escaped:
            escaped = False
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
            continue
        if char == "\\":
            if index < len(raw) - 1:
                escaped = True
            else:
                out.append("\\")
        elif char == '"':
            if not quoted:
                raise MatcherError(
                    f'{text.strip()!r}: unescaped double quote in the value (write \\")'
                )
            closed = True
        else:
            out.append(char)
    if quoted and not closed:
        raise MatcherError(f"{text.strip()!r}: the value's double quote is never closed")
    return "".join(out)


def _diagnose(text: str) -> str:
    """Why ``text`` is not ``NAME OP VALUE``, in words."""
    shown = text.strip()
    if not shown:
        return 'empty matcher: expected NAME OP VALUE such as severity="critical"'
    head = _NAME_ONLY.fullmatch(text)
    name, rest = (head.group(1), head.group(2)) if head else ("", shown)
    if not name:
        return f"{shown!r}: missing label name before the operator"
    if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name):
        return f"{shown!r}: {name!r} is not a valid label name"
    if not rest.startswith(OPERATORS):
        return f"{shown!r}: expected an operator (=, !=, =~ or !~) after {name!r}"
    return f'{shown!r}: expected NAME OP VALUE such as severity="critical"'


__all__ = [
    "LABEL_NAME",
    "OPERATORS",
    "Matcher",
    "MatcherError",
    "Operator",
    "escape_value",
    "format_matchers",
    "matches_all",
    "parse_matcher",
    "parse_matcher_list",
    "parse_matchers",
    "sort_matchers",
]
