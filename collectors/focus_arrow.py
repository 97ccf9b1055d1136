"""The columnar path of the FOCUS CSV reader: Arrow parses and checks whole batches at once.

``ArrowCsv`` streams a CSV (plain or gzip) as Arrow record batches of strings (``""`` and
``null`` read as null; a thread parses a few blocks ahead) and ``ArrowMapper`` validates each
batch column by column and turns it into ``LineColumns``, with the same rules, values and row
keys as the row path (``focus_columns.RowMapper``):

- decimals must match a plain decimal pattern (a subset of what the row path accepts: sign
  ``-`` only, ASCII digits, optional fraction and exponent), checked by Arrow's regex kernel;
  their ``floats`` come from Arrow's string -> double cast, which is correctly rounded, so
  they equal ``float(Decimal(text))``;
- datetimes, currencies, allowed values and JSON key-value cells are converted once per
  distinct text with the row path's own converters (remembered across batches);
- required columns must hold no null and periods must not end before they start.

This path never reports a bad row itself: ``map`` returns ``None`` for a batch holding anything
it does not accept, and the reader hands the file over to the row path at that batch's first
record, which names the exact file, line, column and value (or accepts a rarer valid spelling
such as ``+00:00`` offsets, which it would already have done: those go through the same
converters here). Read errors (bad UTF-8, a row of the wrong width, broken gzip) hand over the
same way, from the first record not yet delivered.

One difference with the row path remains, documented rather than detected (detecting it costs
a second scan of the file): a character after a closing quote (``"a"b``) is appended to the
value, as most CSV readers do, where the row path refuses the file.

Error contract: ``ArrowCsv`` raises ``pyarrow.ArrowException`` or ``OSError`` for anything it
cannot read (the caller hands over); ``ArrowMapper.map`` raises nothing for bad data.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from functools import partial
from operator import lt
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pcsv  # type: ignore[import-untyped]

from collectors.focus_batch import FIELDS, Column, LineColumns
from collectors.focus_columns import (
    COLUMNS,
    NO_FILE_KEY,
    UNKNOWN_PROVIDER,
    CellError,
    Kind,
    Layout,
    converters,
    row_keys,
)

logger = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 20
"""Bytes of CSV Arrow parses at a time (about 2,000 lines of a 31-column export). Arrow holds
a few dozen blocks' worth of buffers while it reads, so this sets much of the reader's memory;
bigger blocks are no faster."""
BATCH_ROWS = 8192
"""Rows mapped together at most (narrow files give more rows per block)."""
PREFETCH_BLOCKS = 2
"""Blocks parsed ahead of the one being mapped."""

_CODED = (Kind.DATETIME, Kind.CURRENCY, Kind.ENUM, Kind.KEY_VALUE)
"""Kinds converted once per distinct text."""
READ_ERRORS = (pa.ArrowException, OSError)
_END = object()
"""The parsing thread's last item: the file is read."""


