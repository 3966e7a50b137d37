"""Run queries: FROM and joins, WHERE, GROUP BY / HAVING, SELECT, DISTINCT, ORDER BY,
LIMIT, set operations and CTEs -- every step on whole Arrow columns.

Joins find equality conditions (in ON, or in WHERE for comma and CROSS joins) and join on
them with Arrow's hash join over row indices; without any, they form the cross product.
Grouping assigns dense group ids with NumPy and aggregates with Arrow's hash aggregates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from alopex.errors import AlopexError, NotSupportedError, ProgrammingError
from alopex.sql import kernels as k
from alopex.sql.access import KEY_FIELD, ScanRequest
from alopex.sql.catalog import Catalog, Index, Table
from alopex.sql.expressions import (
    Correlated,
    Evaluator,
    Outer,
    contains_aggregate,
    is_aggregate,
)
from alopex.sql.kernels import NULL, Params, Value
from alopex.sql.nearest import FUNCTIONS as NEAREST_FUNCTIONS
from alopex.sql.relation import Field, Relation

ScanTable = Callable[[Table, str, "ScanRequest | None"], Relation]
#: (table, index, query vector, k, allowed row ids or None) -> nearest ids, or None: rank exactly
VectorSearch = Callable[[Table, Index, np.ndarray, int, "np.ndarray | None"], "np.ndarray | None"]
#: (table, row ids, fields) -> those rows as a relation with these fields
FetchRows = Callable[[Table, np.ndarray, list[Field]], Relation]
_MAX_RECURSION = 100_000
ParseView = Callable[[str], exp.Expr]


class Executor:
    """Runs read queries against one snapshot (``scan``) and one catalog version."""

    def __init__(
        self,
        catalog: Catalog,
        scan: ScanTable,
        params: Params,
        parse_view: ParseView,
        vector_search: VectorSearch | None = None,
        fetch_rows: FetchRows | None = None,
        exact_filtered_rows: int = 0,
    ) -> None:
        self.catalog = catalog
        #: a filtered top-k keeping at most this many rows ranks them exactly: NumPy over
        #: their vectors beats a graph walk that calls back into Python per candidate
        self.exact_filtered_rows = exact_filtered_rows
        self.scan = scan
        self.vector_search = vector_search
        self.fetch_rows = fetch_rows
        self.params = params
        self.parse_view = parse_view
        self._ctes: list[dict[str, Relation | exp.Expr]] = []
        self._requests: dict[str, ScanRequest] = {}
        #: (operator, detail, rows out, milliseconds) per step, for EXPLAIN [ANALYZE]
        self.trace: list[tuple[str, str, int, float]] | None = None

    def _traced(self, operator: str, detail: str, rows: int, started: float) -> None:
        if self.trace is not None:
            self.trace.append((operator, detail, rows, (time.perf_counter() - started) * 1e3))

    # -- entry points ---------------------------------------------------------------------

    def run(self, node: exp.Expr, outer: Outer | None = None) -> Relation:
        """Run a SELECT or a set operation (with its WITH clause)."""
        with_ = node.args.get("with_")
        if with_ is not None:
            return self._with(with_, node, outer)
        if isinstance(node, exp.Select):
            return self._select(node, outer)
        if isinstance(node, (exp.Union, exp.Intersect, exp.Except)):
            return self._set_operation(node, outer)
        if isinstance(node, exp.Subquery):
            return self.run(node.this, outer)
        if isinstance(node, exp.Values):
            return self._values(node, outer)
        raise NotSupportedError(f"cannot run {node.key.upper()} as a query")

    def subquery_relation(self, node: exp.Expr, ev: Evaluator) -> Relation | None:
        """Run an uncorrelated subquery once; ``None`` if it refers to the outer row."""
        if ev.outer is not None and ev.rows == 1 and ev.relation.num_rows == 0:
            return self.run(node, ev.outer)
        probe = Outer(ev.relation, ev.outer, probing=True)
        try:
            return self.run(node, probe)
        except Correlated:
            return None

    def source_columns(self, node: exp.Expr) -> set[str] | None:
        """Lower-cased column names of a FROM item that is a table or CTE; None otherwise."""
        if not isinstance(node, exp.Table) or node.args.get("joins"):
            return None
        name = node.name.lower()
        for scope in reversed(self._ctes):
            if name in scope:
                found = scope[name]
                if not isinstance(found, Relation):
                    return None
                return {f.name.lower() for f in found.fields}
        table = self.catalog.tables.get(name)
        return None if table is None else {c.name.lower() for c in table.columns}

    def subquery_column(self, node: exp.Expr, ev: Evaluator) -> pa.ChunkedArray | None:
        found = self.subquery_relation(node, ev)
        if found is None:
            return None
        if len(found.fields) != 1:
            raise ProgrammingError("sub-select returns more than 1 column")
        return found.column(0)

    # -- WITH -----------------------------------------------------------------------------

    def _with(self, with_: exp.With, node: exp.Expr, outer: Outer | None) -> Relation:
        recursive = bool(with_.args.get("recursive"))
        scope: dict[str, Relation | exp.Expr] = {}
        self._ctes.append(scope)
        try:
            for cte in with_.expressions:
                alias = cte.args.get("alias")
                names = [c.name for c in alias.columns] if alias and alias.columns else None
                name = cte.alias_or_name.lower()
                body = cte.this
                if (
                    recursive
                    and isinstance(body, exp.Union)
                    and any(t.name.lower() == name for t in body.expression.find_all(exp.Table))
                ):
                    relation = self._recursive(name, body, names, scope, outer)
                else:
                    relation = self.run(body, outer)
                    if names:
                        relation = Relation(relation.table, [Field(n) for n in names])
                scope[name] = relation
            inner = node.copy()
            inner.set("with_", None)
            return self.run(inner, outer)
        finally:
            self._ctes.pop()

    def _recursive(
        self,
        name: str,
        body: exp.Union,
        names: list[str] | None,
        scope: dict[str, Relation | exp.Expr],
        outer: Outer | None,
    ) -> Relation:
        """Iterate the recursive term on the rows the previous step added until none are."""
        base = self.run(body.this, outer)
        fields = [Field(n) for n in names] if names else [Field(f.name) for f in base.fields]
        if len(fields) != len(base.fields):
            raise ProgrammingError(
                f"table {name} has {len(base.fields)} values for {len(fields)} columns"
            )
        types = [c.type for c in base.table.columns]
        distinct = body.args.get("distinct", True) is not False
        total = Relation(base.table, fields)
        if distinct:
            total = total.take(_distinct_rows(list(total.table.columns)))
        working = total
        for _ in range(_MAX_RECURSION):
            if working.num_rows == 0:
                return total
            scope[name] = working
            step = self.run(body.expression, outer)
            if len(step.fields) != len(fields):
                raise ProgrammingError(
                    f"the recursive part of {name} has the wrong number of columns"
                )
            columns = [
                k.cast_to(c, t) if c.type != t else c
                for c, t in zip(step.table.columns, types, strict=True)
            ]
            if pa.types.is_null(types[0]) and columns:
                types = [c.type for c in columns]
            step = Relation.build(columns, fields, step.num_rows)
            if distinct and step.num_rows:
                both = [
                    pa.chunked_array(list(_chunks(a)) + list(_chunks(b)), b.type)
                    for a, b in zip(total.table.columns, step.table.columns, strict=True)
                ]
                first = _distinct_rows(both)
                fresh = first[first >= total.num_rows] - total.num_rows
                step = step.take(np.sort(fresh))
            total = Relation(pa.concat_tables([total.table, step.table]), fields)
            working = step
        raise ProgrammingError(
            f"recursive query {name} did not finish after {_MAX_RECURSION} steps"
        )

    # -- FROM -----------------------------------------------------------------------------

    def _source(self, node: exp.Expr, outer: Outer | None) -> Relation:
        joins = node.args.get("joins")
        if joins:  # a parenthesised join: FROM (a CROSS JOIN b)
            bare = node.copy()
            bare.set("joins", None)
            relation = self._source(bare, outer)
            for join in joins:
                relation = self._join(relation, join, outer, [])
            return relation
        alias = node.alias_or_name
        if isinstance(node, exp.Table):
            name = node.name
            for scope in reversed(self._ctes):
                if name.lower() in scope:
                    found = scope[name.lower()]
                    assert isinstance(found, Relation)
                    return found.requalify(alias)
            view = self.catalog.views.get(name.lower())
            if view is not None:
                relation = self.run(self.parse_view(view.sql), None)
                if view.columns:
                    relation = Relation(relation.table, [Field(c) for c in view.columns])
                return relation.requalify(alias)
            started = time.perf_counter()
            table = self.catalog.table(name)
            request = self._requests.get(alias.lower())
            relation = self.scan(table, alias, request)
            how = "; ".join(request.description) if request is not None else "full scan"
            shown = (
                table.name if alias.lower() == table.name.lower() else f"{table.name} AS {alias}"
            )
            self._traced("SCAN", f"{shown}: {how}", relation.num_rows, started)
            return relation
        if isinstance(node, exp.Subquery) and not isinstance(
            node.this, (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Values)
        ):
            return self._source(node.this, outer)
        if isinstance(node, exp.Subquery):
            relation = self.run(node.this, outer)
            columns = node.args.get("alias")
            if columns is not None and columns.columns:
                relation = Relation(relation.table, [Field(c.name) for c in columns.columns])
            return relation.requalify(alias) if alias else relation
        if isinstance(node, exp.Values):
            return self._values(node, outer).requalify(alias)
        raise NotSupportedError(f"unsupported FROM item: {node.sql(dialect='sqlite')}")

    def _from(self, node: exp.Select, outer: Outer | None, conjuncts: list[exp.Expr]) -> Relation:
        from_ = node.args.get("from_")
        if from_ is None:
            return Relation.single_row()
        relation = self._source(from_.this, outer)
        for join in node.args.get("joins") or []:
            relation = self._join(relation, join, outer, conjuncts)
        return relation

    def _join(
        self, left: Relation, join: exp.Join, outer: Outer | None, where: list[exp.Expr]
    ) -> Relation:
        right = self._source(join.this, outer)
        side = (join.side or "").upper()
        on = join.args.get("on")
        using = [u.name for u in join.args.get("using") or []]
        if join.method and join.method.upper() == "NATURAL":
            using = [
                f.name for f in right.fields if not f.hidden and left.resolve(f.name) is not None
            ]
        conditions = _conjuncts(on) if on is not None else []
        pairs: list[tuple[Value, Value]] = []
        for name in using:
            pairs.append((left.column(left.require(name)), right.column(right.require(name))))
        residual: list[exp.Expr] = []
        candidates = conditions + (where if not side else [])
        for cond in candidates:
            pair = self._equi_pair(cond, left, right, outer)
            if pair is not None:
                pairs.append(pair)
            elif cond in conditions:
                residual.append(cond)
        started = time.perf_counter()
        if pairs:
            li, ri = _hash_join(pairs, left.num_rows, right.num_rows)
        else:
            li = np.repeat(np.arange(left.num_rows, dtype=np.int64), right.num_rows)
            ri = np.tile(np.arange(right.num_rows, dtype=np.int64), left.num_rows)
        if using:  # the right side's USING columns are shown once, from the left
            right = Relation(
                right.table,
                [Field(f.name, f.table, True) if f.name in using else f for f in right.fields],
            )
        combined = left.take(li).concat_columns(right.take(ri))
        if residual:
            ev = Evaluator(combined, self.params, self, None, outer)
            keep = k.mask(ev.eval(_and_all(residual)), combined.num_rows)
            keep_np = np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
            combined = combined.filter(keep)
            li, ri = li[keep_np], ri[keep_np]
        if side in ("LEFT", "FULL"):
            missing = np.setdiff1d(np.arange(left.num_rows), li)
            if len(missing):
                extra = left.take(missing).concat_columns(
                    right.take(pa.nulls(len(missing), pa.int64()))
                )
                combined = Relation(
                    pa.concat_tables([combined.table, extra.table]), combined.fields
                )
        if side in ("RIGHT", "FULL"):
            missing = np.setdiff1d(np.arange(right.num_rows), ri)
            if len(missing):
                extra = left.take(pa.nulls(len(missing), pa.int64())).concat_columns(
                    right.take(missing)
                )
                combined = Relation(
                    pa.concat_tables([combined.table, extra.table]), combined.fields
                )
        kind = f"{side} OUTER JOIN" if side else "JOIN"
        how = f"hash join on {len(pairs)} key(s)" if pairs else "cross product"
        self._traced(
            kind,
            how + (f", {len(residual)} residual condition(s)" if residual else ""),
            combined.num_rows,
            started,
        )
        return combined

    def _equi_pair(
        self, cond: exp.Expr, left: Relation, right: Relation, outer: Outer | None
    ) -> tuple[Value, Value] | None:
        """``left_expr = right_expr`` where each side reads only one relation."""
        if not isinstance(cond, exp.EQ):
            return None
        sides = []
        for operand in (cond.left, cond.right):
            columns = list(operand.find_all(exp.Column))
            if not columns or operand.find(exp.Subquery, exp.Select) is not None:
                return None
            in_left = all(left.resolve(c.name, c.table or None) is not None for c in columns)
            in_right = all(right.resolve(c.name, c.table or None) is not None for c in columns)
            if in_left == in_right:
                return None
            sides.append((operand, in_left))
        (a, a_left), (b, b_left) = sides
        if a_left == b_left:
            return None
        lhs, rhs = (a, b) if a_left else (b, a)
        try:
            lvalue = Evaluator(left, self.params, self, None, outer).column(lhs)
            rvalue = Evaluator(right, self.params, self, None, outer).column(rhs)
        except ProgrammingError:
            return None
        return lvalue, rvalue

    # -- SELECT ---------------------------------------------------------------------------

    def _select(self, node: exp.Select, outer: Outer | None) -> Relation:
        where = node.args.get("where")
        conjuncts = _conjuncts(where.this) if where is not None else []
        saved, self._requests = self._requests, self._pushdown(node, conjuncts, outer)
        try:
            relation = self._from(node, outer, conjuncts)
        finally:
            self._requests = saved
        if where is not None:
            started = time.perf_counter()
            ev = Evaluator(relation, self.params, self, None, outer)
            relation = relation.filter(k.mask(ev.eval(where.this), relation.num_rows))
            if self.trace is not None:  # the condition's text only when asked for
                self._traced(
                    "FILTER", where.this.sql(dialect="sqlite")[:80], relation.num_rows, started
                )
        if self.vector_search is not None and node.args.get("order") and node.args.get("limit"):
            relation = self._nearest(node, relation, where is not None, outer)
        items = self._expand(node.expressions, relation)
        group = node.args.get("group")
        having = node.args.get("having")
        order = node.args.get("order")
        order_items = list(order.expressions) if order is not None else []
        aggregated = (
            group is not None
            or having is not None
            or any(contains_aggregate(e) for e in items)
            or any(contains_aggregate(o.this) for o in order_items)
        )
        aggregates: dict[str, Value] | None = None
        if aggregated:
            group_exprs = [
                self._group_expr(g, items, relation)
                for g in (group.expressions if group is not None else [])
            ]
            calls = _aggregate_calls(
                items
                + [o.this for o in order_items]
                + ([having.this] if having is not None else [])
            )
            started = time.perf_counter()
            relation, aggregates = self._aggregate(relation, group_exprs, calls, outer)
            self._traced(
                "AGGREGATE",
                f"{len(group_exprs)} group key(s), {len(calls)} aggregate(s)",
                relation.num_rows,
                started,
            )
            if having is not None:
                ev = Evaluator(relation, self.params, self, aggregates, outer)
                keep = k.mask(ev.eval(having.this), relation.num_rows)
                relation = relation.filter(keep)
                aggregates = {key: _filter_value(v, keep) for key, v in aggregates.items()}
        windows = _windows(items + [o.this for o in order_items])
        if windows:
            from alopex.sql import windows as window_functions

            named = window_functions.named_windows(node)
            aggregates = dict(aggregates or {})
            ev = Evaluator(relation, self.params, self, aggregates, outer)
            started = time.perf_counter()
            for window in windows:
                resolved = window_functions.resolve(window, named)
                aggregates[window.sql()] = window_functions.compute(resolved, ev)
            self._traced("WINDOW", f"{len(windows)} window function(s)", relation.num_rows, started)
        ev = Evaluator(relation, self.params, self, aggregates, outer)
        columns = [ev.column(item) for item in items]
        fields = [Field(_output_name(item)) for item in items]
        output = Relation.build(columns, fields, relation.num_rows)
        keys = [self._order_key(o, items, output, ev) for o in order_items]
        if node.args.get("distinct"):
            started = time.perf_counter()
            first = _distinct_rows(list(output.table.columns))
            output = output.take(first)
            keys = [(_take(v, first), desc, nulls_first) for v, desc, nulls_first in keys]
            self._traced("DISTINCT", "", output.num_rows, started)
        if keys:
            started = time.perf_counter()
            detail = f"{len(keys)} key(s)"
            limit = self._constant_limit(node, outer)
            leading = _top_candidates(keys[0], output.num_rows, limit) if limit else None
            if leading is not None:  # sort only the rows that can come first
                detail += f", the {len(leading):,} of {output.num_rows:,} rows that can be first"
                output = output.take(leading)
                keys = [(_take(v, leading), desc, nulls_first) for v, desc, nulls_first in keys]
            output = output.take(_sort_indices(keys, output.num_rows))
            self._traced("SORT", detail, output.num_rows, started)
        return self._limit(node, output, outer)

    def _constant_limit(self, node: exp.Select, outer: Outer | None) -> int | None:
        """LIMIT plus OFFSET when both are constants, else None."""
        if node.args.get("limit") is None:
            return None
        try:
            return self._limit_count(node, outer)
        except (Correlated, AlopexError):
            return None

    def _pushdown(
        self, node: exp.Select, conjuncts: list[exp.Expr], outer: Outer | None
    ) -> dict[str, ScanRequest]:
        """Per table alias: the columns the query reads and its constant conditions."""
        from_ = node.args.get("from_")
        if from_ is None:
            return {}
        joins = node.args.get("joins") or []
        sources = [from_.this, *(j.this for j in joins)]
        star = any(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
            for e in node.expressions
        )
        natural = any(j.method and j.method.upper() == "NATURAL" for j in joins)
        needed: frozenset[str] | None = None
        if not star and not natural:
            names = {c.name.lower() for c in node.find_all(exp.Column)}
            names |= {u.name.lower() for j in joins for u in j.args.get("using") or []}
            needed = frozenset(names)
        single = len(sources) == 1
        nearest = bool(node.args.get("order") and node.args.get("limit"))  # may go to an ANN index
        requests: dict[str, ScanRequest] = {}
        constant = Evaluator(Relation.single_row(), self.params, self, None, outer)
        for source in sources:
            if not isinstance(source, exp.Table) or source.args.get("joins"):
                continue
            alias = source.alias_or_name.lower()
            request = ScanRequest(columns=needed, keys=nearest)
            for cond in conjuncts:
                for column, op, value_node in _constant_conditions(cond):
                    if (column.table.lower() != alias) if column.table else not single:
                        continue
                    try:
                        value = constant.eval(value_node)
                    except AlopexError:
                        continue
                    python = value.as_py() if isinstance(value, pa.Scalar) else None
                    if python is None or isinstance(python, (list, dict)):
                        continue
                    if op == "=":
                        request.equal[column.name.lower()] = python
                    else:
                        request.bound(column.name.lower(), op, python)
            requests[alias] = request
        return requests

    def _expand(self, expressions: list[exp.Expr], relation: Relation) -> list[exp.Expr]:
        items: list[exp.Expr] = []
        for item in expressions:
            if isinstance(item, exp.Star) or (
                isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
            ):
                table = item.table if isinstance(item, exp.Column) else None
                matched = False
                for f in relation.fields:
                    if f.hidden or (table and (f.table or "").lower() != table.lower()):
                        continue
                    matched = True
                    column = exp.column(f.name, f.table) if f.table else exp.column(f.name)
                    items.append(exp.alias_(column, f.name) if f.table else column)
                if table and not matched:
                    raise ProgrammingError(f"no such table: {table}")
            else:
                items.append(item)
        return items

    def _group_expr(self, node: exp.Expr, items: list[exp.Expr], relation: Relation) -> exp.Expr:
        if isinstance(node, exp.Literal) and not node.is_string:
            position = int(node.this)
            if not 1 <= position <= len(items):
                raise ProgrammingError(f"GROUP BY term out of range: {position}")
            return _unalias(items[position - 1])
        if isinstance(node, exp.Column) and not node.table:
            for item in items:
                if (
                    isinstance(item, exp.Alias)
                    and item.alias.lower() == node.name.lower()
                    and relation.resolve(node.name) is None  # a source column wins
                ):
                    aliased: exp.Expr = item.this
                    return aliased
        return node

    def _order_key(
        self, ordered: exp.Ordered, items: list[exp.Expr], output: Relation, ev: Evaluator
    ) -> tuple[Value, bool, bool]:
        node = ordered.this
        desc = bool(ordered.args.get("desc"))
        nulls_first = ordered.args.get("nulls_first")
        nulls_first = (not desc) if nulls_first is None else bool(nulls_first)
        if isinstance(node, exp.Literal) and not node.is_string:
            position = int(node.this)
            if not 1 <= position <= len(items):
                raise ProgrammingError(f"ORDER BY term out of range: {position}")
            return output.column(position - 1), desc, nulls_first
        if isinstance(node, exp.Column) and not node.table:
            for n, item in enumerate(items):
                if isinstance(item, exp.Alias) and item.alias.lower() == node.name.lower():
                    return output.column(n), desc, nulls_first
        return ev.column(node), desc, nulls_first

    # -- nearest neighbours -----------------------------------------------------------------

    def _nearest(
        self, node: exp.Select, relation: Relation, filtered: bool, outer: Outer | None
    ) -> Relation:
        """Keep only the rows an ANN index ranks first for ``ORDER BY <vector function>
        LIMIT k`` over one table; ORDER BY and LIMIT then run on those rows. Filtered
        queries hand the rows WHERE kept to the index as its allow-set."""
        plan = self._nearest_plan(node, outer)
        if plan is None:
            return relation
        table, index, query, k = plan
        started = time.perf_counter()
        detail = f"{index.name} ({index.method.upper()}) top {k}" + (
            ", WHERE rows as allow-set" if filtered else ""
        )
        key = relation.resolve(KEY_FIELD)
        if key is None or relation.num_rows <= k:  # EXPLAIN plans on no rows
            note = " (no more rows than k: exact)" if relation.num_rows else ""
            self._traced("NEAREST", detail + note, relation.num_rows, started)
            return relation
        if filtered and relation.num_rows <= self.exact_filtered_rows:
            # ORDER BY ranks the kept rows exactly, from their vectors already in hand
            note = f" (at most {self.exact_filtered_rows:,} rows kept: exact)"
            self._traced("NEAREST", detail + note, relation.num_rows, started)
            return relation
        from alopex.sql.ann import row_ids

        ids = row_ids(table, relation.column(key)) if filtered else None
        assert self.vector_search is not None
        found = self.vector_search(table, index, query, k, ids)
        if found is None:
            why = " (exact: this transaction wrote the table or its snapshot is older)"
            self._traced("NEAREST", detail + why, relation.num_rows, started)
            return relation
        found = found[found >= 0]
        if ids is None and self.fetch_rows is not None:  # the index is this snapshot: read k
            nearest = self.fetch_rows(table, found, relation.fields)
            self._traced("NEAREST", detail, nearest.num_rows, started)
            return nearest
        if ids is None:
            ids = row_ids(table, relation.column(key))
        order = np.argsort(ids, kind="stable")
        slots = np.searchsorted(ids, found, sorter=order)
        slots = np.minimum(slots, len(ids) - 1)
        positions = order[slots][ids[order[slots]] == found]
        self._traced("NEAREST", detail, len(positions), started)
        return relation.take(pa.array(positions))

    def _nearest_plan(
        self, node: exp.Select, outer: Outer | None
    ) -> tuple[Table, Index, np.ndarray, int] | None:
        from_ = node.args.get("from_")
        if from_ is None or node.args.get("joins") or not isinstance(from_.this, exp.Table):
            return None
        if any(node.args.get(a) for a in ("group", "having", "distinct")):
            return None
        if any(contains_aggregate(e) for e in node.expressions) or _windows(node.expressions):
            return None
        name = from_.this.name.lower()
        if any(name in scope for scope in self._ctes) or name not in self.catalog.tables:
            return None
        table = self.catalog.tables[name]
        indexes = self.catalog.vector_indexes_of(table.name)
        first = node.args["order"].expressions[0]
        call = first.this
        if isinstance(call, exp.Column) and not call.table:  # ORDER BY an output alias
            aliased = [
                e.this
                for e in node.expressions
                if isinstance(e, exp.Alias) and e.alias.lower() == call.name.lower()
            ]
            call = aliased[0] if aliased else call
        if not indexes or not isinstance(call, exp.Anonymous):
            return None
        fixed = NEAREST_FUNCTIONS.get(call.name.lower())
        if fixed is None or bool(first.args.get("desc")) != fixed[1] or len(call.expressions) < 2:
            return None
        ev = Evaluator(Relation.single_row(), self.params, self, None, outer)
        for column, other in (call.expressions[:2], call.expressions[1::-1]):
            if not isinstance(column, exp.Column):
                continue
            position = next(
                (n for n, c in enumerate(table.columns) if c.name.lower() == column.name.lower()),
                None,
            )
            index = next((i for i in indexes if i.columns[0] == position), None)
            if index is None or position is None:
                continue
            try:
                metric = (
                    fixed[0] or _metric_argument(ev, call) or table.columns[position].type.metric
                )
                query = _constant_vector(ev, other)
                limit = self._limit_count(node, outer)
            except (Correlated, AlopexError):
                return None
            declared = index.params.get("metric") or table.columns[position].type.metric
            if query is None or limit is None or (metric or "cosine") != (declared or "cosine"):
                return None
            return table, index, query, limit
        return None

    def _limit_count(self, node: exp.Select, outer: Outer | None) -> int | None:
        """LIMIT plus OFFSET as constants, or None."""
        limit = node.args["limit"]
        ev = Evaluator(Relation.single_row(), self.params, self, None, outer)
        count = int(_integer(ev.eval(limit.expression or limit.this), "LIMIT"))
        skip = node.args.get("offset")
        extra = int(_integer(ev.eval(skip.expression), "OFFSET")) if skip is not None else 0
        return count + max(extra, 0) if count >= 0 else None

    def _limit(self, node: exp.Expr, output: Relation, outer: Outer | None) -> Relation:
        limit = node.args.get("limit")
        offset = node.args.get("offset")
        if limit is None and offset is None:
            return output
        ev = Evaluator(Relation.single_row(), self.params, self, None, outer)
        start = 0
        if offset is not None:
            start = max(0, int(_integer(ev.eval(offset.expression), "OFFSET")))
        count = None
        if limit is not None:
            limit_node = limit.expression if limit.expression is not None else limit.this
            count = int(_integer(ev.eval(limit_node), "LIMIT"))
            offset_in_limit = limit.args.get("offset")
            if offset_in_limit is not None:
                start = max(0, int(_integer(ev.eval(offset_in_limit), "OFFSET")))
            if count < 0:
                count = None
        return output.slice(start, count)

    def _values(self, node: exp.Values, outer: Outer | None) -> Relation:
        ev = Evaluator(Relation.single_row(), self.params, self, None, outer)
        rows = [[ev.eval(v) for v in row.expressions] for row in node.expressions]
        width = len(rows[0]) if rows else 0
        columns = []
        for n in range(width):
            values = k.unify([row[n] for row in rows])
            kind = values[0].type
            columns.append(pa.array([v.as_py() for v in values], kind))
        return Relation.build(columns, [Field(f"column{n + 1}") for n in range(width)], len(rows))

    # -- GROUP BY -------------------------------------------------------------------------

    def _aggregate(
        self,
        relation: Relation,
        group_exprs: list[exp.Expr],
        calls: list[exp.Expr],
        outer: Outer | None,
    ) -> tuple[Relation, dict[str, Value]]:
        ev = Evaluator(relation, self.params, self, None, outer)
        rows = relation.num_rows
        if group_exprs:
            keys = [ev.column(g) for g in group_exprs]
            gid, first = _group_ids(keys)
            groups = len(first)
            base = relation.take(first)
            grouped = {g.sql(): _take(key, first) for g, key in zip(group_exprs, keys, strict=True)}
        else:
            gid = np.zeros(rows, dtype=np.int64)
            groups = 1
            if rows:
                base = relation.take(np.zeros(1, dtype=np.int64))
            else:
                base = relation.take(pa.nulls(1, pa.int64()))
            grouped = {}
        results: dict[str, Value] = dict(grouped)
        for call in calls:
            results[call.sql()] = _aggregate_call(call, ev, gid, groups)
        return base, results

    # -- set operations -------------------------------------------------------------------

    def _set_operation(self, node: exp.Expr, outer: Outer | None) -> Relation:
        left = self.run(node.this, outer)
        right = self.run(node.expression, outer)
        if len(left.fields) != len(right.fields):
            raise ProgrammingError(
                f"SELECTs to the left and right of {node.key.upper()} do not have the same "
                "number of result columns"
            )
        columns_l, columns_r = [], []
        for a, b in zip(left.table.columns, right.table.columns, strict=True):
            kind = k.common_type([a.type, b.type])
            columns_l.append(k.cast_to(a, kind))
            columns_r.append(k.cast_to(b, kind))
        fields = [Field(f.name) for f in left.fields]
        both = [
            pa.chunked_array(list(_chunks(a)) + list(_chunks(b)), a.type)
            for a, b in zip(columns_l, columns_r, strict=True)
        ]
        distinct = node.args.get("distinct", True) is not False
        nl = left.num_rows
        if isinstance(node, exp.Union):
            output = Relation.build(both, fields, nl + right.num_rows)
            if distinct:
                output = output.take(_distinct_rows(list(output.table.columns)))
        else:
            gid, first = (
                _group_ids(both) if both else (np.zeros(0, np.int64), np.zeros(0, np.int64))
            )
            groups = len(first)
            in_left = np.bincount(gid[:nl], minlength=groups)
            in_right = np.bincount(gid[nl:], minlength=groups)
            if isinstance(node, exp.Intersect):
                keep_count = np.minimum(in_left, in_right)
            else:
                keep_count = (
                    np.maximum(in_left - in_right, 0)
                    if not distinct
                    else np.where(in_right > 0, 0, in_left)
                )
            if distinct:
                keep_count = np.minimum(keep_count, 1)
            chosen = np.repeat(first, keep_count)
            output = Relation.build(both, fields, nl + right.num_rows).take(np.sort(chosen))
        order = node.args.get("order")
        if order is not None:
            ev = Evaluator(output, self.params, self, None, outer)
            items: list[exp.Expr] = [exp.column(f.name) for f in fields]
            keys = [self._order_key(o, items, output, ev) for o in order.expressions]
            output = output.take(_sort_indices(keys, output.num_rows))
        return self._limit(node, output, outer)


# -- helpers ------------------------------------------------------------------------------


_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPS: dict[type, str] = {exp.EQ: "=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}


def _is_constant(node: exp.Expr) -> bool:
    while isinstance(node, (exp.Neg, exp.Paren)):
        node = node.this
    return isinstance(node, (exp.Literal, exp.Placeholder))


def _constant_conditions(cond: exp.Expr) -> list[tuple[exp.Column, str, exp.Expr]]:
    """``column op constant`` readings of a WHERE conjunct (BETWEEN gives two)."""
    if isinstance(cond, exp.Between) and isinstance(cond.this, exp.Column):
        low, high = cond.args["low"], cond.args["high"]
        if _is_constant(low) and _is_constant(high):
            return [(cond.this, ">=", low), (cond.this, "<=", high)]
        return []
    op = _OPS.get(type(cond))
    if op is None or not isinstance(cond, exp.Binary):
        return []
    left, right = cond.left, cond.right
    if isinstance(left, exp.Column) and _is_constant(right):
        return [(left, op, right)]
    if isinstance(right, exp.Column) and _is_constant(left):
        return [(right, _FLIPPED[op], left)]
    return []


def _conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    if isinstance(node, exp.Paren) and isinstance(node.this, exp.And):
        return _conjuncts(node.this)
    return [node]


def _and_all(nodes: list[exp.Expr]) -> exp.Expr:
    result = nodes[0]
    for node in nodes[1:]:
        result = exp.And(this=result, expression=node)
    return result


def _unalias(node: exp.Expr) -> exp.Expr:
    return node.this if isinstance(node, exp.Alias) else node


def _output_name(item: exp.Expr) -> str:
    if isinstance(item, exp.Alias):
        return item.alias
    if isinstance(item, exp.Column):
        return item.name
    return item.sql(dialect="sqlite")


def _aggregate_calls(nodes: list[exp.Expr]) -> list[exp.Expr]:
    calls: dict[str, exp.Expr] = {}

    def visit(node: exp.Expr) -> None:
        if is_aggregate(node) and not isinstance(node.parent, exp.Window):
            calls.setdefault(node.sql(), node)
            return
        for child in node.iter_expressions():
            if not isinstance(child, (exp.Subquery, exp.Select)):
                visit(child)

    for node in nodes:
        visit(node)
    return list(calls.values())


def _windows(nodes: list[exp.Expr]) -> list[exp.Window]:
    found: dict[str, exp.Window] = {}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Window):
            found.setdefault(node.sql(), node)
            continue
        for child in node.iter_expressions():
            if not isinstance(child, (exp.Subquery, exp.Select)):
                stack.append(child)
    return list(found.values())


def _chunks(column: pa.ChunkedArray | pa.Array) -> Iterator[pa.Array]:
    if isinstance(column, pa.ChunkedArray):
        yield from column.chunks
    else:
        yield column


def _take(value: Value, indices: np.ndarray) -> Value:
    if isinstance(value, pa.Scalar):
        return value
    return value.take(indices)


def _filter_value(value: Value, keep: pa.Array | pa.ChunkedArray) -> Value:
    if isinstance(value, pa.Scalar):
        return value
    return value.filter(keep)


def _integer(value: Value, what: str) -> int:
    python = value.as_py() if isinstance(value, pa.Scalar) else None
    if isinstance(python, bool) or not isinstance(python, (int, float)):
        raise ProgrammingError(f"{what} must be an integer, got {python!r}")
    return int(python)


def _codes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Dense codes per value with NULL as its own code (0)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype=np.int64)
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.equal(column, 0.0), pa.scalar(0.0, column.type), column)
    encoded = pc.dictionary_encode(column)
    indices = encoded.indices.fill_null(-1)
    return np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64) + 1


def _group_ids(keys: Sequence[pa.ChunkedArray | pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """(group id per row, first row of each group); NULLs group together.

    Each key becomes dense codes (dictionary encoding); several keys combine into one code
    by mixed radix while it fits in 63 bits. Arrow's hash aggregate then finds each code's
    first row -- O(n), where sorting the codes (np.unique) would be O(n log n).
    """
    codes = [_codes(key) for key in keys]
    rows = len(codes[0]) if codes else 0
    if rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    combined, radix = codes[0], int(codes[0].max()) + 1
    for code in codes[1:]:
        size = int(code.max()) + 1
        if radix * size >= 1 << 62:  # too many combinations for one int64: sort instead
            return _group_ids_sorted(codes)
        combined, radix = combined * size + code, radix * size
    if radix > 4 * rows + 1024:  # sparse combinations: a dense rank table would not pay
        return _group_ids_sorted([combined])
    table = pa.table({"c": combined, "i": np.arange(rows, dtype=np.int64)})
    found = table.group_by("c", use_threads=False).aggregate([("i", "min")])
    values, firsts = found["c"].to_numpy(), found["i_min"].to_numpy()
    order = np.argsort(firsts, kind="stable")  # number groups by first appearance
    rank = np.zeros(radix, np.int64)
    rank[values[order]] = np.arange(len(order))
    return rank[combined], firsts[order]


def _group_ids_sorted(codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if len(codes) == 1:
        _, first, gid = np.unique(codes[0], return_index=True, return_inverse=True)
    else:
        stacked = np.stack(codes, axis=1)
        _, first, gid = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[gid.reshape(-1)], first[order]


def _metric_argument(ev: Evaluator, call: exp.Anonymous) -> str | None:
    if len(call.expressions) < 3:
        return None
    value = ev.eval(call.expressions[2])
    return str(value.as_py()).lower() if isinstance(value, pa.Scalar) else None


def _constant_vector(ev: Evaluator, node: exp.Expr) -> np.ndarray | None:
    from alopex.sql.vectors import vectors

    value = ev.eval(node)
    if not isinstance(value, pa.Scalar) or not value.is_valid:
        return None
    matrix, _ = vectors(value, "the query vector")
    return matrix.reshape(-1).astype(np.float32)


def _distinct_rows(columns: Sequence[pa.ChunkedArray | pa.Array]) -> np.ndarray:
    """The first row of every distinct combination of values, in order of appearance."""
    if not columns or len(columns[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    return _group_ids(columns)[1]


def _top_candidates(key: tuple[Value, bool, bool], rows: int, limit: int) -> np.ndarray | None:
    """For ``ORDER BY .. LIMIT n``: the positions (in order) of the rows whose first sort
    key is at least as good as the n-th best, which hold the first n rows of the stable
    sort whatever the later keys say; None when that would not save a sort (few rows) or
    the key is not plain numbers (NULL and NaN go wherever the sort puts them)."""
    value, desc, _ = key
    if rows < 1024 or limit * 4 > rows or not isinstance(value, pa.Array | pa.ChunkedArray):
        return None
    if not (pa.types.is_integer(value.type) or pa.types.is_floating(value.type)):
        return None
    if value.null_count:
        return None
    numbers = np.asarray(value.to_numpy())
    if numbers.dtype.kind == "f" and np.isnan(numbers).any():
        return None
    if desc:
        bound = np.partition(numbers, rows - limit)[rows - limit]
        return np.flatnonzero(numbers >= bound)
    bound = np.partition(numbers, limit - 1)[limit - 1]
    return np.flatnonzero(numbers <= bound)


def _sort_indices(keys: list[tuple[Value, bool, bool]], rows: int) -> pa.Array:
    columns, sort_keys = {}, []
    for n, (value, desc, nulls_first) in enumerate(keys):
        column = k.length_of(value, rows)
        if pa.types.is_null(column.type):
            continue
        if pa.types.is_boolean(column.type):
            column = pc.cast(column, pa.int8())
        columns[f"n{n}"] = pc.is_null(column)
        sort_keys.append((f"n{n}", "descending" if nulls_first else "ascending"))
        columns[f"k{n}"] = column
        sort_keys.append((f"k{n}", "descending" if desc else "ascending"))
    if not sort_keys:
        return pa.array(np.arange(rows))
    return pc.sort_indices(pa.table(columns), sort_keys=sort_keys)


def _aggregate_call(call: exp.Expr, ev: Evaluator, gid: np.ndarray, groups: int) -> Value:
    name = call.name.lower() if isinstance(call, exp.Anonymous) else call.key
    argument = (
        call.this
        if not isinstance(call, exp.Anonymous)
        else (call.expressions[0] if call.expressions else None)
    )
    distinct = isinstance(argument, exp.Distinct)
    if isinstance(argument, exp.Distinct):
        argument = argument.expressions[0]
    if name == "count" and (argument is None or isinstance(argument, exp.Star)):
        return pa.array(np.bincount(gid, minlength=groups).astype(np.int64))
    if argument is None:
        raise ProgrammingError(f"wrong number of arguments to {name}()")
    values = ev.column(argument)
    if pa.types.is_null(values.type):
        values = pa.nulls(len(values), pa.int64())
    if pa.types.is_boolean(values.type):
        values = pc.cast(values, pa.int64())
    separator = ","
    if name in ("groupconcat", "group_concat"):
        sep_node = (
            call.args.get("separator")
            if not isinstance(call, exp.Anonymous)
            else (call.expressions[1] if len(call.expressions) > 1 else None)
        )
        if sep_node is not None:
            separator = str(ev.eval(sep_node).as_py())
        values = (
            pc.cast(values, pa.string())
            if not pa.types.is_floating(values.type)
            else pa.array([None if v is None else repr(v) for v in values.to_pylist()], pa.string())
        )
    if name in ("sum", "avg", "total") and (pa.types.is_string(values.type)):
        values = k.text_to_number(values)
    if pa.types.is_decimal(values.type) and name in ("avg", "total"):
        values = pc.cast(values, pa.float64())
    table = pa.table({"g": pa.array(gid, pa.int64()), "v": values})
    table = table.filter(pc.is_valid(table.column("v")))
    if distinct:
        table = table.group_by(["g", "v"], use_threads=False).aggregate([])
    function = {
        "count": "count",
        "sum": "sum",
        "avg": "mean",
        "min": "min",
        "max": "max",
        "total": "sum",
        "groupconcat": "list",
        "group_concat": "list",
    }.get(name)
    if function is None:
        raise NotSupportedError(f"aggregate {name}() is not supported")
    result = table.group_by("g", use_threads=False).aggregate([("v", function)])
    placed = np.full(groups, -1, dtype=np.int64)
    placed[result.column("g").to_numpy()] = np.arange(result.num_rows)
    indices = pa.array(placed, mask=placed < 0)
    column = result.column(1).take(indices)
    if function == "list":
        column = pc.binary_join(column, separator)
    if name == "count":
        column = column.fill_null(0)
    if name == "total":
        column = pc.cast(column, pa.float64()).fill_null(0.0)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column if groups else NULL


def _hash_join(
    pairs: list[tuple[Value, Value]], left_rows: int, right_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row index pairs whose keys are equal (NULL keys never match), ordered by left row."""
    left_columns: dict[str, Any] = {}
    right_columns: dict[str, Any] = {}
    for n, (lvalue, rvalue) in enumerate(pairs):
        lcol = k.length_of(lvalue, left_rows)
        rcol = k.length_of(rvalue, right_rows)
        if pa.types.is_null(lcol.type) or pa.types.is_null(rcol.type):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lcol, rcol = k.comparable(lcol, rcol)
        kind = k.common_type([lcol.type, rcol.type])
        if pa.types.is_boolean(kind):
            kind = pa.int64()
        left_columns[f"k{n}"] = k.cast_to(lcol, kind)
        right_columns[f"k{n}"] = k.cast_to(rcol, kind)
    left_columns["li"] = pa.array(np.arange(left_rows, dtype=np.int64))
    right_columns["ri"] = pa.array(np.arange(right_rows, dtype=np.int64))
    keys = [f"k{n}" for n in range(len(pairs))]
    joined = pa.table(left_columns).join(
        pa.table(right_columns), keys=keys, join_type="inner", use_threads=False
    )
    li = joined.column("li").to_numpy()
    ri = joined.column("ri").to_numpy()
    order = np.lexsort((ri, li))
    return li[order], ri[order]
