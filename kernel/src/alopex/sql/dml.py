"""INSERT / UPDATE / DELETE: rows become key-value writes, indexes follow.

A statement first computes every write into a local dict, checking constraints against the
transaction's view plus that dict; only a statement that succeeds passes its writes to the
transaction, so a failing statement changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from alopex.contracts.storage import prefix_end
from alopex.errors import DataError, IntegrityError, NotSupportedError, ProgrammingError
from alopex.sql import kernels as k
from alopex.sql import mirror
from alopex.sql.catalog import Index, Table
from alopex.sql.encoding import (
    ROWS,
    decode_row,
    encode_int,
    encode_key,
    encode_row,
    index_prefix,
    table_prefix,
)
from alopex.sql.expressions import Evaluator
from alopex.sql.relation import Field, Relation
from alopex.sql.types import SqlType, coerce

if TYPE_CHECKING:
    from alopex.sql.session import Context

from alopex.sql.access import KEY_FIELD


@lru_cache(maxsize=256)
def _parse_expression(sql: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read="sqlite")


def default_value(ctx: Context, sql: str, sql_type: SqlType, column: str) -> Any:
    ev = Evaluator(Relation.single_row(), (), ctx.executor())
    value = ev.eval(_parse_expression(sql))
    python = value.as_py() if isinstance(value, pa.Scalar) else value[0].as_py()
    return coerce(python, sql_type, column)


class Writes:
    """One statement's pending writes over the transaction's view."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending: dict[bytes, bytes | None] = {}
        # (table id, row keys, rows) when the statement only inserted new rows into one table
        self.inserted: tuple[int, list[bytes], list[list[Any]]] | None = None

    def read(self, key: bytes) -> bytes | None:
        if key in self.pending:
            return self.pending[key]
        return self.ctx.tx.read(key)

    def first_with_prefix(self, prefix: bytes) -> bytes | None:
        for key, value in self.pending.items():
            if key.startswith(prefix) and value is not None:
                return key
        for key, _ in self.ctx.tx.read_range(prefix, prefix_end(prefix)):
            if key not in self.pending or self.pending[key] is not None:
                return key
        return None

    def apply(self) -> None:
        self.ctx.tx.write_many(self.pending)
        inserted = self.inserted
        if inserted is not None:  # rows (and index entries) of one table only
            tables = {inserted[0]} if inserted[1] else set()
        else:
            tables = {int.from_bytes(key[1:5], "big") for key in self.pending if key[:1] == ROWS}
        self.ctx.session.wrote(tables, inserted)


def _row_key(ctx: Context, table: Table, row: list[Any]) -> bytes:
    prefix = table_prefix(table.id)
    if table.primary_key:
        return prefix + encode_key([row[p] for p in table.primary_key])
    return prefix + encode_int(ctx.session.next_rowid(table, ctx.tx))


def _index_key(index: Index, row: list[Any], row_key: bytes) -> bytes:
    return index_prefix(index.id) + encode_key([row[p] for p in index.columns]) + row_key


def _describe(table: Table, columns: Sequence[int], row: list[Any]) -> str:
    names = ", ".join(f"{table.name}.{table.columns[p].name}" for p in columns)
    values = ", ".join(repr(row[p]) for p in columns)
    return f"{names} (value {values})"


def _check_unique(
    writes: Writes, table: Table, index: Index, row: list[Any], row_key: bytes
) -> bytes | None:
    """The row key of another row holding the same unique values, if any."""
    values = [row[p] for p in index.columns]
    if any(v is None for v in values):
        return None  # NULLs are distinct in UNIQUE constraints
    prefix = index_prefix(index.id) + encode_key(values)
    existing = writes.first_with_prefix(prefix)
    if existing is None:
        return None
    other = existing[len(prefix) :]
    return None if other == row_key else other


def _check_row(ctx: Context, table: Table, row: list[Any]) -> None:
    for position, column in enumerate(table.columns):
        if column.not_null and row[position] is None:
            raise IntegrityError(f"NOT NULL constraint failed: {table.name}.{column.name}")
    if table.checks:
        relation = _rows_relation(table, [row])
        for check in table.checks:
            ev = Evaluator(relation, (), ctx.executor())
            result = ev.column(_parse_expression(check))[0].as_py()
            if result is not None and not result:
                raise IntegrityError(
                    f"CHECK constraint failed: {table.name} ({check}) for row {tuple(row)!r}"
                )


