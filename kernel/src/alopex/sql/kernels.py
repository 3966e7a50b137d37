"""Vectorized SQL semantics on Arrow: arithmetic, comparison, truth, type unification.

Values are Arrow arrays or scalars (scalars broadcast). Semantics follow SQLite where the
sqllogictest corpus depends on them: integer division truncates toward zero, division or
remainder by zero is NULL, integer overflow falls back to floating point, comparisons of
numbers with numeric text compare numerically, and any non-zero number is true.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from alopex.errors import DataError

#: An Arrow array or scalar (scalars broadcast). pyarrow ships no type information, so
#: this stays ``Any`` for mypy; the name documents intent.
Value = Any

#: Statement parameters: positional (``?``) or named (``:name``).
Params = Sequence[Any] | Mapping[str, Any]

NULL = pa.scalar(None, pa.null())


def is_null_type(value: Value) -> bool:
    return bool(pa.types.is_null(value.type))


def is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def length_of(value: Value, rows: int) -> pa.Array | pa.ChunkedArray:
    """Materialise a scalar to ``rows`` values; arrays pass through."""
    if isinstance(value, pa.Scalar):
        return pa.repeat(value, rows)
    return value


def numeric(value: Value) -> Value:
    """SQLite's numeric view of a value: booleans are 0/1, numeric text is a number."""
    t = value.type
    if pa.types.is_boolean(t):
        return pc.cast(value, pa.int64())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return text_to_number(value)
    if pa.types.is_decimal(t):
        return pc.cast(value, pa.float64())
    return value


