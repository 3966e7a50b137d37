"""A connection's SQL session: statement dispatch, transactions, catalog and results.

PEP 249 semantics: with ``autocommit`` off (the default) the first statement opens a
transaction that lasts until ``commit()`` or ``rollback()``; with it on, each statement
commits on its own unless ``BEGIN`` opened an explicit transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import pyarrow as pa
from sqlglot import exp

from alopex.contracts.storage import prefix_end
from alopex.errors import (
    AlopexError,
    DataError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)
from alopex.sql import ddl, dml
from alopex.sql.catalog import VERSION_KEY, Catalog, Table
from alopex.sql.encoding import CATALOG, decode_int, decode_rows, table_prefix
from alopex.sql.kernels import Params
from alopex.sql.parser import Explain, Special, parse
from alopex.sql.relation import Field, Relation
from alopex.sql.select import Executor
from alopex.sql.types import to_arrow, to_python

if TYPE_CHECKING:
    from alopex.builtin.mvcc import MvccTransaction
    from alopex.database import Database


@attrs.define
class Result:
    """What a statement produced: a relation (queries, RETURNING) and/or a row count."""

    relation: Relation | None = None
    rowcount: int = -1
    rows: list[tuple[Any, ...]] | None = None  # already converted (fast paths)
    names: list[str] | None = None


class SqlState:
    """Per-database SQL state shared by its sessions: catalog cache, rowid counters."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.catalog: Catalog | None = None
        self.rowids: dict[int, int] = {}


def sql_state(database: Database) -> SqlState:
    state = getattr(database, "_sql_state", None)
    if state is None:
        state = database._sql_state = SqlState()  # type: ignore[attr-defined]
    return state


@attrs.define
class Context:
    """Everything one statement needs: its transaction, catalog and parameters."""

    session: Session
    tx: MvccTransaction
    catalog: Catalog
    params: Params

    def executor(self) -> Executor:
        return Executor(self.catalog, self.scan, self.params, _view_query)

    def scan(self, table: Table, alias: str) -> Relation:
        return scan_table(self.tx, table, alias)

    def refresh_catalog(self) -> None:
        self.catalog = self.session._load_catalog(self.tx)


def _view_query(sql: str) -> exp.Expr:
    (statement,) = parse(sql)
    assert isinstance(statement, exp.Expr)
    return statement


def scan_table(tx: MvccTransaction, table: Table, alias: str) -> Relation:
    """Every row of ``table`` in the transaction's view, as Arrow columns."""
    prefix = table_prefix(table.id)
    pairs = list(tx.read_range(prefix, prefix_end(prefix)))
    fields = [Field(c.name, alias) for c in table.columns] + [Field(dml.KEY_FIELD, alias, True)]
    if not pairs:
        columns = [pa.array([], c.type.arrow) for c in table.columns]
        return Relation.build([*columns, pa.array([], pa.binary())], fields, 0)
    keys, values = zip(*pairs, strict=True)
    rows = decode_rows(values)
    by_column = list(zip(*rows, strict=True))
    columns = [
        to_arrow(list(values), column.type)
        for values, column in zip(by_column, table.columns, strict=True)
    ]
    return Relation.build([*columns, pa.array(keys, pa.binary())], fields, len(rows))


def python_rows(relation: Relation, table: Table, positions: list[int]) -> list[tuple[Any, ...]]:
    """Rows of stored (not display) values: what the row encoding writes back."""
    from alopex.sql.types import coerce

    columns = []
    for p in positions:
        column = table.columns[p]
        values = relation.column(relation.require(column.name)).to_pylist()
        if column.type.dim is not None or not _plain(column.type.arrow):
            values = [coerce(v, column.type, column.name) for v in values]
        columns.append(values)
    return list(zip(*columns, strict=True)) if columns else [()] * relation.num_rows


def _plain(arrow: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(arrow)
        or pa.types.is_floating(arrow)
        or pa.types.is_string(arrow)
        or pa.types.is_binary(arrow)
        or pa.types.is_boolean(arrow)
    )