def _rows_relation(table: Table, rows: list[list[Any]]) -> Relation:
    from alopex.sql.types import to_arrow

    columns = [to_arrow([row[n] for row in rows], c.type) for n, c in enumerate(table.columns)]
    return Relation.build(columns, [Field(c.name, table.name) for c in table.columns], len(rows))


def _put_row(
    writes: Writes, table: Table, indexes: list[Index], row: list[Any], key: bytes
) -> None:
    writes.pending[key] = encode_row(row)
    for index in indexes:
        writes.pending[_index_key(index, row, key)] = b""


def _remove_row(writes: Writes, indexes: list[Index], row: list[Any], key: bytes) -> None:
    writes.pending[key] = None
    for index in indexes:
        writes.pending[_index_key(index, row, key)] = None


def insert_rows(
    ctx: Context,
    table: Table,
    positions: list[int],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: str = "abort",
    update: exp.Expr | None = None,
    writes: Writes | None = None,
) -> list[list[Any]]:
    """Insert ``rows`` (values for ``positions``); return the stored rows."""
    own = writes is None
    writes = writes or Writes(ctx)
    indexes = ctx.catalog.indexes_of(table.name)
    unique = [i for i in indexes if i.unique]
    defaults = {
        n: default_value(ctx, c.default, c.type, c.name)
        for n, c in enumerate(table.columns)
        if c.default is not None and n not in positions
    }
    rowid_alias = (
        len(table.primary_key) == 1 and table.columns[table.primary_key[0]].type.arrow == pa.int64()
    )
    pk = table.primary_key[0] if rowid_alias else -1
    prefix = table_prefix(table.id)
    template = [defaults.get(n) for n in range(len(table.columns))]
    wrong = next((values for values in rows if len(values) != len(positions)), None)
    if wrong is not None:
        raise ProgrammingError(
            f"table {table.name} has {len(positions)} columns to fill but "
            f"{len(wrong)} values were supplied"
        )
    whole = positions == list(range(len(table.columns)))  # values are whole rows, in order
    converters = [
        (p, convert)
        for n, p in enumerate(positions)
        if (convert := _converter(table, p, [values[n] for values in rows])) is not None
    ]
    largest_given = 0
    required = [n for n, c in enumerate(table.columns) if c.not_null]
    # Keys above the largest one an exact column mirror holds do not exist at this snapshot:
    # a bulk append then checks only this transaction's own writes, with no storage read.
    state = mirror.State.read(ctx.tx.read, table.id) if table.primary_key else None
    beyond = state.header.max_key if state is not None and state.exact and state.header else None
    buffered = ctx.tx._writes
    pending = writes.pending
    stored: list[list[Any]] = []
    keys: list[bytes] = []  # of rows newly inserted; None once a row replaced another
    appending: list[bytes] | None = keys
    for values in rows:
        if whole:
            row = list(values)
        else:
            row = template.copy()
            for position, value in zip(positions, values, strict=True):
                row[position] = value
        for position, convert in converters:
            row[position] = convert(row[position])
        if rowid_alias:
            given = row[pk]
            if given is None:
                row[pk] = given = ctx.session.next_rowid(table, ctx.tx)
            elif type(given) is not int:
                raise DataError(
                    f"{table.name}.{table.columns[pk].name} is an INTEGER PRIMARY KEY and "
                    f"cannot hold {given!r}"
                )
            elif given > largest_given:  # later automatic ids continue after it
                largest_given = given
            key = prefix + _VALUE_TAG + encode_int(given)
        else:
            key = _row_key(ctx, table, row)
        for position in required:
            if row[position] is None:
                _check_row(ctx, table, row)  # raises, naming the column
        if table.checks:
            _check_row(ctx, table, row)
        if beyond is not None and key > beyond:
            existing = pending[key] if key in pending else buffered.get(key)
        else:
            existing = writes.read(key) if table.primary_key else None
        clash = [
            (i, other)
            for i in unique
            if (other := _check_unique(writes, table, i, row, key)) is not None
        ]
        if existing is not None or clash:
            if conflict == "ignore":
                continue
            if conflict == "replace":
                appending = None
                for old_key in [key] * (existing is not None) + [o for _, o in clash]:
                    old_raw = writes.read(old_key)
                    if old_raw is not None:
                        _remove_row(writes, indexes, decode_row(old_raw), old_key)
            elif conflict == "update" and update is not None:
                # the conflicting row: same primary key, or same unique values
                old_key = key if existing is not None else clash[0][1]
                old_raw = existing if existing is not None else writes.read(old_key)
                assert old_raw is not None
                old = decode_row(old_raw)
                appending = None
                new = _apply_set(ctx, table, update, old, excluded=row)
                _replace(ctx, writes, table, indexes, unique, old, old_key, new)
                stored.append(new)
                continue
            else:
                columns = table.primary_key if existing is not None else clash[0][0].columns
                kind = "PRIMARY KEY" if existing is not None else "UNIQUE"
                raise IntegrityError(f"{kind} constraint failed: {_describe(table, columns, row)}")
        _put_row(writes, table, indexes, row, key)
        stored.append(row)
        keys.append(key)
    if largest_given:
        ctx.session.next_rowid(table, ctx.tx, at_least=largest_given)
    if appending is not None:
        writes.inserted = (table.id, appending, stored)
    if own:
        writes.apply()
    return stored


