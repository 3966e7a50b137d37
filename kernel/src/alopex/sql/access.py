"""Access paths: how a table's rows are read for a query.

The executor hands each table scan the constant conditions of its WHERE clause (pushed
down) and the columns the query uses (projection pushdown). The scan then picks the
cheapest path -- a primary-key point read, a secondary-index lookup, a primary-key range,
or a full scan -- and builds Arrow columns only for the columns asked for. The full WHERE
still runs afterwards, so a pushed condition only narrows what is read.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import attrs
import pyarrow as pa

from alopex.contracts.storage import prefix_end
from alopex.errors import AlopexError
from alopex.sql.catalog import Catalog, Table
from alopex.sql.encoding import (
    decode_rows,
    encode_key,
    encode_value,
    index_prefix,
    skip_values,
    table_prefix,
)
from alopex.sql.relation import Field, Relation
from alopex.sql.types import coerce, to_arrow

if TYPE_CHECKING:
    from alopex.builtin.mvcc import MvccTransaction

KEY_FIELD = "\x00key"

#: (lowest, lowest included, highest, highest included); None means unbounded
Bounds = tuple[Any, bool, Any, bool]


@attrs.define
class ScanRequest:
    """What a query needs from one table."""

    columns: frozenset[str] | None = None  # lower-cased names; None = every column
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


class ColumnCache:
    """Decoded tables kept as Arrow columns, so repeated full scans skip decoding.

    An entry is valid while the table is unchanged: every commit that writes a table
    bumps its modification number (``modified``), marking it in flux (-1) while the
    commit is in progress. A transaction uses an entry only if its snapshot includes the
    entry's modification and it has not written the table itself.
    """

    def __init__(self, limit: int = 16) -> None:
        self.limit = limit
        self.modified: dict[int, int] = {}
        self.entries: dict[int, tuple[int, int, list[pa.Array]]] = {}  # id -> (ver, mod, cols)

    def get(self, table: Table, version: int, snapshot: int) -> list[pa.Array] | None:
        entry = self.entries.get(table.id)
        if entry is None:
            return None
        catalog_version, modified, columns = entry
        if (
            catalog_version != version
            or self.modified.get(table.id, 0) != modified
            or snapshot < modified
        ):
            return None
        return columns

    def put(
        self, table: Table, version: int, modified: int, snapshot: int, columns: list[pa.Array]
    ) -> None:
        if modified < 0 or snapshot < modified or self.modified.get(table.id, 0) != modified:
            return
        if len(self.entries) >= self.limit and table.id not in self.entries:
            self.entries.pop(next(iter(self.entries)))
        self.entries[table.id] = (version, modified, columns)


def scan(
    tx: MvccTransaction,
    catalog: Catalog,
    table: Table,
    alias: str,
    request: ScanRequest | None,
    cache: ColumnCache | None = None,
    written: frozenset[int] | set[int] = frozenset(),
) -> Relation:
    """The rows of ``table`` that ``request`` may need, as Arrow columns."""
    request = request or ScanRequest()
    fields = [Field(c.name, alias) for c in table.columns] + [Field(KEY_FIELD, alias, True)]
    if cache is not None and table.id not in written and _full_scan(catalog, table, request):
        modified = cache.modified.get(table.id, 0)
        snapshot = tx.snapshot_sequence()
        cached = cache.get(table, catalog.version, snapshot)
        if cached is not None:
            request.description.append("full scan (cached columns)")
            return Relation.build(cached, fields, len(cached[-1]))
        relation = scan(tx, catalog, table, alias, ScanRequest(), None)
        columns = [relation.column(n) for n in range(len(fields))]
        cache.put(table, catalog.version, modified, snapshot, columns)
        request.description.append("full scan (columns cached for reuse)")
        return relation
    pairs = _read(tx, catalog, table, request)
    wanted = request.columns
    if not pairs:
        columns = [pa.array([], c.type.arrow) for c in table.columns]
        return Relation.build([*columns, pa.array([], pa.binary())], fields, 0)
    # map(itemgetter) rather than zip(*rows): unpacking a million arguments is slow
    keys = list(map(itemgetter(0), pairs))
    rows = decode_rows(list(map(itemgetter(1), pairs)))
    by_column = [list(map(itemgetter(n), rows)) for n in range(len(table.columns))]
    columns = []
    for n, column in enumerate(table.columns):
        if wanted is None or column.name.lower() in wanted:
            columns.append(to_arrow(list(by_column[n]), column.type))
        else:  # never read by this query: do not build it
            columns.append(pa.nulls(len(rows), column.type.arrow))
    if wanted is not None:
        skipped = len(table.columns) - sum(c.name.lower() in wanted for c in table.columns)
        if skipped:
            request.description.append(f"projection pushdown: {skipped} column(s) not built")
    return Relation.build([*columns, pa.array(keys, pa.binary())], fields, len(rows))


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
