"""A connection's SQL session: statement dispatch, transactions, catalog and results.

PEP 249 semantics: with ``autocommit`` off (the default) the first statement opens a
transaction that lasts until ``commit()`` or ``rollback()``; with it on, each statement
commits on its own unless ``BEGIN`` opened an explicit transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import numpy as np
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
from alopex.sql import access, ann, ddl, dml, mirror
from alopex.sql.access import ScanRequest
from alopex.sql.catalog import VERSION_KEY, Catalog, Index, Table
from alopex.sql.encoding import decode_int, decode_row, encode_key, table_prefix
from alopex.sql.kernels import Params
from alopex.sql.nearest import NearestLookup
from alopex.sql.parser import Explain, Special, parse
from alopex.sql.relation import Field, Relation
from alopex.sql.select import Executor, _conjuncts
from alopex.sql.types import coerce, to_arrow, to_python

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
    types: list[pa.DataType] | None = None  # of ``rows``' columns, for .arrow()


SEARCH_PRAGMAS = ("ef_search", "nprobe")
_T = TypeVar("_T")


class SqlState:
    """Per-database SQL state shared by its sessions: catalog cache, rowid counters."""

    def __init__(self, database: Database) -> None:
        self.lock = threading.Lock()
        self.catalog: Catalog | None = None
        self.rowids: dict[int, int] = {}
        # a columnar copy in storage only pays off where storage outlives the process
        persistent = database.path is not None
        self.mirror_rows = int(database.settings["sql.column_mirror_rows"]) if persistent else 0
        self.columns = access.TableColumns(database.txns, self.mirror_rows)
        self.exact_filtered_rows = int(database.settings["sql.exact_filtered_rows"])
        folder = database.path / "indexes" if database.path is not None else None
        self.ann = ann.AnnIndexes(database.plugins, folder, database.txns)
        database.on_close.append(self.ann.save)


def sql_state(database: Database) -> SqlState:
    state = getattr(database, "_sql_state", None)
    if state is None:
        state = database._sql_state = SqlState(database)  # type: ignore[attr-defined]
    return state


@attrs.define
class Context:
    """Everything one statement needs: its transaction, catalog and parameters."""

    session: Session
    tx: MvccTransaction
    catalog: Catalog
    params: Params

    def executor(self) -> Executor:
        return Executor(
            self.catalog,
            self.scan,
            self.params,
            _view_query,
            self.nearest,
            self.fetch_rows,
            self.session.state.exact_filtered_rows,
        )

    def fetch_rows(self, table: Table, ids: np.ndarray, fields: list[Field]) -> Relation:
        """Rows by integer row id, in the order given (missing ones are skipped)."""
        keys = [ann.row_key(table, int(i)) for i in ids]
        pairs = [(k, v) for k, v in zip(keys, self.tx.read_many(keys), strict=True) if v]
        columns = mirror.decode_columns(table, [k for k, _ in pairs], [v for _, v in pairs], None)
        return Relation.build(columns, fields, len(pairs))

    def nearest(
        self, table: Table, index: Index, query: np.ndarray, k: int, allow: np.ndarray | None
    ) -> np.ndarray | None:
        """Row ids an ANN index ranks nearest, or None when this snapshot must rank exactly
        (its own writes to the table, or an index already past this snapshot)."""
        if table.id in self.session.written:
            return None
        state = self.session.state
        searched = state.ann.search(
            self.tx,
            table,
            index,
            lambda: state.columns.read(self.tx, table, None)[0],
            query.reshape(1, -1),
            k,
            allow=allow,
            params=self.session.search_params or None,
        )
        return None if searched is None else np.asarray(searched[0][0])

    def scan(self, table: Table, alias: str, request: ScanRequest | None = None) -> Relation:
        return access.scan(
            self.tx,
            self.catalog,
            table,
            alias,
            request,
            self.session.state.columns,
            self.session.written,
        )

    def refresh_catalog(self) -> None:
        self.catalog = self.session._load_catalog(self.tx)


_DDL = (exp.Create, exp.Drop, exp.Alter)


@attrs.frozen
class _Many:
    """An INSERT of many parameter sets at once (from executemany)."""

    node: exp.Insert
    indexes: list[int]
    batch: list[Any]


@attrs.frozen
class PointLookup:
    """``SELECT cols FROM t WHERE pk = ?``: one key read, no Arrow (the point-query path)."""

    statement: exp.Expr
    version: int
    table: Table
    key_parts: tuple[exp.Expr, ...]  # in primary-key order: placeholders or literals
    positions: tuple[int, ...]  # projected columns
    names: list[str]

    @property
    def types(self) -> list[pa.DataType]:
        return [self.table.columns[p].type.arrow for p in self.positions]

    @classmethod
    def build(cls, node: exp.Select, catalog: Catalog) -> PointLookup | None:
        from_ = node.args.get("from_")
        where = node.args.get("where")
        if (
            from_ is None
            or where is None
            or not isinstance(from_.this, exp.Table)
            or any(
                node.args.get(a)
                for a in (
                    "joins",
                    "group",
                    "having",
                    "order",
                    "limit",
                    "offset",
                    "distinct",
                    "with_",
                )
            )
        ):
            return None
        name = from_.this.name
        table = catalog.tables.get(name.lower())
        if table is None or not table.primary_key:
            return None
        alias = from_.this.alias_or_name.lower()
        bound: dict[int, exp.Expr] = {}
        for cond in _conjuncts(where.this):
            if not isinstance(cond, exp.EQ):
                return None
            column, value = cond.left, cond.right
            if not isinstance(column, exp.Column):
                column, value = value, column
            if (
                not isinstance(column, exp.Column)
                or not isinstance(value, (exp.Placeholder, exp.Literal))
                or (column.table and column.table.lower() != alias)
            ):
                return None
            try:
                bound[table.position(column.name)] = value
            except ProgrammingError:
                return None
        if sorted(bound) != sorted(table.primary_key):
            return None
        positions: list[int] = []
        names: list[str] = []
        for item in node.expressions:
            target = item.this if isinstance(item, exp.Alias) else item
            if isinstance(target, exp.Star):
                positions.extend(range(len(table.columns)))
                names.extend(table.column_names)
            elif (
                isinstance(target, exp.Column)
                and not isinstance(target.this, exp.Star)
                and (not target.table or target.table.lower() == alias)
            ):
                try:
                    positions.append(table.position(target.name))
                except ProgrammingError:
                    return None
                names.append(item.alias if isinstance(item, exp.Alias) else target.name)
            else:
                return None
        return cls(
            node,
            catalog.version,
            table,
            tuple(bound[p] for p in table.primary_key),
            tuple(positions),
            names,
        )

    def run(
        self, session: Session, tx: MvccTransaction, params: Params
    ) -> list[tuple[Any, ...]] | None:
        """The rows, or None when the plan no longer applies (then plan normally)."""
        if session._ddl_in_tx:
            return None
        raw_version = session.read_fixed(tx, VERSION_KEY)
        if (int(raw_version) if raw_version else 0) != self.version:
            return None
        values = []
        for part, position in zip(self.key_parts, self.table.primary_key, strict=True):
            if isinstance(part, exp.Placeholder):
                if isinstance(params, Mapping):
                    return None
                value = params[part.meta["index"]]
            else:
                value = (
                    int(part.this)
                    if not part.is_string and part.this.isdigit()
                    else (part.this if part.is_string else None)
                )
                if value is None:
                    return None
            column = self.table.columns[position]
            try:
                value = coerce(value, column.type, column.name)
            except AlopexError:
                return None
            if value is None:
                return []
            values.append(value)
        raw = tx.read(table_prefix(self.table.id) + encode_key(values))
        if raw is None:
            return []
        row = decode_row(raw)
        columns = self.table.columns
        return [tuple(_display(row[p], columns[p].type) for p in self.positions)]


def _display(value: Any, sql_type: Any) -> Any:
    return value if value is None or _plain(sql_type.arrow) else to_python(value, sql_type)


def _parse(sql: str) -> tuple[Any, ...]:
    """``parse`` with anything unexpected from the parser turned into an AlopexError."""
    try:
        return parse(sql)
    except AlopexError:
        raise
    except RecursionError as err:
        raise ProgrammingError("statement too deeply nested to parse") from err
    except Exception as err:
        raise ProgrammingError(f"cannot parse the statement ({type(err).__name__}: {err})") from err


def _view_query(sql: str) -> exp.Expr:
    (statement,) = parse(sql)
    assert isinstance(statement, exp.Expr)
    return statement


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
        self._ddl_in_tx = False  # catalog writes pending in the open transaction
        self.written: set[int] = set()  # ids of tables written in the open transaction
        self.search_params: dict[str, int] = {}  # PRAGMA ef_search / nprobe
        # table id -> the (row keys, rows) its statements inserted, in order; None once
        # anything else wrote the table (the commit then cannot append to its mirror)
        self.appended: dict[int, list[tuple[list[bytes], list[list[Any]]]] | None] = {}
        # parsed statement id -> (statement, its fast-path plan or None, the catalog
        # version it was planned at: DDL can make or unmake a plan, so it plans again)
        self._plans: dict[int, tuple[Any, PointLookup | NearestLookup | None, int]] = {}
        # what this session's transaction read of keys it never writes before commit
        self._fixed: tuple[MvccTransaction | None, dict[bytes, bytes | None]] = (None, {})

    # -- transactions ---------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.tx is not None

    def read_fixed(self, tx: MvccTransaction, key: bytes) -> bytes | None:
        """``tx.read(key)`` once per transaction, for keys its statements do not write
        (an index's change-log counter; the catalog version unless the transaction ran
        DDL, which every caller checks first): a snapshot's value cannot change."""
        owner, values = self._fixed
        if owner is not tx:
            values = {}
            self._fixed = (tx, values)
        if key in values:
            return values[key]
        value = values[key] = tx.read(key)
        return value

    def _transaction(self) -> MvccTransaction:
        if self.tx is None:
            self.tx = self.database.txns.begin()  # type: ignore[assignment]
        assert self.tx is not None
        return self.tx

    def commit(self) -> None:
        tx, self.tx = self.tx, None
        self.explicit = False
        self._savepoints.clear()
        wrote_catalog, self._ddl_in_tx = self._ddl_in_tx, False
        written, self.written = self.written, set()
        appended, self.appended = self.appended, {}
        if tx is not None:
            try:
                if written:  # table markers, mirror segments, vector index change logs
                    self._derive_on_commit(tx, written, appended)
                tx.commit()
            finally:
                if wrote_catalog:
                    self.state.catalog = None

    def wrote(
        self, tables: set[int], inserted: tuple[int, list[bytes], list[list[Any]]] | None
    ) -> None:
        """Record a statement's row writes (``inserted``: it only added new rows)."""
        self.written |= tables
        appended = self.appended
        for table_id in tables:
            log = appended.get(table_id, [])
            if log is not None and inserted is not None and inserted[0] == table_id:
                log.append((inserted[1], inserted[2]))
                appended[table_id] = log
            else:
                appended[table_id] = None

    def _forget_inserts(self) -> None:
        """Writes were rolled back to an earlier state: the insert logs no longer match."""
        self.appended = dict.fromkeys(self.appended)

    def _derive_on_commit(
        self, tx: MvccTransaction, written: set[int], appended: dict[int, Any]
    ) -> None:
        find = self._table_finder(tx)
        plan = mirror.CommitPlan(tx, written, appended, find, self.state.mirror_rows)
        catalog = self._load_catalog(tx)
        indexed = [
            (table, catalog.vector_indexes_of(table.name))
            for table in catalog.tables.values()
            if table.id in written and catalog.vector_indexes_of(table.name)
        ]
        log = ann.logged(tx, indexed) if indexed else []

        def derive(latest: Callable[[bytes], bytes | None]) -> dict[bytes, bytes | None]:
            writes = plan.derive(latest)
            if log:
                writes.update(ann.derive_log(log, latest))
            return writes

        tx.derive_on_commit(derive)

    def _table_finder(self, tx: MvccTransaction) -> Callable[[int], Table | None]:
        def find(table_id: int) -> Table | None:
            tables = self._load_catalog(tx).tables.values()
            return next((t for t in tables if t.id == table_id), None)

        return find

    def rollback(self) -> None:
        tx, self.tx = self.tx, None
        self.explicit = False
        self._savepoints.clear()
        self._ddl_in_tx = False
        self.written = set()
        self.appended = {}
        if tx is not None:
            tx.rollback()

    # -- catalog --------------------------------------------------------------------------

    def _load_catalog(self, tx: MvccTransaction) -> Catalog:
        own_ddl = self._ddl_in_tx
        raw = tx.read(VERSION_KEY) if own_ddl else self.read_fixed(tx, VERSION_KEY)
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
        statements = _parse(sql)
        if len(statements) == 1:
            planned = self._guarded(self._planned, statements[0], params)
            if planned is not None:
                return planned
        result = Result()
        for statement in statements:
            result = self._guarded(self._execute, statement, params)
        return result

    def _planned(self, statement: Any, params: Params) -> Result | None:
        """A statement with a cached fast-path plan (point or nearest lookup), run before
        any dispatch; None when it has none or the plan declines (the general path runs)."""
        cached = self._plans.get(id(statement))
        if cached is None or cached[0] is not statement or cached[1] is None:
            return None
        plan = cached[1]
        if isinstance(params, Mapping) or len(params) != statement.meta.get("placeholders", 0):
            return None  # the general path names what is wrong with the parameters
        rows = self.run_plan(plan.run, params)
        return None if rows is None else Result(rows=rows, names=plan.names, types=plan.types)

    def run_plan(
        self, run: Callable[[Session, MvccTransaction, Params], _T | None], params: Params
    ) -> _T | None:
        """What a fast-path plan's ``run`` (its rows, as its statement would return them;
        or ``NearestLookup.records``) answers, or None when the plan declines (then the
        statement must run); failures surface as AlopexErrors, as from ``execute``. The
        search API calls this directly: it knows its plan, so it skips finding one by the
        statement's text."""
        try:
            answer = run(self, self._transaction(), params)
        except AlopexError:
            raise
        except Exception as err:
            raise _translated(err) from err
        if answer is not None and self.autocommit and not self.explicit:
            self.commit()
        return answer

    def executemany(self, sql: str, seq_of_params: Any) -> int:
        """Run ``sql`` once per parameter set; plain ``INSERT ... VALUES (?, ...)``
        statements insert every set in one pass. Returns the total row count."""
        statements = _parse(sql) if isinstance(sql, str) else ()
        if len(statements) == 1 and isinstance(statements[0], exp.Insert):
            shape = dml.placeholder_rows(statements[0])
            if shape is not None:
                batch = [p if isinstance(p, (list, tuple)) else list(p) for p in seq_of_params]
                many = _Many(statements[0], shape[1], batch)
                return self._guarded(self._execute, many, ()).rowcount
        total = 0
        for params in seq_of_params:
            total += max(self.execute(sql, params).rowcount, 0)
        return total

    def _guarded(self, run: Callable[[Any, Params], _T], statement: Any, params: Params) -> _T:
        """``run(statement, params)`` with every failure turned into an AlopexError."""
        try:
            return run(statement, params)
        except AlopexError:
            raise
        except Exception as err:
            raise _translated(err) from err

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
        inner = statement.statement if isinstance(statement, Explain) else statement
        expected = inner.meta.get("placeholders", 0) if isinstance(inner, exp.Expr) else 0
        if isinstance(statement, _Many):
            expected = 0
        if not isinstance(params, Mapping) and expected != len(params):
            raise ProgrammingError(
                f"the statement uses {expected} parameters, but {len(params)} were supplied"
            )
        tx = self._transaction()
        # DML hands its writes to the transaction only once it has succeeded; DDL writes
        # as it goes, so keep what to restore if it fails.
        ddl_statement = isinstance(statement, _DDL)
        before = dict(tx._writes) if ddl_statement and not self.autocommit else None
        if ddl_statement:
            self._ddl_in_tx = True
        try:
            ctx = Context(self, tx, self._load_catalog(tx), params)
            result = None
            cached = self._plans.get(id(statement))
            planned = (
                cached is not None and cached[0] is statement and cached[2] == ctx.catalog.version
            )
            if not planned and isinstance(statement, exp.Select):
                plan = self._plan_point_lookup(statement, ctx.catalog)
                rows = plan.run(self, tx, params) if plan is not None else None
                if rows is not None and plan is not None:
                    result = Result(rows=rows, names=plan.names, types=plan.types)
            if result is None:
                result = self._dispatch(statement, ctx)
        except BaseException:
            if self.autocommit and not self.explicit:
                self.rollback()
            elif before is not None and self.tx is tx:
                tx._writes = before  # the failed statement leaves no trace
                self._forget_inserts()
            raise
        if self.autocommit and not self.explicit:
            self.commit()
        return result

    def _plan_point_lookup(
        self, statement: exp.Select, catalog: Catalog
    ) -> PointLookup | NearestLookup | None:
        if len(self._plans) > 512:
            self._plans.clear()
        plan: PointLookup | NearestLookup | None = PointLookup.build(statement, catalog)
        if plan is None:
            plan = NearestLookup.build(statement, catalog)
        self._plans[id(statement)] = (statement, plan, catalog.version)
        return plan

    def _dispatch(self, statement: Any, ctx: Context) -> Result:
        if isinstance(statement, Explain):
            return self._explain(statement, ctx)
        if isinstance(statement, exp.Pragma):
            return self._pragma(statement)
        if isinstance(statement, _Many):
            return Result(
                rowcount=dml.insert_many(ctx, statement.node, statement.indexes, statement.batch)
            )
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

    def prepare_vector_indexes(self, progress: Callable[[str, int, int], None]) -> None:
        """Load or build every vector index now (as the first query would), reporting
        ``progress(index name, vectors added, total)``; the CLI shows it as a bar."""
        tx = self._transaction()
        catalog = self._load_catalog(tx)
        state = self.state
        for index in catalog.indexes.values():
            if index.method == "btree" or index.id in state.ann.live:
                continue
            table = catalog.table(index.table)

            def columns(table: Table = table) -> list[Any]:
                return state.columns.read(tx, table, None)[0]

            def report(done: int, total: int, name: str = index.name) -> None:
                progress(name, done, total)

            state.ann.searchable(tx, table, index, columns, progress=report)
        if self.autocommit and not self.explicit:
            self.commit()

    def _pragma(self, statement: exp.Pragma) -> Result:
        """``PRAGMA ef_search = 128`` / ``PRAGMA nprobe = 16``: how hard this connection's
        ANN searches look (more is slower and finds more); ``= 0`` restores the index's own
        setting; without ``=`` it shows the current value."""
        target = statement.this
        name = (target.this if isinstance(target, exp.EQ) else target).name.lower()
        if name not in SEARCH_PRAGMAS:
            raise NotSupportedError(
                f"PRAGMA {name} is not supported; Alopex knows {', '.join(SEARCH_PRAGMAS)}"
            )
        if isinstance(target, exp.EQ):
            value = target.expression
            if not (isinstance(value, exp.Literal) and value.is_int and int(value.name) >= 0):
                raise ProgrammingError(f"PRAGMA {name} takes a whole number, like 64")
            if int(value.name):
                self.search_params[name] = int(value.name)
            else:
                self.search_params.pop(name, None)
            return Result()
        current = self.search_params.get(name)
        relation = Relation.build([pa.array([current], pa.int64())], [Field(name)], 1)
        return Result(relation)

    def _special(self, statement: Special) -> Result:
        if statement.kind == "reindex":  # indexes are always up to date: only check the name
            if statement.name:
                tx = self._transaction()
                catalog = self._load_catalog(tx)
                if not catalog.exists(statement.name.split(".")[-1]):
                    raise ProgrammingError(
                        f"unable to identify the object to be reindexed: {statement.name}"
                    )
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
        self._forget_inserts()
        del self._savepoints[position + 1 :]
        return Result()

    def _explain(self, statement: Explain, ctx: Context) -> Result:
        """The operators a query runs, in order, with the access path of every scan.

        EXPLAIN reads through the chosen access paths but runs every later operator on
        no rows; EXPLAIN ANALYZE runs the
        query and adds the rows and milliseconds of each operator.
        """
        inner = statement.statement
        lines: list[str] = []
        if not isinstance(inner, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
            lines.append(
                f"{inner.key.upper()} (statement runs row batches through the transaction)"
            )
        else:
            executor = ctx.executor()
            executor.trace = []
            if not statement.analyze:
                real_scan = executor.scan

                def planned(table: Table, alias: str, request: ScanRequest | None) -> Relation:
                    relation = real_scan(table, alias, request)
                    return relation.slice(0, 0)

                # plan on real access paths but run the rest on no rows
                executor.scan = planned
            started = time.perf_counter()
            output = executor.run(inner)
            total = (time.perf_counter() - started) * 1e3
            for operator, detail, rows, ms in executor.trace:
                text = f"{operator:<16} {detail}"
                if statement.analyze:
                    text += f"  [rows={rows}, {ms:.2f} ms]"
                lines.append(text)
            lines.append(
                f"{'PROJECT':<16} {len(output.fields)} column(s)"
                + (f"  [rows={output.num_rows}, total {total:.2f} ms]" if statement.analyze else "")
            )
        relation = Relation.build([pa.array(lines)], [Field("plan")], len(lines))
        return Result(relation)


def _translated(err: Exception) -> AlopexError:
    """The AlopexError a failure inside a statement surfaces as."""
    if isinstance(
        err,
        pa.ArrowInvalid
        | pa.ArrowTypeError
        | pa.ArrowNotImplementedError
        | OverflowError
        | ValueError
        | ZeroDivisionError,
    ):
        return DataError(f"{type(err).__name__}: {err}")
    if isinstance(err, RecursionError):
        return OperationalError("statement too deeply nested")
    return InternalError(
        f"internal error ({type(err).__name__}: {err}); this is a bug in Alopex, "
        "please report it with the statement"
    )


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


def result_names(result: Result) -> list[str]:
    """Column names of a result's rows."""
    if result.relation is not None:
        return [f.name for f in result.relation.fields]
    return list(result.names or ())


def result_arrow(result: Result) -> pa.Table:
    """A result as an Arrow table (a relation as it is; fast-path rows by their types)."""
    if result.rows is not None and result.types is not None:
        names = result.names or []
        columns = list(zip(*result.rows, strict=True)) or [()] * len(names)
        arrays = [pa.array(list(c), t) for c, t in zip(columns, result.types, strict=True)]
        return pa.table(arrays, names=names)
    relation = result.relation
    if relation is None:
        raise ProgrammingError("the last statement returned no rows")
    return relation.table.rename_columns([f.name for f in relation.fields])


def _python_column(column: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_fixed_size_list(column.type):
        return [None if v is None else list(v) for v in column.to_pylist()]
    return column.to_pylist()  # type: ignore[no-any-return]


__all__ = [
    "Result",
    "Session",
    "python_rows",
    "result_arrow",
    "result_names",
    "result_rows",
    "to_arrow",
    "to_python",
]
