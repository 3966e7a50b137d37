"""The top-k path: ``SELECT cols[, f(col, ?) AS score] FROM t ORDER BY f(col, ?) LIMIT k``
planned once per statement, run as one index search and one batched read of k rows.

It is to vector search what ``PointLookup`` is to primary-key reads: no Arrow relation,
no general executor, no per-query planning. Anything it cannot answer exactly as the
general path would (a WHERE clause, other expressions, a snapshot the index is not at,
the transaction's own writes to the table) returns None, and the general path runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import pyarrow as pa
from sqlglot import exp

from alopex.sql import ann
from alopex.sql.catalog import VERSION_KEY, Catalog, Index, Table
from alopex.sql.encoding import decode_rows
from alopex.sql.kernels import Params
from alopex.sql.types import to_python

if TYPE_CHECKING:
    from alopex.builtin.mvcc import MvccTransaction
    from alopex.sql.session import Session

#: ORDER BY function -> (its fixed metric or None, similarity (DESC) or distance (ASC))
FUNCTIONS = {
    "vector_similarity": (None, True),
    "vector_distance": (None, False),
    "cosine_similarity": ("cosine", True),
    "inner_product": ("inner", True),
    "l2_distance": ("l2", False),
}


@attrs.frozen
class NearestLookup:
    version: int
    table: Table
    index: Index
    column: int  # the VECTOR column's position
    parameter: int  # the query vector's placeholder number
    similarity: bool  # higher first (else lower first)
    metric: str
    limit: int
    outputs: tuple[int, ...]  # column positions; -1 is the score
    names: list[str]
    # derived once, not per query
    key: int = attrs.field(init=False)  # the row-id column's position, or -2 (hidden rowid)
    dim: int = attrs.field(init=False)
    counter: bytes = attrs.field(init=False)  # the index's change-log counter key
    types: list[pa.DataType] = attrs.field(init=False)
    #: the row id alone, or with the score: answered from the index, no row read
    key_only: bool = attrs.field(init=False)
    key_and_score: bool = attrs.field(init=False)
    #: the score is the index's distance itself (vector_distance, cosine or inner)
    score_is_distance: bool = attrs.field(init=False)
    #: [(the last transaction this plan found itself current in, its log counter)]: a
    #: snapshot's catalog version and counter cannot change, so later runs skip both reads
    checked: list[tuple[Any, int]] = attrs.field(
        init=False, factory=lambda: [(None, 0)], eq=False, repr=False
    )

    @key.default
    def _key(self) -> int:
        return self.table.primary_key[0] if self.table.primary_key else -2

    @dim.default
    def _dim(self) -> int:
        return self.table.columns[self.column].type.dim or 0

    @counter.default
    def _counter(self) -> bytes:
        return ann.counter_key(self.index.id)

    @types.default
    def _types(self) -> list[pa.DataType]:
        return [pa.float64() if p < 0 else self.table.columns[p].type.arrow for p in self.outputs]

    @key_only.default
    def _key_only(self) -> bool:
        return self.outputs == (self.key,)

    @key_and_score.default
    def _key_and_score(self) -> bool:
        return self.outputs == (self.key, -1)

    @score_is_distance.default
    def _score_is_distance(self) -> bool:
        return not self.similarity and self.metric != "l2"

    @classmethod
    def build(cls, node: exp.Select, catalog: Catalog) -> NearestLookup | None:
        from_, order, limit = node.args.get("from_"), node.args.get("order"), node.args.get("limit")
        if from_ is None or order is None or limit is None or len(order.expressions) != 1:
            return None
        if not isinstance(from_.this, exp.Table) or any(
            node.args.get(a)
            for a in ("joins", "where", "group", "having", "distinct", "offset", "with_")
        ):
            return None
        table = catalog.tables.get(from_.this.name.lower())
        count = limit.expression if limit.expression is not None else limit.this
        if table is None or not (isinstance(count, exp.Literal) and count.is_int):
            return None
        if int(count.name) < 1:  # LIMIT 0: nothing to search for
            return None
        ordered = order.expressions[0]
        call = _aliased(ordered.this, node)
        if not isinstance(call, exp.Anonymous) or call.name.lower() not in FUNCTIONS:
            return None
        fixed, similarity = FUNCTIONS[call.name.lower()]
        if bool(ordered.args.get("desc")) != similarity or len(call.expressions) not in (2, 3):
            return None
        column_node, query_node = call.expressions[0], call.expressions[1]
        if isinstance(column_node, exp.Placeholder):
            column_node, query_node = query_node, column_node
        if not isinstance(column_node, exp.Column) or not isinstance(query_node, exp.Placeholder):
            return None
        position = _position(table, column_node.name)
        index = next(
            (i for i in catalog.vector_indexes_of(table.name) if i.columns[0] == position), None
        )
        if position is None or index is None:
            return None
        metric = fixed or table.columns[position].type.metric or "cosine"
        if len(call.expressions) == 3:
            given = call.expressions[2]
            if not (isinstance(given, exp.Literal) and given.is_string) or fixed:
                return None
            metric = given.name.lower()
        declared = index.params.get("metric") or table.columns[position].type.metric or "cosine"
        if metric != declared:
            return None
        outputs: list[int] = []
        names: list[str] = []
        for item in node.expressions:
            target = item.this if isinstance(item, exp.Alias) else item
            name = item.alias if isinstance(item, exp.Alias) else None
            if isinstance(target, exp.Star):
                outputs.extend(range(len(table.columns)))
                names.extend(table.column_names)
            elif target == call:
                outputs.append(-1)
                names.append(name or target.sql(dialect="sqlite"))
            elif (
                isinstance(target, exp.Column)
                and (found := _position(table, target.name)) is not None
            ):
                outputs.append(found)
                names.append(name or target.name)
            else:
                return None
        return cls(
            catalog.version,
            table,
            index,
            position,
            query_node.meta["index"],
            similarity,
            metric,
            int(count.name),
            tuple(outputs),
            names,
        )

    def run(
        self, session: Session, tx: MvccTransaction, params: Params
    ) -> list[tuple[Any, ...]] | None:
        """The rows, or None when the general path must answer."""
        found = self._nearest(session, tx, params)
        if found is None:
            return None
        ids, distances = found
        if self.key_only:
            return [(i,) for i in ids]
        scores = self._scores(distances)
        if self.key_and_score:
            return list(zip(ids, scores))  # noqa: B905 (as long by construction)
        if all(p in (-1, self.key) for p in self.outputs):  # no row needs reading
            pairs = zip(ids, scores, strict=True)
            return [tuple(s if p < 0 else i for p in self.outputs) for i, s in pairs]
        keys = [ann.row_key(self.table, i) for i in ids]
        rows = decode_rows([raw for raw in tx.read_many(keys) if raw is not None])
        if len(rows) != len(ids):
            return None  # cannot happen while the index is at this snapshot; be safe
        columns = self.table.columns
        return [
            tuple(score if p < 0 else to_python(row[p], columns[p].type) for p in self.outputs)
            for row, score in zip(rows, scores, strict=True)
        ]

    def records(
        self, session: Session, tx: MvccTransaction, params: Params
    ) -> list[dict[str, Any]] | None:
        """The rows as dicts (the search API's ``to_list``), or None as for :meth:`run`;
        the usual key and distance go from the index's answer to dicts directly."""
        if not self.key_and_score:
            rows = self.run(session, tx, params)
            return None if rows is None else [dict(zip(self.names, r)) for r in rows]  # noqa: B905
        found = self._nearest(session, tx, params)
        if found is None:
            return None
        ids, distances = found
        key, score = self.names
        scores = distances if self.score_is_distance else self._scores(distances)
        return [{key: i, score: s} for i, s in zip(ids, scores)]  # noqa: B905

    def _nearest(
        self, session: Session, tx: MvccTransaction, params: Params
    ) -> tuple[list[int], list[float]] | None:
        """The row ids the index finds, closest first, and their distances."""
        if session._ddl_in_tx or self.table.id in session.written:
            return None
        if type(params) is not tuple and isinstance(params, Mapping):
            return None
        checked_in, wanted = self.checked[0]
        if checked_in is not tx:
            raw_version = session.read_fixed(tx, VERSION_KEY)
            if (int(raw_version) if raw_version else 0) != self.version:
                return None
            wanted = ann.log_count(session.read_fixed(tx, self.counter))
            self.checked[0] = (tx, wanted)
        try:
            query = np.asarray(params[self.parameter], dtype=np.float32)
        except (TypeError, ValueError):
            return None
        if query.shape != (self.dim,):
            return None  # the general path says what is wrong
        state = session.state
        searched = state.ann.search(
            tx,
            self.table,
            self.index,
            lambda: state.columns.read(tx, self.table, None)[0],
            query,  # one (dim,) vector: a (1, dim) query to the index
            self.limit,
            params=session.search_params or None,
            wanted=wanted,
        )
        if searched is None:
            return None
        # Ten ids and distances: plain Python beats NumPy calls on arrays this small.
        ids, distances = searched[0].tolist()[0], searched[1].tolist()[0]
        if ids[-1] < 0:  # fewer rows than the limit
            ids = ids[: sum(1 for i in ids if i >= 0)]
            distances = distances[: len(ids)]
        # A NaN or infinite query coordinate makes the distances NaN or infinite: then the
        # general path says what is wrong. (Checking the k distances costs a fifth of
        # checking the query's coordinates first.)
        if not math.isfinite(sum(distances)):
            return None
        return ids, distances

    def _scores(self, distances: list[float]) -> list[float]:
        """The SQL function's value from the index's distance (see contracts/index.py:
        cosine 1 - cos, l2 squared, inner -dot)."""
        if self.metric == "l2":
            roots = [math.sqrt(d) if d > 0 else 0.0 for d in distances]
            return [0.0 - r for r in roots] if self.similarity else roots
        if self.score_is_distance:
            return distances
        if self.metric == "cosine":
            return [1.0 - d for d in distances]
        return [0.0 - d for d in distances]


def _aliased(node: exp.Expr, select: exp.Select) -> exp.Expr:
    """``ORDER BY score`` where ``score`` names a select-list expression."""
    if isinstance(node, exp.Column) and not node.table:
        for item in select.expressions:
            if isinstance(item, exp.Alias) and item.alias.lower() == node.name.lower():
                target: exp.Expr = item.this
                return target
    return node


def _position(table: Table, name: str) -> int | None:
    lowered = name.lower()
    return next((n for n, c in enumerate(table.columns) if c.name.lower() == lowered), None)