class ArrowCsv:
    """Record batches of a FOCUS CSV, every column a string; ``""``/``null`` are null."""

    def __init__(self, path: Path, *, compressed: bool, columns: Sequence[str]) -> None:
        """Open ``path``; raises ``READ_ERRORS`` when Arrow cannot, or when the header it reads
        differs from ``columns`` (the header the row path read)."""
        source: Any = str(path)
        if compressed:
            source = pa.CompressedInputStream(pa.OSFile(str(path)), "gzip")
        self._reader = pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in columns},
                null_values=["", "null"],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        self._blocks: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH_BLOCKS)
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        if list(self._reader.schema.names) != list(columns):
            self.close()
            raise OSError("Arrow read another header")

    def __iter__(self) -> Iterator[Any]:
        """Record batches of at most ``BATCH_ROWS`` rows (none empty).

        A thread parses the next blocks meanwhile (``PREFETCH_BLOCKS`` at most): Arrow's parser
        runs without the GIL, so parsing overlaps with what the caller does with a batch. A
        read error is raised here, at the block it happened in. Iterate once; ``close`` stops
        the thread.
        """
        if self._thread is not None:
            raise RuntimeError("ArrowCsv can be iterated only once")
        self._thread = threading.Thread(target=self._prefetch, name="focus-csv", daemon=True)
        self._thread.start()
        while (item := self._blocks.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            for start in range(0, item.num_rows, BATCH_ROWS):
                yield item.slice(start, BATCH_ROWS)

    def _prefetch(self) -> None:
        item: Any = _END
        try:
            for block in self._reader:
                if not self._put(block):
                    return
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            item = exc
        self._put(item)

    def _put(self, item: Any) -> bool:
        """Queue ``item`` unless the reader is being closed; whether it was queued."""
        while not self._closing.is_set():
            try:
                self._blocks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the parsing thread and release the file."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
        self._reader.close()


Coded = tuple[list[int], list[Any]]
"""A column as codes into its distinct values: ``values[codes[n]]`` is row n's value."""


def _codes(indices: Any, values: list[Any], null: Any) -> Coded:
    """Arrow dictionary indices -> ``Coded`` (a null index -> ``null``)."""
    if indices.null_count:
        return indices.fill_null(len(values)).to_pylist(), [*values, null]
    return indices.to_pylist(), values


def _decode(coded: Coded) -> list[Any]:
    codes, values = coded
    if len(values) == 1:
        return values * len(codes)
    return list(map(values.__getitem__, codes))


def _decode_lazily(coded: Callable[[], Coded]) -> list[Any]:
    return _decode(coded())


def _decimal_pattern(count: int) -> str:
    """``count`` optional decimals joined by commas (a comma inside a cell breaks the count)."""
    one = r"(?:-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?)?"
    return f"^{one}(?:,{one}){{{count - 1}}}$"


class ArrowMapper:
    """Maps one file's Arrow batches to ``LineColumns`` (see the module docstring);
    ``file_part`` (the file's ``focus_columns.file_key``) ends every row key."""

    def __init__(
        self, columns: tuple[str, ...], default_currency: str | None, file_part: str = NO_FILE_KEY
    ) -> None:
        self.columns = columns
        self.layout = Layout.of(columns)
        specs = [COLUMNS.get(c) for c in columns]
        self._kinds = [spec.kind if spec else Kind.STRING for spec in specs]
        self._one = [converters(spec)[0] for spec in specs]
        self._default_currency = default_currency
        self._file_part = file_part
        self._extra_keys = {name: json.dumps(name) + ":" for _, name, _ in self.layout.extra}
        self._decimals = [i for i, kind in enumerate(self._kinds) if kind is Kind.DECIMAL]
        self._decimal_re = _decimal_pattern(len(self._decimals)) if self._decimals else ""

    def map(self, batch: Any, first_ordinal: int) -> LineColumns | None:
        """The batch's lines, or ``None`` when some row is bad (or unusual)."""
        size, cols = batch.num_rows, batch.columns
        if any(cols[i].null_count for i, _ in self.layout.required):
            return None
        if self._decimals:
            joined = pc.binary_join_element_wise(*(_filled(cols[i]) for i in self._decimals), ",")
            if not pc.all(pc.match_substring_regex(joined, self._decimal_re)).as_py():
                return None
        coded: dict[int, Coded] = {}
        for i, kind in enumerate(self._kinds):
            col = cols[i]
            if col.null_count == size:
                coded[i] = ([0] * size, [None])
            elif kind in _CODED:
                encoded = col.dictionary_encode()
                one = self._one[i]
                try:
                    values = [one(text) for text in encoded.dictionary.to_pylist()]
                except CellError:
                    return None
                coded[i] = _codes(encoded.indices, values, None)
        for i_start, i_end, _, _ in self.layout.periods:
            starts, ends = _decode(coded[i_start]), _decode(coded[i_end])
            if None in starts or None in ends:
                pairs = zip(starts, ends, strict=True)
                if any(a is not None and b is not None and b < a for a, b in pairs):
                    return None
            elif any(map(lt, ends, starts)):
                return None
        return self._columns(batch, first_ordinal, coded)

    def _columns(self, batch: Any, first_ordinal: int, coded: dict[int, Coded]) -> LineColumns:
        size, cols = batch.num_rows, batch.columns

        def codes_of(i: int) -> Coded:
            if i not in coded:  # a string column: codes pay when values repeat
                encoded = cols[i].dictionary_encode()
                coded[i] = _codes(encoded.indices, encoded.dictionary.to_pylist(), None)
            return coded[i]

        columns: dict[str, Column] = {}
        floats: dict[str, Column] = {}
        json_texts: dict[str, Column] = {}
        codes: dict[str, Column] = {}
        for name in FIELDS:
            i = self.layout.fields.get(name)
            if i is None:
                columns[name] = [None] * size
                continue
            kind = self._kinds[i]
            if name == "tags":
                tags = coded[i][0], [{} if v is None else v for v in coded[i][1]]
                columns[name] = partial(_decode, tags)
                json_texts[name] = partial(_decode, (tags[0], list(map(_compact, tags[1]))))
            elif kind is Kind.DECIMAL:
                columns[name] = partial(_decimals, cols[i])
                floats[name] = partial(_floats, cols[i])
            else:
                columns[name] = partial(_decode_lazily, partial(codes_of, i))
                codes[name] = partial(codes_of, i)
        if "billing_currency" not in self.layout.fields:
            columns["billing_currency"] = [self._default_currency] * size
        if "tags" not in self.layout.fields:
            columns["tags"] = [{}] * size
            json_texts["tags"] = ["{}"] * size
        providers = [cols[i] for i in self.layout.providers]
        columns["provider"] = (
            (lambda: pc.coalesce(*providers, UNKNOWN_PROVIDER).to_pylist())
            if providers
            else [UNKNOWN_PROVIDER] * size
        )
        columns["row_key"] = row_keys(self._file_part, first_ordinal, size)
        columns["extra"] = partial(self._extra, cols, size)
        json_texts["extra"] = partial(self._extra_json, cols, size)
        return LineColumns(size, columns, floats=floats, json=json_texts, codes=codes)

    def _extra(self, cols: list[Any], size: int) -> list[dict[str, Any]]:
        names, lists = [], []
        for i, name, _ in self.layout.extra:
            if cols[i].null_count < size:
                names.append(name)
                lists.append(cols[i].to_pylist())
        if not names:
            return [{} for _ in range(size)]
        return [
            {k: v for k, v in zip(names, row, strict=True) if v is not None}
            for row in zip(*lists, strict=True)
        ]

    def _extra_json(self, cols: list[Any], size: int) -> list[str]:
        """``json.dumps(extra, separators=(",", ":"))`` of every row, joined by Arrow."""
        present = [(cols[i], name) for i, name, _ in self.layout.extra if cols[i].null_count < size]
        if not present:
            return ["{}"] * size
        if not all(_plain(col) for col, _ in present):
            present = [(_escaped(col), name) for col, name in present]
        args: list[Any] = ["{"]
        holes = False
        for col, name in present:
            head, tail = f'{self._extra_keys[name]}"', '",'
            if col.null_count:
                holes = True
                args.append(pc.binary_join_element_wise(head, col, tail, "").fill_null(""))
                continue
            if isinstance(args[-1], str):
                args[-1] += head
            else:
                args.append(head)
            args.extend([col, tail])
        if not holes:  # every object ends with the last column's '",': close it there
            args[-1] = '"}'
            return list(pc.binary_join_element_wise(*args, "").to_pylist())
        texts = pc.utf8_rtrim(pc.binary_join_element_wise(*args, ""), characters=",")
        return list(pc.binary_join_element_wise(texts, "}", "").to_pylist())


def _filled(col: Any) -> Any:
    """Nulls as empty strings (a copy only when there are nulls)."""
    return col.fill_null("") if col.null_count else col


def _plain(col: Any) -> bool:
    """Whether no cell of a string array needs escaping in JSON (printable ASCII, no ``"``
    or backslash). The quote check scans the array's data buffer, which for a slice holds
    the cells of the whole parsed block: a superset, so a dirty neighbour only costs the
    escaping."""
    if not pc.all(pc.ascii_is_printable(col)).as_py():
        return False
    data = col.buffers()[2]
    raw = b"" if data is None else data.to_pybytes()
    return b'"' not in raw and b"\\" not in raw


def _escaped(col: Any) -> Any:
    """Cells as JSON string bodies: ``json.dumps(text)`` without its quotes, where needed."""
    if _plain(col):
        return col
    texts = col.to_pylist()
    return pa.array([None if t is None else json.dumps(t)[1:-1] for t in texts], pa.string())


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _decimals(col: Any) -> list[Decimal | None]:
    texts = col.to_pylist()
    if col.null_count:
        return [None if t is None else Decimal(t) for t in texts]
    return list(map(Decimal, texts))


def _floats(col: Any) -> list[float | None]:
    return list(pc.cast(col, pa.float64()).to_pylist())


__all__ = ["BATCH_ROWS", "BLOCK_BYTES", "READ_ERRORS", "ArrowCsv", "ArrowMapper"]
