"""Evaluate SQL expressions over a relation, one Arrow kernel per operator.

An expression is walked once per evaluation and every operator runs on whole columns, so
the cost per row is Arrow's, not Python's. Aggregate calls are looked up in precomputed
per-group columns; subqueries are run through the executor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from alopex.errors import DataError, NotSupportedError, ProgrammingError
from alopex.sql import decorrelate
from alopex.sql import kernels as k
from alopex.sql.kernels import NULL, Params, Value
from alopex.sql.relation import Relation

if TYPE_CHECKING:
    from alopex.sql.select import Executor

AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.GroupConcat)


def is_aggregate(node: exp.Expr) -> bool:
    if isinstance(node, AGGREGATES):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() in ("total", "group_concat")


def contains_aggregate(node: exp.Expr) -> bool:
    """True if ``node`` has an aggregate call outside any subquery or window."""
    stack = [node]
    while stack:
        current = stack.pop()
        if is_aggregate(current) and not isinstance(current.parent, exp.Window):
            return True
        for child in current.iter_expressions():
            if not isinstance(child, (exp.Subquery, exp.Select, exp.Window)):
                stack.append(child)
    return False


class Correlated(Exception):
    """Raised while probing a subquery that references its outer query."""


@attrs.define
class Outer:
    """The enclosing query's row for a correlated subquery (one row per evaluation)."""

    relation: Relation
    parent: Outer | None = None
    probing: bool = False

    def lookup(self, name: str, table: str | None) -> Value | None:
        position = self.relation.resolve(name, table)
        if position is not None:
            if self.probing:
                raise Correlated(name)
            return self.relation.column(position)[0]
        return self.parent.lookup(name, table) if self.parent else None