_VALUE_TAG = encode_key([0])[:1]


def _converter(table: Table, position: int, values: list[Any]) -> Any:
    """``coerce`` for one column, with the common already-right case answered first;
    None when every one of ``values`` is already stored as is (checked in one C pass)."""
    column = table.columns[position]
    where = f"{table.name}.{column.name}"
    sql_type = column.type
    native = {pa.int64(): int, pa.float64(): float, pa.string(): str, pa.binary(): bytes}.get(
        sql_type.arrow
    )
    if native is not None and set(map(type, values)) <= {native, type(None)}:
        return None

    def convert(value: Any) -> Any:
        if type(value) is native:
            return value
        return coerce(value, sql_type, where)

    return convert


def _apply_set(
    ctx: Context,
    table: Table,
    assignments: exp.Expr,
    old: list[Any],
    excluded: list[Any] | None = None,
) -> list[Any]:
    relation = _rows_relation(table, [old])
    if excluded is not None:  # excluded.* must be qualified; bare names mean the stored row
        proposed = _rows_relation(table, [excluded]).requalify("excluded")
        proposed.fields = [Field(f.name, f.table, True) for f in proposed.fields]
        relation = relation.concat_columns(proposed)
    ev = Evaluator(relation, ctx.params, ctx.executor())
    new = list(old)
    where = assignments.args.get("where")
    if where is not None and not k.mask(ev.eval(where.this), 1)[0].as_py():
        return new  # DO UPDATE ... WHERE false: the existing row stays as it is
    for assignment in assignments.expressions:
        position = table.position(assignment.this.name)
        value = ev.column(assignment.expression)[0].as_py()
        column = table.columns[position]
        new[position] = coerce(value, column.type, f"{table.name}.{column.name}")
    return new


def _replace(
    ctx: Context,
    writes: Writes,
    table: Table,
    indexes: list[Index],
    unique: list[Index],
    old: list[Any],
    old_key: bytes,
    new: list[Any],
) -> None:
    _check_row(ctx, table, new)
    new_key = (
        table_prefix(table.id) + encode_key([new[p] for p in table.primary_key])
        if table.primary_key
        else old_key
    )
    _remove_row(writes, indexes, old, old_key)
    _put_checked(writes, table, indexes, unique, new, new_key)


def _put_checked(
    writes: Writes,
    table: Table,
    indexes: list[Index],
    unique: list[Index],
    new: list[Any],
    new_key: bytes,
) -> None:
    """Write a changed row after checking its primary key and unique values are free."""
    if writes.read(new_key) is not None:
        raise IntegrityError(
            f"PRIMARY KEY constraint failed: {_describe(table, table.primary_key, new)}"
        )
    for index in unique:
        if _check_unique(writes, table, index, new, new_key) is not None:
            raise IntegrityError(
                f"UNIQUE constraint failed: {_describe(table, index.columns, new)}"
            )
    _put_row(writes, table, indexes, new, new_key)


