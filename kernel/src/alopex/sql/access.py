"""Access paths: how a table's rows are read for a query.

The executor hands each table scan the constant conditions of its WHERE clause (pushed
down) and the columns the query uses (projection pushdown). The scan then picks the
cheapest path -- a primary-key point read, a secondary-index lookup, a primary-key range,
or a full scan -- and builds Arrow columns only for the columns asked for. The full WHERE
still runs afterwards, so a pushed condition only narrows what is read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import attrs
import pyarrow as pa

from alopex.contracts.storage import prefix_end
from alopex.errors import AlopexError
from alopex.sql import mirror
from alopex.sql.catalog import Catalog, Table
from alopex.sql.encoding import (
    encode_key,
    encode_value,
    index_prefix,
    skip_values,
    table_prefix,
)
from alopex.sql.relation import Field, Relation
from alopex.sql.types import coerce

if TYPE_CHECKING:
    from alopex.builtin.mvcc import MvccTransaction
    from alopex.contracts.transaction import TransactionManager

KEY_FIELD = "\x00key"

#: (lowest, lowest included, highest, highest included); None means unbounded
Bounds = tuple[Any, bool, Any, bool]


@attrs.define
class ScanRequest:
    """What a query needs from one table."""

    columns: frozenset[str] | None = None  # lower-cased names; None = every column
    keys: bool = False  # keep the row keys even when ``columns`` is given (ANN top-k)
    equal: dict[str, Any] = attrs.field(factory=dict)  # column -> constant
    bounds: dict[str, Bounds] = attrs.field(factory=dict)
    description: list[str] = attrs.field(factory=list)  # filled in by the scan

    def bound(self, column: str, op: str, value: Any) -> None:
        low, low_in, high, high_in = self.bounds.get(column, (None, False, None, False))
        if op in (">", ">="):
            low, low_in = value, op == ">="
        else:
            high, high_in = value, op == "<="
        self.bounds[column] = (low, low_in, high, high_in)


class TableColumns:
    """Whole tables as Arrow columns, for full scans.

    Kept in memory for repeated scans, and for tables of at least ``min_rows`` rows also
    in storage as the column mirror (:mod:`alopex.sql.mirror`), so a cold scan reads a few
    Arrow segments instead of decoding every row. Both are checked against the table's
    marker as the reading transaction sees it, so they never show another snapshot's rows.
    """

    def __init__(self, txns: TransactionManager | None, min_rows: int, limit: int = 16) -> None:
        self.txns = txns
        self.min_rows = min_rows if txns is not None else 0
        self.limit = limit
        # table id -> (fingerprint, marker, columns)
        self.entries: dict[int, tuple[bytes, bytes | None, list[Any]]] = {}

    def read(
        self, tx: MvccTransaction, table: Table, wanted: frozenset[str] | None
    ) -> tuple[list[Any], str]:
        """The table's columns (then its row keys) and how they were obtained; the
        ``wanted`` ones (None: all) as contiguous arrays."""
        state = mirror.State.read(tx.read, table.id)
        fingerprint = mirror.fingerprint(table)
        entry = self.entries.get(table.id)
        if entry is not None and entry[0] == fingerprint and entry[1] == state.marker:
            return _contiguous(table, entry[2], wanted), "cached columns"
        header = state.usable(table)
        columns = None if header is None else mirror.load(tx, table, header)
        if columns is not None and header is not None:
            how = "column mirror"
            if not state.exact:
                start, end = mirror.tail_start(table, header), prefix_end(table_prefix(table.id))
                pairs = list(tx.read_range(start, end))
                if pairs:
                    tail = _decode(table, pairs, None)
                    columns = [
                        pa.chunked_array([*c.chunks, t]) for c, t in zip(columns, tail, strict=True)
                    ]
                    if self.min_rows and len(pairs) >= self.min_rows:
                        self._keep(table, state, columns, tail)
                how += f" + {len(pairs)} newer rows"
        else:
            prefix = table_prefix(table.id)
            pairs = list(tx.read_range(prefix, prefix_end(prefix)))
            columns = _decode(table, pairs, None)
            if self.min_rows and len(pairs) >= self.min_rows:
                self._keep(table, state, columns, None)
            how = "rows decoded"
        if len(self.entries) >= self.limit and table.id not in self.entries:
            self.entries.pop(next(iter(self.entries)))
        self.entries[table.id] = (fingerprint, state.marker, columns)
        return _contiguous(table, columns, wanted), how

    def _keep(self, table: Table, state: mirror.State, columns: list[Any], tail: Any) -> None:
        assert self.txns is not None
        with contextlib.suppress(AlopexError):  # derived data: the next scan tries again
            mirror.store(self.txns, table, state, columns, tail)


def _contiguous(table: Table, columns: list[Any], wanted: frozenset[str] | None) -> list[Any]:
    """Combine the chunks of the wanted columns, in place: kernels need one array per column
    and would otherwise combine them on every query. Columns never asked for stay chunked
    (a cold scan then copies only what it reads)."""
    names = [c.name.lower() for c in table.columns]
    for n, column in enumerate(columns):
        asked = wanted is None or (n < len(names) and names[n] in wanted)
        if asked and isinstance(column, pa.ChunkedArray):
            columns[n] = column.combine_chunks()
    return list(columns)


def scan(
    tx: MvccTransaction,
    catalog: Catalog,
    table: Table,
    alias: str,
    request: ScanRequest | None,
    columns: TableColumns | None = None,
    written: frozenset[int] | set[int] = frozenset(),
) -> Relation:
    """The rows of ``table`` that ``request`` may need, as Arrow columns."""
    request = request or ScanRequest()
    fields = [Field(c.name, alias) for c in table.columns] + [Field(KEY_FIELD, alias, True)]
    if columns is not None and table.id not in written and _full_scan(catalog, table, request):
        wanted = request.columns
        whole, how = columns.read(tx, table, wanted)
        request.description.append(f"full scan ({how})")
        rows = len(whole[-1])
        if wanted is not None:  # columns the query never reads: typeless nulls, no buffers
            names = [c.name.lower() for c in table.columns]
            whole = [
                c if (names[n] in wanted if n < len(names) else request.keys) else pa.nulls(rows)
                for n, c in enumerate(whole)
            ]
        return Relation.build(whole, fields, rows)
    pairs = _read(tx, catalog, table, request)
    wanted = request.columns
    if wanted is not None:
        skipped = len(table.columns) - sum(c.name.lower() in wanted for c in table.columns)
        if skipped and pairs:
            request.description.append(f"projection pushdown: {skipped} column(s) not built")
    return Relation.build(_decode(table, pairs, wanted), fields, len(pairs))


def _decode(
    table: Table, pairs: list[tuple[bytes, bytes]], wanted: frozenset[str] | None
) -> list[pa.Array]:
    # map(itemgetter) rather than zip(*pairs): unpacking a million arguments is slow
    keys = list(map(itemgetter(0), pairs))
    return mirror.decode_columns(table, keys, list(map(itemgetter(1), pairs)), wanted)


def _read(
    tx: MvccTransaction, catalog: Catalog, table: Table, request: ScanRequest
) -> list[tuple[bytes, bytes]]:
    prefix = table_prefix(table.id)
    equal = _typed(table, request.equal)
    names = [table.columns[p].name.lower() for p in table.primary_key]
    if names and all(n in equal for n in names):
        key = prefix + encode_key([equal[n] for n in names])
        value = tx.read(key)
        request.description.append(f"point lookup on primary key ({', '.join(names)})")
        return [(key, value)] if value is not None else []
    for index in catalog.indexes_of(table.name):
        first = table.columns[index.columns[0]].name.lower()
        if first in equal:
            start = index_prefix(index.id) + encode_value(equal[first])
            widths = [_width(table.columns[p].type.arrow) for p in index.columns[1:]]
            row_keys = [
                key[skip_values(key, len(start), widths) :]
                for key, _ in tx.read_range(start, prefix_end(start))
            ]
            values = tx.read_many(row_keys) if row_keys else []
            request.description.append(f"index lookup via {index.name} ({first} = ...)")
            return [(k, v) for k, v in zip(row_keys, values, strict=True) if v is not None]
    if names and names[0] in request.bounds:
        low, low_in, high, high_in = request.bounds[names[0]]
        column = table.columns[table.primary_key[0]]
        try:
            low = None if low is None else coerce(low, column.type, column.name)
            high = None if high is None else coerce(high, column.type, column.name)
        except AlopexError:
            low = high = None
            names = []
        if names and (low is not None or high is not None):
            start = prefix if low is None else prefix + encode_value(low)
            if low is not None and not low_in:
                start = prefix_end(start) or start
            if high is None:
                end = prefix_end(prefix)
            else:
                end = prefix + encode_value(high)
                if high_in:
                    end = prefix_end(end) or end
            request.description.append(f"range scan on primary key ({names[0]})")
            return list(tx.read_range(start, end))
    request.description.append("full scan")
    return list(tx.read_range(prefix, prefix_end(prefix)))


def _full_scan(catalog: Catalog, table: Table, request: ScanRequest) -> bool:
    """True when no narrower access path applies (so the whole table would be read)."""
    equal = _typed(table, request.equal)
    names = [table.columns[p].name.lower() for p in table.primary_key]
    if names and (all(n in equal for n in names) or names[0] in request.bounds):
        return False
    return not any(
        table.columns[i.columns[0]].name.lower() in equal for i in catalog.indexes_of(table.name)
    )


def _width(arrow: pa.DataType) -> int | None:
    if pa.types.is_boolean(arrow):
        return 1
    if (
        pa.types.is_integer(arrow)
        or pa.types.is_floating(arrow)
        or pa.types.is_timestamp(arrow)
        or pa.types.is_date(arrow)
    ):
        return 8
    return None


def _typed(table: Table, equal: dict[str, Any]) -> dict[str, Any]:
    """Constants converted to their column's stored type; unconvertible ones are dropped."""
    typed = {}
    for name, value in equal.items():
        try:
            column = table.columns[table.position(name)]
            stored = coerce(value, column.type, column.name)
        except AlopexError:
            continue
        if stored is not None and isinstance(stored, (int, float, str, bytes, bool)):
            typed[name] = stored
    return typed


ScanFunction = Callable[[Table, str, "ScanRequest | None"], Relation]