class Evaluator:
    """Evaluates expressions against one relation."""

    def __init__(
        self,
        relation: Relation,
        params: Params,
        executor: Executor,
        aggregates: Mapping[str, Value] | None = None,
        outer: Outer | None = None,
    ) -> None:
        self.relation = relation
        self.params = params
        self.executor = executor
        self.aggregates = aggregates
        self.outer = outer
        self.rows = relation.num_rows

    def column(self, node: exp.Expr) -> pa.Array | pa.ChunkedArray:
        """Evaluate to a full column of ``rows`` values."""
        return k.length_of(self.eval(node), self.rows)

    def eval(self, node: exp.Expr) -> Value:
        method = _DISPATCH.get(type(node))
        if method is None:
            raise NotSupportedError(f"unsupported expression: {node.sql(dialect='sqlite')}")
        return method(self, node)

    # -- leaves ---------------------------------------------------------------------------

    def _literal(self, node: exp.Literal) -> Value:
        if node.is_string:
            return pa.scalar(node.this, pa.string())
        text = node.this
        try:
            return k.scalar_of(int(text))
        except ValueError:
            return pa.scalar(float(text), pa.float64())

    def _hex(self, node: exp.HexString) -> Value:
        try:
            return pa.scalar(bytes.fromhex(node.this), pa.binary())
        except ValueError:
            raise ProgrammingError(f"malformed blob literal x'{node.this}'") from None

    def _null(self, node: exp.Null) -> Value:
        return NULL

    def _boolean(self, node: exp.Boolean) -> Value:
        return pa.scalar(bool(node.this))

    def _array(self, node: exp.Array) -> Value:
        """A vector literal ``[0.1, 0.2]``."""
        items = [self.eval(e) for e in node.expressions]
        if not all(isinstance(i, pa.Scalar) and k.is_numeric(i.type) for i in items):
            raise DataError(f"a vector literal holds numbers only: {node.sql()[:60]}")
        return pa.scalar([i.as_py() for i in items], pa.list_(pa.float32()))

    def _placeholder(self, node: exp.Placeholder) -> Value:
        index = node.meta.get("index")
        if index is None:
            raise ProgrammingError("parameter placeholders were not numbered")
        if isinstance(self.params, Mapping):
            name = node.name
            if name not in self.params:
                raise ProgrammingError(f"missing parameter :{name}")
            return _param(self.params[name])
        if index >= len(self.params):
            raise ProgrammingError(
                f"the statement has more placeholders than the {len(self.params)} "
                "parameters supplied"
            )
        return _param(self.params[index])

    def _column(self, node: exp.Column) -> Value:
        if self.aggregates is not None:
            grouped = self.aggregates.get(node.sql())
            if grouped is not None:
                return grouped
        name, table = node.name, node.table or None
        position = self.relation.resolve(name, table)
        if position is not None:
            return self.relation.column(position)
        if self.outer is not None:
            value = self.outer.lookup(name, table)
            if value is not None:
                return value
        self.relation.require(name, table)  # raises with a suggestion
        raise AssertionError("unreachable")

    # -- operators ------------------------------------------------------------------------

    def _paren(self, node: exp.Paren) -> Value:
        return self.eval(node.this)

    def _neg(self, node: exp.Neg) -> Value:
        return k.negate(self.eval(node.this))

    def _arith(self, node: exp.Binary) -> Value:
        return k.arithmetic(_ARITH[type(node)], self.eval(node.left), self.eval(node.right))

    def _compare(self, node: exp.Binary) -> Value:
        return k.compare(_CMP[type(node)], self.eval(node.left), self.eval(node.right))

    def _and(self, node: exp.And) -> Value:
        return pc.and_kleene(k.truth(self.eval(node.left)), k.truth(self.eval(node.right)))

    def _or(self, node: exp.Or) -> Value:
        return pc.or_kleene(k.truth(self.eval(node.left)), k.truth(self.eval(node.right)))

    def _not(self, node: exp.Not) -> Value:
        return pc.invert(k.truth(self.eval(node.this)))

    def _is(self, node: exp.Is) -> Value:
        left = self.eval(node.this)
        if isinstance(node.expression, exp.Null):
            return (
                pc.is_null(left)
                if not isinstance(left, pa.Scalar)
                else pa.scalar(not left.is_valid)
            )
        right = self.eval(node.expression)
        # a IS b: equality where NULL IS NULL is true and never NULL
        both_null = pc.and_(_is_null(left), _is_null(right))
        either_null = pc.or_(_is_null(left), _is_null(right))
        equal = pc.fill_null(k.compare("=", left, right), False)
        return pc.if_else(either_null, both_null, equal)

    def _null_safe(self, node: exp.Binary) -> Value:
        equal = self._is(exp.Is(this=node.left, expression=node.right))
        return pc.invert(equal) if isinstance(node, exp.NullSafeNEQ) else equal

    def _between(self, node: exp.Between) -> Value:
        value = self.eval(node.this)
        low, high = self.eval(node.args["low"]), self.eval(node.args["high"])
        return pc.and_kleene(k.compare(">=", value, low), k.compare("<=", value, high))

    def _in(self, node: exp.In) -> Value:
        value = self.eval(node.this)
        query = node.args.get("query")
        if query is not None:
            found = self.executor.subquery_column(
                query.this if isinstance(query, exp.Subquery) else query, self
            )
            if found is None:  # correlated: one evaluation per outer row
                return self._per_row(node)
            candidates = found
        else:
            items = [self.eval(e) for e in node.expressions]
            if not all(isinstance(i, pa.Scalar) for i in items):
                result: Value = pa.scalar(False)
                for item in items:
                    result = pc.or_kleene(result, k.compare("=", value, item))
                return result
            candidates = pa.array(
                [i.as_py() for i in items], k.common_type([i.type for i in items])
            )
        return _in_set(value, candidates)

    def _exists(self, node: exp.Exists) -> Value:
        query = node.this
        found = self.executor.subquery_relation(
            query.this if isinstance(query, exp.Subquery) else query, self
        )
        if found is None:
            joined = decorrelate.exists(self, node)
            return joined if joined is not None else self._per_row(node)
        return pa.scalar(found.num_rows > 0)

    def _subquery(self, node: exp.Subquery) -> Value:
        found = self.executor.subquery_relation(node.this, self)
        if found is None:
            joined = decorrelate.scalar(self, node)
            return joined if joined is not None else self._per_row(node)
        visible = [f for f in found.fields if not f.hidden]
        if len(visible) > 1:
            raise ProgrammingError(
                f"sub-select returns {len(visible)} columns - expected 1: "
                f"{node.sql(dialect='sqlite')[:80]}"
            )
        if found.num_rows == 0 or not found.fields:
            return NULL
        return found.column(0)[0]

    def _per_row(self, node: exp.Expr) -> Value:
        """Evaluate a correlated subquery expression once per row of this relation."""
        results = []
        for row in range(self.rows):
            outer = Outer(self.relation.slice(row, 1), self.outer)
            single = Evaluator(Relation.single_row(), self.params, self.executor, None, outer)
            results.append(single.eval(node))
        if not results:
            return pa.nulls(0)
        kind = k.common_type([r.type for r in results])
        return pa.array([k.cast_to(r, kind).as_py() for r in results], kind)

    def _case(self, node: exp.Case) -> Value:
        operand = self.eval(node.this) if node.this else None
        conditions, values = [], []
        for branch in node.args.get("ifs") or []:
            test = self.eval(branch.this)
            cond = k.compare("=", operand, test) if operand is not None else k.truth(test)
            conditions.append(pc.fill_null(cond, False))
            values.append(self.eval(branch.args["true"]))
        default = node.args.get("default")
        values.append(self.eval(default) if default is not None else NULL)
        values = k.unify(values)
        if all(isinstance(c, pa.Scalar) for c in conditions):
            for cond, value in zip(conditions, values, strict=False):
                if cond.as_py():
                    return value
            return values[-1]
        rows = self.rows
        conds = pa.StructArray.from_arrays(
            [k.length_of(c, rows) for c in conditions],
            names=[f"c{n}" for n in range(len(conditions))],
        )
        kind = values[0].type
        if pa.types.is_null(kind):
            return NULL
        return pc.case_when(conds, *[k.length_of(v, rows) for v in values])

    def _cast(self, node: exp.Cast) -> Value:
        from alopex.sql.types import from_sqlglot

        value = self.eval(node.this)
        target = from_sqlglot(node.to).arrow
        if k.is_null_type(value):
            return pa.scalar(None, target)
        if pa.types.is_integer(target) and (pa.types.is_string(value.type)):
            number = k.text_to_number(value)
            return pc.cast(number, target, safe=False)
        if pa.types.is_string(target) and pa.types.is_floating(value.type):
            return _float_text(value)
        try:
            return pc.cast(value, target, safe=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise DataError(f"cannot CAST {node.this.sql()} to {node.to.sql()}: {err}") from None

    def _concat(self, node: exp.DPipe) -> Value:
        left, right = _as_text(self.eval(node.left)), _as_text(self.eval(node.right))
        if k.is_null_type(left) or k.is_null_type(right):
            return NULL
        return pc.binary_join_element_wise(left, right, "")

    def _like(self, node: exp.Like) -> Value:
        return self._pattern(node.this, node.expression, like=True, case=False)

    def _ilike(self, node: exp.ILike) -> Value:
        return self._pattern(node.this, node.expression, like=True, case=False)

    def _glob(self, node: exp.Glob) -> Value:
        return self._pattern(node.this, node.expression, like=False, case=True)

    def _escape(self, node: exp.Escape) -> Value:
        like = node.this
        escape = self.eval(node.expression).as_py()
        pattern = self.eval(like.expression)
        if not isinstance(pattern, pa.Scalar):
            raise NotSupportedError("LIKE ... ESCAPE needs a constant pattern")
        regex = _like_regex(pattern.as_py(), escape)
        value = _as_text(self.eval(like.this))
        return pc.match_substring_regex(value, regex, ignore_case=True)

    def _pattern(self, this: exp.Expr, pattern_node: exp.Expr, *, like: bool, case: bool) -> Value:
        result = self._match(this, pattern_node, like=like, case=case)
        negate = this.parent is not None and this.parent.args.get("negate")
        return pc.invert(result) if negate else result

    def _match(self, this: exp.Expr, pattern_node: exp.Expr, *, like: bool, case: bool) -> Value:
        value = _as_text(self.eval(this))
        pattern = _as_text(self.eval(pattern_node))
        if k.is_null_type(value) or k.is_null_type(pattern):
            return pa.scalar(None, pa.bool_())
        if isinstance(pattern, pa.Scalar):
            text = pattern.as_py()
            if text is None:
                return pa.scalar(None, pa.bool_())
            regex = _like_regex(text, None) if like else _glob_regex(text)
            return pc.match_substring_regex(value, regex, ignore_case=not case)
        # a pattern per row: one regex per distinct pattern
        patterns = k.length_of(pattern, self.rows).to_pylist()
        values = k.length_of(value, self.rows).to_pylist()
        out: list[bool | None] = []
        for v, p in zip(values, patterns, strict=True):
            if v is None or p is None:
                out.append(None)
            else:
                regex = _like_regex(p, None) if like else _glob_regex(p)
                out.append(re.fullmatch(regex, v, 0 if case else re.IGNORECASE) is not None)
        return pa.array(out, pa.bool_())

    def _window(self, node: exp.Window) -> Value:
        if self.aggregates is not None:
            found = self.aggregates.get(node.sql())
            if found is not None:
                return found
        raise ProgrammingError(
            f"window functions are allowed only in SELECT and ORDER BY: "
            f"{node.sql(dialect='sqlite')}"
        )

    def _func(self, node: exp.Func) -> Value:
        if self.aggregates is not None and is_aggregate(node):
            key = node.sql()
            if key in self.aggregates:
                return self.aggregates[key]
        if is_aggregate(node):
            raise ProgrammingError(f"misuse of aggregate: {node.sql(dialect='sqlite')}")
        from alopex.sql.functions import call

        return call(node, self)


def _is_null(value: Value) -> Value:
    if isinstance(value, pa.Scalar):
        return pa.scalar(not value.is_valid)
    return pc.is_null(value)


def _param(value: Any) -> Value:
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value, dtype=np.float32)
        return pa.scalar(array.tolist(), pa.list_(pa.float32(), len(array)))
    try:
        return k.scalar_of(value)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
        raise ProgrammingError(
            f"unsupported parameter type {type(value).__name__}: {value!r}"
        ) from err