def placeholder_rows(node: exp.Insert) -> tuple[Table | None, list[int]] | None:
    """Parameter indexes of ``INSERT INTO t [(cols)] VALUES (?, ?, ...)``, else None.

    Such statements skip expression evaluation: executemany inserts every parameter set
    in one pass.
    """
    source = node.expression
    if (
        not isinstance(source, exp.Values)
        or len(source.expressions) != 1
        or node.args.get("returning")
        or node.args.get("conflict")
        or node.args.get("alternative")
    ):
        return None
    row = source.expressions[0]
    items = row.expressions if isinstance(row, exp.Tuple) else [row]
    if not all(isinstance(i, exp.Placeholder) and i.name == "?" for i in items):
        return None
    return None, [i.meta["index"] for i in items]


def insert_many(
    ctx: Context, node: exp.Insert, indexes: list[int], seq_of_params: Sequence[Sequence[Any]]
) -> int:
    target = node.this
    table_node = target.this if isinstance(target, exp.Schema) else target
    table = ctx.catalog.table(table_node.name)
    if isinstance(target, exp.Schema) and target.expressions:
        positions = [table.position(c.name) for c in target.expressions]
    else:
        positions = list(range(len(table.columns)))
    wrong = next((p for p in seq_of_params if len(p) != len(indexes)), None)
    if wrong is not None:
        raise ProgrammingError(
            f"the statement uses {len(indexes)} parameters, but {len(wrong)} were supplied"
        )
    if indexes == list(range(len(indexes))):  # parameters in column order: use them as is
        return len(insert_rows(ctx, table, positions, seq_of_params))
    rows = [[params[i] for i in indexes] for params in seq_of_params]
    return len(insert_rows(ctx, table, positions, rows))


def insert(ctx: Context, node: exp.Insert) -> tuple[int, Relation | None]:
    target = node.this
    table_node = target.this if isinstance(target, exp.Schema) else target
    table = ctx.catalog.table(table_node.name)
    if isinstance(target, exp.Schema) and target.expressions:
        positions = [table.position(c.name) for c in target.expressions]
    else:
        positions = list(range(len(table.columns)))
    source = node.expression
    if source is None:  # DEFAULT VALUES
        rows: list[Sequence[Any]] = [[]]
        positions = []
    elif isinstance(source, exp.Values):
        ev = Evaluator(Relation.single_row(), ctx.params, ctx.executor())
        rows = []
        for row in source.expressions:
            items = row.expressions if isinstance(row, exp.Tuple) else [row]
            values = []
            for item in items:
                if isinstance(item, exp.Var) and item.name.upper() == "DEFAULT":
                    values.append(_DEFAULT)
                    continue
                value = ev.eval(item)
                values.append(value.as_py() if isinstance(value, pa.Scalar) else value[0].as_py())
            rows.append(values)
    else:
        relation = ctx.executor().run(source)
        rows = list(zip(*(c.to_pylist() for c in relation.table.columns), strict=True))
    conflict = (node.args.get("alternative") or "abort").lower()
    update = None
    on_conflict = node.args.get("conflict")
    if on_conflict is not None:
        action = on_conflict.args.get("action")
        action_text = action.name.upper() if action is not None else ""
        if on_conflict.args.get("nothing") or "NOTHING" in action_text:
            conflict = "ignore"
        else:
            assignments = on_conflict.args.get("expressions") or []
            if not assignments:
                raise ProgrammingError("ON CONFLICT DO UPDATE needs SET assignments")
            conflict = "update"
            update = exp.Tuple(expressions=assignments)
            where = on_conflict.args.get("where")
            if where is not None:
                update.set("where", where)
    if conflict not in ("abort", "ignore", "replace", "update", "fail", "rollback"):
        raise NotSupportedError(f"INSERT OR {conflict.upper()} is not supported")
    if any(v is _DEFAULT for row in rows for v in row):
        rows = [
            [_fill_default(ctx, table, p, v) for p, v in zip(positions, row, strict=True)]
            for row in rows
        ]
    stored = insert_rows(
        ctx,
        table,
        positions,
        rows,
        conflict=conflict if conflict in ("ignore", "replace", "update") else "abort",
        update=update,
    )
    return len(stored), _returning(ctx, node, table, stored)


_DEFAULT = object()


def _fill_default(ctx: Context, table: Table, position: int, value: Any) -> Any:
    if value is not _DEFAULT:
        return value
    column = table.columns[position]
    if column.default is None:
        return None
    return default_value(ctx, column.default, column.type, column.name)


