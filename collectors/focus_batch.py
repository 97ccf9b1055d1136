"""``LineColumns``: a batch of validated cost lines held column by column.

The bulk form of ``CostLine`` that the FOCUS reader hands to bulk writers: one sequence per
``CostLine`` field instead of one frozen object per line, so a writer can turn a batch into
database parameters column by column. A column is computed on first use and remembered.

Besides the ``CostLine``-typed values (``column``), a batch may offer cheaper forms a writer can
use instead, when its source had them at hand (``None`` when it does not):

- ``floats(field)``: a ``Decimal`` field as binary floats, each exactly ``float(value)`` (the
  nearest double, as ``float(Decimal)`` gives it);
- ``json(field)``: a mapping field (``tags``, ``extra``) as JSON texts that decode to the
  mapping (compact: no spaces after ``,`` and ``:``);
- ``codes(field)``: ``(codes, values)`` with ``values[codes[n]]`` the value of line n, so that
  a writer converts each distinct value once (billing files repeat periods and names).

Error contract: ``column``/``floats``/``json`` raise ``KeyError`` for a name that is not a
``CostLine`` field; nothing else (values were validated when the batch was made).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

from collectors.base import CostLine

logger = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = tuple(CostLine.__dataclass_fields__)
"""``CostLine``'s fields, in declaration order."""

Column = Sequence[Any] | Callable[[], Sequence[Any]]
"""A column's values, or a function computing them on first use."""


class LineColumns:
    """Validated lines, one sequence per ``CostLine`` field (all of the same length)."""

    def __init__(
        self,
        size: int,
        columns: Mapping[str, Column],
        *,
        floats: Mapping[str, Column] | None = None,
        json: Mapping[str, Column] | None = None,
        codes: Mapping[str, Column] | None = None,
    ) -> None:
        missing = [name for name in FIELDS if name not in columns]
        if missing:
            raise KeyError(f"LineColumns needs every CostLine field; missing {missing}")
        self.size = size
        self._columns: dict[str, Column] = dict(columns)
        self._floats: dict[str, Column] = dict(floats or {})
        self._json: dict[str, Column] = dict(json or {})
        self._codes: dict[str, Any] = dict(codes or {})

    @classmethod
    def from_lines(cls, lines: Sequence[CostLine]) -> LineColumns:
        """The columns of ``lines`` (``CostLine``s of any source)."""
        if not lines:
            return cls(0, {name: () for name in FIELDS})
        values = list(zip(*map(attrgetter(*FIELDS), lines), strict=True))
        return cls(len(lines), dict(zip(FIELDS, values, strict=True)))

    @staticmethod
    def _get(store: dict[str, Column], name: str) -> Sequence[Any]:
        value = store[name]
        if callable(value):
            value = value()
            store[name] = value
        return value

    def column(self, name: str) -> Sequence[Any]:
        """The values of field ``name``, typed like the ``CostLine`` field."""
        return self._get(self._columns, name)

    def floats(self, name: str) -> Sequence[float | None] | None:
        """``float(value)`` of each value of a ``Decimal`` field, when cheaply at hand."""
        if name not in FIELDS:
            raise KeyError(name)
        return self._get(self._floats, name) if name in self._floats else None

    def json(self, name: str) -> Sequence[str] | None:
        """Compact JSON of each mapping of ``tags``/``extra``, when cheaply at hand."""
        if name not in FIELDS:
            raise KeyError(name)
        return self._get(self._json, name) if name in self._json else None

    def codes(self, name: str) -> tuple[Sequence[int], Sequence[Any]] | None:
        """``(codes, values)``: line n holds ``values[codes[n]]``, when cheaply at hand."""
        if name not in FIELDS:
            raise KeyError(name)
        if name not in self._codes:
            return None
        value = self._codes[name]
        if callable(value):
            value = self._codes[name] = value()
        return value  # type: ignore[no-any-return]

    def replace(self, **columns: Sequence[Any]) -> LineColumns:
        """A copy with some columns replaced (their other forms dropped)."""
        merged = {**self._columns, **columns}
        floats = {k: v for k, v in self._floats.items() if k not in columns}
        json = {k: v for k, v in self._json.items() if k not in columns}
        codes = {k: v for k, v in self._codes.items() if k not in columns}
        return LineColumns(self.size, merged, floats=floats, json=json, codes=codes)

    def lines(self) -> list[CostLine]:
        """The batch as ``CostLine``s."""
        return list(map(CostLine, *(self.column(name) for name in FIELDS)))


__all__ = ["FIELDS", "Column", "LineColumns"]
