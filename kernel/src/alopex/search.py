"""Tables as Python objects, in the LanceDB style: ``db.table("docs").add(data)`` and
``db.table("docs").search(vec).where("lang = 'en'").select(["id"]).limit(10).to_arrow()``.

Both compile to SQL on the connection, so they share its transaction, its plans and the
ANN path: a search is ``SELECT .., vector_distance(col, ?, metric) AS _distance FROM t
[WHERE ..] ORDER BY _distance LIMIT k``, which an HNSW/IVF index on the column answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from alopex.errors import ProgrammingError
from alopex.sql.nearest import NearestLookup
from alopex.sql.parser import parse
from alopex.sql.session import Result, result_arrow, result_names, result_rows

if TYPE_CHECKING:
    import pandas as pd

    from alopex.connection import Connection
    from alopex.sql.catalog import Catalog
    from alopex.sql.catalog import Table as TableEntry

DISTANCE = "_distance"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Table:
    """A SQL table of a connection: bulk ``add`` and vector ``search``."""

    def __init__(self, connection: Connection, name: str) -> None:
        self.connection = connection
        self.name = name
        #: vector_column -> (the catalog it was resolved in, column name, metric)
        self._resolved: dict[str | None, tuple[Catalog, str, str]] = {}
        #: a search's shape -> (the catalog it was planned in, its index-lookup plan)
        self._plans: dict[tuple[Any, ...], tuple[Catalog, NearestLookup | None]] = {}
        self._entry()  # fail now on an unknown table, with the nearest names

    def _entry(self) -> TableEntry:
        session = self.connection._sql()
        tx = session._transaction()
        return session._load_catalog(tx).table(self.name)

    def add(self, data: Any) -> int:
        """Insert rows from an Arrow table, a pandas or Polars DataFrame, a list of dicts or
        a dict of columns (NumPy arrays welcome; a 2-D array fills a VECTOR column).
        Returns the number of rows. Runs in the connection's transaction."""
        columns = _columns(data)
        if not columns:
            return 0
        names = list(columns)
        rows = list(zip(*columns.values(), strict=True))
        marks = ", ".join("?" * len(names))
        sql = f"INSERT INTO {_quote(self.name)} ({', '.join(map(_quote, names))}) VALUES ({marks})"
        self.connection.executemany(sql, rows)
        return len(rows)

    def search(self, query: Any, vector_column: str | None = None) -> Search:
        """Nearest rows to ``query`` (one vector, or a 2-D array of many) by the VECTOR
        column (the only one, or ``vector_column``), closest first."""
        if vector_column not in self._resolved:
            self._column(vector_column)  # a missing or ambiguous column fails here
        return Search(self, np.asarray(query, dtype=np.float32), vector_column)

    def _column(self, vector_column: str | None) -> tuple[Catalog, str, str]:
        """The current catalog, and in it the VECTOR column to search and its metric."""
        session = self.connection._sql()
        catalog = session._load_catalog(session._transaction())
        cached = self._resolved.get(vector_column)
        if cached is None or cached[0] is not catalog:
            column, metric = self._resolve(catalog, vector_column)
            cached = self._resolved[vector_column] = (catalog, column, metric)
        return cached

    def _resolve(self, catalog: Catalog, vector_column: str | None) -> tuple[str, str]:
        """The VECTOR column to search and its metric (its index's, else its own)."""
        entry = catalog.table(self.name)
        vectors = [c for c in entry.columns if c.type.dim is not None]
        if vector_column is not None:
            vectors = [c for c in vectors if c.name.lower() == vector_column.lower()]
        if len(vectors) != 1:
            names = ", ".join(c.name for c in entry.columns if c.type.dim is not None)
            raise ProgrammingError(
                f"table {self.name} has VECTOR columns ({names or 'none'}); "
                "name the one to search with vector_column="
            )
        column = vectors[0]
        index = next(
            (
                i
                for i in catalog.vector_indexes_of(entry.name)
                if i.columns[0] == entry.position(column.name)
            ),
            None,
        )
        metric = (index.params.get("metric") if index else None) or column.type.metric or "cosine"
        return column.name, str(metric)


