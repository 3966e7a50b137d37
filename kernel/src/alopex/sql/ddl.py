"""CREATE / DROP / ALTER: catalog entries written through the statement's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs
from sqlglot import exp

from alopex.contracts.storage import prefix_end
from alopex.errors import NotSupportedError, ProgrammingError
from alopex.sql import ann, mirror
from alopex.sql import types as sqltypes
from alopex.sql.catalog import (
    NEXT_ID_KEY,
    VERSION_KEY,
    Column,
    Entry,
    Index,
    Table,
    View,
    encode_entry,
    entry_key,
)
from alopex.sql.encoding import decode_rows, encode_row, index_prefix, table_prefix

if TYPE_CHECKING:
    from alopex.sql.session import Context


def _next_id(ctx: Context) -> int:
    raw = ctx.tx.read(NEXT_ID_KEY)
    number = int(raw) if raw else 1
    ctx.tx.write(NEXT_ID_KEY, b"%d" % (number + 1))
    return number


def _bump_version(ctx: Context) -> None:
    raw = ctx.tx.read(VERSION_KEY)
    ctx.tx.write(VERSION_KEY, b"%d" % ((int(raw) if raw else 0) + 1))


def _store(ctx: Context, entry: Entry) -> None:
    ctx.tx.write(entry_key(entry), encode_entry(entry))
    _bump_version(ctx)


def _remove(ctx: Context, entry: Entry) -> None:
    ctx.tx.write(entry_key(entry), None)
    _bump_version(ctx)


def _delete_range(ctx: Context, prefix: bytes) -> None:
    if prefix[:1] == table_prefix(0)[:1]:
        ctx.session.wrote({int.from_bytes(prefix[1:5], "big")}, None)
    for key, _ in list(ctx.tx.read_range(prefix, prefix_end(prefix))):
        ctx.tx.write(key, None)


def create(ctx: Context, node: exp.Create) -> None:
    kind = (node.args.get("kind") or "").upper()
    if kind == "TABLE":
        create_table(ctx, node)
    elif kind == "INDEX":
        create_index(ctx, node)
    elif kind == "VIEW":
        create_view(ctx, node)
    else:
        raise NotSupportedError(f"CREATE {kind} is not supported")


def create_table(ctx: Context, node: exp.Create) -> None:
    schema = node.this
    table_node = schema.this if isinstance(schema, exp.Schema) else schema
    name = table_node.name
    if ctx.catalog.exists(name):
        if node.args.get("exists"):
            return
        raise ProgrammingError(f"table {name} already exists")
    query = node.expression
    if query is not None:  # CREATE TABLE ... AS SELECT
        relation = ctx.executor().run(query)
        derived = tuple(
            Column(f.name, _type_of_arrow(col.type))
            for f, col in zip(relation.fields, relation.table.columns, strict=True)
        )
        table = Table(_next_id(ctx), name, derived)
        _store(ctx, table)
        ctx.refresh_catalog()
        from alopex.sql.dml import insert_rows

        rows = list(zip(*(c.to_pylist() for c in relation.table.columns), strict=True))
        insert_rows(ctx, ctx.catalog.table(name), list(range(len(derived))), rows)
        return
    columns: list[Column] = []
    primary: tuple[int, ...] = ()
    uniques: list[tuple[int, ...]] = []
    checks: list[str] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            column_name = item.name
            kind = item.args.get("kind")
            sql_type = (
                sqltypes.from_sqlglot(kind, column_name)
                if kind is not None
                else _untyped(column_name)
            )
            not_null, default = False, None
            for constraint in item.args.get("constraints") or []:
                c = constraint.args.get("kind")
                position = len(columns)
                if isinstance(c, exp.PrimaryKeyColumnConstraint):
                    if primary:
                        raise ProgrammingError(f"table {name} has more than one primary key")
                    primary = (position,)
                    not_null = True
                elif isinstance(c, exp.NotNullColumnConstraint):
                    not_null = not c.args.get("allow_null")
                elif isinstance(c, exp.DefaultColumnConstraint):
                    default = c.this.sql(dialect="sqlite")
                elif isinstance(c, exp.UniqueColumnConstraint):
                    uniques.append((position,))
                elif isinstance(c, exp.CheckColumnConstraint):
                    checks.append(c.this.sql(dialect="sqlite"))
            columns.append(Column(column_name, sql_type, not_null, default))
        elif isinstance(item, exp.PrimaryKey):
            if primary:
                raise ProgrammingError(f"table {name} has more than one primary key")
            primary = tuple(_position(columns, e.name, name) for e in item.expressions)
        elif isinstance(item, exp.UniqueColumnConstraint):
            target = item.this.expressions if isinstance(item.this, exp.Schema) else []
            uniques.append(tuple(_position(columns, e.name, name) for e in target))
        elif isinstance(item, exp.CheckColumnConstraint):
            checks.append(item.this.sql(dialect="sqlite"))
        else:
            raise NotSupportedError(f"unsupported table element: {item.sql(dialect='sqlite')}")
    names = [c.name.lower() for c in columns]
    if len(set(names)) != len(names):
        raise ProgrammingError(f"duplicate column name in table {name}")
    columns = [attrs.evolve(c, not_null=True) if n in primary else c for n, c in enumerate(columns)]
    table = Table(_next_id(ctx), name, tuple(columns), primary, (), tuple(checks))
    _store(ctx, table)
    if ctx.session.state.mirror_rows:
        for key, value in mirror.created(table).items():
            ctx.tx.write(key, value)
    for n, unique in enumerate(uniques):
        index = Index(_next_id(ctx), f"sqlite_autoindex_{name}_{n + 1}", name, unique, True)
        _store(ctx, index)


def _untyped(column: str) -> sqltypes.SqlType:
    # SQLite lets a column have no type; numbers are what such columns usually hold.
    return sqltypes.REAL if column == "" else sqltypes.INTEGER


def _type_of_arrow(arrow: object) -> sqltypes.SqlType:
    import pyarrow as pa

    assert isinstance(arrow, pa.DataType)
    if pa.types.is_integer(arrow) or pa.types.is_null(arrow):
        return sqltypes.INTEGER
    if pa.types.is_floating(arrow):
        return sqltypes.REAL
    if pa.types.is_boolean(arrow):
        return sqltypes.BOOLEAN
    if pa.types.is_binary(arrow):
        return sqltypes.BLOB
    return sqltypes.TEXT


def _position(columns: list[Column], name: str, table: str) -> int:
    for n, c in enumerate(columns):
        if c.name.lower() == name.lower():
            return n
    raise ProgrammingError(f"no such column: {name} in table {table}")


def create_index(ctx: Context, node: exp.Create) -> None:
    index_node = node.this
    name = index_node.name
    if ctx.catalog.exists(name):
        if node.args.get("exists"):
            return
        raise ProgrammingError(f"index {name} already exists")
    table = ctx.catalog.table(index_node.args["table"].name)
    params = index_node.args.get("params")
    columns = []
    for ordered in params.args.get("columns") or []:
        target = ordered.this if isinstance(ordered, exp.Ordered) else ordered
        columns.append(table.position(target.name))
    using = params.args.get("using")
    method = using.name.lower() if using is not None else "btree"
    if method in ann.METHODS:
        _create_vector_index(ctx, name, table, columns, method, params)
        return
    if method != "btree":
        raise NotSupportedError(
            f"index method {method.upper()} is not supported; use BTREE (the default), HNSW or IVF"
        )
    index = Index(_next_id(ctx), name, table.name, tuple(columns), bool(node.args.get("unique")))
    _store(ctx, index)
    from alopex.sql.dml import build_index

    build_index(ctx, table, index)


_COMMON_PARAMS = {"metric": str, "provider": str}
_VECTOR_PARAMS = {
    "hnsw": {
        "m": int,
        "ef_construction": int,
        "ef_search": int,
        "quantizer": str,
        **_COMMON_PARAMS,
    },
    "ivf": {"nlist": int, "nprobe": int, "pq": int, **_COMMON_PARAMS},
}


def _create_vector_index(
    ctx: Context,
    name: str,
    table: Table,
    columns: list[int],
    method: str,
    params: exp.IndexParameters,
) -> None:
    if len(columns) != 1:
        raise ProgrammingError(f"a {method.upper()} index covers exactly one VECTOR column")
    ann.check_table(table, columns[0])
    options: dict[str, object] = {}
    for prop in params.args.get("with_storage") or []:
        key = prop.name.lower()
        known = _VECTOR_PARAMS[method]
        kind = known.get(key)
        if kind is None:
            raise ProgrammingError(
                f"unknown {method.upper()} option {key!r}; use {', '.join(known)}"
            )
        raw = prop.args["value"]
        text = raw.name if isinstance(raw, (exp.Literal, exp.Var, exp.Identifier)) else raw.sql()
        try:
            options[key] = kind(text.lower() if kind is str else text)
        except ValueError:
            raise ProgrammingError(
                f"{method.upper()} option {key} must be {kind.__name__}"
            ) from None
    if options.get("metric") not in (None, "cosine", "l2", "inner"):
        raise ProgrammingError(f"unknown metric {options['metric']!r}; use cosine, l2 or inner")
    index = Index(_next_id(ctx), name, table.name, tuple(columns), False, method, options)
    # An empty index now, so a missing provider or an option it rejects fails the
    # statement, not the first search.
    ctx.session.state.ann.create(table, index)
    _store(ctx, index)


def create_view(ctx: Context, node: exp.Create) -> None:
    target = node.this
    name = target.this.name if isinstance(target, exp.Schema) else target.name
    if ctx.catalog.exists(name):
        if node.args.get("exists"):
            return
        raise ProgrammingError(f"view {name} already exists")
    query = node.expression
    if query is None:
        raise ProgrammingError(
            f"CREATE VIEW {name} needs a query: CREATE VIEW {name} AS SELECT ..."
        )
    ctx.executor().run(query)  # validate now, so a broken view is refused at CREATE
    columns = (
        tuple(c.name for c in node.this.expressions) if isinstance(node.this, exp.Schema) else ()
    )
    _store(ctx, View(name, query.sql(dialect="sqlite"), columns))


def drop(ctx: Context, node: exp.Drop) -> None:
    kind = (node.args.get("kind") or "").upper()
    targets = node.args.get("tables") or [node.this]
    for target in targets:
        _drop_one(ctx, node, kind, target.name)
        ctx.refresh_catalog()


def _drop_one(ctx: Context, node: exp.Drop, kind: str, name: str) -> None:
    catalog = ctx.catalog
    entries: dict[str, Mapping[str, Entry]] = {
        "TABLE": catalog.tables,
        "INDEX": catalog.indexes,
        "VIEW": catalog.views,
    }
    found = entries.get(kind, {}).get(name.lower())
    if found is None:
        if node.args.get("exists"):
            return
        raise ProgrammingError(f"no such {kind.lower()}: {name}")
    if isinstance(found, Table):
        for index in catalog.indexes_of(found.name):
            _remove(ctx, index)
            _delete_range(ctx, index_prefix(index.id))
        for index in catalog.vector_indexes_of(found.name):
            _remove(ctx, index)
            _delete_range(ctx, ann.log_prefix(index.id))
            ctx.session.state.ann.forget([index.id])
        _delete_range(ctx, table_prefix(found.id))
        _delete_range(ctx, mirror.prefix(found.id))
        ctx.tx.write(mirror.marker_key(found.id), None)  # tells the commit it was dropped
    elif isinstance(found, Index):
        if found.name.startswith("sqlite_autoindex_"):
            raise ProgrammingError(
                f"index {found.name} backs a UNIQUE constraint and cannot be dropped"
            )
        _delete_range(ctx, index_prefix(found.id))
        _delete_range(ctx, ann.log_prefix(found.id))
        ctx.session.state.ann.forget([found.id])
    _remove(ctx, found)


def alter(ctx: Context, node: exp.Alter) -> None:
    table = ctx.catalog.table(node.this.name)
    for action in node.args.get("actions") or []:
        table = _alter_one(ctx, table, action)
        ctx.refresh_catalog()


def _alter_one(ctx: Context, table: Table, action: exp.Expr) -> Table:
    if isinstance(action, exp.AlterRename):
        new_name = action.this.name
        if ctx.catalog.exists(new_name):
            raise ProgrammingError(f"there is already a table named {new_name}")
        _remove(ctx, table)
        renamed = attrs.evolve(table, name=new_name)
        _store(ctx, renamed)
        for index in ctx.catalog.indexes_of(table.name):
            _store(ctx, attrs.evolve(index, table=new_name))
        return renamed
    if isinstance(action, exp.RenameColumn):
        position = table.position(action.this.name)
        new = action.args["to"].name
        if any(c.name.lower() == new.lower() for c in table.columns):
            raise ProgrammingError(f"duplicate column name: {new}")
        renamed_columns = list(table.columns)
        renamed_columns[position] = attrs.evolve(renamed_columns[position], name=new)
        changed = attrs.evolve(table, columns=tuple(renamed_columns))
        _store(ctx, changed)
        return changed
    if isinstance(action, exp.ColumnDef):
        if any(c.name.lower() == action.name.lower() for c in table.columns):
            raise ProgrammingError(f"duplicate column name: {action.name}")
        kind = action.args.get("kind")
        sql_type = (
            sqltypes.from_sqlglot(kind, action.name) if kind is not None else _untyped(action.name)
        )
        default = None
        not_null = False
        for constraint in action.args.get("constraints") or []:
            c = constraint.args.get("kind")
            if isinstance(c, exp.DefaultColumnConstraint):
                default = c.this.sql(dialect="sqlite")
            elif isinstance(c, exp.NotNullColumnConstraint):
                not_null = True
            elif isinstance(c, (exp.PrimaryKeyColumnConstraint, exp.UniqueColumnConstraint)):
                raise NotSupportedError("cannot add a PRIMARY KEY or UNIQUE column")
        fill = None
        if default is not None:
            from alopex.sql.dml import default_value

            fill = default_value(ctx, default, sql_type, action.name)
        if not_null and fill is None:
            raise ProgrammingError(f"cannot add NOT NULL column {action.name} without a default")
        changed = attrs.evolve(
            table, columns=(*table.columns, Column(action.name, sql_type, not_null, default))
        )
        _rewrite_rows(ctx, table, lambda row: [*row, fill])
        _store(ctx, changed)
        return changed
    if isinstance(action, exp.Drop):
        targets = action.args.get("tables") or ([action.this] if action.this else [])
        if len(targets) != 1:
            raise NotSupportedError("ALTER TABLE DROP COLUMN takes one column")
        dropped = targets[0].name
        position = table.position(dropped)
        if len(table.columns) == 1:
            raise ProgrammingError(f"cannot drop {dropped}: it is the only column of {table.name}")
        if position in table.primary_key:
            raise ProgrammingError(f"cannot drop PRIMARY KEY column {dropped}")
        for index in ctx.catalog.indexes_of(table.name):
            if position in index.columns:
                raise ProgrammingError(f"cannot drop column {dropped}: index {index.name} uses it")
        columns = tuple(c for n, c in enumerate(table.columns) if n != position)
        primary = tuple(p - (p > position) for p in table.primary_key)
        changed = attrs.evolve(table, columns=columns, primary_key=primary)
        for index in ctx.catalog.indexes_of(table.name):
            _store(
                ctx, attrs.evolve(index, columns=tuple(p - (p > position) for p in index.columns))
            )
        _rewrite_rows(ctx, table, lambda row: row[:position] + row[position + 1 :])
        _store(ctx, changed)
        return changed
    raise NotSupportedError(f"unsupported ALTER TABLE action: {action.sql(dialect='sqlite')}")


def _rewrite_rows(ctx: Context, table: Table, change: object) -> None:
    prefix = table_prefix(table.id)
    ctx.session.wrote({table.id}, None)
    pairs = list(ctx.tx.read_range(prefix, prefix_end(prefix)))
    if not pairs:
        return
    keys = [key for key, _ in pairs]
    rows = decode_rows([value for _, value in pairs])
    for key, row in zip(keys, rows, strict=True):
        ctx.tx.write(key, encode_row(change(row)))  # type: ignore[operator]
