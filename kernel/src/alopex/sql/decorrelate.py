"""Correlated subqueries run once, as joins, when they correlate by equality.

``EXISTS (SELECT ... FROM t WHERE t.k = outer.c AND <rest>)`` is the same as asking
whether ``outer.c`` is among the ``t.k`` of ``SELECT t.k FROM t WHERE <rest>`` -- a query
that no longer mentions the outer row, so it runs once and a semi-join answers every outer
row. Likewise a scalar aggregate ``(SELECT agg(..) FROM t WHERE t.k = outer.c AND <rest>)``
is ``SELECT t.k, agg(..) ... GROUP BY t.k`` left-joined on ``outer.c``, with the aggregate of
no rows where nothing matches. Anything else (inequality correlation, LIMIT, GROUP BY in
the subquery, views) returns None and the caller evaluates the subquery per outer row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from alopex.sql import kernels as k
from alopex.sql.kernels import Value

if TYPE_CHECKING:
    from alopex.sql.expressions import Evaluator
    from alopex.sql.select import Executor


@attrs.frozen
class Split:
    """A subquery with its equality correlations taken out of the WHERE clause."""

    body: exp.Select
    inner: list[exp.Expr]  # expressions over the subquery's own tables
    outer: list[exp.Expr]  # the outer expressions each must equal


def exists(ev: Evaluator, node: exp.Exists) -> Value | None:
    """``EXISTS (subquery)`` for every outer row at once, or None."""
    split = _split(ev.executor, node.this)
    if split is None:
        return None
    keys = split.body.copy()
    keys.set("expressions", [e.copy().as_(f"k{n}") for n, e in enumerate(split.inner)])
    keys.set("distinct", exp.Distinct())
    found = ev.executor.subquery_relation(keys, ev)
    if found is None:
        return None
    matched = _match(ev, split.outer, [found.column(n) for n in range(len(split.inner))])
    if matched is None:
        return None
    mask = np.zeros(ev.rows, dtype=bool)
    mask[matched[0]] = True
    return pa.array(mask)


def scalar(ev: Evaluator, node: exp.Subquery) -> Value | None:
    """A correlated scalar aggregate subquery for every outer row at once, or None."""
    from alopex.sql.expressions import contains_aggregate

    split = _split(ev.executor, node.this)
    if split is None or len(split.body.expressions) != 1:
        return None
    value = split.body.expressions[0]
    if not contains_aggregate(value) or split.body.args.get("having"):
        return None
    grouped = split.body.copy()
    grouped.set(
        "expressions",
        [*(e.copy().as_(f"k{n}") for n, e in enumerate(split.inner)), value.copy().as_("v")],
    )
    grouped.set("group", exp.Group(expressions=[e.copy() for e in split.inner]))
    found = ev.executor.subquery_relation(grouped, ev)
    nothing = split.body.copy()
    nothing.set("where", exp.Where(this=exp.false()))
    empty = ev.executor.subquery_relation(nothing, ev)  # the aggregate over no rows
    if found is None or empty is None:
        return None
    matched = _match(ev, split.outer, [found.column(n) for n in range(len(split.inner))])
    if matched is None:
        return None
    rows, groups = matched
    values = found.column(len(split.inner))
    default = empty.column(0)[0]
    kind = k.common_type([values.type, default.type])
    picks = np.full(ev.rows, -1, dtype=np.int64)
    picks[rows] = groups
    taken = k.cast_to(values, kind).take(pa.array(picks, mask=picks < 0))
    return pc.if_else(pa.array(picks >= 0), taken, k.cast_to(default, kind))


def _match(
    ev: Evaluator, outer: list[exp.Expr], inner: list[pa.Array]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(outer row, inner row) pairs with equal keys (inner keys are distinct); None when
    the key types would need SQLite's cross-type comparison rules."""
    left_columns, right_columns = [], []
    for expression, keys in zip(outer, inner, strict=True):
        left, right = k.comparable(ev.column(expression), keys)
        kind = k.common_type([left.type, right.type])
        if pa.types.is_null(kind):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        left, right = k.cast_to(left, kind), k.cast_to(right, kind)
        if left.type != right.type or not (
            k.is_numeric(kind) or pa.types.is_string(kind) or pa.types.is_binary(kind)
        ):
            return None
        if pa.types.is_floating(kind):  # -0.0 and 0.0 are equal in SQL
            left, right = pc.add(left, 0.0), pc.add(right, 0.0)
        left_columns.append(left)
        right_columns.append(right)
    names = [f"k{n}" for n in range(len(outer))]
    left_table = pa.table([*left_columns, pa.array(np.arange(ev.rows))], [*names, "l"])
    right_table = pa.table(
        [*right_columns, pa.array(np.arange(len(inner[0]) if inner else 0))], [*names, "r"]
    )
    joined = left_table.join(right_table, names, join_type="inner", use_threads=False)
    return joined["l"].to_numpy(), joined["r"].to_numpy()


def _split(executor: Executor, query: exp.Expr) -> Split | None:
    if isinstance(query, exp.Subquery):
        query = query.this
    if not isinstance(query, exp.Select) or query.args.get("with_"):
        return None
    if any(query.args.get(a) for a in ("group", "limit", "offset", "qualify", "windows")):
        return None
    if any(isinstance(e, exp.Window) for e in query.find_all(exp.Window)):
        return None
    from_ = query.args.get("from_")
    if from_ is None:
        return None
    sources = [from_.this, *(j.this for j in query.args.get("joins") or [])]
    columns: dict[str, set[str]] = {}  # alias -> column names
    for source in sources:
        names = executor.source_columns(source)
        if names is None:
            return None
        columns[source.alias_or_name.lower()] = names
    every = set().union(*columns.values())

    def side(node: exp.Expr) -> str:
        """'inner', 'outer', 'both' or 'none' (no columns) for an expression."""
        kinds = set()
        for column in node.find_all(exp.Column):
            if column.find_ancestor(exp.Subquery, exp.Select) not in (None, query):
                return "both"  # inside a nested subquery: too deep to reason about
            table, name = column.table.lower(), column.name.lower()
            inside = name in columns[table] if table in columns else not table and name in every
            kinds.add("inner" if inside else "outer")
        return "none" if not kinds else kinds.pop() if len(kinds) == 1 else "both"

    where = query.args.get("where")
    conjuncts = list(_conjuncts(where.this)) if where is not None else []
    inner, outer, rest = [], [], []
    for conjunct in conjuncts:
        if isinstance(conjunct, exp.EQ):
            left, right = side(conjunct.this), side(conjunct.expression)
            if left == "inner" and right == "outer":
                inner.append(conjunct.this)
                outer.append(conjunct.expression)
                continue
            if left == "outer" and right == "inner":
                inner.append(conjunct.expression)
                outer.append(conjunct.this)
                continue
        rest.append(conjunct)
    if not inner:
        return None
    body = query.copy()
    body.set("where", exp.Where(this=exp.and_(*rest)) if rest else None)
    body.set("order", None)
    return Split(body, inner, outer)


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.And):
        return [*_conjuncts(node.this), *_conjuncts(node.expression)]
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]