class Session:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.state = sql_state(database)
        self.tx: MvccTransaction | None = None
        self.explicit = False  # BEGIN was issued
        self.autocommit = False
        self._savepoints: list[tuple[str, dict[bytes, bytes | None]]] = []

    # -- transactions ---------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.tx is not None

    def _transaction(self) -> MvccTransaction:
        if self.tx is None:
            self.tx = self.database.txns.begin()  # type: ignore[assignment]
        assert self.tx is not None
        return self.tx

    def commit(self) -> None:
        tx, self.tx = self.tx, None
        self.explicit = False
        self._savepoints.clear()
        if tx is not None:
            wrote_catalog = any(key.startswith(CATALOG) for key in tx._writes)
            try:
                tx.commit()
            finally:
                if wrote_catalog:
                    self.state.catalog = None

    def rollback(self) -> None:
        tx, self.tx = self.tx, None
        self.explicit = False
        self._savepoints.clear()
        if tx is not None:
            tx.rollback()

    # -- catalog --------------------------------------------------------------------------

    def _load_catalog(self, tx: MvccTransaction) -> Catalog:
        own_ddl = any(key.startswith(CATALOG) for key in tx._writes)
        raw = tx.read(VERSION_KEY)
        version = int(raw) if raw else 0
        cached = self.state.catalog
        if not own_ddl and cached is not None and cached.version == version:
            return cached
        catalog = Catalog.load(lambda p: tx.read_range(p, prefix_end(p)), tx.read)
        if not own_ddl:
            self.state.catalog = catalog
        return catalog

    def next_rowid(self, table: Table, tx: MvccTransaction, at_least: int = 0) -> int:
        """A fresh rowid: one more than the largest ever used (or ``at_least``)."""
        with self.state.lock:
            current = self.state.rowids.get(table.id)
            if current is None:
                prefix = table_prefix(table.id)
                last = next(iter(tx.read_range(prefix, prefix_end(prefix), reverse=True)), None)
                current = 0
                if last is not None:
                    body = last[0][len(prefix) :]
                    current = decode_int(body[1:] if table.primary_key else body)
            if at_least:
                current = max(current, at_least)
                self.state.rowids[table.id] = current
                return current
            current += 1
            self.state.rowids[table.id] = current
            return current

    # -- statements -----------------------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> Result:
        if not isinstance(sql, str):
            raise ProgrammingError(f"SQL must be a str, not {type(sql).__name__}")
        statements = parse(sql)
        result = Result()
        for statement in statements:
            result = self._guarded(statement, params)
        return result

    def _guarded(self, statement: Any, params: Params) -> Result:
        try:
            return self._execute(statement, params)
        except AlopexError:
            raise
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            OverflowError,
            ValueError,
            ZeroDivisionError,
        ) as err:
            raise DataError(f"{type(err).__name__}: {err}") from err
        except RecursionError as err:
            raise OperationalError("statement too deeply nested") from err
        except Exception as err:
            raise InternalError(
                f"internal error ({type(err).__name__}: {err}); this is a bug in Alopex, "
                "please report it with the statement"
            ) from err

    def _execute(self, statement: Any, params: Params) -> Result:
        if isinstance(statement, Special):
            return self._special(statement)
        if isinstance(statement, exp.Transaction):
            if self.explicit:
                raise OperationalError("cannot start a transaction within a transaction")
            self._transaction()
            self.explicit = True
            return Result()
        if isinstance(statement, exp.Commit):
            self.commit()
            return Result()
        if isinstance(statement, exp.Rollback):
            savepoint = statement.args.get("savepoint")
            if savepoint is not None:
                return self._special(Special("rollback_to", savepoint.name))
            self.rollback()
            return Result()
        expected = statement.meta.get("placeholders", 0) if isinstance(statement, exp.Expr) else 0
        if not isinstance(params, Mapping) and expected != len(params):
            raise ProgrammingError(
                f"the statement uses {expected} parameters, but {len(params)} were supplied"
            )
        tx = self._transaction()
        before = dict(tx._writes) if self.explicit or not self.autocommit else None
        try:
            ctx = Context(self, tx, self._load_catalog(tx), params)
            result = self._dispatch(statement, ctx)
        except BaseException:
            if self.autocommit and not self.explicit:
                self.rollback()
            elif before is not None and self.tx is tx:
                tx._writes = before  # the failed statement leaves no trace
            raise
        if self.autocommit and not self.explicit:
            self.commit()
        return result

    def _dispatch(self, statement: Any, ctx: Context) -> Result:
        if isinstance(statement, Explain):
            return self._explain(statement, ctx)
        if isinstance(statement, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
            return Result(ctx.executor().run(statement))
        if isinstance(statement, exp.Insert):
            count, returning = dml.insert(ctx, statement)
            return Result(returning, count)
        if isinstance(statement, exp.Update):
            count, returning = dml.update(ctx, statement)
            return Result(returning, count)
        if isinstance(statement, exp.Delete):
            count, returning = dml.delete(ctx, statement)
            return Result(returning, count)
        if isinstance(statement, exp.Create):
            ddl.create(ctx, statement)
            return Result()
        if isinstance(statement, exp.Drop):
            ddl.drop(ctx, statement)
            return Result()
        if isinstance(statement, exp.Alter):
            ddl.alter(ctx, statement)
            return Result()
        raise NotSupportedError(f"unsupported statement: {statement.key.upper()}")

    def _special(self, statement: Special) -> Result:
        if statement.kind == "reindex":  # indexes are always up to date: only check the name
            if statement.name:
                tx = self._transaction()
                catalog = self._load_catalog(tx)
                if not catalog.exists(statement.name.split(".")[-1]):
                    raise ProgrammingError(f"unable to identify the object to be reindexed: "
                                           f"{statement.name}")
            return Result()
        if statement.kind == "savepoint":
            tx = self._transaction()
            if not self._savepoints and not self.explicit:
                self.explicit = True
            self._savepoints.append((statement.name.lower(), dict(tx._writes)))
            return Result()
        names = [name for name, _ in self._savepoints]
        target = statement.name.lower()
        if target not in names:
            raise OperationalError(f"no such savepoint: {statement.name}")
        position = len(names) - 1 - names[::-1].index(target)
        if statement.kind == "release":
            del self._savepoints[position:]
            if not self._savepoints and self.autocommit:
                self.commit()
            return Result()
        assert self.tx is not None
        self.tx._writes = dict(self._savepoints[position][1])
        del self._savepoints[position + 1 :]
        return Result()

    def _explain(self, statement: Explain, ctx: Context) -> Result:
        text = statement.statement.sql(dialect="sqlite", pretty=True)
        lines = ["plan (vectorized on Arrow):", *("  " + line for line in text.splitlines())]
        relation = Relation.build([pa.array(lines)], [Field("plan")], len(lines))
        return Result(relation)


def result_rows(result: Result) -> list[tuple[Any, ...]]:
    """DB-API rows of a result."""
    if result.rows is not None:
        return result.rows
    relation = result.relation
    if relation is None:
        return []
    columns = [_python_column(column) for column in relation.table.columns]
    if not columns:
        return [()] * relation.num_rows
    return list(zip(*columns, strict=True))


def _python_column(column: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_fixed_size_list(column.type):
        return [None if v is None else list(v) for v in column.to_pylist()]
    return column.to_pylist()  # type: ignore[no-any-return]


__all__ = ["Result", "Session", "python_rows", "result_rows", "to_arrow", "to_python"]