def _returning(
    ctx: Context, node: exp.Expr, table: Table, rows: list[list[Any]]
) -> Relation | None:
    returning = node.args.get("returning")
    if returning is None:
        return None
    relation = _rows_relation(table, rows)
    ev = Evaluator(relation, ctx.params, ctx.executor())
    items = ctx.executor()._expand(returning.expressions, relation)
    from alopex.sql.select import _output_name

    return Relation.build(
        [ev.column(i) for i in items], [Field(_output_name(i)) for i in items], relation.num_rows
    )


def _matching(ctx: Context, table: Table, where: exp.Expr | None) -> Relation:
    relation = ctx.scan(table, table.name)
    if where is not None:
        ev = Evaluator(relation, ctx.params, ctx.executor())
        relation = relation.filter(k.mask(ev.eval(where.this), relation.num_rows))
    return relation


def _stored_rows(table: Table, relation: Relation) -> tuple[list[bytes], list[list[Any]]]:
    keys = relation.column(relation.require(KEY_FIELD)).to_pylist()
    from alopex.sql.session import python_rows

    columns = list(range(len(table.columns)))
    rows = [list(r) for r in python_rows(relation, table, columns)]
    return keys, rows


def _target(node: exp.Expr, verb: str) -> str:
    target = node.this
    if not isinstance(target, exp.Table):
        tables = node.args.get("tables") or []
        if verb == "DELETE" and len(tables) == 1 and isinstance(tables[0], exp.Table):
            return str(tables[0].name)  # DELETE t WHERE ... (FROM omitted)
        raise ProgrammingError(f"{verb} needs a table name")
    return str(target.name)


def update(ctx: Context, node: exp.Update) -> tuple[int, Relation | None]:
    table = ctx.catalog.table(_target(node, "UPDATE"))
    if not node.expressions:
        raise ProgrammingError(f"UPDATE {table.name} needs SET assignments")
    for assignment in node.expressions:
        if (
            not isinstance(assignment, exp.EQ)
            or not isinstance(assignment.this, exp.Column)
            or assignment.expression is None
        ):
            raise ProgrammingError(
                f"UPDATE assignments look like column = value, not "
                f"{assignment.sql(dialect='sqlite')}"
            )
    relation = _matching(ctx, table, node.args.get("where"))
    keys, old_rows = _stored_rows(table, relation)
    ev = Evaluator(relation, ctx.params, ctx.executor())
    new_rows = [list(r) for r in old_rows]
    for assignment in node.expressions:
        position = table.position(assignment.this.name)
        column = table.columns[position]
        values = ev.column(assignment.expression).to_pylist()
        where = f"{table.name}.{column.name}"
        for row, value in zip(new_rows, values, strict=True):
            row[position] = coerce(value, column.type, where)
    writes = Writes(ctx)
    indexes = ctx.catalog.indexes_of(table.name)
    unique = [i for i in indexes if i.unique]
    for key, old in zip(keys, old_rows, strict=True):
        _remove_row(writes, indexes, old, key)
    for key, new in zip(keys, new_rows, strict=True):
        _check_row(ctx, table, new)
        new_key = (
            table_prefix(table.id) + encode_key([new[p] for p in table.primary_key])
            if table.primary_key
            else key
        )
        _put_checked(writes, table, indexes, unique, new, new_key)
    writes.apply()
    return len(keys), _returning(ctx, node, table, new_rows)


def delete(ctx: Context, node: exp.Delete) -> tuple[int, Relation | None]:
    table = ctx.catalog.table(_target(node, "DELETE"))
    relation = _matching(ctx, table, node.args.get("where"))
    keys, rows = _stored_rows(table, relation)
    writes = Writes(ctx)
    indexes = ctx.catalog.indexes_of(table.name)
    for key, row in zip(keys, rows, strict=True):
        _remove_row(writes, indexes, row, key)
    writes.apply()
    return len(keys), _returning(ctx, node, table, rows)


def build_index(ctx: Context, table: Table, index: Index) -> None:
    relation = ctx.scan(table, table.name)
    keys, rows = _stored_rows(table, relation)
    writes = Writes(ctx)
    for key, row in zip(keys, rows, strict=True):
        if index.unique:
            other = _check_unique(writes, table, index, row, key)
            if other is not None:
                raise IntegrityError(
                    f"UNIQUE constraint failed: {_describe(table, index.columns, row)}"
                )
        writes.pending[_index_key(index, row, key)] = b""
    writes.apply()