def _in_set(value: Value, candidates: pa.Array | pa.ChunkedArray) -> Value:
    """``value IN candidates`` with SQL NULL rules."""
    if isinstance(candidates, pa.ChunkedArray):
        candidates = candidates.combine_chunks()
    if len(candidates) == 0:  # nothing is IN an empty set, not even NULL
        return pa.scalar(False)
    if k.is_null_type(value):
        return pa.scalar(None, pa.bool_())
    has_null = candidates.null_count > 0
    present = candidates.drop_null()
    if len(present) == 0:
        found: Value = (
            pa.scalar(False)
            if isinstance(value, pa.Scalar)
            else pa.repeat(pa.scalar(False), len(value))
        )
    else:
        value, present = k.comparable(value, present)
        kind = k.common_type([value.type, present.type])
        value, present = k.cast_to(value, kind), k.cast_to(present, kind)
        found = pc.is_in(value, value_set=present, skip_nulls=True)
    # not found: NULL if the value is NULL or the set holds a NULL, else false
    unknown = _is_null(value)
    if has_null:
        unknown = pc.or_(unknown, pa.scalar(True))
    null_bool = pa.scalar(None, pa.bool_())
    return pc.if_else(found, pa.scalar(True), pc.if_else(unknown, null_bool, pa.scalar(False)))