def text_to_number(value: Value) -> Value:
    """Text as a number the way SQLite's arithmetic reads it (non-numeric text is 0)."""
    try:
        return pc.cast(value, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return pc.cast(value, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    items = value.to_pylist() if not isinstance(value, pa.Scalar) else [value.as_py()]
    numbers = [_leading_number(item) for item in items]
    kind = pa.float64() if any(isinstance(n, float) for n in numbers) else pa.int64()
    if isinstance(value, pa.Scalar):
        return pa.scalar(numbers[0], kind)
    return pa.array(numbers, kind)


def _leading_number(text: str | None) -> int | float | None:
    if text is None:
        return None
    text = text.strip()
    best: int | float = 0
    for end in range(len(text), 0, -1):
        head = text[:end]
        try:
            return int(head)
        except ValueError:
            try:
                best = float(head)
                return best
            except ValueError:
                continue
    return 0


_INT_OPS: dict[str, Callable[..., Value]] = {
    "+": pc.add_checked,
    "-": pc.subtract_checked,
    "*": pc.multiply_checked,
}
_FLOAT_OPS: dict[str, Callable[..., Value]] = {
    "+": pc.add,
    "-": pc.subtract,
    "*": pc.multiply,
    "/": pc.divide,
}


def arithmetic(op: str, left: Value, right: Value) -> Value:
    """``+ - * / %`` with SQLite's integer and NULL rules."""
    left, right = numeric(left), numeric(right)
    if is_null_type(left) or is_null_type(right):
        return NULL
    ints = pa.types.is_integer(left.type) and pa.types.is_integer(right.type)
    if op in ("/", "%"):
        return _divide(op, left, right, ints)
    if ints:
        try:
            return _INT_OPS[op](left, right)
        except pa.ArrowInvalid:  # overflow: SQLite continues in floating point
            left, right = pc.cast(left, pa.float64()), pc.cast(right, pa.float64())
    return _FLOAT_OPS[op](left, right)


def _divide(op: str, left: Value, right: Value, ints: bool) -> Value:
    if not ints and op == "%":
        # SQLite computes % on the integer parts, then reports a float.
        whole = _divide(
            "%", pc.cast(left, pa.int64(), safe=False), pc.cast(right, pa.int64(), safe=False), True
        )
        return pc.cast(whole, pa.float64())
    zero = pc.equal(right, pa.scalar(0, right.type))
    safe_right = pc.if_else(zero, pa.scalar(1, right.type), right)
    if ints:
        # INT64_MIN / -1 overflows; SQLite answers in floating point.
        result = pc.divide(left, safe_right) if op == "/" else pc.remainder(left, safe_right)
    else:
        result = pc.divide(pc.cast(left, pa.float64()), pc.cast(safe_right, pa.float64()))
    return pc.if_else(zero, pa.scalar(None, result.type), result)


def negate(value: Value) -> Value:
    value = numeric(value)
    if is_null_type(value):
        return NULL
    if pa.types.is_integer(value.type):
        try:
            return pc.negate_checked(value)
        except pa.ArrowInvalid:
            return pc.negate(pc.cast(value, pa.float64()))
    return pc.negate(value)


_COMPARE = {
    "=": pc.equal,
    "<>": pc.not_equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


def compare(op: str, left: Value, right: Value) -> Value:
    """A comparison yielding a boolean (NULL when either side is NULL)."""
    if is_null_type(left) or is_null_type(right):
        return pa.scalar(None, pa.bool_())
    left, right = comparable(left, right)
    return _COMPARE[op](left, right)


def comparable(left: Value, right: Value) -> tuple[Value, Value]:
    """Bring two values to types Arrow can compare (numeric text meets numbers)."""
    lt, rt = left.type, right.type
    if lt == rt:
        return left, right
    if pa.types.is_boolean(lt):
        left, lt = pc.cast(left, pa.int64()), pa.int64()
    if pa.types.is_boolean(rt):
        right, rt = pc.cast(right, pa.int64()), pa.int64()
    ltext = pa.types.is_string(lt) or pa.types.is_large_string(lt)
    rtext = pa.types.is_string(rt) or pa.types.is_large_string(rt)
    if ltext and _temporal(rt):
        return _text_to_temporal(left, rt), right
    if rtext and _temporal(lt):
        return left, _text_to_temporal(right, lt)
    if ltext and is_numeric(rt):
        left = _text_for_compare(left, rt)
    elif rtext and is_numeric(lt):
        right = _text_for_compare(right, lt)
    elif pa.types.is_decimal(lt) or pa.types.is_decimal(rt):
        left, right = pc.cast(left, pa.float64()), pc.cast(right, pa.float64())
    return left, right


def _temporal(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def _text_to_temporal(text: Value, target: pa.DataType) -> Value:
    """ISO text ('2024-01-01', '2024-01-01 10:00:00') as a timestamp or date."""
    import datetime as dt

    def parse(item: str | None) -> Any:
        if item is None:
            return None
        try:
            moment = dt.datetime.fromisoformat(item)
        except ValueError:
            raise DataError(f"{item!r} is not an ISO date or timestamp") from None
        return moment.date() if pa.types.is_date(target) else moment

    if isinstance(text, pa.Scalar):
        return pa.scalar(parse(text.as_py()), target)
    return pa.array([parse(v) for v in text.to_pylist()], target)


def _text_for_compare(text: Value, target: pa.DataType) -> Value:
    try:
        return pc.cast(text, target if not pa.types.is_decimal(target) else pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:
            return pc.cast(text, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise DataError(f"cannot compare text with a number: {err}") from None


def truth(value: Value) -> Value:
    """SQL truth of a value: booleans as they are, numbers true when non-zero."""
    t = value.type
    if pa.types.is_boolean(t):
        return value
    if is_null_type(value):
        return pa.scalar(None, pa.bool_())
    value = numeric(value)
    return pc.not_equal(value, pa.scalar(0, value.type))


def mask(value: Value, rows: int) -> pa.Array | pa.ChunkedArray:
    """A filter mask: true rows pass, false and NULL rows do not."""
    return length_of(pc.fill_null(truth(value), False), rows)


def common_type(types: Sequence[pa.DataType]) -> pa.DataType:
    """The type that every value of ``types`` converts to for one result column."""
    real = [t for t in types if not pa.types.is_null(t)]
    if not real:
        return pa.null()
    if all(t == real[0] for t in real):
        return real[0]
    if all(is_numeric(t) or pa.types.is_boolean(t) for t in real):
        if any(pa.types.is_floating(t) or pa.types.is_decimal(t) for t in real):
            return pa.float64()
        return pa.int64()
    if any(pa.types.is_binary(t) for t in real):
        return pa.binary()  # text converts to its UTF-8 bytes; not every blob is text
    if any(pa.types.is_string(t) for t in real):
        return pa.string()
    return real[0]


def cast_to(value: Value, target: pa.DataType) -> Value:
    if value.type == target:
        return value
    if is_null_type(value):
        return (
            pa.scalar(None, target)
            if isinstance(value, pa.Scalar)
            else pa.nulls(len(value), target)
        )
    if pa.types.is_string(target) and (is_numeric(value.type) or pa.types.is_boolean(value.type)):
        return pc.cast(value, pa.string())
    return pc.cast(value, target, safe=False)


def unify(values: Sequence[Value]) -> list[Value]:
    target = common_type([v.type for v in values])
    return [cast_to(v, target) for v in values]


def scalar_of(python: Any) -> pa.Scalar:
    """A Python parameter or literal as an Arrow scalar."""
    if python is None:
        return NULL
    if isinstance(python, bool):
        return pa.scalar(python)
    if isinstance(python, int):
        if -(2**63) <= python < 2**63:
            return pa.scalar(python, pa.int64())
        return pa.scalar(float(python), pa.float64())
    # Name the type: pyarrow's inference probes optional imports on every call.
    kind = _SCALAR_TYPES.get(type(python))
    return pa.scalar(python, kind) if kind is not None else pa.scalar(python)


_SCALAR_TYPES = {str: pa.string(), float: pa.float64(), bytes: pa.binary()}
