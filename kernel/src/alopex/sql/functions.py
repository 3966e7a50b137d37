"""Scalar SQL functions, vectorized with pyarrow.compute (SQLite's core set)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from alopex.errors import ProgrammingError
from alopex.sql import kernels as k
from alopex.sql.kernels import NULL, Value

if TYPE_CHECKING:
    from alopex.sql.expressions import Evaluator

Impl = Callable[["Evaluator", exp.Func], Value]
FUNCTIONS: dict[str, Impl] = {}


def function(*names: str) -> Callable[[Impl], Impl]:
    def register(impl: Impl) -> Impl:
        for name in names:
            FUNCTIONS[name] = impl
        return impl

    return register


def call(node: exp.Func, ev: Evaluator) -> Value:
    name = node.name.lower() if isinstance(node, exp.Anonymous) else type(node).__name__.lower()
    impl = FUNCTIONS.get(name)
    if impl is None:
        shown = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        raise ProgrammingError(f"no such function: {shown}")
    return impl(ev, node)


def _args(node: exp.Func) -> list[exp.Expr]:
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    out: list[exp.Expr] = []
    for key in node.arg_types:
        value = node.args.get(key)
        if isinstance(value, list):
            out.extend(value)
        elif isinstance(value, exp.Expr):
            out.append(value)
    return out


def _integer_argument(ev: Evaluator, node: exp.Expr) -> int | None:
    """A constant integer argument (numeric text counts); None for NULL."""
    value = ev.eval(node)
    if not isinstance(value, pa.Scalar):
        raise ProgrammingError(f"{node.sql(dialect='sqlite')} must be a constant here")
    number = k.numeric(value).as_py() if not k.is_null_type(value) else None
    return None if number is None else int(number)


def _text(value: Value) -> Value:
    if pa.types.is_string(value.type) or k.is_null_type(value):
        return value
    return pc.cast(value, pa.string())


@function("abs")
def _abs(ev: Evaluator, node: exp.Func) -> Value:
    value = k.numeric(ev.eval(node.this))
    return NULL if k.is_null_type(value) else pc.abs(value)


@function("coalesce")
def _coalesce(ev: Evaluator, node: exp.Func) -> Value:
    values = k.unify([ev.eval(a) for a in _args(node)])
    if k.is_null_type(values[0]):
        return NULL
    return pc.coalesce(*values)


@function("nullif")
def _nullif(ev: Evaluator, node: exp.Func) -> Value:
    left, right = ev.eval(node.this), ev.eval(node.expression)
    equal = pc.fill_null(k.compare("=", left, right), False)
    return pc.if_else(equal, pa.scalar(None, left.type), left) if not k.is_null_type(left) else NULL


@function("if")
def _iif(ev: Evaluator, node: exp.Func) -> Value:
    cond = pc.fill_null(k.truth(ev.eval(node.this)), False)
    yes, no = k.unify([ev.eval(node.args["true"]), ev.eval(node.args.get("false") or exp.Null())])
    return NULL if k.is_null_type(yes) else pc.if_else(cond, yes, no)


@function("length")
def _length(ev: Evaluator, node: exp.Func) -> Value:
    value = ev.eval(node.this)
    if k.is_null_type(value):
        return NULL
    if pa.types.is_binary(value.type):
        return pc.cast(pc.binary_length(value), pa.int64())
    return pc.cast(pc.utf8_length(_text(value)), pa.int64())


@function("lower")
def _lower(ev: Evaluator, node: exp.Func) -> Value:
    value = ev.eval(node.this)
    return NULL if k.is_null_type(value) else pc.utf8_lower(_text(value))


@function("upper")
def _upper(ev: Evaluator, node: exp.Func) -> Value:
    value = ev.eval(node.this)
    return NULL if k.is_null_type(value) else pc.utf8_upper(_text(value))


@function("substring")
def _substr(ev: Evaluator, node: exp.Func) -> Value:
    value = _text(ev.eval(node.this))
    start_value = ev.eval(node.args["start"])
    length = node.args.get("length")
    count_value = ev.eval(length) if length is not None else None
    if k.is_null_type(value):
        return NULL
    if isinstance(start_value, pa.Scalar) and (
        count_value is None or isinstance(count_value, pa.Scalar)
    ):
        start = _as_int(start_value)
        count = _as_int(count_value) if count_value is not None else None
        if start is None or (count_value is not None and count is None):
            return NULL
        begin, stop = _slice(start, count)
        return pc.utf8_slice_codeunits(value, begin, stop)
    # positions that differ per row: slice row by row (Arrow takes constant bounds only)
    rows = ev.rows
    texts = k.length_of(value, rows).to_pylist()
    starts = k.length_of(k.numeric(start_value), rows).to_pylist()
    counts = (
        k.length_of(k.numeric(count_value), rows).to_pylist()
        if count_value is not None
        else [None] * rows
    )
    out: list[str | None] = []
    for text, start, count in zip(texts, starts, counts, strict=True):
        if text is None or start is None or (count_value is not None and count is None):
            out.append(None)
            continue
        begin, stop = _slice(int(start), None if count is None else int(count))
        out.append(text[begin : stop if stop < 2**31 else None])
    return pa.array(out, pa.string())


def _as_int(value: Value) -> int | None:
    number = k.numeric(value).as_py() if not k.is_null_type(value) else None
    return None if number is None else int(number)


def _slice(start: int, count: int | None) -> tuple[int, int]:
    """SQLite's 1-based substr(start, count) as a Python slice (negative start counts
    from the end)."""
    if start == 0 and count is not None:  # position 0 is before the first character
        return 0, max(count - 1, 0)
    begin = start - 1 if start > 0 else start
    if count is None:
        return begin, 2**31
    stop = begin + count
    if begin < 0 <= stop:
        return begin, 2**31
    return begin, stop


@function("trim")
def _trim(ev: Evaluator, node: exp.Func) -> Value:
    value = _text(ev.eval(node.this))
    if k.is_null_type(value):
        return NULL
    chars_node = node.args.get("expression")
    chars = ev.eval(chars_node).as_py() if chars_node is not None else " "
    position = (node.args.get("position") or "BOTH").upper()
    if position == "LEADING":
        return pc.utf8_ltrim(value, chars)
    if position == "TRAILING":
        return pc.utf8_rtrim(value, chars)
    return pc.utf8_trim(value, chars)


@function("replace")
def _replace(ev: Evaluator, node: exp.Func) -> Value:
    value = _text(ev.eval(node.this))
    old = ev.eval(node.expression).as_py()
    new = ev.eval(node.args["replacement"]).as_py()
    if k.is_null_type(value) or old is None or new is None:
        return NULL
    return pc.replace_substring(value, str(old), str(new)) if old != "" else value


@function("round")
def _round(ev: Evaluator, node: exp.Func) -> Value:
    value = k.numeric(ev.eval(node.this))
    digits_node = node.args.get("decimals")
    digits = _integer_argument(ev, digits_node) if digits_node is not None else 0
    if k.is_null_type(value) or digits is None:
        return NULL
    # SQLite rounds half away from zero, ignores negative digits and needs no more than
    # 30 (Arrow would spin on huge counts).
    places = min(max(digits, 0), 30)
    return pc.round(pc.cast(value, pa.float64()), places, round_mode="half_towards_infinity")


@function("typeof")
def _typeof(ev: Evaluator, node: exp.Func) -> Value:
    value = ev.eval(node.this)
    t = value.type
    name = (
        "null"
        if pa.types.is_null(t)
        else "integer"
        if pa.types.is_integer(t) or pa.types.is_boolean(t)
        else "real"
        if pa.types.is_floating(t)
        else "blob"
        if pa.types.is_binary(t)
        else "text"
    )
    if isinstance(value, pa.Scalar):
        return pa.scalar("null" if not value.is_valid else name)
    return pc.if_else(pc.is_null(value), "null", name)


@function("strposition")
def _instr(ev: Evaluator, node: exp.Func) -> Value:
    value, needle = _text(ev.eval(node.this)), _text(ev.eval(node.args["substr"]))
    if k.is_null_type(value) or k.is_null_type(needle):
        return NULL
    if not isinstance(needle, pa.Scalar):
        raise ProgrammingError("instr() needs a constant string to look for")
    if needle.as_py() is None:
        return NULL
    found = pc.find_substring(value, needle.as_py())
    return pc.add(pc.cast(found, pa.int64()), 1)


@function("greatest", "least")
def _minmax(ev: Evaluator, node: exp.Func) -> Value:
    values = k.unify([ev.eval(a) for a in _args(node)])
    if any(k.is_null_type(v) for v in values):
        return NULL
    combine = pc.max_element_wise if isinstance(node, exp.Greatest) else pc.min_element_wise
    result = combine(*values, skip_nulls=False)
    return result


@function("hex")
def _hex(ev: Evaluator, node: exp.Func) -> Value:
    value = ev.eval(node.this)
    items = [value.as_py()] if isinstance(value, pa.Scalar) else value.to_pylist()
    out = [
        None if v is None else (v if isinstance(v, bytes) else str(v).encode()).hex().upper()
        for v in items
    ]
    return pa.scalar(out[0]) if isinstance(value, pa.Scalar) else pa.array(out, pa.string())


@function("unicode")
def _unicode(ev: Evaluator, node: exp.Func) -> Value:
    value = _text(ev.eval(node.this))
    items = [value.as_py()] if isinstance(value, pa.Scalar) else value.to_pylist()
    out = [ord(v[0]) if v else None for v in items]
    return (
        pa.scalar(out[0], pa.int64()) if isinstance(value, pa.Scalar) else pa.array(out, pa.int64())
    )


@function("currenttimestamp", "currentdatetime")
def _now(ev: Evaluator, node: exp.Func) -> Value:
    import datetime as dt

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return pa.scalar(now, pa.timestamp("us"))


@function("currentdate")
def _today(ev: Evaluator, node: exp.Func) -> Value:
    import datetime as dt

    return pa.scalar(dt.datetime.now(dt.UTC).date(), pa.date32())


@function("chr")
def _char(ev: Evaluator, node: exp.Func) -> Value:
    codes = [ev.eval(a).as_py() for a in node.expressions]
    return pa.scalar("".join(chr(c) for c in codes if c is not None))


from alopex.sql import vectors as _vectors  # noqa: E402  (registers the vector functions)

del _vectors