def _as_text(value: Value) -> Value:
    if pa.types.is_string(value.type) or k.is_null_type(value):
        return value
    if pa.types.is_floating(value.type):
        return _float_text(value)
    return pc.cast(value, pa.string())


def _float_text(value: Value) -> Value:
    """Floats as SQLite prints them: ``1.0``, not ``1``."""
    if isinstance(value, pa.Scalar):
        v = value.as_py()
        return pa.scalar(None if v is None else repr(v), pa.string())
    return pa.array([None if v is None else repr(v) for v in value.to_pylist()], pa.string())


def _like_regex(pattern: str, escape: str | None) -> str:
    out = []
    chars = iter(pattern)
    for ch in chars:
        if escape and ch == escape:
            out.append(re.escape(next(chars, "")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "^" + "".join(out) + "$"


_ARITH: dict[type, str] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
    exp.IntDiv: "/",
}
_CMP: dict[type, str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}

_DISPATCH: dict[type, Callable[[Evaluator, Any], Value]] = {
    exp.Literal: Evaluator._literal,
    exp.Null: Evaluator._null,
    exp.HexString: Evaluator._hex,
    exp.Boolean: Evaluator._boolean,
    exp.Placeholder: Evaluator._placeholder,
    exp.Array: Evaluator._array,
    exp.Column: Evaluator._column,
    exp.Paren: Evaluator._paren,
    exp.Alias: Evaluator._paren,
    exp.Neg: Evaluator._neg,
    exp.And: Evaluator._and,
    exp.Or: Evaluator._or,
    exp.Not: Evaluator._not,
    exp.Is: Evaluator._is,
    exp.NullSafeEQ: Evaluator._null_safe,
    exp.NullSafeNEQ: Evaluator._null_safe,
    exp.Between: Evaluator._between,
    exp.In: Evaluator._in,
    exp.Exists: Evaluator._exists,
    exp.Subquery: Evaluator._subquery,
    exp.Case: Evaluator._case,
    exp.Cast: Evaluator._cast,
    exp.TryCast: Evaluator._cast,
    exp.DPipe: Evaluator._concat,
    exp.Like: Evaluator._like,
    exp.ILike: Evaluator._ilike,
    exp.Glob: Evaluator._glob,
    exp.Escape: Evaluator._escape,
    exp.Window: Evaluator._window,
    **dict.fromkeys(_ARITH, Evaluator._arith),
    **dict.fromkeys(_CMP, Evaluator._compare),
}


def _all_functions(base: type) -> list[type]:
    found: list[type] = []
    subclass: type
    for subclass in base.__subclasses__():
        found.append(subclass)
        found.extend(_all_functions(subclass))
    return found


for _kind in _all_functions(exp.Func):
    _DISPATCH.setdefault(_kind, Evaluator._func)