class Search:
    """A vector query being built; nothing runs until ``to_arrow``/``to_list``/``to_pandas``.

    Each query vector runs :meth:`sql` on the connection's session (no cursor). An
    unfiltered search runs the statement's index-lookup plan (sql/nearest.py) directly,
    made once per shape of search: one index search per query vector, no SQL text built
    or looked up, no catalog read (the plan checks the catalog version itself). When the
    plan declines (a changed catalog, a snapshot the index is not at, the transaction's
    own writes to the table), the statement runs as any other.
    """

    def __init__(self, table: Table, query: np.ndarray, vector_column: str | None) -> None:
        self.table = table
        self.query = query
        self.vector_column = vector_column
        self._where: str | None = None
        self._select: tuple[str, ...] | None = None
        self._limit = 10

    def where(self, condition: str) -> Search:
        """A SQL condition the rows must meet (filtered search)."""
        self._where = condition
        return self

    def select(self, columns: Sequence[str]) -> Search:
        self._select = tuple(columns)
        return self

    def limit(self, k: int) -> Search:
        if k < 1:
            raise ProgrammingError(f"limit must be at least 1, not {k}")
        self._limit = int(k)
        return self

    def sql(self) -> str:
        """The statement each query vector runs."""
        _, column, metric = self.table._column(self.vector_column)
        return self._statement(column, metric)

    def _statement(self, column: str, metric: str) -> str:
        shown = ", ".join(map(_quote, self._select)) if self._select is not None else "*"
        where = f" WHERE {self._where}" if self._where else ""
        return (
            f"SELECT {shown}, vector_distance({_quote(column)}, ?, '{metric}') "
            f"AS {DISTANCE} FROM {_quote(self.table.name)}{where} "
            f"ORDER BY {DISTANCE} LIMIT {self._limit}"
        )

    def _planned(self, vector: np.ndarray, records: bool) -> tuple[NearestLookup, Any] | None:
        """This shape's index-lookup plan and its answer for ``vector`` (rows, or dicts
        with ``records``), or None when there is no plan or it declines. The plan checks
        the catalog version itself: one made for an older catalog declines, and is made
        again here for the current one."""
        session = self.table.connection._sql()
        shape = (self.vector_column, self._where, self._select, self._limit)
        known = self.table._plans.get(shape)
        plan = None if known is None else known[1]
        if plan is not None:
            answer = session.run_plan(plan.records if records else plan.run, (vector,))
            if answer is not None:
                return plan, answer
        catalog, column, metric = self.table._column(self.vector_column)
        if known is not None and known[0] is catalog:
            return None  # the plan is current and declined, or there is none
        plan = None
        if self._where is None:
            (statement,) = parse(self._statement(column, metric))
            if isinstance(statement, exp.Select):
                plan = NearestLookup.build(statement, catalog)
        if len(self.table._plans) > 64:  # shapes are few unless the limit varies a lot
            self.table._plans.clear()
        self.table._plans[shape] = (catalog, plan)
        if plan is None:
            return None
        answer = session.run_plan(plan.records if records else plan.run, (vector,))
        return None if answer is None else (plan, answer)

    def _result(self, vector: np.ndarray) -> Result:
        found = self._planned(vector, records=False)
        if found is not None:
            plan, rows = found
            return Result(rows=rows, names=plan.names, types=plan.types)
        return self.table.connection._sql().execute(self.sql(), (vector,))

    def to_arrow(self) -> pa.Table:
        """The results; for several query vectors, stacked with a ``query_index`` column."""
        if self.query.ndim == 1:
            return result_arrow(self._result(self.query))
        parts = []
        for n, result in enumerate(map(self._result, self.query)):
            part = result_arrow(result)
            parts.append(
                part.append_column("query_index", pa.array([n] * part.num_rows, pa.int64()))
            )
        return pa.concat_tables(parts) if parts else pa.table({})

    def to_list(self) -> list[dict[str, Any]]:
        """The results as dicts (straight from the index's answer when the plan runs: no
        rows or Arrow in between); for several query vectors, each dict also has
        ``query_index``."""
        # zip without strict=: rows match their names, and passing the keyword costs
        # 1.5 us on a ten-row answer, more than the dicts
        if self.query.ndim == 1:
            found = self._planned(self.query, records=True)
            if found is not None:
                return found[1]  # type: ignore[no-any-return]
            result = self.table.connection._sql().execute(self.sql(), (self.query,))
            names = result_names(result)
            return [dict(zip(names, row)) for row in result_rows(result)]  # noqa: B905
        listed: list[dict[str, Any]] = []
        for n, result in enumerate(map(self._result, self.query)):
            names = [*result_names(result), "query_index"]
            listed.extend(dict(zip(names, (*row, n))) for row in result_rows(result))  # noqa: B905
        return listed

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()


def _columns(data: Any) -> dict[str, list[Any]]:
    """Column name -> Python values (vectors as float32 arrays) from any supported input."""
    if hasattr(data, "to_arrow") and not isinstance(data, pa.Table):  # Polars
        data = data.to_arrow()
    if type(data).__module__.startswith("pandas"):
        data = pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return {name: _values(data.column(name)) for name in data.column_names}
    if isinstance(data, Mapping):
        return {str(k): _values(v) for k, v in data.items()}
    if isinstance(data, Iterable):
        rows = list(data)
        if not rows:
            return {}
        if not all(isinstance(r, Mapping) for r in rows):
            raise ProgrammingError("add() takes rows as dicts (column name -> value)")
        names = list(dict.fromkeys(name for row in rows for name in row))
        return {n: [_vector_or_value(row.get(n)) for row in rows] for n in names}
    raise ProgrammingError(
        f"add() cannot read {type(data).__name__}; pass Arrow, pandas, Polars, "
        "a list of dicts or a dict of columns"
    )


def _values(column: Any) -> list[Any]:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.Array) and pa.types.is_fixed_size_list(column.type):
        dim = column.type.list_size
        flat = column.values.slice(column.offset * dim, len(column) * dim)
        matrix = np.asarray(flat.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
        valid = column.is_valid().to_pylist()
        return [row if ok else None for row, ok in zip(matrix, valid, strict=True)]
    if isinstance(column, pa.Array):
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            return [None if v is None else np.asarray(v, np.float32) for v in column.to_pylist()]
        return column.to_pylist()  # type: ignore[no-any-return]
    if isinstance(column, np.ndarray):
        return list(column.astype(np.float32)) if column.ndim == 2 else column.tolist()
    return [_vector_or_value(v) for v in column]


def _vector_or_value(value: Any) -> Any:
    return np.asarray(value, np.float32) if isinstance(value, (list, tuple)) else value
